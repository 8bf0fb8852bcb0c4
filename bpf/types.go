package bpf

import (
	"net/netip"
)

// The Go side of the structs in lib/common.h, used as map keys and values.
// layout_test.go checks them against the C structs (through BTF and
// through the bpf2go-generated types).

type lpm4Key struct {
	Prefixlen uint32
	Addr      [4]byte
}

type lpm6Key struct {
	Prefixlen uint32
	Addr      [16]byte
}

type block4Key struct {
	Prefixlen uint32
	Class     uint32
	Addr      [4]byte
}

type block6Key struct {
	Prefixlen uint32
	Class     uint32
	Addr      [16]byte
}

type dst4 struct {
	Addr [4]byte
	Mask [4]byte
}

type dst6 struct {
	Addr [16]byte
	Mask [16]byte
}

type class4Value struct {
	Class   uint32
	Ninline uint32
	Dst     [inlineDsts]dst4
}

type class6Value struct {
	Class   uint32
	Ninline uint32
	Dst     [inlineDsts]dst6
}

type remoteValue struct {
	Node uint32
	Mark uint32
}

type nodeValue struct {
	Flags uint32
}

type configValue struct {
	Flags      uint32
	DropSample uint32
}

type ruleKey struct {
	Family uint8
	SrcLen uint8
	DstLen uint8
	Pad    uint8
	Src    [16]byte
	Dst    [16]byte
}

type dropRecord struct {
	KtimeNs uint64
	Ifindex uint32
	Hook    uint8
	Verdict uint8
	Reason  uint8
	Family  uint8
	Proto   uint8
	Pad     uint8
	Sport   uint16
	Dport   uint16
	Pad2    uint16
	Src     [16]byte
	Dst     [16]byte
}

// Bits of configValue.Flags and nodeValue.Flags.
const (
	configStrict   = 0x1
	configIsolated = 0x2

	nodeReady    = 0x1
	nodeIsolated = 0x2
	nodeListed   = 0x4
)

// A block class with at most inlineDsts destinations carries them in its
// stage-one value; one with more has Ninline = notInline and its
// destinations in stage two.
const (
	inlineDsts = 4
	notInline  = 0xffffffff
)

// slots is the number of policy copies; vpblu_active names the one in
// force.
const slots = 2

func lpm4(p netip.Prefix) lpm4Key {
	return lpm4Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
}

func lpm6(p netip.Prefix) lpm6Key {
	return lpm6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

func (k lpm4Key) prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4(k.Addr), int(k.Prefixlen))
}

func (k lpm6Key) prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen))
}

// addrFrom returns the address of family (4 or 6) held in b.
func addrFrom(family uint8, b [16]byte) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}
