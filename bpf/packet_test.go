package bpf

import (
	"encoding/binary"
	"net/netip"
)

// Small builders for the packets the tests feed the programs. Checksums
// are left zero: the programs never look at them.

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
	etherVLAN = 0x8100
	etherQinQ = 0x88a8

	protoHopOpts  = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoICMPv6   = 58
	protoNoNext   = 59
	protoDstOpts  = 60
)

// ether prepends an Ethernet header, with VLAN tags (outermost first)
// when tpids are given.
func ether(ethType uint16, payload []byte, tpids ...uint16) []byte {
	b := []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2}
	for i, tpid := range tpids {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i)) // VLAN id
	}
	b = binary.BigEndian.AppendUint16(b, ethType)
	return append(b, payload...)
}

// ip4 describes an IPv4 header; zero fields take sane defaults.
type ip4 struct {
	src, dst netip.Addr
	proto    uint8
	version  uint8  // 4 when zero
	ihl      uint8  // 5 when zero; options are zero-filled
	fragOff  uint16 // in 8-byte units
	more     bool   // more fragments
}

func (h ip4) build(payload []byte) []byte {
	version, ihl := h.version, h.ihl
	if version == 0 {
		version = 4
	}
	if ihl == 0 {
		ihl = 5
	}
	hdrLen := max(int(ihl)*4, 20)
	b := make([]byte, hdrLen, hdrLen+len(payload))
	b[0] = version<<4 | ihl&0xf
	binary.BigEndian.PutUint16(b[2:], uint16(hdrLen+len(payload)))
	frag := h.fragOff & 0x1fff
	if h.more {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = h.proto
	s, d := h.src.As4(), h.dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, payload...)
}

// ip6 describes an IPv6 header.
type ip6 struct {
	src, dst netip.Addr
	next     uint8
	version  uint8 // 6 when zero
}

func (h ip6) build(payload []byte) []byte {
	version := h.version
	if version == 0 {
		version = 6
	}
	b := make([]byte, 40, 40+len(payload))
	b[0] = version << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = h.next
	b[7] = 64
	s, d := h.src.As16(), h.dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

// optsExt builds a hop-by-hop, routing or destination options header of
// 8*(units+1) bytes.
func optsExt(next uint8, units uint8, payload []byte) []byte {
	b := make([]byte, 8*(int(units)+1))
	b[0], b[1] = next, units
	return append(b, payload...)
}

// fragExt builds an IPv6 fragment header.
func fragExt(next uint8, offset uint16, more bool, payload []byte) []byte {
	b := make([]byte, 8)
	b[0] = next
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xfeed)
	return append(b, payload...)
}

// ahExt builds an authentication header with len 4 (24 bytes).
func ahExt(next uint8, payload []byte) []byte {
	b := make([]byte, 24)
	b[0], b[1] = next, 4
	return append(b, payload...)
}

// l4 builds the first 8 bytes of a TCP or UDP header: the ports and some
// filler.
func l4(sport, dport uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, 0, 8, 0, 0)
}

func arp() []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	return append(b, make([]byte, 20)...)
}
