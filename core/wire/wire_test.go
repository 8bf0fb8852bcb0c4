package wire

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Transformer("PeerSet", func(s desired.PeerSet) []desired.Peer { return s.Slice() }),
	cmp.Transformer("RouteList", func(l desired.RouteList) []desired.Route { return l.Slice() }),
	cmp.Transformer("NameList", func(l desired.NameList) []string { return l.Slice() }),
}

func key(b byte) []byte {
	k := make([]byte, 32)
	k[0], k[31] = b, 0x42
	return k
}

// validState is a small SyncState that decodes.
func validState() *meshpb.SyncState {
	return &meshpb.SyncState{
		Config: &meshpb.NodeConfig{
			ListenPort: 51820, PersistentKeepaliveSeconds: 25, Strict: true,
			LocalCidrs:   []string{"100.64.1.0/24", "2001:db8:1::/48"},
			ClusterCidrs: []string{"100.64.0.0/10", "2001:db8::/32"},
		},
		Peers: []*meshpb.Peer{
			{Node: "b", PublicKey: key(2), Endpoint: "198.18.0.2:51820", AllowedIps: []string{"100.64.2.0/24", "2001:db8:2::/48"}, PersistentKeepaliveSeconds: 25},
			{Node: "c", PublicKey: key(3), Endpoint: "[2001:db8:ff::3]:51820", AllowedIps: []string{"100.64.3.0/24"}, PersistentKeepaliveSeconds: 25},
		},
		Routes: []*meshpb.Route{
			{Cidr: "100.64.2.0/24", Node: "b"}, {Cidr: "2001:db8:2::/48", Node: "b"}, {Cidr: "100.64.3.0/24", Node: "c"},
		},
		Blocks: []*meshpb.BlockRule{{Src: "100.64.3.0/24", Dst: "0.0.0.0/0"}, {Src: "::/0", Dst: "2001:db8:9::/48"}},
	}
}

func TestStateRoundTrip(t *testing.T) {
	m := validState()
	s, err := DecodeState(m)
	if err != nil {
		t.Fatal(err)
	}
	back := EncodeState(s)
	if diff := cmp.Diff(m, back, protocmp.Transform(), protocmp.SortRepeatedFields(&meshpb.SyncState{}, "routes", "blocks")); diff != "" {
		t.Errorf("Encode(Decode(m)) (-want +got):\n%s", diff)
	}
	again, err := DecodeState(back)
	if err != nil {
		t.Fatal(err)
	}
	if !desired.Equal(s, again) {
		t.Errorf("Decode(Encode(s)) != s:\n%s", cmp.Diff(s, again, cmpOpts))
	}
}

// TestComputedStatesSurviveTheWire encodes what core/desired computes and
// decodes it as a daemon would.
func TestComputedStatesSurviveTheWire(t *testing.T) {
	var nodes []desired.Node
	for i := range 4 {
		nodes = append(nodes, desired.Node{
			Name:        string(rune('a' + i)),
			InternalIPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})},
			PodCIDRs:    []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i + 1), 0}), 24)},
			PublicKey:   desired.Key(key(byte(i + 1))),
		})
	}
	e, _ := desired.NewEngine(desired.Snapshot{Nodes: nodes})
	up := e.SetPolicies(desired.Policies{Tunnel: tunnelFullMesh()})
	for name, st := range e.States() {
		got, err := DecodeState(EncodeState(st))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !desired.Equal(st, got) {
			t.Errorf("%s: state changed on the wire:\n%s", name, cmp.Diff(st, got, cmpOpts))
		}
	}
	for _, nd := range up.Deltas {
		m := EncodeDelta(nd.Delta, &meshpb.Generation{Epoch: 1, Seq: 2})
		d, err := DecodeDelta(m)
		if err != nil {
			t.Fatalf("%s: %v", nd.Node, err)
		}
		if diff := cmp.Diff(*nd.Delta, d, cmpOpts); diff != "" {
			t.Errorf("%s: delta changed on the wire (-sent +got):\n%s", nd.Node, diff)
		}
	}
}

