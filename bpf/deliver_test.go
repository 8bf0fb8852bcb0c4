package bpf

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/lumbrjx/vpblu/core/blocks"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

// tunNet is a WireGuard-like L3 interface in a fresh namespace:
//
//	  ns (vpt-*)
//	+-------------------------------+
//	| wg-mesh (TUN, no Ethernet)    |   test writes IP packets to the
//	|   tc ingress: deliver         |<- TUN fd: they arrive on wg-mesh
//	+-------------------------------+   as decrypted traffic would
type tunNet struct {
	ns    privtest.NS
	index int
	fd    *os.File
}

func newTunNet(t *testing.T) tunNet {
	t.Helper()
	n := tunNet{ns: privtest.NewNS(t, "vpt")}
	err := n.ns.Do(func() error {
		tun := &netlink.Tuntap{
			LinkAttrs:  netlink.LinkAttrs{Name: "wg-mesh"},
			Mode:       netlink.TUNTAP_MODE_TUN,
			Flags:      netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE,
			NonPersist: true,
			Queues:     1,
		}
		if err := netlink.LinkAdd(tun); err != nil {
			return fmt.Errorf("add tun: %w", err)
		}
		n.fd = tun.Fds[0]
		l, err := netlink.LinkByName("wg-mesh")
		if err != nil {
			return err
		}
		n.index = l.Attrs().Index
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatalf("set up tun namespace: %v", err)
	}
	t.Cleanup(func() { n.fd.Close() })
	return n
}

// send writes an IP packet into the interface's receive path; tc ingress
// has run when it returns.
func (n tunNet) send(t *testing.T, pkt []byte) {
	t.Helper()
	if _, err := n.fd.Write(pkt); err != nil {
		t.Fatalf("write to tun: %v", err)
	}
}

// TestDeliverOnTun attaches deliver to a real L3 device, with tcx and
// clsact, and checks verdicts, counters and sampled drops for packets
// whose skb->protocol the device sets, including truncated ones, then
// runs random policies and packets against the reference model.
func TestDeliverOnTun(t *testing.T) {
	privtest.Require(t, "attach BPF programs in network namespaces")
	for _, mode := range []struct {
		name string
		mode AttachMode
	}{{"tcx", AttachTCX}, {"clsact", AttachLegacy}} {
		t.Run(mode.name, func(t *testing.T) {
			d := openTest(t, Options{Attach: mode.mode})
			n := newTunNet(t)
			drops := newDropReader(t, d)
			if err := n.ns.Do(func() error { return d.AttachDeliver(n.index) }); err != nil {
				t.Fatalf("attach: %v", err)
			}
			t.Cleanup(func() { n.ns.Do(func() error { return d.DetachDeliver(n.index) }) })
			policy := State{
				Config:  Config{Strict: true, DropSample: 1},
				Locals:  []netip.Prefix{pfx("100.64.1.0/24"), pfx("2001:db8:1::/64")},
				Remotes: []Remote{{pfx("100.64.2.0/24"), 2, 0x102}, {pfx("100.64.7.0/24"), 7, 0x107}, {pfx("2001:db8:7::/64"), 7, 0x107}},
				Nodes:   []Node{{ID: 2, Ready: true}, {ID: 7, Ready: true, Isolated: true}},
				Blocks:  []blocks.Rule{{Src: pfx("100.64.2.66/32"), Dst: pfx("100.64.1.0/24")}, {Src: pfx("::/0"), Dst: pfx("2001:db8:1::66/128")}},
			}
			if err := d.Apply(policy); err != nil {
				t.Fatal(err)
			}
			udp := func(r Reason, src, dst string) []Drop {
				return []Drop{{Ifindex: n.index, Hook: HookDeliver, Verdict: VerdictDrop, Reason: r, Src: ip(src), Dst: ip(dst), Proto: protoUDP, SrcPort: 1000, DstPort: 53}}
			}
			for _, c := range []struct {
				name string
				pkt  []byte
				want counterKey
				drop []Drop
			}{
				{"v4 from a peer's pod", ip4{src: ip("100.64.2.5"), dst: ip("100.64.1.5"), proto: protoUDP}.build(l4(1000, 53)), counterKey{HookDeliver, VerdictPass, ReasonTunnel}, nil},
				{"v4 blocked", ip4{src: ip("100.64.2.66"), dst: ip("100.64.1.5"), proto: protoUDP}.build(l4(1000, 53)), counterKey{HookDeliver, VerdictDrop, ReasonBlock}, udp(ReasonBlock, "100.64.2.66", "100.64.1.5")},
				{"v4 from an isolated node", ip4{src: ip("100.64.7.5"), dst: ip("100.64.1.5"), proto: protoUDP}.build(l4(1000, 53)), counterKey{HookDeliver, VerdictDrop, ReasonIsolated}, udp(ReasonIsolated, "100.64.7.5", "100.64.1.5")},
				{"v6 from a peer's pod", ip6{src: ip("2001:db8:2::5"), dst: ip("2001:db8:1::5"), next: protoUDP}.build(l4(1000, 53)), counterKey{HookDeliver, VerdictPass, ReasonTunnel}, nil},
				{"v6 blocked from anywhere", ip6{src: ip("2001:db8:2::5"), dst: ip("2001:db8:1::66"), next: protoUDP}.build(l4(1000, 53)), counterKey{HookDeliver, VerdictDrop, ReasonBlock}, udp(ReasonBlock, "2001:db8:2::5", "2001:db8:1::66")},
				{"v6 from an isolated node", ip6{src: ip("2001:db8:7::5"), dst: ip("2001:db8:1::5"), next: protoHopOpts}.build(optsExt(protoUDP, 0, l4(1000, 53))), counterKey{HookDeliver, VerdictDrop, ReasonIsolated}, udp(ReasonIsolated, "2001:db8:7::5", "2001:db8:1::5")},
				{"v4 cut at 10 bytes", ip4{src: ip("100.64.2.66"), dst: ip("100.64.1.5")}.build(nil)[:10], counterKey{HookDeliver, VerdictPass, ReasonMalformed}, nil},
				{"v6 cut at 20 bytes", ip6{src: ip("2001:db8:2::5"), dst: ip("2001:db8:1::66")}.build(nil)[:20], counterKey{HookDeliver, VerdictPass, ReasonMalformed}, nil},
			} {
				t.Run(c.name, func(t *testing.T) {
					drops.drain(t)
					before := rawCounters(t, d)
					n.send(t, c.pkt)
					if got := movedCounter(t, before, rawCounters(t, d)); got != c.want {
						t.Errorf("counted as %s, want %s", CounterName(got.hook, got.verdict, got.reason), CounterName(c.want.hook, c.want.verdict, c.want.reason))
					}
					if diff := cmp.Diff(c.drop, drops.drain(t), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
						t.Errorf("sampled drops (-want +got):\n%s", diff)
					}
				})
			}

			// Random policies and packets, any address, real skb->protocol.
			r := rand.New(rand.NewPCG(7, uint64(mode.mode)))
			cases := 0
			for range 40 {
				s := podUniverse.policy(r)
				if err := d.Apply(s); err != nil {
					t.Fatal(err)
				}
				for range 50 {
					v6 := r.IntN(2) == 0
					src, dst := podUniverse.addr(r, v6), podUniverse.addr(r, v6)
					var pkt []byte
					if v6 {
						pkt = ip6{src: src, dst: dst, next: protoUDP}.build(l4(1, 2))
					} else {
						pkt = ip4{src: src, dst: dst, proto: protoUDP}.build(l4(1, 2))
					}
					before := rawCounters(t, d)
					n.send(t, pkt)
					k := movedCounter(t, before, rawCounters(t, d))
					want := modelDeliver(s, header{src: src, dst: dst})
					if got := (outcome{k.verdict, k.reason, 0}); got != want {
						t.Fatalf("%s -> %s: kernel %+v, reference %+v\npolicy %+v", src, dst, got, want, s)
					}
					cases++
				}
			}
			t.Logf("%d random cases agreed on the L3 device", cases)
		})
	}
}
