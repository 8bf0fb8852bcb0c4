package manager_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/manager/clustertest"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

// TestController runs the controller against a real API server with fake
// daemons connected over real gRPC and TLS, presenting real tokens.
func TestController(t *testing.T) {
	c := clustertest.Start(t)
	ctx := context.Background()
	ctl := startController(t, c)
	pool := ca(t, c)

	names := []string{clustertest.NodeName(1), clustertest.NodeName(2), clustertest.NodeName(3)}
	if err := c.CreateNodes(ctx, []*corev1.Node{clustertest.Node(1, nil), clustertest.Node(2, nil), clustertest.Node(3, nil)}, 3); err != nil {
		t.Fatal(err)
	}
	tokens, err := c.Tokens(ctx, append(names, clustertest.NodeName(4)), 4)
	if err != nil {
		t.Fatal(err)
	}
	daemons := map[string]*agenttest.Agent{}
	startDaemon := func(node string, mod ...func(*agenttest.Options)) *agenttest.Agent {
		opts := clustertest.DaemonOptions(node, tokens[node], pool, ctl.addr)
		for _, m := range mod {
			m(&opts)
		}
		a := agenttest.Start(opts)
		t.Cleanup(a.Stop)
		daemons[node] = a
		return a
	}
	for _, n := range names {
		startDaemon(n)
	}
	unmeshed := func(i int) string {
		return lines(
			"config port=51820 keepalive=0 strict=false isolated=false local=["+clustertest.PodCIDR(i)+"]",
			"cluster [100.64.1.0/24 100.64.2.0/24 100.64.3.0/24]",
		)
	}
	for i, n := range names {
		snap := waitAgent(t, daemons[n], "the first SyncState", func(s agenttest.Snapshot) bool { return len(s.Log) > 0 })
		if snap.Log[0].Kind != "sync" {
			t.Fatalf("%s: first command is a %s, want a SyncState", n, snap.Log[0].Kind)
		}
		if d := cmp.Diff(unmeshed(i+1), snap.State); d != "" {
			t.Errorf("%s before any TunnelPolicy (-want +got):\n%s", n, d)
		}
	}

	// A daemon's key reaches the desired state apart from its first
	// SyncState; a policy created before every key is in would be two
	// changes. The status shows a key once the controller has it.
	eventually(t, "every VpbluNode shows its daemon's key", 30*time.Second, func() (bool, string) {
		for _, n := range names {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil {
				return false, err.Error()
			}
			if vn.Status.PublicKey != b64(clustertest.PublicKey(n)) {
				return false, n + " shows key " + vn.Status.PublicKey
			}
		}
		return true, ""
	})

	peerLine := func(i int) string {
		n := clustertest.NodeName(i)
		return "peer " + n + " key=" + b64(clustertest.PublicKey(n)) + " endpoint=" + clustertest.NodeIP(i) + ":51820 allowed=[" + clustertest.PodCIDR(i) + "] keepalive=25"
	}
	routeLine := func(i int) string { return "route " + clustertest.PodCIDR(i) + " via " + clustertest.NodeName(i) }
	var extra []string
	meshed := func(self int, peers ...int) string {
		cidrs := []string{}
		for i := 1; i <= 4; i++ {
			if i <= 3 || len(peers) == 3 || self == 4 {
				cidrs = append(cidrs, clustertest.PodCIDR(i))
			}
		}
		var rest []string
		for _, p := range peers {
			rest = append(rest, peerLine(p), routeLine(p))
		}
		return state(
			"config port=51820 keepalive=25 strict=true isolated=false local=["+clustertest.PodCIDR(self)+"]",
			"cluster ["+strings.Join(cidrs, " ")+"]",
			append(rest, extra...)...)
	}
	// lastDelta waits until daemon n applied something new and returns the
	// delta that got it there, base cleared.
	lastDelta := func(t *testing.T, n string, after int, want string) *meshpb.Delta {
		t.Helper()
		snap := waitAgent(t, daemons[n], "the change", func(s agenttest.Snapshot) bool { return len(s.Log) > after && s.State == want })
		if d := cmp.Diff(want, snap.State); d != "" {
			t.Fatalf("%s runs (-want +got):\n%s", n, d)
		}
		if len(snap.Log) != after+1 {
			t.Fatalf("%s got %d commands for one change, want 1: %v", n, len(snap.Log)-after, snap.Log[after:])
		}
		r := snap.Log[after]
		if r.Kind != "delta" || r.Ack != meshpb.AckCode_ACK_OK {
			t.Fatalf("%s got a %s (%v), want an applied delta", n, r.Kind, r.Ack)
		}
		d := r.Msg.GetDelta()
		d.Base = nil
		return d
	}
	logLen := func(n string) int { return len(daemons[n].Snapshot().Log) }

	t.Run("a FullMesh TunnelPolicy reaches every daemon as one delta", func(t *testing.T) {
		before := map[string]int{}
		for _, n := range names {
			before[n] = logLen(n)
		}
		if err := c.Env.Client.Create(ctx, &v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
			Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}); err != nil {
			t.Fatal(err)
		}
		others := map[int][]int{1: {2, 3}, 2: {1, 3}, 3: {1, 2}}
		for i, n := range names {
			d := lastDelta(t, n, before[n], meshed(i+1, others[i+1]...))
			if got := len(d.GetUpsertPeers()); got != 2 || d.GetConfig() == nil {
				t.Errorf("%s: delta %v, want the config and two peers", n, d)
			}
		}
	})

	t.Run("a BlockPolicy rule is exactly one add_blocks delta", func(t *testing.T) {
		before := map[string]int{}
		for _, n := range names {
			before[n] = logLen(n)
		}
		bp := &v1alpha1.BlockPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny"}, Spec: v1alpha1.BlockPolicySpec{
			Rules: []v1alpha1.BlockRule{{From: []v1alpha1.CIDR{"100.64.1.0/24"}, To: []v1alpha1.CIDR{"100.64.2.0/24"}}}}}
		if err := c.Env.Client.Create(ctx, bp); err != nil {
			t.Fatal(err)
		}
		others := map[int][]int{1: {2, 3}, 2: {1, 3}, 3: {1, 2}}
		want := &meshpb.Delta{AddBlocks: []*meshpb.BlockRule{{Src: "100.64.1.0/24", Dst: "100.64.2.0/24"}}}
		extra = []string{"block 100.64.1.0/24 -> 100.64.2.0/24"}
		for i, n := range names {
			d := lastDelta(t, n, before[n], meshed(i+1, others[i+1]...))
			if diff := cmp.Diff(want, d, protocmp.Transform()); diff != "" {
				t.Errorf("%s: delta (-want +got):\n%s", n, diff)
			}
		}
		for _, n := range names {
			before[n] = logLen(n)
		}
		if err := c.Env.Client.Delete(ctx, bp); err != nil {
			t.Fatal(err)
		}
		want = &meshpb.Delta{RemoveBlocks: want.AddBlocks}
		extra = nil
		for i, n := range names {
			d := lastDelta(t, n, before[n], meshed(i+1, others[i+1]...))
			if diff := cmp.Diff(want, d, protocmp.Transform()); diff != "" {
				t.Errorf("%s: delta after lifting the block (-want +got):\n%s", n, diff)
			}
		}
	})

	t.Run("a joining node is one peer, one route and one cluster CIDR for the others", func(t *testing.T) {
		before := map[string]int{}
		for _, n := range names {
			before[n] = logLen(n)
		}
		n4 := clustertest.NodeName(4)
		if err := c.CreateNodes(ctx, []*corev1.Node{clustertest.Node(4, nil)}, 1); err != nil {
			t.Fatal(err)
		}
		startDaemon(n4)
		want := func(i int) *meshpb.Delta {
			return &meshpb.Delta{
				UpsertPeers: []*meshpb.Peer{{Node: n4, PublicKey: clustertest.PublicKey(n4), Endpoint: clustertest.NodeIP(4) + ":51820",
					AllowedIps: []string{clustertest.PodCIDR(4)}, PersistentKeepaliveSeconds: 25}},
				AddRoutes:       []*meshpb.Route{{Cidr: clustertest.PodCIDR(4), Node: n4}},
				AddClusterCidrs: []string{clustertest.PodCIDR(4)},
			}
		}
		// The Node and the key may arrive as two changes: first the node
		// (a cluster CIDR), then its key (the peer).
		others := map[int][]int{1: {2, 3, 4}, 2: {1, 3, 4}, 3: {1, 2, 4}}
		for i, n := range names {
			snap := waitAgent(t, daemons[n], "the new peer", func(s agenttest.Snapshot) bool { return s.State == meshed(i+1, others[i+1]...) })
			merged := &meshpb.Delta{}
			for _, r := range snap.Log[before[n]:] {
				if r.Kind != "delta" || r.Ack != meshpb.AckCode_ACK_OK {
					t.Fatalf("%s got a %s (%v), want deltas only", n, r.Kind, r.Ack)
				}
				d := r.Msg.GetDelta()
				merged.UpsertPeers = append(merged.UpsertPeers, d.GetUpsertPeers()...)
				merged.AddRoutes = append(merged.AddRoutes, d.GetAddRoutes()...)
				merged.AddClusterCidrs = append(merged.AddClusterCidrs, d.GetAddClusterCidrs()...)
				if d.GetConfig() != nil || len(d.GetRemovePeers())+len(d.GetRemoveRoutes())+len(d.GetAddBlocks()) > 0 {
					t.Errorf("%s: unexpected content in %v", n, d)
				}
			}
			if diff := cmp.Diff(want(i+1), merged, protocmp.Transform()); diff != "" {
				t.Errorf("%s: deltas for the join (-want +got):\n%s", n, diff)
			}
		}
		waitAgent(t, daemons[n4], "the mesh", func(s agenttest.Snapshot) bool { return s.State == meshed(4, 1, 2, 3) })
	})

	t.Run("a reconnecting daemon gets a fresh SyncState", func(t *testing.T) {
		n := names[0]
		old := daemons[n].Snapshot()
		daemons[n].Stop()
		again := startDaemon(n, func(o *agenttest.Options) { o.Applied = old.Applied })
		snap := waitAgent(t, again, "the SyncState", func(s agenttest.Snapshot) bool { return len(s.Log) > 0 })
		first := snap.Log[0]
		if first.Kind != "sync" || first.Ack != meshpb.AckCode_ACK_OK || !old.Applied.Less(first.Gen) {
			t.Errorf("after reconnecting: %s %v (%v), want an applied SyncState later than %v", first.Kind, first.Gen, first.Ack, old.Applied)
		}
		if snap.State != old.State {
			t.Errorf("state after resync differs (-before +after):\n%s", cmp.Diff(old.State, snap.State))
		}
		if got := ctl.metric(t, "vpblu_controller_resyncs_total", "reason", "connect"); got < 5 {
			t.Errorf("connect resyncs = %v, want one per stream", got)
		}
	})

	t.Run("VpbluNode status reports the daemon and the mesh", func(t *testing.T) {
		n := names[1]
		eventually(t, "VpbluNode status", 20*time.Second, func() (bool, string) {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil {
				return false, err.Error()
			}
			got := vn.Status
			want := v1alpha1.VpbluNodeStatus{
				PublicKey: b64(clustertest.PublicKey(n)), KeyGeneration: 1, Backend: v1alpha1.BackendUserspace, MTU: 1420,
				Endpoint: clustertest.NodeIP(2) + ":51820", PodCIDRs: []string{clustertest.PodCIDR(2)}, PeersTotal: 3,
			}
			ready := condition(got.Conditions, v1alpha1.ConditionReady)
			connected := condition(got.Conditions, v1alpha1.ConditionConnected)
			got.Conditions, got.LastSeen, got.AppliedGeneration = nil, nil, ""
			d := cmp.Diff(want, got)
			return d == "" && strings.HasPrefix(ready, "True/Applied") && strings.HasPrefix(connected, "True"), d + " ready=" + ready + " connected=" + connected
		})
		if err := daemons[n].Send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Status{Status: &meshpb.TunnelStatus{
			UnixNano: time.Now().UnixNano(), Backend: "userspace", Mtu: 1380,
			Peers: []*meshpb.PeerStatus{
				{Node: names[0], LastHandshakeUnixNano: time.Now().Add(-time.Minute).UnixNano()},
				{Node: names[2], LastHandshakeUnixNano: time.Now().Add(-time.Hour).UnixNano()},
			},
		}}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "peers up and MTU", 20*time.Second, func() (bool, string) {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil {
				return false, err.Error()
			}
			return vn.Status.PeersUp == 1 && vn.Status.MTU == 1380, "peersUp/mtu = " + string(rune('0'+vn.Status.PeersUp))
		})
		daemons[n].Stop()
		eventually(t, "Connected=False", 20*time.Second, func() (bool, string) {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil {
				return false, err.Error()
			}
			got := condition(vn.Status.Conditions, v1alpha1.ConditionConnected)
			return strings.HasPrefix(got, "False/StreamClosed"), got
		})
		startDaemon(n)
	})

	t.Run("policy status counts the nodes that applied it", func(t *testing.T) {
		eventually(t, "mesh status", 20*time.Second, func() (bool, string) {
			tp := &v1alpha1.TunnelPolicy{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: "mesh"}, tp); err != nil {
				return false, err.Error()
			}
			ready := condition(tp.Status.Conditions, v1alpha1.ConditionReady)
			return tp.Status.ObservedGeneration == 1 && tp.Status.Nodes == 4 && tp.Status.NodesApplied == 4 &&
				strings.HasPrefix(ready, "True"), ready
		})
	})

	t.Run("conflicts surface as conditions and Events", func(t *testing.T) {
		port := int32(51999)
		if err := c.Env.Client.Create(ctx, &v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mesh-late"},
			Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh, ListenPort: port}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Env.Client.Create(ctx, &v1alpha1.RoutePolicy{ObjectMeta: metav1.ObjectMeta{Name: "nowhere"},
			Spec: v1alpha1.RoutePolicySpec{CIDRs: []v1alpha1.CIDR{"10.9.0.0/16"}, Via: []v1alpha1.NodeName{"node-9999"}}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "Conflict condition", 20*time.Second, func() (bool, string) {
			tp := &v1alpha1.TunnelPolicy{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: "mesh-late"}, tp); err != nil {
				return false, err.Error()
			}
			got := condition(tp.Status.Conditions, v1alpha1.ConditionConflict)
			return strings.HasPrefix(got, "True/Conflict") && strings.Contains(got, `"mesh"`), got
		})
		eventually(t, "Valid=False on the RoutePolicy", 20*time.Second, func() (bool, string) {
			rp := &v1alpha1.RoutePolicy{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: "nowhere"}, rp); err != nil {
				return false, err.Error()
			}
			got := condition(rp.Status.Conditions, v1alpha1.ConditionValid)
			return strings.HasPrefix(got, "False/") && strings.Contains(got, "node-9999") && rp.Status.ActiveVia == "", got
		})
		eventually(t, "Conflict Event", 20*time.Second, func() (bool, string) {
			evs := events(t, c, "mesh-late", "Conflict")
			return len(evs) == 1 && evs[0].Type == corev1.EventTypeWarning, "events: " + string(rune('0'+len(evs)))
		})
		// The older policy wins: daemons keep port 51820.
		for _, n := range names {
			if s := daemons[n].Snapshot().State; !strings.Contains(s, "port=51820") {
				t.Errorf("%s switched port:\n%s", n, s)
			}
		}
	})

	t.Run("refused streams are counted", func(t *testing.T) {
		a, b := names[0], names[2]
		expired, err := c.Key.Expire(tokens[a])
		if err != nil {
			t.Fatal(err)
		}
		otherAudience, err := c.Minter.Token(ctx, a, "https://kubernetes.default.svc")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			node   string
			token  string
			code   codes.Code
			reason string
		}{
			{"no token", a, "", codes.Unauthenticated, "no_token"},
			{"a token for another audience", a, otherAudience, codes.Unauthenticated, "audience"},
			{"an expired token", a, expired, codes.Unauthenticated, "expired"},
			{"a token bound to node A claiming node B", b, tokens[a], codes.PermissionDenied, "node_mismatch"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := ctl.metric(t, "vpblu_controller_auth_refusals_total", "reason", tc.reason)
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				opts := clustertest.DaemonOptions(tc.node, tc.token, pool, ctl.addr)
				_, err := agenttest.Probe(pctx, opts)
				if status.Code(err) != tc.code {
					t.Errorf("stream ended with %v, want %v", err, tc.code)
				}
				if got := ctl.metric(t, "vpblu_controller_auth_refusals_total", "reason", tc.reason); got != before+1 {
					t.Errorf("refusals{reason=%s} = %v, want %v", tc.reason, got, before+1)
				}
			})
		}
		t.Run("the refused node gets an Event", func(t *testing.T) {
			eventually(t, "StreamRefused Event", 20*time.Second, func() (bool, string) {
				return len(events(t, c, b, "StreamRefused")) > 0, "none yet"
			})
		})
		t.Run("a genuine token is accepted", func(t *testing.T) {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			msg, err := agenttest.Probe(pctx, clustertest.DaemonOptions(a, tokens[a], pool, ctl.addr))
			if err != nil || msg.GetSync() == nil {
				t.Errorf("first message %v, err %v; want a SyncState", msg, err)
			}
		})
		_ = auth.Audience
	})

	t.Run("a Node's VpbluNode follows it", func(t *testing.T) {
		n := clustertest.NodeName(100)
		if err := c.CreateNodes(ctx, []*corev1.Node{clustertest.Node(100, nil)}, 1); err != nil {
			t.Fatal(err)
		}
		node := &corev1.Node{}
		if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, node); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the VpbluNode", 20*time.Second, func() (bool, string) {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil {
				return false, err.Error()
			}
			want := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n, UID: node.UID}}
			d := cmp.Diff(want, vn.OwnerReferences)
			return d == "", d
		})
		eventually(t, "Joined Event", 20*time.Second, func() (bool, string) {
			return len(events(t, c, n, "Joined")) == 1, "none"
		})
		if err := c.DeleteNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the VpbluNode gone", 20*time.Second, func() (bool, string) {
			err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, &v1alpha1.VpbluNode{})
			return apierrors.IsNotFound(err), "still there"
		})
		eventually(t, "Removed Event", 20*time.Second, func() (bool, string) {
			return len(events(t, c, n, "Removed")) == 1, "none"
		})
	})

	t.Run("metrics", func(t *testing.T) {
		for _, m := range []struct {
			name string
			min  float64
		}{
			{"vpblu_controller_connected_daemons", 4},
			{"vpblu_controller_leader", 1},
			{"vpblu_controller_leader_epoch", 1},
			{"vpblu_controller_push_latency_seconds", 1},
			{"vpblu_controller_commands_total", 1},
		} {
			if got := ctl.metric(t, m.name); got < m.min {
				t.Errorf("%s = %v, want ≥ %v", m.name, got, m.min)
			}
		}
	})
}
