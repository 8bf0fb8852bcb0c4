package bpf

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/core/blocks"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

// vethNet is a node and a pod in two fresh network namespaces:
//
//	  ns host (vpa-*)                           ns pod (vpb-*)
//	+---------------------------------+      +--------------------------+
//	| veth-h  100.64.1.1/24           |      | veth-p  100.64.1.2/24    |
//	|         2001:db8:1::1/64        |<---->|         2001:db8:1::2/64 |
//	|   tc ingress: classify          |      |  100.64.2.0/24 via .1    |
//	| wg-test (TUN): table 77         |      +--------------------------+
//	| ip rule fwmark 0x77 -> table 77 |
//	| forwarding on                   |
//	+---------------------------------+
//
// veth-h is the pod's host-side veth; wg-test stands in for the tunnel
// interface that policy routing sends steered packets to: the test reads
// what arrives there from the TUN device.
type vethNet struct {
	host, pod privtest.NS
	hostIdx   int      // veth-h
	tunnelIdx int      // wg-test
	tunnel    *os.File // reads what wg-test transmits
}

const steerMark = 0x77

func newVethNet(t *testing.T) vethNet {
	t.Helper()
	n := vethNet{host: privtest.NewNS(t, "vpa"), pod: privtest.NewNS(t, "vpb")}
	addr := func(l netlink.Link, cidr string) error {
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		a.Flags = unix.IFA_F_NODAD
		return netlink.AddrAdd(l, a)
	}
	err := n.host.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-h"}, PeerName: "veth-p", PeerNamespace: netlink.NsFd(n.pod.Handle)}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		h, err := netlink.LinkByName("veth-h")
		if err != nil {
			return err
		}
		tun := &netlink.Tuntap{
			LinkAttrs:  netlink.LinkAttrs{Name: "wg-test"},
			Mode:       netlink.TUNTAP_MODE_TUN,
			Flags:      netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE,
			NonPersist: true,
			Queues:     1,
		}
		if err := netlink.LinkAdd(tun); err != nil {
			return fmt.Errorf("add tun: %w", err)
		}
		n.tunnel = tun.Fds[0]
		t.Cleanup(func() { n.tunnel.Close() })
		w, err := netlink.LinkByName("wg-test")
		if err != nil {
			return err
		}
		n.hostIdx, n.tunnelIdx = h.Attrs().Index, w.Attrs().Index
		for _, err := range []error{
			addr(h, "100.64.1.1/24"), addr(h, "2001:db8:1::1/64"),
			netlink.LinkSetUp(h), netlink.LinkSetUp(w),
			os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644),
			os.WriteFile("/proc/sys/net/ipv4/conf/all/rp_filter", []byte("0"), 0o644),
		} {
			if err != nil {
				return err
			}
		}
		rule := netlink.NewRule()
		rule.Mark, rule.Table, rule.Priority = steerMark, 77, 100
		if err := netlink.RuleAdd(rule); err != nil {
			return fmt.Errorf("add rule: %w", err)
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: n.tunnelIdx, Dst: mustNet("100.64.2.0/24"), Table: 77})
	})
	if err != nil {
		t.Fatalf("set up host namespace: %v", err)
	}
	err = n.pod.Do(func() error {
		p, err := netlink.LinkByName("veth-p")
		if err != nil {
			return err
		}
		for _, err := range []error{addr(p, "100.64.1.2/24"), addr(p, "2001:db8:1::2/64"), netlink.LinkSetUp(p)} {
			if err != nil {
				return err
			}
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: p.Attrs().Index, Dst: mustNet("100.64.2.0/24"), Gw: net.ParseIP("100.64.1.1")})
	})
	if err != nil {
		t.Fatalf("set up pod namespace: %v", err)
	}
	return n
}

func mustNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// ping pings dst from the pod namespace and reports whether replies came.
func (n vethNet) ping(dst string) bool {
	return exec.Command("ip", "netns", "exec", n.pod.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", dst).Run() == nil
}

// tunnelRead returns the destinations of the packets policy routing sent
// to the tunnel stand-in, waiting up to a second for the first.
func (n vethNet) tunnelRead(t *testing.T) []netip.Addr {
	t.Helper()
	var dsts []netip.Addr
	buf := make([]byte, 2048)
	deadline := time.Now().Add(time.Second)
	for {
		if err := n.tunnel.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		m, err := n.tunnel.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return dsts
		}
		if err != nil {
			t.Fatalf("read tunnel: %v", err)
		}
		if h := headerOfIP(etherIPv4, buf[:m]); !h.malformed && buf[0]>>4 == 4 {
			dsts = append(dsts, h.dst)
		}
		deadline = time.Now().Add(200 * time.Millisecond)
	}
}

