// Package testnet builds the network namespaces the node agent's
// privileged tests run in: two nodes on a veth underlay, each with a pod
// namespace behind a veth, as a Flannel-like CNI would leave them.
//
//	pod-a                 node-a                          node-b                 pod-b
//	eth0 100.64.1.2 ─veth─ p1 100.64.1.1                 p2 100.64.2.1 ─veth─ eth0 100.64.2.2
//	2001:db8:1::2          2001:db8:1::1                  2001:db8:2::1         2001:db8:2::2
//	                       ul0 198.18.0.1 ───── veth ───── ul0 198.18.0.2
//
// Nodes forward v4 and v6. There is no route between the pod networks:
// the test adds the tunnel. Everything is removed when the test ends.
// It is for tests only.
package testnet

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/tools/privtest"
)

// Node is one simulated node.
type Node struct {
	NS, Pod privtest.NS
	// Index is 1 or 2.
	Index int
	// Underlay is the node IP (198.18.0.Index).
	Underlay netip.Addr
	// PodCIDRs are 100.64.Index.0/24 and 2001:db8:Index::/64.
	PodCIDRs []netip.Prefix
	// PodIPs are the pod's addresses (.2 and ::2).
	PodIPs []netip.Addr
	// HostVeth is the node side of the pod's veth ("p1", "p2").
	HostVeth string
}

// RandHex returns n random bytes in hex, for unique names.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Prefix converts s to a *net.IPNet keeping the host bits.
func Prefix(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func upWithAddrs(name string, addrs ...string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		ad := &netlink.Addr{IPNet: Prefix(a)}
		if strings.Contains(a, ":") {
			ad.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(l, ad); err != nil {
			return fmt.Errorf("address %s on %s: %w", a, name, err)
		}
	}
	return netlink.LinkSetUp(l)
}

func vethTo(name, peerName string, ns privtest.NS) error {
	return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peerName, PeerNamespace: netlink.NsFd(int(ns.Handle))})
}

// TwoNodes builds the topology above.
func TwoNodes(t *testing.T) (a, b *Node) {
	t.Helper()
	mk := func(i int, prefix string) *Node {
		return &Node{
			NS: privtest.NewNS(t, prefix), Pod: privtest.NewNS(t, "pod"+prefix), Index: i,
			Underlay: netip.MustParseAddr(fmt.Sprintf("198.18.0.%d", i)),
			PodCIDRs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("100.64.%d.0/24", i)), netip.MustParsePrefix(fmt.Sprintf("2001:db8:%d::/64", i))},
			PodIPs:   []netip.Addr{netip.MustParseAddr(fmt.Sprintf("100.64.%d.2", i)), netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::2", i))},
			HostVeth: fmt.Sprintf("p%d", i),
		}
	}
	a, b = mk(1, "na"), mk(2, "nb")
	if err := a.NS.Do(func() error {
		if err := vethTo("ul0", "ul0", b.NS); err != nil {
			return fmt.Errorf("underlay veth: %w", err)
		}
		return upWithAddrs("ul0", "198.18.0.1/24")
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.NS.Do(func() error { return upWithAddrs("ul0", "198.18.0.2/24") }); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		err := n.NS.Do(func() error {
			if err := vethTo(n.HostVeth, "eth0", n.Pod); err != nil {
				return fmt.Errorf("pod veth: %w", err)
			}
			for _, s := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
				if err := os.WriteFile(s, []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return upWithAddrs(n.HostVeth, fmt.Sprintf("100.64.%d.1/24", n.Index), fmt.Sprintf("2001:db8:%d::1/64", n.Index))
		})
		if err != nil {
			t.Fatal(err)
		}
		err = n.Pod.Do(func() error {
			if err := upWithAddrs("eth0", fmt.Sprintf("100.64.%d.2/24", n.Index), fmt.Sprintf("2001:db8:%d::2/64", n.Index)); err != nil {
				return err
			}
			l, _ := netlink.LinkByName("eth0")
			for _, gw := range []string{fmt.Sprintf("100.64.%d.1", n.Index), fmt.Sprintf("2001:db8:%d::1", n.Index)} {
				if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gw)}); err != nil {
					return fmt.Errorf("default via %s: %w", gw, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// PingFrom pings dst from the node's pod and fails the test when no
// reply comes within 10 s.
func (n *Node) PingFrom(t *testing.T, dst netip.Addr) {
	t.Helper()
	if err := n.Pod.Do(func() error { return Ping(dst, 10*time.Second) }); err != nil {
		t.Fatalf("ping %s from pod %d: %v", dst, n.Index, err)
	}
}

// Ping sends ICMP echo requests from the calling thread's namespace until
// dst answers or the timeout passes.
func Ping(dst netip.Addr, timeout time.Duration) error {
	network, req, rep := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, req, rep = "ip6:ipv6-icmp", 128, 129
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(time.Now().UnixNano())
	deadline := time.Now().Add(timeout)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		msg := make([]byte, 8+32)
		msg[0] = req
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], seq)
		copy(msg[8:], "vpblu tunnel ping test payload!!")
		if dst.Is4() {
			binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		}
		if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if n >= 8 && buf[0] == rep && src.Unmap() == dst &&
				binary.BigEndian.Uint16(buf[4:]) == id && binary.BigEndian.Uint16(buf[6:]) == seq {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %s within %s", dst, timeout)
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
