package sim

import (
	"fmt"
	"net/netip"
)

// Plan is the address plan of one simulator slot.
type Plan struct {
	Slot int
}

// HostV4 and HostV6 are the host side of the underlay, where the
// controllers listen.
func (p Plan) HostV4() netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(p.Slot), 1}) }
func (p Plan) HostV6() netip.Addr { return v6(0x2001, 0x0db8, uint16(p.Slot), 0, 0, 0, 0, 1) }

// NodeV4 and NodeV6 are node i's underlay addresses (i from 1).
func (p Plan) NodeV4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(p.Slot), byte(10 + i)})
}
func (p Plan) NodeV6(i int) netip.Addr {
	return v6(0x2001, 0x0db8, uint16(p.Slot), 0, 0, 0, 0, uint16(0x10+i))
}

// UnderlayV4 and UnderlayV6 are the underlay prefixes.
func (p Plan) UnderlayV4() netip.Prefix { return netip.PrefixFrom(p.HostV4(), 24).Masked() }
func (p Plan) UnderlayV6() netip.Prefix { return netip.PrefixFrom(p.HostV6(), 64).Masked() }

// PodCIDRV4 and PodCIDRV6 are node i's pod CIDRs.
func (p Plan) PodCIDRV4(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i), 0}), 24)
}
func (p Plan) PodCIDRV6(i int) netip.Prefix {
	return netip.PrefixFrom(v6(0x2001, 0x0db8, 0x100, uint16(i), 0, 0, 0, 0), 64)
}

// GatewayV4 and GatewayV6 are node i's cni0 addresses, the pods' default
// gateway.
func (p Plan) GatewayV4(i int) netip.Addr { return p.PodCIDRV4(i).Addr().Next() }
func (p Plan) GatewayV6(i int) netip.Addr { return p.PodCIDRV6(i).Addr().Next() }

// PodV4 and PodV6 are the addresses of pod j (from 1) on node i.
func (p Plan) PodV4(i, j int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, 64, byte(i), byte(10 + j)})
}
func (p Plan) PodV6(i, j int) netip.Addr {
	return v6(0x2001, 0x0db8, 0x100, uint16(i), 0, 0, 0, uint16(0x10+j))
}

// ClusterV4 and ClusterV6 contain every pod CIDR.
func (p Plan) ClusterV4() netip.Prefix { return netip.MustParsePrefix("100.64.0.0/16") }
func (p Plan) ClusterV6() netip.Prefix { return netip.MustParsePrefix("2001:db8:100::/48") }

// Prefix is the name prefix of everything the slot creates.
func (p Plan) Prefix() string { return fmt.Sprintf("vs%d", p.Slot) }

// UnderlayNS, NodeNS and PodNS name the slot's namespaces.
func (p Plan) UnderlayNS() string    { return p.Prefix() + "-ul" }
func (p Plan) NodeNS(i int) string   { return fmt.Sprintf("%s-n%d", p.Prefix(), i) }
func (p Plan) PodNS(i, j int) string { return fmt.Sprintf("%s-n%dp%d", p.Prefix(), i, j) }

// HostLink is the host end of the underlay.
func (p Plan) HostLink() string { return p.Prefix() + "h" }

// NodeName is the Kubernetes name of node i.
func (p Plan) NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// PodName is the Kubernetes name of pod j on node i.
func (p Plan) PodName(i, j int) string { return fmt.Sprintf("pod-%d-%d", i, j) }

func v6(words ...uint16) netip.Addr {
	var b [16]byte
	for k, w := range words {
		b[2*k], b[2*k+1] = byte(w>>8), byte(w)
	}
	return netip.AddrFrom16(b)
}