// attachments lists d's attachments as seen from the host namespace.
func (n vethNet) attachments(t *testing.T, d *Datapath) []Attachment {
	t.Helper()
	var atts []Attachment
	err := n.host.Do(func() error {
		var err error
		atts, err = d.Attachments()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return atts
}

// leftovers describes what tc state remains on veth-h: qdiscs, filters
// and tcx programs.
func (n vethNet) leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	err := n.host.Do(func() error {
		l, err := netlink.LinkByIndex(n.hostIdx)
		if err != nil {
			return err
		}
		qs, err := netlink.QdiscList(l)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if q.Type() == "clsact" || q.Type() == "ingress" {
				out = append(out, "qdisc "+q.Type())
			}
		}
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			fs, _ := netlink.FilterList(l, parent)
			for _, f := range fs {
				out = append(out, fmt.Sprintf("filter %s", f.Type()))
			}
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: n.hostIdx, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			out = append(out, fmt.Sprintf("tcx program %d", p.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAttachVeth attaches classify to a pod's host veth with tcx and with
// clsact, sends real pings, and checks they are counted, dropped, steered
// and let through as the policy says, then that detaching leaves nothing.
func TestAttachVeth(t *testing.T) {
	privtest.Require(t, "attach BPF programs in network namespaces")
	for _, mode := range []struct {
		name string
		mode AttachMode
	}{{"tcx", AttachTCX}, {"clsact", AttachLegacy}} {
		t.Run(mode.name, func(t *testing.T) {
			d := openTest(t, Options{Attach: mode.mode})
			n := newVethNet(t)
			open := State{
				Locals:   []netip.Prefix{pfx("100.64.1.0/24"), pfx("2001:db8:1::/64")},
				Remotes:  []Remote{{pfx("100.64.2.0/24"), 2, steerMark}},
				Nodes:    []Node{{ID: 2, Ready: true}},
				Clusters: []netip.Prefix{pfx("100.64.0.0/16")},
				Config:   Config{Strict: true},
			}
			blocked := open
			blocked.Blocks = []blocks.Rule{
				{Src: pfx("100.64.1.2/32"), Dst: pfx("100.64.1.1/32")},
				{Src: pfx("2001:db8:1::2/128"), Dst: pfx("2001:db8:1::1/128")},
			}
			if err := d.Apply(open); err != nil {
				t.Fatal(err)
			}
			if err := n.host.Do(func() error { return d.AttachClassify(n.hostIdx) }); err != nil {
				t.Fatalf("attach: %v", err)
			}
			t.Cleanup(func() { n.host.Do(func() error { return d.DetachClassify(n.hostIdx) }) })
			if got, want := n.attachments(t, d), []Attachment{{HookClassify, n.hostIdx, mode.mode, true}}; !slices.Equal(got, want) {
				t.Errorf("attachments %+v, want %+v", got, want)
			}

			counter := func(name string) uint64 {
				c, err := d.Counters()
				if err != nil {
					t.Fatal(err)
				}
				return c[name]
			}
			before := counter("classify/pass-local")
			if !n.ping("100.64.1.1") || !n.ping("2001:db8:1::1") {
				t.Fatal("ping to the local node failed with no block")
			}
			if got := counter("classify/pass-local") - before; got < 4 {
				t.Errorf("classify/pass-local went up by %d for 4 echo requests", got)
			}

			if err := d.Apply(blocked); err != nil {
				t.Fatal(err)
			}
			before = counter("classify/drop-block")
			if n.ping("100.64.1.1") || n.ping("2001:db8:1::1") {
				t.Error("ping got through a block")
			}
			if got := counter("classify/drop-block") - before; got != 4 {
				t.Errorf("classify/drop-block went up by %d, want 4", got)
			}

			if err := d.Apply(open); err != nil {
				t.Fatal(err)
			}
			if !n.ping("100.64.1.1") {
				t.Error("ping still fails after the block was lifted")
			}

			// Steering: the mark sends the packets to table 77, into the
			// tunnel stand-in; with the node not ready and strict mode
			// they are dropped before routing.
			steered := counter("classify/steer")
			n.ping("100.64.2.5")
			if got := counter("classify/steer") - steered; got != 2 {
				t.Errorf("classify/steer went up by %d, want 2", got)
			}
			if got := n.tunnelRead(t); !slices.Equal(got, []netip.Addr{ip("100.64.2.5"), ip("100.64.2.5")}) {
				t.Errorf("the tunnel interface got packets to %v, want the 2 steered echo requests", got)
			}
			notReady := open
			notReady.Nodes = []Node{{ID: 2}}
			if err := d.Apply(notReady); err != nil {
				t.Fatal(err)
			}
			dropped := counter("classify/drop-no-tunnel")
			n.ping("100.64.2.5")
			if got := counter("classify/drop-no-tunnel") - dropped; got != 2 {
				t.Errorf("classify/drop-no-tunnel went up by %d, want 2", got)
			}
			if got := n.tunnelRead(t); len(got) != 0 {
				t.Errorf("the tunnel interface got packets to %v with no ready tunnel", got)
			}

			if err := n.host.Do(func() error { return d.DetachClassify(n.hostIdx) }); err != nil {
				t.Fatalf("detach: %v", err)
			}
			if got := n.leftovers(t); len(got) != 0 {
				t.Errorf("left behind after detach: %v", got)
			}
			if got := n.attachments(t, d); len(got) != 0 {
				t.Errorf("attachments after detach: %+v", got)
			}
			if err := d.Apply(blocked); err != nil {
				t.Fatal(err)
			}
			if !n.ping("100.64.1.1") {
				t.Error("a detached program still drops")
			}
		})
	}
}

// TestAttachTwiceReplaces attaches again (as a restarted daemon does) and
// checks one program stays attached, for both modes.
func TestAttachTwiceReplaces(t *testing.T) {
	for _, mode := range []AttachMode{AttachTCX, AttachLegacy} {
		d := openTest(t, Options{Attach: mode})
		n := newVethNet(t)
		err := n.host.Do(func() error {
			return errors.Join(d.AttachClassify(n.hostIdx), d.AttachClassify(n.hostIdx))
		})
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if got := len(n.leftovers(t)); mode == AttachLegacy {
			want = 2 // the clsact qdisc and one filter
			if got != want {
				t.Errorf("mode %d: tc state %v", mode, n.leftovers(t))
			}
		} else if got != want {
			t.Errorf("mode %d: tc state %v", mode, n.leftovers(t))
		}
		if err := n.host.Do(func() error { return d.DetachClassify(n.hostIdx) }); err != nil {
			t.Fatal(err)
		}
		if got := n.leftovers(t); len(got) != 0 {
			t.Errorf("mode %d: left behind: %v", mode, got)
		}
	}
}

// TestClassifyTruncatedOnVeth sends frames with cut IP headers from the
// pod (the test runner refuses them) and checks classify passes them as
// malformed.
func TestClassifyTruncatedOnVeth(t *testing.T) {
	d := openTest(t, Options{})
	n := newVethNet(t)
	if err := d.Apply(tablePolicy()); err != nil {
		t.Fatal(err)
	}
	if err := n.host.Do(func() error { return d.AttachClassify(n.hostIdx) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.host.Do(func() error { return d.DetachClassify(n.hostIdx) }) })
	// Each frame must be the only packet the program sees: the pod side's
	// own IPv6 (router solicitations, MLD reports) is switched off, and
	// what it already queued is let through before the first frame.
	if err := n.pod.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/veth-p/disable_ipv6", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	quiet := rawCounters(t, d)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		now := rawCounters(t, d)
		if maps.Equal(now, quiet) {
			break
		}
		quiet = now
	}
	for name, frame := range truncatedFrames() {
		t.Run(name, func(t *testing.T) {
			before := rawCounters(t, d)
			err := n.pod.Do(func() error {
				l, err := netlink.LinkByName("veth-p")
				if err != nil {
					return err
				}
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: l.Attrs().Index})
			})
			if err != nil {
				t.Fatalf("send frame: %v", err)
			}
			if k := movedCounter(t, before, rawCounters(t, d)); k != (counterKey{HookClassify, VerdictPass, ReasonMalformed}) {
				t.Errorf("counted as %s", CounterName(k.hook, k.verdict, k.reason))
			}
		})
	}
}

// TestRemoveUninstalls removes a pin directory whose programs are still
// attached, as uninstall does, and checks nothing is left: no link, no
// filter, no qdisc, no pin, and traffic flows unjudged.
func TestRemoveUninstalls(t *testing.T) {
	privtest.Require(t, "attach BPF programs in network namespaces")
	for _, mode := range []AttachMode{AttachTCX, AttachLegacy} {
		t.Run(mode.String(), func(t *testing.T) {
			pinDir := testPinDir(t)
			n := newVethNet(t)
			d, err := Open(Options{PinDir: pinDir, Attach: mode})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Apply(State{Blocks: []blocks.Rule{{Src: pfx("100.64.1.2/32"), Dst: pfx("100.64.1.1/32")}}})
			if err == nil {
				err = n.host.Do(func() error { return d.AttachClassify(n.hostIdx) })
			}
			if err := errors.Join(err, d.Close()); err != nil {
				t.Fatal(err)
			}
			if n.ping("100.64.1.1") {
				t.Fatal("the block does not hold before Remove")
			}
			if err := n.host.Do(func() error { return Remove(pinDir) }); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if got := n.leftovers(t); len(got) != 0 {
				t.Errorf("left behind: %v", got)
			}
			if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pin dir after Remove: %v", err)
			}
			if !n.ping("100.64.1.1") {
				t.Error("traffic is still judged after Remove")
			}
		})
	}
}