func TestDecodeStateRefusesMalformed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*meshpb.SyncState)
	}{
		{"missing config", func(m *meshpb.SyncState) { m.Config = nil }},
		{"listen port 0", func(m *meshpb.SyncState) { m.Config.ListenPort = 0 }},
		{"listen port above 65535", func(m *meshpb.SyncState) { m.Config.ListenPort = 70000 }},
		{"keepalive above 65535", func(m *meshpb.SyncState) { m.Config.PersistentKeepaliveSeconds = 1 << 20 }},
		{"bad local CIDR", func(m *meshpb.SyncState) { m.Config.LocalCidrs = []string{"100.64.1.0/33"} }},
		{"local CIDR with host bits", func(m *meshpb.SyncState) { m.Config.LocalCidrs = []string{"100.64.1.1/24"} }},
		{"IPv4-mapped cluster CIDR", func(m *meshpb.SyncState) { m.Config.ClusterCidrs = []string{"::ffff:100.64.0.0/106"} }},
		{"duplicate cluster CIDR", func(m *meshpb.SyncState) { m.Config.ClusterCidrs = []string{"100.64.0.0/10", "100.64.0.0/10"} }},
		{"key of 31 bytes", func(m *meshpb.SyncState) { m.Peers[0].PublicKey = key(2)[:31] }},
		{"all-zero key", func(m *meshpb.SyncState) { m.Peers[0].PublicKey = make([]byte, 32) }},
		{"peer without a name", func(m *meshpb.SyncState) { m.Peers[0].Node = "" }},
		{"nil peer", func(m *meshpb.SyncState) { m.Peers[0] = nil }},
		{"duplicate peers", func(m *meshpb.SyncState) { m.Peers[1].Node = "b" }},
		{"endpoint without port", func(m *meshpb.SyncState) { m.Peers[0].Endpoint = "198.18.0.2" }},
		{"endpoint port 0", func(m *meshpb.SyncState) { m.Peers[0].Endpoint = "198.18.0.2:0" }},
		{"overlapping allowed IPs across peers", func(m *meshpb.SyncState) {
			m.Peers[1].AllowedIps = []string{"100.64.2.128/25"}
			m.Routes[2].Cidr = "100.64.2.128/25"
		}},
		{"overlapping allowed IPs in one peer", func(m *meshpb.SyncState) {
			m.Peers[1].AllowedIps = []string{"100.64.3.0/24", "100.64.3.0/25"}
			m.Routes = append(m.Routes, &meshpb.Route{Cidr: "100.64.3.0/25", Node: "c"})
		}},
		{"route to a CIDR no peer has", func(m *meshpb.SyncState) { m.Routes[0].Cidr = "100.64.9.0/24" }},
		{"route naming another peer", func(m *meshpb.SyncState) { m.Routes[0].Node = "c" }},
		{"missing route", func(m *meshpb.SyncState) { m.Routes = m.Routes[1:] }},
		{"mixed-family block rule", func(m *meshpb.SyncState) { m.Blocks[0].Dst = "::/0" }},
		{"bad block CIDR", func(m *meshpb.SyncState) { m.Blocks[0].Src = "100.64.3.0" }},
		{"duplicate block rule", func(m *meshpb.SyncState) { m.Blocks[1] = &meshpb.BlockRule{Src: "100.64.3.0/24", Dst: "0.0.0.0/0"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validState()
			tc.mutate(m)
			if s, err := DecodeState(m); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeState = %v, %v; want ErrMalformed", s, err)
			}
		})
	}
}

func validDelta() *meshpb.Delta {
	return &meshpb.Delta{
		Base:               &meshpb.Generation{Epoch: 1, Seq: 1},
		Config:             &meshpb.NodeConfig{ListenPort: 51820},
		UpsertPeers:        []*meshpb.Peer{{Node: "d", PublicKey: key(4), AllowedIps: []string{"100.64.4.0/24"}}},
		RemovePeers:        []string{"c"},
		AddRoutes:          []*meshpb.Route{{Cidr: "100.64.4.0/24", Node: "d"}},
		RemoveRoutes:       []*meshpb.Route{{Cidr: "100.64.3.0/24", Node: "c"}},
		AddBlocks:          []*meshpb.BlockRule{{Src: "100.64.4.0/24", Dst: "0.0.0.0/0"}},
		AddClusterCidrs:    []string{"100.64.4.0/24"},
		RemoveClusterCidrs: []string{"100.64.3.0/24"},
	}
}

