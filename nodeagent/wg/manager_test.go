package wg_test

import (
	"errors"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/nodeagent/wg/wgtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// key makes a deterministic private key from a seed byte.
func key(seed byte) wgtypes.Key {
	var b [wgtypes.KeyLen]byte
	for i := range b {
		b[i] = seed + byte(i)
	}
	k, _ := wgtypes.NewKey(b[:])
	return k
}

func pub(seed byte) wgtypes.Key { return key(seed).PublicKey() }

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

var (
	nodeA  = keys.NewPrivate(key(1))
	nodeA2 = keys.NewPrivate(key(9))
	peerB  = wg.Peer{PublicKey: pub(2), Endpoint: netip.MustParseAddrPort("198.18.0.2:51820"),
		AllowedIPs: pfx("100.64.2.0/24"), PersistentKeepalive: 25 * time.Second}
	peerC = wg.Peer{PublicKey: pub(3), Endpoint: netip.MustParseAddrPort("198.18.0.3:51820"),
		AllowedIPs: pfx("100.64.3.0/24", "2001:db8:3::/64"), PersistentKeepalive: 25 * time.Second}
	peerD = wg.Peer{PublicKey: pub(4), Endpoint: netip.MustParseAddrPort("[2001:db8::4]:51820"),
		AllowedIPs: pfx("100.64.4.0/24")}
)

func mesh(priv keys.Private, port int, peers ...wg.Peer) wg.Config {
	return wg.Config{Name: wg.MeshInterface, PrivateKey: priv, ListenPort: port, Peers: peers}
}

func with(p wg.Peer, f func(*wg.Peer)) wg.Peer {
	f(&p)
	return p
}

// states are the desired configurations the transition test moves
// between; each renders as testdata/<name>.golden.
var states = map[string]wg.Config{
	"no-peers":         mesh(nodeA, 51820),
	"one-peer":         mesh(nodeA, 51820, peerB),
	"three-peers":      mesh(nodeA, 51820, peerB, peerC, peerD),
	"endpoint-moved":   mesh(nodeA, 51820, with(peerB, func(p *wg.Peer) { p.Endpoint = netip.MustParseAddrPort("198.18.1.2:51820") }), peerC),
	"cidr-failed-over": mesh(nodeA, 51820, with(peerB, func(p *wg.Peer) { p.AllowedIPs = pfx("100.64.2.0/24", "100.64.3.0/24") }), with(peerC, func(p *wg.Peer) { p.AllowedIPs = pfx("2001:db8:3::/64") })),
	"keepalive-off":    mesh(nodeA, 51820, with(peerB, func(p *wg.Peer) { p.PersistentKeepalive = 0 }), peerC),
	"new-port":         mesh(nodeA, 51900, peerB, peerC),
	"rekeyed":          mesh(nodeA2, 51820, peerB, peerC),
	"new-peer-unknown-endpoint": mesh(nodeA, 51820, peerB, with(peerD, func(p *wg.Peer) {
		p.Endpoint = netip.AddrPort{}
		p.PublicKey = pub(5)
	})),
	"peers-reordered": mesh(nodeA, 51820, peerD, peerC, peerB),
}

func golden(t *testing.T, name, got string) string {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	return string(want)
}

func set(t *testing.T, m *wg.Manager, cfg wg.Config) {
	t.Helper()
	if err := m.Set(cfg); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func TestSetRendersEachState(t *testing.T) {
	for name, cfg := range states {
		t.Run(name, func(t *testing.T) {
			b := wgtest.New(wg.Userspace)
			set(t, wg.NewManager(b), cfg)
			got := b.Render()
			if d := cmp.Diff(golden(t, name, got), got); d != "" {
				t.Errorf("rendering (-golden +got):\n%s", d)
			}
		})
	}
}

// TestEveryTransitionEndsInTarget applies every pair of states A→B and
// checks the result renders as B, that peers present in both kept their
// sessions, and that applying B again writes nothing.
func TestEveryTransitionEndsInTarget(t *testing.T) {
	for from, a := range states {
		for to, bcfg := range states {
			t.Run(from+"->"+to, func(t *testing.T) {
				be := wgtest.New(wg.Kernel)
				m := wg.NewManager(be)
				set(t, m, a)
				before := be.Sessions(wg.MeshInterface)
				set(t, m, bcfg)
				if d := cmp.Diff(golden(t, to, ""), be.Render()); d != "" && !*update {
					t.Errorf("after %s -> %s (-golden +got):\n%s", from, to, d)
				}
				after := be.Sessions(wg.MeshInterface)
				for k, s := range after {
					if old, ok := before[k]; ok && old != s {
						t.Errorf("peer %s lost its session", k)
					}
				}
				n := be.Configures()
				set(t, m, bcfg)
				if be.Configures() != n {
					t.Errorf("re-applying %s wrote to the interface", to)
				}
			})
		}
	}
}

func TestRandomReplayEndsInEachTarget(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	be := wgtest.New(wg.Userspace)
	m := wg.NewManager(be)
	for i := 0; i < 200; i++ {
		n := names[r.IntN(len(names))]
		set(t, m, states[n])
		if d := cmp.Diff(golden(t, n, ""), be.Render()); d != "" && !*update {
			t.Fatalf("step %d (%s, seed %d) (-golden +got):\n%s", i, n, seed, d)
		}
	}
}

func TestSetRefusesInvalidConfigAndKeepsState(t *testing.T) {
	cases := []struct {
		name string
		cfg  wg.Config
	}{
		{"no private key", mesh(keys.Private{}, 51820, peerB)},
		{"port zero", mesh(nodeA, 0, peerB)},
		{"port too large", mesh(nodeA, 70000, peerB)},
		{"name too long", wg.Config{Name: "wg-mesh-much-too-long", PrivateKey: nodeA, ListenPort: 1}},
		{"name with slash", wg.Config{Name: "wg/mesh", PrivateKey: nodeA, ListenPort: 1}},
		{"peer listed twice", mesh(nodeA, 51820, peerB, peerB)},
		{"peer is own key", mesh(nodeA, 51820, wg.Peer{PublicKey: nodeA.Public()})},
		{"peer without key", mesh(nodeA, 51820, wg.Peer{AllowedIPs: pfx("100.64.9.0/24")})},
		{"allowed ip on two peers", mesh(nodeA, 51820, peerB, with(peerC, func(p *wg.Peer) { p.AllowedIPs = pfx("100.64.2.0/24") }))},
		{"same prefix unmasked on two peers", mesh(nodeA, 51820, peerB, with(peerC, func(p *wg.Peer) { p.AllowedIPs = pfx("100.64.2.7/24") }))},
		{"negative keepalive", mesh(nodeA, 51820, with(peerB, func(p *wg.Peer) { p.PersistentKeepalive = -time.Second }))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be := wgtest.New(wg.Kernel)
			m := wg.NewManager(be)
			set(t, m, states["one-peer"])
			before, n := be.Render(), be.Configures()
			err := m.Set(tc.cfg)
			if !errors.Is(err, wg.ErrInvalid) {
				t.Fatalf("Set: %v, want ErrInvalid", err)
			}
			if be.Render() != before || be.Configures() != n {
				t.Errorf("refused config changed the interface")
			}
		})
	}
}

func TestInterfacesAreIndependent(t *testing.T) {
	be := wgtest.New(wg.Userspace)
	m := wg.NewManager(be)
	set(t, m, states["three-peers"])
	meshOnly := be.Render()
	rot := wg.Config{Name: wg.RotationInterface, PrivateKey: nodeA2, ListenPort: 51821, Peers: []wg.Peer{
		with(peerB, func(p *wg.Peer) { p.Endpoint = netip.MustParseAddrPort("198.18.0.2:51821") }),
	}}
	set(t, m, rot)
	got := be.Render()
	if d := cmp.Diff(golden(t, "with-rotation-interface", got), got); d != "" {
		t.Errorf("(-golden +got):\n%s", d)
	}
	if err := m.Delete(wg.RotationInterface); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(meshOnly, be.Render()); d != "" {
		t.Errorf("deleting the rotation interface changed wg-mesh (-want +got):\n%s", d)
	}
	if err := m.Delete(wg.RotationInterface); err != nil {
		t.Errorf("deleting a missing interface: %v", err)
	}
}

func TestSetRefusesLinkItDoesNotDrive(t *testing.T) {
	be := wgtest.New(wg.Kernel)
	be.AddForeignLink(wg.MeshInterface)
	if err := wg.NewManager(be).Set(states["one-peer"]); !errors.Is(err, wg.ErrNotOurs) {
		t.Fatalf("Set: %v, want ErrNotOurs", err)
	}
}

func TestStatusReportsHandshakesAndTraffic(t *testing.T) {
	be := wgtest.New(wg.Kernel)
	m := wg.NewManager(be)
	set(t, m, states["three-peers"])
	hs := time.Unix(1700000000, 0)
	if err := be.SetTraffic(wg.MeshInterface, pub(3), hs, 1000, 2000); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(wg.MeshInterface)
	if err != nil {
		t.Fatal(err)
	}
	want := wg.Status{Name: wg.MeshInterface, Kind: wg.Kernel, PublicKey: nodeA.Public(), ListenPort: 51820}
	for _, p := range []wg.Peer{peerB, peerC, peerD} {
		ps := wg.PeerStatus{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs, PersistentKeepalive: p.PersistentKeepalive}
		if p.PublicKey == pub(3) {
			ps.LastHandshake, ps.RxBytes, ps.TxBytes = hs, 1000, 2000
		}
		want.Peers = append(want.Peers, ps)
	}
	sortPeers(want.Peers)
	if d := cmp.Diff(want, st, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
	if _, err := m.Status("wg-none"); !errors.Is(err, wg.ErrNotFound) {
		t.Errorf("status of a missing interface: %v, want ErrNotFound", err)
	}
}

// An unknown endpoint (zero) leaves what the interface has, e.g. learned
// from the peer's handshakes; a known one replaces it.
func TestUnknownEndpointKeepsTheCurrentOne(t *testing.T) {
	be := wgtest.New(wg.Kernel)
	m := wg.NewManager(be)
	set(t, m, mesh(nodeA, 51820, peerB))
	n := be.Configures()
	set(t, m, mesh(nodeA, 51820, with(peerB, func(p *wg.Peer) { p.Endpoint = netip.AddrPort{} })))
	if be.Configures() != n {
		t.Errorf("unknown endpoint caused a write")
	}
	st, err := m.Status(wg.MeshInterface)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Peers[0].Endpoint; got != peerB.Endpoint {
		t.Errorf("endpoint %s, want the kept %s", got, peerB.Endpoint)
	}
}
