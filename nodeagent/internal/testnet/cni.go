package testnet

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddCleartextPath makes node n look like a node of a Flannel host-gw
// cluster, where pod traffic to peer's pods goes over the underlay in
// cleartext, and then forbids that path:
//
//   - main table: peer's v4 pod CIDR via peer's underlay IP (the CNI route);
//   - conf.all.rp_filter = 1 (strict, as many distributions set it);
//   - nftables: drop forwarded v4 pod traffic leaving on the underlay (a
//     cleartext leak guard), so pod pings only succeed through a tunnel.
func (n *Node) AddCleartextPath(peer *Node) error {
	return n.NS.Do(func() error {
		ul0, err := netlink.LinkByName("ul0")
		if err != nil {
			return err
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: ul0.Attrs().Index, Dst: Prefix(peer.PodCIDRs[0].String()), Gw: peer.Underlay.AsSlice()}); err != nil {
			return fmt.Errorf("cni route: %w", err)
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/rp_filter", []byte("1"), 0o644); err != nil {
			return err
		}
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := c.AddTable(&nftables.Table{Name: "testnet-guard", Family: nftables.TableFamilyINet})
		fwd := c.AddChain(&nftables.Chain{Name: "leak-guard", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("ul0\x00")},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 192, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{100, 64, 0, 0}},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		return c.Flush()
	})
}

// MarkFromPods plays the eBPF classify program without eBPF: everything
// entering from the pod's veth gets mark.
func (n *Node) MarkFromPods(mark uint32) error {
	return n.NS.Do(func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := c.AddTable(&nftables.Table{Name: "testnet-classify", Family: nftables.TableFamilyINet})
		pre := c.AddChain(&nftables.Chain{Name: "classify", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
		m := make([]byte, 4)
		binary.NativeEndian.PutUint32(m, mark)
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(n.HostVeth), 0)},
			&expr.Immediate{Register: 1, Data: m},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		}})
		return c.Flush()
	})
}
