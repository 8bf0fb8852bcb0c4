package wg

import (
	"encoding/binary"

	"golang.zx2c4.com/wireguard/tun"
)

// IPv6 makes the UDP checksum mandatory and reads a zero in the field as
// "none", which receivers drop (Udp6InCsumErrors); RFC 768 says a computed
// zero is sent as 0xffff. wireguard-go completes the checksum of packets
// the kernel hands it half-done (offloads on the TUN) without that rule,
// so about one IPv6 UDP datagram in 65,536 left the tunnel with a zero
// checksum and was dropped by the receiving pod. udpChecksumTUN repairs
// such packets as wireguard-go reads them, before they are encrypted.
type udpChecksumTUN struct{ tun.Device }

// Read implements tun.Device.
func (t udpChecksumTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	for i := 0; i < n; i++ {
		if sizes[i] > 0 && offset+sizes[i] <= len(bufs[i]) {
			fixZeroUDP6Checksum(bufs[i][offset : offset+sizes[i]])
		}
	}
	return n, err
}

const (
	ipv6HeaderLen = 40
	protoUDP      = 17
	// IPv6 extension headers that may precede UDP and do not change the
	// pseudo-header (a routing header does: its packets are left alone).
	extHopByHop = 0
	extDestOpts = 60
)

// fixZeroUDP6Checksum sets the checksum field of an IPv6 UDP datagram to
// 0xffff when it is zero and 0xffff is the datagram's correct checksum,
// and reports whether it did. A zero sent on purpose (RFC 6935 tunnels)
// whose correct checksum is something else is left as it is, as is every
// other packet: IPv4 (zero is valid there), fragments, malformed ones.
func fixZeroUDP6Checksum(pkt []byte) bool {
	if len(pkt) < ipv6HeaderLen || pkt[0]>>4 != 6 {
		return false
	}
	next, off := pkt[6], ipv6HeaderLen
	for next == extHopByHop || next == extDestOpts {
		if off+8 > len(pkt) {
			return false
		}
		next, off = pkt[off], off+(int(pkt[off+1])+1)*8
	}
	if next != protoUDP || off+8 > len(pkt) {
		return false
	}
	udp := pkt[off:]
	length := int(binary.BigEndian.Uint16(udp[4:6]))
	if length < 8 || length > len(udp) || udp[6] != 0 || udp[7] != 0 {
		return false
	}
	// One's-complement sum of the pseudo-header and the datagram with a
	// zero checksum field: 0xffff means the correct field is 0xffff.
	var sum uint64
	sum = sumWords(sum, pkt[8:40]) // source and destination addresses
	sum += uint64(length) + protoUDP
	sum = sumWords(sum, udp[:length])
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		return false
	}
	udp[6], udp[7] = 0xff, 0xff
	return true
}

func sumWords(sum uint64, b []byte) uint64 {
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}
