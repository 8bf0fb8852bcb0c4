package desired

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func peer(name string, i int, allowed ...string) Peer {
	return Peer{Node: name, PublicKey: key(i), Endpoint: ap("198.18.0.1:51820"), AllowedIPs: pfxs(allowed...), PersistentKeepalive: 25}
}

func peers(ps ...Peer) PeerSet {
	s, err := NewPeerSet(ps...)
	if err != nil {
		panic(err)
	}
	return s
}

func TestDiff(t *testing.T) {
	base := NodeState{
		Config:       Config{ListenPort: 51820, PersistentKeepalive: 25, Strict: true, LocalCIDRs: pfxs("100.64.1.0/24")},
		ClusterCIDRs: pfxs("100.64.1.0/24", "100.64.2.0/24"),
		Peers:        peers(peer("b", 2, "100.64.2.0/24")),
		Blocks:       []BlockRule{{pfx("100.64.1.0/24"), pfx("100.64.9.0/24")}},
	}
	for _, tc := range []struct {
		name string
		old  NodeState
		new  func(NodeState) NodeState
		want Delta
	}{
		{
			name: "equal states give an empty delta",
			old:  base,
			new:  func(s NodeState) NodeState { return s },
		},
		{
			name: "a new peer is one upsert and its routes",
			old:  base,
			new: func(s NodeState) NodeState {
				s.Peers = peers(peer("b", 2, "100.64.2.0/24"), peer("c", 3, "100.64.3.0/24"))
				return s
			},
			want: Delta{
				UpsertPeers: peers(peer("c", 3, "100.64.3.0/24")),
				AddRoutes:   NewRouteList(Route{pfx("100.64.3.0/24"), "c"}),
			},
		},
		{
			name: "a peer that moves allowed IPs is upserted with only the changed routes",
			old:  base,
			new: func(s NodeState) NodeState {
				s.Peers = peers(peer("b", 2, "100.64.2.0/25", "198.51.100.0/24"))
				return s
			},
			want: Delta{
				UpsertPeers:  peers(peer("b", 2, "100.64.2.0/25", "198.51.100.0/24")),
				AddRoutes:    NewRouteList(Route{pfx("100.64.2.0/25"), "b"}, Route{pfx("198.51.100.0/24"), "b"}),
				RemoveRoutes: NewRouteList(Route{pfx("100.64.2.0/24"), "b"}),
			},
		},
		{
			name: "a keepalive change upserts the peer without route changes",
			old:  base,
			new: func(s NodeState) NodeState {
				p := peer("b", 2, "100.64.2.0/24")
				p.PersistentKeepalive = 5
				s.Peers = peers(p)
				return s
			},
			want: Delta{UpsertPeers: peers(func() Peer { p := peer("b", 2, "100.64.2.0/24"); p.PersistentKeepalive = 5; return p }())},
		},
		{
			name: "a removed peer is a removal and its routes",
			old:  base,
			new:  func(s NodeState) NodeState { s.Peers = PeerSet{}; return s },
			want: Delta{RemovePeers: NewNameList("b"), RemoveRoutes: NewRouteList(Route{pfx("100.64.2.0/24"), "b"})},
		},
		{
			name: "config changes replace the config",
			old:  base,
			new:  func(s NodeState) NodeState { s.Config.Isolated = true; return s },
			want: Delta{Config: &Config{ListenPort: 51820, PersistentKeepalive: 25, Strict: true, Isolated: true, LocalCIDRs: pfxs("100.64.1.0/24")}},
		},
		{
			name: "cluster CIDRs and blocks change by set differences",
			old:  base,
			new: func(s NodeState) NodeState {
				s.ClusterCIDRs = pfxs("100.64.1.0/24", "100.64.3.0/24")
				s.Blocks = []BlockRule{{pfx("100.64.1.0/24"), pfx("100.64.8.0/24")}}
				return s
			},
			want: Delta{
				AddClusterCIDRs: pfxs("100.64.3.0/24"), RemoveClusterCIDRs: pfxs("100.64.2.0/24"),
				AddBlocks:    []BlockRule{{pfx("100.64.1.0/24"), pfx("100.64.8.0/24")}},
				RemoveBlocks: []BlockRule{{pfx("100.64.1.0/24"), pfx("100.64.9.0/24")}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			new := tc.new(tc.old)
			got := Diff(tc.old, new)
			if diff := cmp.Diff(tc.want, got, cmpOpts); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			back, err := Apply(tc.old, got)
			if err != nil {
				t.Fatal(err)
			}
			if !Equal(back, new) {
				t.Errorf("Apply(old, Diff(old, new)) != new:\n%s", cmp.Diff(new, back, cmpOpts))
			}
		})
	}
}

func TestApplyRefusesDeltasThatDoNotFit(t *testing.T) {
	base := NodeState{
		Config:       Config{ListenPort: 51820},
		ClusterCIDRs: pfxs("100.64.1.0/24"),
		Peers:        peers(peer("b", 2, "100.64.2.0/24")),
	}
	for _, tc := range []struct {
		name  string
		delta Delta
	}{
		{"removing a peer that is not there", Delta{RemovePeers: NewNameList("zz")}},
		{"upserting and removing one peer", Delta{
			UpsertPeers: peers(peer("b", 2, "100.64.2.0/24")), RemovePeers: NewNameList("b"),
			RemoveRoutes: NewRouteList(Route{pfx("100.64.2.0/24"), "b"}),
		}},
		{"routes that do not follow the peer changes", Delta{
			UpsertPeers: peers(peer("c", 3, "100.64.3.0/24")),
			AddRoutes:   NewRouteList(Route{pfx("100.64.4.0/24"), "c"}),
		}},
		{"route changes without peer changes", Delta{AddRoutes: NewRouteList(Route{pfx("100.64.4.0/24"), "b"})}},
		{"a new peer whose allowed IPs overlap another's", Delta{
			UpsertPeers: peers(peer("c", 3, "100.64.2.128/25")),
			AddRoutes:   NewRouteList(Route{pfx("100.64.2.128/25"), "c"}),
		}},
		{"removing a cluster CIDR that is not there", Delta{RemoveClusterCIDRs: pfxs("100.64.9.0/24")}},
		{"adding a cluster CIDR that is there", Delta{AddClusterCIDRs: pfxs("100.64.1.0/24")}},
		{"removing a block that is not there", Delta{RemoveBlocks: []BlockRule{{pfx("100.64.1.0/24"), pfx("100.64.2.0/24")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Apply(base, tc.delta)
			if !errors.Is(err, ErrDelta) {
				t.Fatalf("Apply = %v, want ErrDelta", err)
			}
			if !Equal(got, base) {
				t.Errorf("a refused delta changed the state:\n%s", cmp.Diff(base, got, cmpOpts))
			}
		})
	}
}

// TestJoinDeltaIsOnePeer pins the cost shape of a node join: every other
// member gets the same one-peer delta, shared, and the new node its full
// state.
func TestJoinDeltaIsOnePeer(t *testing.T) {
	var s Snapshot
	for i := range 50 {
		s.Nodes = append(s.Nodes, benchNode(i))
	}
	s.Policies.Tunnel = append(s.Policies.Tunnel, fullMesh("mesh"))
	e, _ := NewEngine(s)
	u, err := e.UpsertNode(benchNode(50))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Deltas) != 51 {
		t.Fatalf("%d deltas, want 51", len(u.Deltas))
	}
	var first *Delta
	for _, nd := range u.Deltas {
		if nd.Node == benchNode(50).Name {
			if nd.Delta.UpsertPeers.Len() != 50 || nd.Delta.Config == nil {
				t.Errorf("new node's delta: %d peers, config %v; want 50 peers and a config", nd.Delta.UpsertPeers.Len(), nd.Delta.Config)
			}
			continue
		}
		if got := nd.Delta.Size(); got != 5 {
			t.Errorf("%s: delta %v has %d operations, want 5 (1 peer, 2 routes, 2 cluster CIDRs)", nd.Node, nd.Delta, got)
		}
		if first == nil {
			first = nd.Delta
		} else if nd.Delta != first {
			t.Errorf("%s: delta not shared with the other members'", nd.Node)
		}
	}
}

func TestKey(t *testing.T) {
	k := key(7)
	got, err := ParseKey(k.String())
	if err != nil || got != k {
		t.Errorf("ParseKey(String()) = %v, %v; want %v", got, err, k)
	}
	for _, bad := range []string{"", "AAAA", "!!!", Key{}.String()} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}

func TestUpsertNodeWithoutNameChangesNothing(t *testing.T) {
	e, _ := NewEngine(Snapshot{Nodes: []Node{node(0)}})
	if _, err := e.UpsertNode(Node{}); !errors.Is(err, ErrNodeName) {
		t.Fatalf("UpsertNode(no name) = %v, want ErrNodeName", err)
	}
	if _, ok := e.State("a"); !ok {
		t.Error("node a is gone")
	}
}
