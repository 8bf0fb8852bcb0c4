package nodeagent_test

// Privileged end-to-end test of the steering design (docs/architecture.md)
// with the real wg, route and mss packages on two nodes:
//
//	pod-a ─ p1 [mark 0x1100] ─ node-a: ip rule fwmark → table 51820 → vpwa… ══ WireGuard ══ vpwb… → p2 ─ pod-b
//	                                    main table: 100.64.2.0/24 via ul0 (the base CNI's cleartext path)
//	                                    forward: drop pod traffic leaving on ul0 (a cleartext leak guard)
//	                                    conf.all.rp_filter = 1 (strict, as many distributions set it)
//
// The eBPF classify program is played by an nftables rule that marks what
// the pod sends. Pings succeed only if steering works in both directions,
// because the leak guard drops pod traffic that takes the cleartext path.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/internal/testnet"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

type node struct {
	*testnet.Node
	wgName string
	key    keys.Private
	wg     *wg.Manager
	router *route.Router
	clamp  *mss.Clamper
}

func TestFwmarkSteeringCarriesPodTrafficThroughTheTunnel(t *testing.T) {
	privtest.Require(t, "create network namespaces, TUN devices, policy routes and nftables rules")
	na, nb := testnet.TwoNodes(t)
	suffix := testnet.RandHex(3)
	nodes := []*node{{Node: na, wgName: "vpwa" + suffix}, {Node: nb, wgName: "vpwb" + suffix}}
	for _, n := range nodes {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		n.key = keys.NewPrivate(k)
		b := wg.NewUserspace(0)
		name := n.wgName
		t.Cleanup(func() {
			_ = b.Close()
			if _, err := os.Stat(filepath.Join(wg.SocketDir, name+".sock")); err == nil {
				t.Errorf("socket of %s left behind", name)
			}
		})
		n.wg, n.router, n.clamp = wg.NewManager(b), route.New(route.Netlink{}, route.Options{}), mss.New(mss.NFTables{})
	}
	for i, n := range nodes {
		peer := nodes[1-i]
		if err := n.AddCleartextPath(peer.Node); err != nil {
			t.Fatal(err)
		}
		if err := n.MarkFromPods(route.DefaultMark); err != nil {
			t.Fatal(err)
		}
		err := n.NS.Do(func() error {
			err := n.wg.Set(wg.Config{Name: n.wgName, PrivateKey: n.key, ListenPort: 51820, Peers: []wg.Peer{{
				PublicKey: peer.key.Public(), Endpoint: netip.AddrPortFrom(peer.Underlay, 51820), AllowedIPs: peer.PodCIDRs,
			}}})
			if err != nil {
				return fmt.Errorf("wg: %w", err)
			}
			err = n.router.Set(route.Config{NodeIP: n.Underlay, Paths: []route.Path{{Interface: n.wgName, CIDRs: peer.PodCIDRs, Strict: true}}})
			if err != nil {
				return fmt.Errorf("route: %w", err)
			}
			return n.clamp.Set(mss.Config{MTU: n.router.MTU(), Interfaces: "vpw*"})
		})
		if err != nil {
			t.Fatalf("node %d: %v", n.Index, err)
		}
	}
	for _, n := range nodes {
		peer := nodes[2-n.Index]
		n.PingFrom(t, peer.PodIPs[0])
		n.PingFrom(t, peer.PodIPs[1])
	}

	a := nodes[0]
	err := a.NS.Do(func() error {
		// MTU and rp_filter on the link, MSS in nftables, read back.
		l, err := netlink.LinkByName(a.wgName)
		if err != nil {
			return err
		}
		if l.Attrs().MTU != 1500-80 {
			return fmt.Errorf("%s mtu %d, want 1420", a.wgName, l.Attrs().MTU)
		}
		rp, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + a.wgName + "/rp_filter")
		if err != nil {
			return err
		}
		if v, _ := strconv.Atoi(strings.TrimSpace(string(rp))); v != route.LooseRPFilter {
			return fmt.Errorf("rp_filter of %s is %d", a.wgName, v)
		}
		s, ok, err := mss.NFTables{}.Read()
		if err != nil || !ok {
			return fmt.Errorf("reading mss table: %v %v", ok, err)
		}
		if len(s.Rules) != 2 || s.Rules[0].MSS != 1380 || s.Rules[1].MSS != 1360 {
			return fmt.Errorf("mss rules %+v, want 1380 (v4) and 1360 (v6)", s.Rules)
		}
		// Strict: a marked packet to a pod CIDR the table does not route
		// hits the blackhole instead of the main table's cleartext route.
		ul0, _ := netlink.LinkByName("ul0")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: ul0.Attrs().Index, Dst: testnet.Prefix("100.64.9.0/24"), Gw: net.ParseIP("198.18.0.2")}); err != nil {
			return err
		}
		rs, err := netlink.RouteGetWithOptions(net.ParseIP("100.64.9.9"), &netlink.RouteGetOptions{Mark: route.DefaultMark})
		if err == nil && len(rs) > 0 && rs[0].Type != unix.RTN_BLACKHOLE {
			return fmt.Errorf("marked packet to an unrouted pod CIDR would leave via link %d (type %d)", rs[0].LinkIndex, rs[0].Type)
		}
		unmarked, err := netlink.RouteGet(net.ParseIP("100.64.9.9"))
		if err != nil || len(unmarked) == 0 || unmarked[0].LinkIndex != ul0.Attrs().Index {
			return fmt.Errorf("unmarked traffic should still use the main table: %+v %v", unmarked, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := func() (wg.Status, error) {
		var st wg.Status
		err := a.NS.Do(func() error { var e error; st, e = a.wg.Status(a.wgName); return e })
		return st, err
	}()
	if err != nil || len(st.Peers) != 1 || st.Peers[0].RxBytes == 0 || st.Peers[0].TxBytes == 0 {
		t.Errorf("tunnel counters after pings: %+v %v", st, err)
	}
}
