package wg_test

// Privileged tests: two nodes (testnet.TwoNodes), each with a WireGuard
// interface configured through this package; pods ping each other (v4
// and v6) through the tunnel.
//
//	pod-a ─veth─ node-a [vpwaXXXXXX] ═══ WireGuard over 198.18.0.0/24 ═══ [vpwbXXXXXX] node-b ─veth─ pod-b
//
// Interface names are unique per run: userspace interfaces keep their
// sockets in /var/run/wireguard, which namespaces do not separate.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/internal/testnet"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

type testNode struct {
	*testnet.Node
	wgName string
	key    keys.Private
	m      *wg.Manager
}

// deviceMarker makes the test binary a userspace device process.
const deviceMarker = "vpblu-test-wg-device"

// daemonArgv starts this test binary as a device process (TestMain).
var daemonArgv = []string{os.Args[0], deviceMarker}

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == deviceMarker {
		mtu, _ := strconv.Atoi(os.Args[3])
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := wg.RunDevice(ctx, os.Args[2], mtu)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// flavor is a backend setup under test.
type flavor struct {
	kind   wg.Kind
	daemon bool // userspace devices in their own processes
}

func (f flavor) backend() wg.Backend {
	switch {
	case f.kind == wg.Kernel:
		return wg.NewKernel(0)
	case f.daemon:
		return wg.NewUserspace(0, daemonArgv...)
	}
	return wg.NewUserspace(0)
}

// newBackend returns a backend of flavor f that is closed, and whose
// interfaces (device processes too) and sockets are checked to be gone,
// when the test ends. ns is where the interfaces live.
func newBackend(t *testing.T, f flavor, ns privtest.NS, names ...string) wg.Backend {
	t.Helper()
	b := f.backend()
	t.Cleanup(func() {
		if f.daemon || f.kind == wg.Kernel {
			for _, n := range names {
				if err := ns.Do(func() error { return b.Delete(n) }); err != nil {
					t.Errorf("deleting %s: %v", n, err)
				}
			}
		}
		_ = b.Close()
		for _, n := range names {
			sock := filepath.Join(wg.SocketDir, n+".sock")
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket %s left behind: %v", sock, err)
			}
		}
	})
	return b
}

func newKey(t *testing.T) keys.Private {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewPrivate(k)
}

func setup(t *testing.T, f flavor) (a, b *testNode) {
	t.Helper()
	na, nb := testnet.TwoNodes(t)
	suffix := testnet.RandHex(3)
	a = &testNode{Node: na, wgName: "vpwa" + suffix, key: newKey(t)}
	b = &testNode{Node: nb, wgName: "vpwb" + suffix, key: newKey(t)}
	for _, n := range []*testNode{a, b} {
		n.m = wg.NewManager(newBackend(t, f, n.NS, n.wgName))
	}
	return a, b
}

func (n *testNode) asPeer(port int) wg.Peer {
	return wg.Peer{PublicKey: n.key.Public(), Endpoint: netip.AddrPortFrom(n.Underlay, uint16(port)), AllowedIPs: n.PodCIDRs}
}

