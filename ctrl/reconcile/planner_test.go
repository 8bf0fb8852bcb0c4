package reconcile

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// recordingPusher renders what the planner pushes as text lines.
type recordingPusher struct {
	lines  []string
	deltas map[string]*meshpb.Delta
}

func (r *recordingPusher) Push(gen generation.Gen, deltas map[string]*meshpb.Delta) {
	r.deltas = deltas
	var nodes []string
	for n := range deltas {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		d := deltas[n]
		var parts []string
		for _, p := range d.GetUpsertPeers() {
			parts = append(parts, "+peer "+p.GetNode())
		}
		for _, p := range d.GetRemovePeers() {
			parts = append(parts, "-peer "+p)
		}
		for _, c := range d.GetAddClusterCidrs() {
			parts = append(parts, "+cluster "+c)
		}
		for _, c := range d.GetRemoveClusterCidrs() {
			parts = append(parts, "-cluster "+c)
		}
		if d.GetConfig() != nil {
			parts = append(parts, "config")
		}
		r.lines = append(r.lines, fmt.Sprintf("push %s %s: %s", gen, n, strings.Join(parts, ", ")))
	}
}

func (r *recordingPusher) Resync(node, reason string) {
	r.lines = append(r.lines, "resync "+node+" "+reason)
}

func (r *recordingPusher) take() []string {
	l := r.lines
	r.lines = nil
	return l
}

func testNode(i int, withKey bool) desired.Node {
	n := desired.Node{
		Name:        fmt.Sprintf("n%d", i),
		InternalIPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})},
		PodCIDRs:    []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i), 0}), 24)},
	}
	if withKey {
		n.PublicKey, n.KeyGeneration = key(byte(i)), 1
	}
	return n
}

var fullMesh = desired.Policies{Tunnel: []v1alpha1.TunnelPolicy{{
	ObjectMeta: metav1.ObjectMeta{Name: "mesh", UID: "u1", Generation: 1},
	Spec:       v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh},
}}}

var fullMeshGens = map[desired.Ref]PolicyVersion{{Kind: desired.KindTunnelPolicy, Name: "mesh"}: {UID: "u1", Generation: 1}}

func TestPlannerPushesEachChangeUnderANewGeneration(t *testing.T) {
	push := &recordingPusher{}
	var changes []Change
	p := NewPlanner(push, func(c Change) { changes = append(changes, c) })

	if _, err := p.UpsertNode(testNode(1, true)); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("before Load: err = %v, want ErrNotLoaded", err)
	}
	p.Load(3, desired.Snapshot{Nodes: []desired.Node{testNode(1, true), testNode(2, true)}, Policies: fullMesh}, fullMeshGens)
	if got := push.take(); len(got) != 0 {
		t.Errorf("Load pushed %v; daemons get SyncStates when they connect", got)
	}

	type step struct {
		name string
		do   func() (bool, error)
		want []string
	}
	for _, s := range []step{
		{"a joining member is one peer and one cluster CIDR for the others", func() (bool, error) { return p.UpsertNode(testNode(3, true)) }, []string{
			"push 3.1 n1: +peer n3, +cluster 100.64.3.0/24",
			"push 3.1 n2: +peer n3, +cluster 100.64.3.0/24",
			"push 3.1 n3: +peer n1, +peer n2, +cluster 100.64.1.0/24, +cluster 100.64.2.0/24, +cluster 100.64.3.0/24, config",
			"resync n3 node_added",
		}},
		{"the same input again changes nothing", func() (bool, error) { return p.UpsertNode(testNode(3, true)) }, nil},
		{"the same policies again change nothing", func() (bool, error) { return p.SetPolicies(fullMesh, fullMeshGens) }, nil},
		{"a node losing its key leaves every peer list", func() (bool, error) { return p.UpsertNode(testNode(2, false)) }, []string{
			"push 3.2 n1: -peer n2",
			"push 3.2 n2: -peer n1, -peer n3",
			"push 3.2 n3: -peer n2",
		}},
		{"a removed node leaves the cluster CIDRs", func() (bool, error) { return p.RemoveNode("n2") }, []string{
			"push 3.3 n1: -cluster 100.64.2.0/24",
			"push 3.3 n3: -cluster 100.64.2.0/24",
		}},
		{"removing it again changes nothing", func() (bool, error) { return p.RemoveNode("n2") }, nil},
	} {
		t.Run(s.name, func(t *testing.T) {
			changed, err := s.do()
			if err != nil {
				t.Fatal(err)
			}
			got := push.take()
			if d := cmp.Diff(s.want, got); d != "" {
				t.Errorf("pushed (-want +got):\n%s", d)
			}
			if changed != (len(s.want) > 0) {
				t.Errorf("reported changed=%v", changed)
			}
		})
	}
	if got := len(changes); got != 4 {
		t.Errorf("onChange called %d times, want once per load or change (4)", got)
	}
}

func TestPlannerSharesOneEncodingPerDelta(t *testing.T) {
	push := &recordingPusher{}
	p := NewPlanner(push, nil)
	var nodes []desired.Node
	for i := 1; i <= 4; i++ {
		nodes = append(nodes, testNode(i, true))
	}
	p.Load(1, desired.Snapshot{Nodes: nodes, Policies: fullMesh}, fullMeshGens)
	if _, err := p.UpsertNode(testNode(5, true)); err != nil {
		t.Fatal(err)
	}
	a, b := push.deltas["n1"], push.deltas["n2"]
	if a == b {
		t.Fatal("two nodes got the same Delta value; each needs its own base")
	}
	if &a.UpsertPeers[0] != &b.UpsertPeers[0] {
		t.Error("the peer list was encoded once per node; want one encoding shared")
	}
}

func TestPlannerSyncStateHasAFreshGeneration(t *testing.T) {
	p := NewPlanner(&recordingPusher{}, nil)
	if err := p.SyncState("n1", func(generation.Gen, *meshpb.SyncState) {}); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("before Load: err = %v", err)
	}
	p.Load(7, desired.Snapshot{Nodes: []desired.Node{testNode(1, true), testNode(2, true)}, Policies: fullMesh}, fullMeshGens)
	var gens []generation.Gen
	var peers []int
	for range 2 {
		if err := p.SyncState("n1", func(g generation.Gen, s *meshpb.SyncState) {
			gens = append(gens, g)
			peers = append(peers, len(s.GetPeers()))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff([]generation.Gen{{Epoch: 7, Seq: 1}, {Epoch: 7, Seq: 2}}, gens); d != "" {
		t.Errorf("generations (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{1, 1}, peers); d != "" {
		t.Errorf("peers (-want +got):\n%s", d)
	}
	if err := p.SyncState("nobody", func(generation.Gen, *meshpb.SyncState) {}); !errors.Is(err, streamserver.ErrUnknownNode) {
		t.Errorf("unknown node: err = %v, want ErrUnknownNode", err)
	}
	p.Observe(generation.Gen{Epoch: 9, Seq: 5})
	if got := p.Current(); got != (generation.Gen{Epoch: 10}) {
		t.Errorf("after a daemon ran 9.5: current %v, want 10.0", got)
	}
}