func TestDecodeDeltaRefusesMalformed(t *testing.T) {
	if _, err := DecodeDelta(validDelta()); err != nil {
		t.Fatalf("valid delta: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*meshpb.Delta)
	}{
		{"config with cluster CIDRs", func(m *meshpb.Delta) { m.Config.ClusterCidrs = []string{"100.64.0.0/10"} }},
		{"config with listen port 0", func(m *meshpb.Delta) { m.Config.ListenPort = 0 }},
		{"peer upserted and removed", func(m *meshpb.Delta) { m.RemovePeers = []string{"d"} }},
		{"duplicate removal", func(m *meshpb.Delta) { m.RemovePeers = []string{"c", "c"} }},
		{"empty removal", func(m *meshpb.Delta) { m.RemovePeers = []string{""} }},
		{"upserted peers overlap", func(m *meshpb.Delta) {
			m.UpsertPeers = append(m.UpsertPeers, &meshpb.Peer{Node: "e", PublicKey: key(5), AllowedIps: []string{"100.64.0.0/16"}})
		}},
		{"route with bad CIDR", func(m *meshpb.Delta) { m.AddRoutes[0].Cidr = "x" }},
		{"duplicate route", func(m *meshpb.Delta) { m.AddRoutes = append(m.AddRoutes, m.AddRoutes[0]) }},
		{"block added and removed", func(m *meshpb.Delta) { m.RemoveBlocks = m.AddBlocks }},
		{"mixed-family block", func(m *meshpb.Delta) { m.AddBlocks[0].Dst = "::/0" }},
		{"cluster CIDR added and removed", func(m *meshpb.Delta) { m.RemoveClusterCidrs = m.AddClusterCidrs }},
		{"key of 33 bytes", func(m *meshpb.Delta) { m.UpsertPeers[0].PublicKey = append(key(4), 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validDelta()
			tc.mutate(m)
			if _, err := DecodeDelta(m); !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeDelta = %v; want ErrMalformed", err)
			}
		})
	}
	if _, err := DecodeDelta(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeDelta(nil) = %v", err)
	}
	if _, err := DecodeState(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeState(nil) = %v", err)
	}
}

// FuzzDecodeState feeds arbitrary bytes through protobuf and DecodeState:
// it must never panic, and whatever it accepts must validate and survive
// an encode/decode round trip unchanged.
func FuzzDecodeState(f *testing.F) {
	b, _ := proto.Marshal(validState())
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m meshpb.SyncState
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		s, err := DecodeState(&m)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid state: %v", err)
		}
		again, err := DecodeState(EncodeState(s))
		if err != nil {
			t.Fatalf("re-decoding an accepted state: %v", err)
		}
		if !desired.Equal(s, again) {
			t.Fatalf("round trip changed the state:\n%s", cmp.Diff(s, again, cmpOpts))
		}
	})
}

// FuzzDecodeDelta does the same for deltas, and applies accepted ones to a
// decoded state: Apply may refuse, but must not panic or change the state
// it refuses.
func FuzzDecodeDelta(f *testing.F) {
	b, _ := proto.Marshal(validDelta())
	f.Add(b)
	base, err := DecodeState(validState())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m meshpb.Delta
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		d, err := DecodeDelta(&m)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := DecodeDelta(EncodeDelta(&d, m.Base))
		if err != nil {
			t.Fatalf("re-decoding an accepted delta: %v", err)
		}
		if diff := cmp.Diff(d, again, cmpOpts); diff != "" {
			t.Fatalf("round trip changed the delta:\n%s", diff)
		}
		got, err := desired.Apply(base, d)
		if err != nil && !desired.Equal(got, base) {
			t.Fatalf("a refused delta changed the state")
		}
	})
}