// configure applies cfg in n's namespace and routes the peer's pod CIDRs
// into the interface (package route does that in the product).
func (n *testNode) configure(t *testing.T, cfg wg.Config, routes []netip.Prefix) {
	t.Helper()
	err := n.NS.Do(func() error {
		if err := n.m.Set(cfg); err != nil {
			return err
		}
		l, err := netlink.LinkByName(cfg.Name)
		if err != nil {
			return err
		}
		for _, r := range routes {
			rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: testnet.Prefix(r.String()), Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteReplace(rt); err != nil {
				return fmt.Errorf("route %s: %w", r, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("configuring %s: %v", cfg.Name, err)
	}
}

func (n *testNode) status(t *testing.T, name string) wg.Status {
	t.Helper()
	var st wg.Status
	err := n.NS.Do(func() error {
		var err error
		st, err = n.m.Status(name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func peerStatus(st wg.Status, k wgtypes.Key) (wg.PeerStatus, bool) {
	for _, p := range st.Peers {
		if p.PublicKey == k {
			return p, true
		}
	}
	return wg.PeerStatus{}, false
}

func TestUserspaceTunnelCarriesPodTraffic(t *testing.T) {
	privtest.Require(t, "create network namespaces, veths and TUN devices")
	testTunnel(t, flavor{kind: wg.Userspace})
}

func TestUserspaceDaemonTunnelSurvivesARestart(t *testing.T) {
	privtest.Require(t, "create network namespaces, veths, TUN devices and device processes")
	testTunnel(t, flavor{kind: wg.Userspace, daemon: true})
}

// requireKernelWireGuard skips, naming why, when the kernel has no
// WireGuard; these tests run in the QEMU VM (make vm-e2e).
func requireKernelWireGuard(t *testing.T) {
	t.Helper()
	ns := privtest.NewNS(t, "wgk")
	err := ns.Do(wg.KernelSupported)
	if errors.Is(err, wg.ErrUnsupported) {
		if os.Getenv("VPBLU_REQUIRE_KERNEL_WIREGUARD") != "" {
			t.Fatalf("kernel WireGuard required (VPBLU_REQUIRE_KERNEL_WIREGUARD is set) but unavailable: %v", err)
		}
		t.Skipf("KERNEL WIREGUARD TEST NOT RUN: this kernel cannot create a \"wireguard\" link (%v); "+
			"it runs in the QEMU VM with a WireGuard kernel (make vm-e2e)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestKernelTunnelCarriesPodTraffic(t *testing.T) {
	privtest.Require(t, "create network namespaces and kernel WireGuard links")
	requireKernelWireGuard(t)
	testTunnel(t, flavor{kind: wg.Kernel})
}

func testTunnel(t *testing.T, f flavor) {
	kind := f.kind
	a, b := setup(t, f)
	// A third peer that never answers: updating it must not disturb B.
	ghostKey, _ := wgtypes.GeneratePrivateKey()
	ghost := wg.Peer{PublicKey: ghostKey.PublicKey(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.3.0/24")}}

	cfgA := wg.Config{Name: a.wgName, PrivateKey: a.key, ListenPort: 51820, Peers: []wg.Peer{b.asPeer(51820), ghost}}
	cfgB := wg.Config{Name: b.wgName, PrivateKey: b.key, ListenPort: 51820, Peers: []wg.Peer{a.asPeer(51820)}}
	a.configure(t, cfgA, b.PodCIDRs)
	b.configure(t, cfgB, a.PodCIDRs)

	a.PingFrom(t, b.PodIPs[0])
	a.PingFrom(t, b.PodIPs[1])
	b.PingFrom(t, a.PodIPs[0])

	st := a.status(t, a.wgName)
	if st.Kind != kind || st.PublicKey != a.key.Public() || st.ListenPort != 51820 {
		t.Errorf("status: kind %s key %s port %d", st.Kind, st.PublicKey, st.ListenPort)
	}
	pb, ok := peerStatus(st, b.key.Public())
	if !ok || pb.LastHandshake.IsZero() || pb.RxBytes == 0 || pb.TxBytes == 0 {
		t.Fatalf("peer B after pings: %+v", pb)
	}
	hs := pb.LastHandshake

	// wg(8) sees the interface like a kernel one.
	if _, err := exec.LookPath("wg"); err == nil {
		var out []byte
		if err := a.NS.Do(func() error {
			var err error
			out, err = exec.Command("wg", "show", a.wgName, "peers").CombinedOutput()
			return err
		}); err != nil {
			t.Errorf("wg show: %v: %s", err, out)
		}
		if !strings.Contains(string(out), b.key.Public().String()) {
			t.Errorf("wg show %s peers does not list B: %q", a.wgName, out)
		}
	} else {
		t.Log("wg(8) not installed: wg show cross-check skipped")
	}

	// Update the ghost peer (and nothing else) after a pause longer than
	// the handshake time's resolution: had B's session been reset, the
	// next ping would complete a new handshake at a later time.
	time.Sleep(1100 * time.Millisecond)
	cfgA.Peers[1].AllowedIPs = append(cfgA.Peers[1].AllowedIPs, netip.MustParsePrefix("100.64.4.0/24"))
	cfgA.Peers[1].PersistentKeepalive = 25 * time.Second
	a.configure(t, cfgA, nil)
	a.PingFrom(t, b.PodIPs[0])
	after, _ := peerStatus(a.status(t, a.wgName), b.key.Public())
	if !after.LastHandshake.Equal(hs) {
		t.Errorf("updating another peer reset B's session: handshake %s, then %s", hs, after.LastHandshake)
	}
	g, _ := peerStatus(a.status(t, a.wgName), ghost.PublicKey)
	if len(g.AllowedIPs) != 2 || g.PersistentKeepalive != 25*time.Second {
		t.Errorf("ghost peer update not applied: %+v", g)
	}

	if f.daemon || kind == wg.Kernel {
		// A restarted daemon: a new backend adopts the interface, and the
		// session to B carries on.
		var before int
		_ = a.NS.Do(func() error { l, err := netlink.LinkByName(a.wgName); before = l.Attrs().Index; return err })
		a.m = wg.NewManager(newBackend(t, f, a.NS, a.wgName))
		a.configure(t, cfgA, nil)
		a.PingFrom(t, b.PodIPs[1])
		var after int
		_ = a.NS.Do(func() error { l, err := netlink.LinkByName(a.wgName); after = l.Attrs().Index; return err })
		pb, _ := peerStatus(a.status(t, a.wgName), b.key.Public())
		if before != after || !pb.LastHandshake.Equal(hs) {
			t.Errorf("restart recreated the interface (index %d → %d) or reset B's session (%s → %s)", before, after, hs, pb.LastHandshake)
		}
	}

	// The MTU is changed from outside (package route does) and traffic
	// still flows.
	if err := a.NS.Do(func() error {
		l, err := netlink.LinkByName(a.wgName)
		if err != nil {
			return err
		}
		return netlink.LinkSetMTU(l, 1380)
	}); err != nil {
		t.Fatal(err)
	}
	a.PingFrom(t, b.PodIPs[1])

	if err := a.NS.Do(func() error { return a.m.Delete(a.wgName) }); err != nil {
		t.Fatal(err)
	}
	if err := a.NS.Do(func() error {
		if _, err := netlink.LinkByName(a.wgName); err == nil {
			return errors.New("interface still exists after Delete")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// The rotation interface lives next to the mesh interface on port + 1;
// each is configured and removed on its own.
func TestTwoInterfacesInOneNamespace(t *testing.T) {
	privtest.Require(t, "create a network namespace and TUN devices")
	ns := privtest.NewNS(t, "wg2")
	suffix := testnet.RandHex(3)
	mesh, rot := "vpwm"+suffix, "vpwr"+suffix
	m := wg.NewManager(newBackend(t, flavor{kind: wg.Userspace}, ns, mesh, rot))
	peer := newKey(t).Public()
	err := ns.Do(func() error {
		if err := m.Set(wg.Config{Name: mesh, PrivateKey: newKey(t), ListenPort: 51820, Peers: []wg.Peer{{PublicKey: peer, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.2.0/24")}}}}); err != nil {
			return err
		}
		if err := m.Set(wg.Config{Name: rot, PrivateKey: newKey(t), ListenPort: 51821, Peers: []wg.Peer{{PublicKey: peer, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.2.0/24")}}}}); err != nil {
			return err
		}
		for name, port := range map[string]int{mesh: 51820, rot: 51821} {
			st, err := m.Status(name)
			if err != nil {
				return err
			}
			if st.ListenPort != port || len(st.Peers) != 1 {
				return fmt.Errorf("%s: port %d, %d peers", name, st.ListenPort, len(st.Peers))
			}
			// A stalled device process must not make the kernel drop
			// after TUN's default 500 packets.
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if q := l.Attrs().TxQLen; q != wg.TxQueueLen {
				return fmt.Errorf("%s: transmit queue %d, want %d", name, q, wg.TxQueueLen)
			}
		}
		if err := m.Delete(rot); err != nil {
			return err
		}
		if _, err := m.Status(rot); !errors.Is(err, wg.ErrNotFound) {
			return fmt.Errorf("status of deleted %s: %v", rot, err)
		}
		st, err := m.Status(mesh)
		if err != nil || len(st.Peers) != 1 {
			return fmt.Errorf("%s after deleting %s: %+v %v", mesh, rot, st, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(wg.SocketDir, rot+".sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket of deleted %s still there: %v", rot, err)
	}
}

func TestUserspaceLeavesOtherLinksAlone(t *testing.T) {
	privtest.Require(t, "create a network namespace and links")
	ns := privtest.NewNS(t, "wgf")
	name := "vpwf" + testnet.RandHex(3)
	m := wg.NewManager(newBackend(t, flavor{kind: wg.Userspace}, ns, name))
	err := ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
			return err
		}
		if err := m.Set(wg.Config{Name: name, PrivateKey: newKey(t), ListenPort: 51820}); !errors.Is(err, wg.ErrNotOurs) {
			return fmt.Errorf("Set on a veth: %v, want ErrNotOurs", err)
		}
		if err := m.Delete(name); !errors.Is(err, wg.ErrNotOurs) {
			return fmt.Errorf("Delete of a veth: %v, want ErrNotOurs", err)
		}
		_, err := netlink.LinkByName(name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Open without a kind picks the kernel exactly when it can create a
// "wireguard" link.
func TestOpenAutoPicksWhatTheKernelSupports(t *testing.T) {
	privtest.Require(t, "probe for kernel WireGuard in a network namespace")
	ns := privtest.NewNS(t, "wgo")
	err := ns.Do(func() error {
		b, err := wg.Open(wg.Options{})
		if err != nil {
			return err
		}
		defer b.Close()
		want := wg.Userspace
		if wg.KernelSupported() == nil {
			want = wg.Kernel
		}
		if b.Kind() != want {
			return fmt.Errorf("auto picked %s, want %s", b.Kind(), want)
		}
		for _, k := range []wg.Kind{wg.Kernel, wg.Userspace} {
			b, err := wg.Open(wg.Options{Kind: k})
			if err != nil || b.Kind() != k {
				return fmt.Errorf("Open(%s) = %v, %v", k, b, err)
			}
		}
		if _, err := wg.Open(wg.Options{Kind: "quantum"}); !errors.Is(err, wg.ErrInvalid) {
			return fmt.Errorf("Open(quantum): %v, want ErrInvalid", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
