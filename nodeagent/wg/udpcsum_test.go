package wg

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

// udp6 builds an IPv6 UDP datagram (optionally behind a Hop-by-Hop
// header) whose checksum field holds csum.
func udp6(payload []byte, csum uint16, hopByHop bool) []byte {
	src, dst := netip.MustParseAddr("2001:db8:100:1::1"), netip.MustParseAddr("2001:db8:100:2::1")
	var ext []byte
	next := byte(protoUDP)
	if hopByHop {
		ext = []byte{protoUDP, 0, 1, 4, 0, 0, 0, 0} // PadN
		next = extHopByHop
	}
	udpLen := 8 + len(payload)
	pkt := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(ext)+udpLen)
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(ext)+udpLen))
	pkt[6], pkt[7] = next, 64
	copy(pkt[8:], src.AsSlice())
	copy(pkt[24:], dst.AsSlice())
	pkt = append(pkt, ext...)
	udp := make([]byte, 8, udpLen)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 5000)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	binary.BigEndian.PutUint16(udp[6:], csum)
	return append(pkt, append(udp, payload...)...)
}

// udp6Sum is the folded one's-complement sum of a datagram built by udp6
// with its pseudo-header; 0xffff means the checksum verifies.
func udp6Sum(pkt []byte, hopByHop bool) uint16 {
	off := ipv6HeaderLen
	if hopByHop {
		off += 8
	}
	udp := pkt[off:]
	sum := sumWords(0, pkt[8:40]) + uint64(len(udp)) + protoUDP
	sum = sumWords(sum, udp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// computedZero returns a payload whose correct checksum is 0xffff: what
// a checksum routine that forgets RFC 768 writes as zero.
func computedZero(t *testing.T, hopByHop bool) []byte {
	t.Helper()
	payload := []byte("seq-0042")
	s := udp6Sum(udp6(payload, 0, hopByHop), hopByHop) // sum without the last word's share
	last := binary.BigEndian.Uint16(payload[6:])
	s = onesSub(s, last)
	binary.BigEndian.PutUint16(payload[6:], 0xffff-s)
	if got := udp6Sum(udp6(payload, 0, hopByHop), hopByHop); got != 0xffff {
		t.Fatalf("test payload sums to %#x, want 0xffff", got)
	}
	return payload
}

func onesSub(a, b uint16) uint16 {
	s := uint32(a) + uint32(^b)
	return uint16(s&0xffff + s>>16)
}

func TestAComputedZeroUDP6ChecksumIsSentAsAllOnes(t *testing.T) {
	for _, hbh := range []bool{false, true} {
		pkt := udp6(computedZero(t, hbh), 0, hbh)
		if !fixZeroUDP6Checksum(pkt) {
			t.Fatalf("hop-by-hop=%v: a computed-zero checksum was not repaired", hbh)
		}
		if got := udp6Sum(pkt, hbh); got != 0xffff {
			t.Errorf("hop-by-hop=%v: repaired datagram sums to %#x, want it to verify (0xffff)", hbh, got)
		}
		if pkt[len(pkt)-16+6] != 0xff || pkt[len(pkt)-16+7] != 0xff {
			t.Errorf("hop-by-hop=%v: checksum field % x, want ff ff", hbh, pkt[len(pkt)-16+6:len(pkt)-16+8])
		}
	}
}

func TestOtherPacketsAreLeftAlone(t *testing.T) {
	payload := []byte("seq-0043")
	deliberate := udp6(payload, 0, false) // zero on purpose, correct checksum is not 0xffff
	valid := udp6(payload, 0x1234, false)
	v4 := make([]byte, 28)
	v4[0], v4[9] = 0x45, protoUDP
	fragment := udp6(computedZero(t, false), 0, false)
	fragment[6] = 44 // a Fragment header: the checksum covers the whole datagram
	truncated := udp6(computedZero(t, false), 0, false)[:ipv6HeaderLen+6]
	badLength := udp6(computedZero(t, false), 0, false)
	binary.BigEndian.PutUint16(badLength[ipv6HeaderLen+4:], 0xffff)
	for name, pkt := range map[string][]byte{
		"a zero sent on purpose": deliberate, "a non-zero checksum": valid, "IPv4": v4,
		"a fragment": fragment, "a truncated datagram": truncated, "a length beyond the packet": badLength,
		"an empty packet": {}, "a lone version nibble": {0x60},
	} {
		before := append([]byte(nil), pkt...)
		if fixZeroUDP6Checksum(pkt) || string(before) != string(pkt) {
			t.Errorf("%s was changed", name)
		}
	}
}

type fakeTUN struct {
	tun.Device
	pkts [][]byte
}

func (f *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i, p := range f.pkts {
		sizes[i] = copy(bufs[i][offset:], p)
	}
	return len(f.pkts), nil
}

func TestTheDeviceRepairsWhatWireGuardReads(t *testing.T) {
	const offset = 16 // wireguard-go reads behind room for its header
	zero := udp6(computedZero(t, false), 0, false)
	other := udp6([]byte("seq-0043"), 0x1234, false)
	dev := udpChecksumTUN{&fakeTUN{pkts: [][]byte{zero, other}}}
	bufs := [][]byte{make([]byte, 1500), make([]byte, 1500)}
	sizes := make([]int, 2)
	n, err := dev.Read(bufs, sizes, offset)
	if err != nil || n != 2 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if got := udp6Sum(bufs[0][offset:offset+sizes[0]], false); got != 0xffff {
		t.Errorf("first datagram sums to %#x after Read, want it to verify", got)
	}
	if string(bufs[1][offset:offset+sizes[1]]) != string(other) {
		t.Errorf("second datagram changed")
	}
}

func FuzzFixZeroUDP6Checksum(f *testing.F) {
	f.Add(udp6([]byte("seq-0043"), 0, false))
	f.Add(udp6([]byte("x"), 0, true))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := append([]byte(nil), pkt...)
		if fixZeroUDP6Checksum(pkt) {
			for i := range pkt {
				if pkt[i] != before[i] && !(pkt[i] == 0xff && before[i] == 0) {
					t.Fatalf("byte %d changed from %#x to %#x", i, before[i], pkt[i])
				}
			}
		} else if string(before) != string(pkt) {
			t.Fatal("changed without saying so")
		}
	})
}
