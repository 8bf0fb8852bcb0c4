package status

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func conds(cs []metav1.Condition) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	slices.Sort(out)
	return out
}

func connected(mod func(*Report)) *Report {
	r := &Report{
		Connected: true,
		Hello:     &meshpb.Hello{Backend: "kernel", Mtu: 1420},
		Key:       &meshpb.KeyReport{PublicKey: make32(7), Generation: 2, CreatedUnixNano: now.Add(-time.Hour).UnixNano()},
		LastSeen:  now,
		Sync:      streamserver.NodeSync{Connected: true, Sent: generation.Gen{Epoch: 2, Seq: 9}, Applied: generation.Gen{Epoch: 2, Seq: 9}, UpToDate: true},
	}
	if mod != nil {
		mod(r)
	}
	return r
}

func make32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b
	}
	return k
}

func TestNodeStatusConditions(t *testing.T) {
	plan := desired.NodeStatus{Selected: true, Member: true, Peers: 4,
		Endpoint: netip.MustParseAddrPort("198.18.0.1:51820"), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.1.0/24")}}
	for _, tc := range []struct {
		name   string
		report *Report
		plan   *desired.NodeStatus
		want   []string
	}{
		{"a node whose daemon never connected is not ready", nil, nil, []string{
			"Connected=False/StreamClosed", "Isolated=False/NotIsolated", "MapCapacity=True/Sufficient", "Ready=False/StreamClosed"}},
		{"a connected daemon that applied the latest state is ready", connected(nil), &plan, []string{
			"Connected=True/StreamOpen", "Isolated=False/NotIsolated", "MapCapacity=True/Sufficient", "Ready=True/Applied"}},
		{"a daemon still applying is not ready", connected(func(r *Report) { r.Sync.UpToDate = false }), &plan, []string{
			"Connected=True/StreamOpen", "Isolated=False/NotIsolated", "MapCapacity=True/Sufficient", "Ready=False/Applying"}},
		{"full maps in an ack", connected(func(r *Report) {
			r.Failure = &meshpb.Ack{Code: meshpb.AckCode_ACK_CAPACITY, Error: "remote CIDR map full"}
		}), &plan, []string{
			"Connected=True/StreamOpen", "Isolated=False/NotIsolated", "MapCapacity=False/MapsFull", "Ready=False/MapsFull"}},
		{"full maps in the daemon's status", connected(func(r *Report) {
			r.Status = &meshpb.TunnelStatus{Conditions: []*meshpb.Condition{{Type: "MapCapacity", Status: false, Message: "blocks"}}}
		}), &plan, []string{
			"Connected=True/StreamOpen", "Isolated=False/NotIsolated", "MapCapacity=False/MapsFull", "Ready=False/MapsFull"}},
		{"a failed apply", connected(func(r *Report) { r.Failure = &meshpb.Ack{Code: meshpb.AckCode_ACK_FAILED, Error: "netlink"} }), &plan, []string{
			"Connected=True/StreamOpen", "Isolated=False/NotIsolated", "MapCapacity=True/Sufficient", "Ready=False/ApplyFailed"}},
		{"a disconnected daemon", connected(func(r *Report) { r.Connected = false }), &plan, []string{
			"Connected=False/StreamClosed", "Isolated=False/NotIsolated", "MapCapacity=True/Sufficient", "Ready=False/StreamClosed"}},
		{"an isolated node", connected(nil), &desired.NodeStatus{Selected: true, Isolated: true}, []string{
			"Connected=True/StreamOpen", "Isolated=True/BlockPolicy", "MapCapacity=True/Sufficient", "Ready=True/Applied"}},
		{"a node awaiting rotation after isolation", connected(nil), &desired.NodeStatus{Selected: true, QuarantinePending: true}, []string{
			"Connected=True/StreamOpen", "Isolated=True/AwaitingRotation", "MapCapacity=True/Sufficient", "Ready=True/Applied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NodeFacts{Report: tc.report, Now: now, Heartbeat: time.Minute}
			if tc.plan != nil {
				f.Plan, f.Planned = *tc.plan, true
			}
			if d := cmp.Diff(tc.want, conds(NodeStatus(f).Conditions)); d != "" {
				t.Errorf("conditions (-want +got):\n%s", d)
			}
		})
	}
}

func TestNodeStatusFields(t *testing.T) {
	plan := desired.NodeStatus{Selected: true, Member: true, Peers: 4,
		Endpoint: netip.MustParseAddrPort("198.18.0.1:51820"), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.1.0/24")}}
	st := NodeStatus(NodeFacts{Report: connected(func(r *Report) {
		r.Status = &meshpb.TunnelStatus{UnixNano: now.UnixNano(), Mtu: 1380, Peers: []*meshpb.PeerStatus{
			{LastHandshakeUnixNano: now.Add(-time.Minute).UnixNano()},
			{LastHandshakeUnixNano: now.Add(-4 * time.Minute).UnixNano()},
			{},
		}}
	}), Plan: plan, Planned: true, Now: now, Heartbeat: time.Minute})
	st.Conditions = nil
	created, seen := metav1.NewTime(now.Add(-time.Hour)), metav1.NewTime(now)
	want := v1alpha1.VpbluNodeStatus{
		PublicKey: "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=", KeyGeneration: 2, KeyCreated: &created,
		Backend: v1alpha1.BackendKernel, MTU: 1380, PeersUp: 1, PeersTotal: 4, AppliedGeneration: "2.9", LastSeen: &seen,
		Endpoint: "198.18.0.1:51820", PodCIDRs: []string{"100.64.1.0/24"},
	}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
}

func TestNodeStatusRules(t *testing.T) {
	t.Run("lastSeen is rewritten only after a heartbeat", func(t *testing.T) {
		old := metav1.NewTime(now.Add(-30 * time.Second))
		f := NodeFacts{Old: v1alpha1.VpbluNodeStatus{LastSeen: &old}, Report: connected(nil), Now: now, Heartbeat: time.Minute}
		if got := NodeStatus(f).LastSeen; !got.Equal(&old) {
			t.Errorf("lastSeen %v rewritten within the heartbeat", got)
		}
		f.Heartbeat = 10 * time.Second
		if got := NodeStatus(f).LastSeen; !got.Time.Equal(now) {
			t.Errorf("lastSeen %v not rewritten after the heartbeat", got)
		}
	})
	t.Run("a rotation in progress owns the key fields, the daemon's reports do not", func(t *testing.T) {
		rotatingCond := metav1.Condition{Type: v1alpha1.ConditionRotating, Status: metav1.ConditionTrue, Reason: "Retire"}
		old := v1alpha1.VpbluNodeStatus{PublicKey: "new", KeyGeneration: 3, PendingPublicKey: "new",
			RotationPhase: v1alpha1.RotationRetire, Conditions: []metav1.Condition{rotatingCond}}
		st := NodeStatus(NodeFacts{Old: old, Report: connected(nil), Now: now})
		if st.PublicKey != "new" || st.KeyGeneration != 3 || st.PendingPublicKey != "new" || st.RotationPhase != v1alpha1.RotationRetire {
			t.Errorf("rotation fields %q gen %d pending %q phase %s, want the rotation's kept", st.PublicKey, st.KeyGeneration, st.PendingPublicKey, st.RotationPhase)
		}
		if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionRotating); c == nil || c.Reason != "Retire" {
			t.Errorf("Rotating condition %+v, want the rotation's kept", c)
		}
		old.RotationPhase = v1alpha1.RotationIdle
		if st := NodeStatus(NodeFacts{Old: old, Report: connected(nil), Now: now}); st.KeyGeneration != 2 {
			t.Errorf("key generation %d once idle, want the daemon's report (2)", st.KeyGeneration)
		}
	})
	t.Run("a stream opened after lastSeen is recorded at once", func(t *testing.T) {
		old := metav1.NewTime(now.Add(-30 * time.Second))
		r := connected(func(r *Report) { r.ConnectedAt = now.Add(-2 * time.Second) })
		f := NodeFacts{Old: v1alpha1.VpbluNodeStatus{LastSeen: &old}, Report: r, Now: now, Heartbeat: time.Hour}
		if got := NodeStatus(f).LastSeen; !got.Time.Equal(now) {
			t.Errorf("lastSeen %v after a reconnect, want %v", got, now)
		}
		r.ConnectedAt = old.Add(-time.Minute)
		if got := NodeStatus(f).LastSeen; !got.Equal(&old) {
			t.Errorf("lastSeen %v rewritten for a stream older than it", got)
		}
	})
	t.Run("an isolated node's key generation is recorded for the quarantine", func(t *testing.T) {
		st := NodeStatus(NodeFacts{Report: connected(nil), Plan: desired.NodeStatus{Isolated: true}, Planned: true, Now: now})
		if st.QuarantineKeyGeneration != 2 {
			t.Errorf("quarantineKeyGeneration = %d, want the key generation 2", st.QuarantineKeyGeneration)
		}
		st = NodeStatus(NodeFacts{Old: st, Report: connected(nil), Plan: desired.NodeStatus{}, Planned: true, Now: now})
		if st.QuarantineKeyGeneration != 2 {
			t.Errorf("lifting the isolation cleared the quarantine record (%d)", st.QuarantineKeyGeneration)
		}
	})
	t.Run("an unknown backend is not written (the CRD would refuse it)", func(t *testing.T) {
		st := NodeStatus(NodeFacts{Old: v1alpha1.VpbluNodeStatus{Backend: v1alpha1.BackendKernel},
			Report: connected(func(r *Report) { r.Hello.Backend = "ebpf-magic" }), Now: now})
		if st.Backend != v1alpha1.BackendKernel {
			t.Errorf("backend = %q", st.Backend)
		}
	})
	t.Run("a condition keeps its transition time while its status holds", func(t *testing.T) {
		first := NodeStatus(NodeFacts{Report: connected(nil), Now: now})
		later := NodeStatus(NodeFacts{Old: first, Report: connected(nil), Now: now.Add(time.Hour)})
		for _, typ := range []string{v1alpha1.ConditionConnected, v1alpha1.ConditionReady} {
			a, b := find(first.Conditions, typ), find(later.Conditions, typ)
			if !a.LastTransitionTime.Equal(&b.LastTransitionTime) {
				t.Errorf("%s moved from %v to %v without changing", typ, a.LastTransitionTime, b.LastTransitionTime)
			}
		}
	})
}

func find(cs []metav1.Condition, typ string) metav1.Condition {
	for _, c := range cs {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func TestPolicyStatus(t *testing.T) {
	tunnel := func(name string) desired.Ref { return desired.Ref{Kind: desired.KindTunnelPolicy, Name: name} }
	conflict := &desired.PolicyError{Object: tunnel("late"), Other: tunnel("early"), Field: "spec.listenPort", Err: desired.ErrConflict,
		Detail: `2 node(s) (first "n1") are also selected by the older TunnelPolicy "early", whose value 51820 applies instead of 51999`}
	noVia := &desired.PolicyError{Object: desired.Ref{Kind: desired.KindRoutePolicy, Name: "r"}, Field: "spec.via", Err: desired.ErrNoVia, Detail: "no candidate qualifies"}
	unknown := &desired.PolicyError{Object: desired.Ref{Kind: desired.KindBlockPolicy, Name: "b"}, Field: "spec.isolate", Err: desired.ErrUnknownNode, Detail: `node "x" does not exist`}
	invalid := &desired.PolicyError{Object: tunnel("t"), Field: "spec.nodeSelector", Err: desired.ErrInvalid, Detail: "bad selector"}
	for _, tc := range []struct {
		name         string
		facts        PolicyFacts
		wantObserved int64
		want         []string
		wantMsg      map[string]string
	}{
		{"every concerned node applied the computed generation",
			PolicyFacts{Generation: 3, Planned: true, Nodes: 5, Applied: 5}, 3,
			[]string{"Conflict=False/NoConflict", "Ready=True/Applied", "Valid=True/Valid"}, nil},
		{"some nodes still applying",
			PolicyFacts{Generation: 3, Planned: true, Nodes: 5, Applied: 2}, 3,
			[]string{"Conflict=False/NoConflict", "Ready=False/Applying", "Valid=True/Valid"},
			map[string]string{"Ready": "2 of 5 nodes applied"}},
		{"a generation not computed yet keeps the observed one",
			PolicyFacts{Old: v1alpha1.PolicyStatus{ObservedGeneration: 2}, Generation: 3, Nodes: 5, Applied: 5}, 2,
			[]string{"Conflict=False/NoConflict", "Ready=False/Pending", "Valid=True/Valid"}, nil},
		{"a lost conflict names the winner",
			PolicyFacts{Generation: 1, Planned: true, Problems: []*desired.PolicyError{conflict}, Nodes: 2, Applied: 2}, 1,
			[]string{"Conflict=True/Conflict", "Ready=True/Applied", "Valid=True/Valid"},
			map[string]string{"Conflict": `spec.listenPort: conflict with TunnelPolicy "early": 2 node(s) (first "n1") are also selected by the older TunnelPolicy "early", whose value 51820 applies instead of 51999`}},
		{"no usable via", PolicyFacts{Generation: 1, Planned: true, Problems: []*desired.PolicyError{noVia}}, 1,
			[]string{"Conflict=False/NoConflict", "Ready=True/Applied", "Valid=False/NoVia"}, nil},
		{"an unknown node", PolicyFacts{Generation: 1, Planned: true, Problems: []*desired.PolicyError{unknown}}, 1,
			[]string{"Conflict=False/NoConflict", "Ready=True/Applied", "Valid=False/UnknownNode"}, nil},
		{"an invalid part outranks an unknown node", PolicyFacts{Generation: 1, Planned: true, Problems: []*desired.PolicyError{unknown, invalid}}, 1,
			[]string{"Conflict=False/NoConflict", "Ready=True/Applied", "Valid=False/Invalid"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.facts.Now = now
			st := PolicyStatus(tc.facts)
			if st.ObservedGeneration != tc.wantObserved {
				t.Errorf("observedGeneration = %d, want %d", st.ObservedGeneration, tc.wantObserved)
			}
			if d := cmp.Diff(tc.want, conds(st.Conditions)); d != "" {
				t.Errorf("conditions (-want +got):\n%s", d)
			}
			for typ, msg := range tc.wantMsg {
				if got := find(st.Conditions, typ).Message; got != msg {
					t.Errorf("%s message = %q, want %q", typ, got, msg)
				}
			}
			if int(st.Nodes) != tc.facts.Nodes || int(st.NodesApplied) != tc.facts.Applied {
				t.Errorf("nodes %d/%d, want %d/%d", st.NodesApplied, st.Nodes, tc.facts.Applied, tc.facts.Nodes)
			}
		})
	}
}
