package bpf

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/blocks"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// tablePolicy is the policy of the classify table tests:
//
//	local    100.64.1.0/24, 2001:db8:1::/64
//	remote   100.64.2.0/24, 2001:db8:2::/64 -> node 2 (ready, mark 0x102)
//	         100.64.3.0/24, 2001:db8:3::/64 -> node 3 (not ready)
//	         100.64.4.0/24                  -> node 4 (ready, isolated)
//	         100.64.5.0/24                  -> node 9 (not listed)
//	         100.64.2.128/25                -> node 3 (longer than node 2's)
//	cluster  100.64.0.0/16, 2001:db8::/48
func tablePolicy() State {
	return State{
		Config: Config{Strict: true, DropSample: 1},
		Locals: []netip.Prefix{pfx("100.64.1.0/24"), pfx("2001:db8:1::/64")},
		Remotes: []Remote{
			{pfx("100.64.2.0/24"), 2, 0x102},
			{pfx("2001:db8:2::/64"), 2, 0x102},
			{pfx("100.64.3.0/24"), 3, 0x103},
			{pfx("2001:db8:3::/64"), 3, 0x103},
			{pfx("100.64.4.0/24"), 4, 0x104},
			{pfx("100.64.5.0/24"), 9, 0x109},
			{pfx("100.64.2.128/25"), 3, 0x103},
		},
		Clusters: []netip.Prefix{pfx("100.64.0.0/16"), pfx("2001:db8::/48")},
		Nodes:    []Node{{ID: 2, Ready: true}, {ID: 3}, {ID: 4, Ready: true, Isolated: true}},
		Blocks: []blocks.Rule{
			{Src: pfx("100.64.1.66/32"), Dst: pfx("100.64.2.0/24")},
			{Src: pfx("0.0.0.0/0"), Dst: pfx("100.64.2.99/32")},
			{Src: pfx("100.64.1.0/24"), Dst: pfx("100.64.1.200/32")},
			{Src: pfx("2001:db8:1::66/128"), Dst: pfx("2001:db8:2::/64")},
			{Src: pfx("::/0"), Dst: pfx("2001:db8:2::99/128")},
		},
	}
}

var (
	src4     = ip("100.64.1.10")
	blocked4 = ip("100.64.1.66")
	src6     = ip("2001:db8:1::10")
	blocked6 = ip("2001:db8:1::66")
)

func udp4(src, dst netip.Addr) []byte {
	return ether(etherIPv4, ip4{src: src, dst: dst, proto: protoUDP}.build(l4(1000, 53)))
}

func udp6(src, dst netip.Addr) []byte {
	return ether(etherIPv6, ip6{src: src, dst: dst, next: protoUDP}.build(l4(1000, 53)))
}

// chain6 wraps an IPv6 packet around extension headers ending in UDP.
func chain6(src, dst netip.Addr, first uint8, exts []byte) []byte {
	return ether(etherIPv6, ip6{src: src, dst: dst, next: first}.build(exts))
}

// truncatedFrames are frames whose IP header is cut short. The kernel's
// test runner refuses them; TestClassifyTruncatedOnVeth sends them through
// a real veth instead. classify passes them unchanged (the stack drops
// them later).
func truncatedFrames() map[string][]byte {
	return map[string][]byte{
		"bare Ethernet header of type IPv4": ether(etherIPv4, nil),
		"IPv4 header cut at 19 bytes":       ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7")}.build(nil)[:19]),
		"IPv6 header cut at 39 bytes":       ether(etherIPv6, ip6{src: blocked6, dst: ip("2001:db8:2::7")}.build(nil)[:39]),
		"IPv6 header cut at 8 bytes":        ether(etherIPv6, ip6{src: blocked6, dst: ip("2001:db8:2::7")}.build(nil)[:8]),
	}
}

func TestClassifyVerdicts(t *testing.T) {
	d := openTest(t, Options{})
	drops := newDropReader(t, d)
	steer := outcome{VerdictSteer, ReasonTunnel, 0x102}
	dropBlock := outcome{VerdictDrop, ReasonBlock, 0}
	dropNoTunnel := outcome{VerdictDrop, ReasonNoTunnel, 0}
	passNoTunnel := outcome{VerdictPass, ReasonNoTunnel, 0}
	dropIsolated := outcome{VerdictDrop, ReasonIsolated, 0}
	passLocal := outcome{VerdictPass, ReasonLocal, 0}
	passOther := outcome{VerdictPass, ReasonOther, 0}
	passNonIP := outcome{VerdictPass, ReasonNonIP, 0}
	passMalformed := outcome{VerdictPass, ReasonMalformed, 0}

	// drop builds the sampled drop record a case expects; test runs happen
	// on the loopback device (ifindex 1).
	drop := func(reason Reason, src, dst string, proto uint8, sport, dport uint16) *Drop {
		return &Drop{Ifindex: 1, Hook: HookClassify, Verdict: VerdictDrop, Reason: reason, Src: ip(src), Dst: ip(dst), Proto: proto, SrcPort: sport, DstPort: dport}
	}
	udp := func(r Reason, src, dst string) *Drop { return drop(r, src, dst, protoUDP, 1000, 53) }

	type tc struct {
		name   string
		policy func(*State) // changes to tablePolicy, if any
		pkt    []byte
		want   outcome
		drop   *Drop // the sampled drop, for drop verdicts
	}
	cases := []tc{
		// IPv4 verdicts.
		{name: "v4 to a local pod passes", pkt: udp4(src4, ip("100.64.1.20")), want: passLocal},
		{name: "v4 to a ready remote is steered with its mark", pkt: udp4(src4, ip("100.64.2.7")), want: steer},
		{name: "v4 longest remote prefix wins", pkt: udp4(src4, ip("100.64.2.200")), want: dropNoTunnel, drop: udp(ReasonNoTunnel, "100.64.1.10", "100.64.2.200")},
		{name: "v4 to a remote without tunnel drops when strict", pkt: udp4(src4, ip("100.64.3.7")), want: dropNoTunnel, drop: udp(ReasonNoTunnel, "100.64.1.10", "100.64.3.7")},
		{name: "v4 to a remote of an unlisted node drops when strict", pkt: udp4(src4, ip("100.64.5.7")), want: dropNoTunnel, drop: udp(ReasonNoTunnel, "100.64.1.10", "100.64.5.7")},
		{name: "v4 to an isolated node drops even when ready", pkt: udp4(src4, ip("100.64.4.7")), want: dropIsolated, drop: udp(ReasonIsolated, "100.64.1.10", "100.64.4.7")},
		{name: "v4 to a cluster CIDR no remote covers drops when strict", pkt: udp4(src4, ip("100.64.9.9")), want: dropNoTunnel, drop: udp(ReasonNoTunnel, "100.64.1.10", "100.64.9.9")},
		{name: "v4 outside the cluster passes", pkt: udp4(src4, ip("198.18.0.1")), want: passOther},
		{name: "v4 block beats a ready tunnel", pkt: udp4(blocked4, ip("100.64.2.7")), want: dropBlock, drop: udp(ReasonBlock, "100.64.1.66", "100.64.2.7")},
		{name: "v4 block from the default source", pkt: udp4(ip("100.64.1.11"), ip("100.64.2.99")), want: dropBlock, drop: udp(ReasonBlock, "100.64.1.11", "100.64.2.99")},
		{name: "v4 block beats local", pkt: udp4(src4, ip("100.64.1.200")), want: dropBlock, drop: udp(ReasonBlock, "100.64.1.10", "100.64.1.200")},
		{name: "v4 block source must match", pkt: udp4(ip("100.64.1.67"), ip("100.64.2.7")), want: steer},
		{
			name: "v4 with options: ports after the options",
			pkt:  ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), proto: protoTCP, ihl: 7}.build(l4(4242, 443))),
			want: dropBlock, drop: drop(ReasonBlock, "100.64.1.66", "100.64.2.7", protoTCP, 4242, 443),
		},
		{
			name: "v4 first fragment: verdict and ports",
			pkt:  ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), proto: protoUDP, more: true}.build(l4(1000, 53))),
			want: dropBlock, drop: udp(ReasonBlock, "100.64.1.66", "100.64.2.7"),
		},
		{
			name: "v4 later fragment: same verdict, no ports",
			pkt:  ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), proto: protoUDP, fragOff: 185}.build(make([]byte, 8))),
			want: dropBlock, drop: drop(ReasonBlock, "100.64.1.66", "100.64.2.7", protoUDP, 0, 0),
		},
		{name: "v4 later fragment to a ready remote is steered", pkt: ether(etherIPv4, ip4{src: src4, dst: ip("100.64.2.7"), proto: protoUDP, fragOff: 185}.build(nil)), want: steer},
		{name: "v4 ICMP has no ports", pkt: ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), proto: 1}.build(make([]byte, 8))), want: dropBlock, drop: drop(ReasonBlock, "100.64.1.66", "100.64.2.7", 1, 0, 0)},
		{name: "v4 in a VLAN tag is steered", pkt: ether(etherIPv4, ip4{src: src4, dst: ip("100.64.2.7")}.build(nil), etherVLAN), want: steer},
		{name: "v4 in two tags (QinQ) is blocked", pkt: ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), proto: protoUDP}.build(l4(1000, 53)), etherQinQ, etherVLAN), want: dropBlock, drop: udp(ReasonBlock, "100.64.1.66", "100.64.2.7")},
		{name: "three VLAN tags are not parsed", pkt: ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7")}.build(nil), etherQinQ, etherVLAN, etherVLAN), want: passNonIP},

		// IPv6 verdicts, with and without extension headers.
		{name: "v6 to a local pod passes", pkt: udp6(src6, ip("2001:db8:1::20")), want: passLocal},
		{name: "v6 to a ready remote is steered", pkt: udp6(src6, ip("2001:db8:2::7")), want: steer},
		{name: "v6 to a remote without tunnel drops when strict", pkt: udp6(src6, ip("2001:db8:3::7")), want: dropNoTunnel, drop: udp(ReasonNoTunnel, "2001:db8:1::10", "2001:db8:3::7")},
		{name: "v6 to a cluster CIDR no remote covers drops", pkt: udp6(src6, ip("2001:db8:0:9::1")), want: dropNoTunnel, drop: udp(ReasonNoTunnel, "2001:db8:1::10", "2001:db8:0:9::1")},
		{name: "v6 outside the cluster passes", pkt: udp6(src6, ip("2001:db8:ffff::1")), want: passOther},
		{name: "v6 block beats a ready tunnel", pkt: udp6(blocked6, ip("2001:db8:2::7")), want: dropBlock, drop: udp(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7")},
		{name: "v6 block from the default source", pkt: udp6(ip("2001:db8:1::11"), ip("2001:db8:2::99")), want: dropBlock, drop: udp(ReasonBlock, "2001:db8:1::11", "2001:db8:2::99")},
		{name: "v6 hop-by-hop to a ready remote is steered", pkt: chain6(src6, ip("2001:db8:2::7"), protoHopOpts, optsExt(protoUDP, 0, l4(1000, 53))), want: steer},
		{
			name: "v6 hop-by-hop, routing, dest opts: ports found",
			pkt:  chain6(blocked6, ip("2001:db8:2::7"), protoHopOpts, optsExt(protoRouting, 1, optsExt(protoDstOpts, 0, optsExt(protoTCP, 2, l4(5555, 80))))),
			want: dropBlock, drop: drop(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7", protoTCP, 5555, 80),
		},
		{
			name: "v6 first fragment: ports found",
			pkt:  chain6(blocked6, ip("2001:db8:2::7"), protoFragment, fragExt(protoUDP, 0, true, l4(1000, 53))),
			want: dropBlock, drop: udp(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7"),
		},
		{
			name: "v6 later fragment: same verdict, no ports",
			pkt:  chain6(blocked6, ip("2001:db8:2::7"), protoFragment, fragExt(protoUDP, 100, false, l4(1000, 53))),
			want: dropBlock, drop: drop(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7", protoUDP, 0, 0),
		},
		{
			name: "v6 later fragment to a ready remote is steered",
			pkt:  chain6(src6, ip("2001:db8:2::7"), protoFragment, fragExt(protoUDP, 100, false, nil)),
			want: steer,
		},
		{
			name: "v6 authentication header: ports found",
			pkt:  chain6(blocked6, ip("2001:db8:2::7"), protoAH, ahExt(protoUDP, l4(1000, 53))),
			want: dropBlock, drop: udp(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7"),
		},
		{
			name: "v6 chain longer than the walk: verdict holds, no ports",
			pkt: chain6(blocked6, ip("2001:db8:2::7"), protoDstOpts, func() []byte {
				b := l4(1000, 53)
				next := uint8(protoUDP)
				for range 9 {
					b = optsExt(next, 0, b)
					next = protoDstOpts
				}
				return b
			}()),
			want: dropBlock, drop: drop(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7", protoDstOpts, 0, 0),
		},
		{
			name: "v6 truncated extension header: verdict holds, no ports",
			pkt:  chain6(blocked6, ip("2001:db8:2::7"), protoHopOpts, []byte{protoUDP}),
			want: dropBlock, drop: drop(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7", protoHopOpts, 0, 0),
		},
		{
			name: "v6 extension header pointing past the packet: verdict holds",
			pkt:  chain6(blocked6, ip("2001:db8:2::7"), protoRouting, optsExt(protoUDP, 200, nil)),
			want: dropBlock, drop: drop(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7", protoUDP, 0, 0),
		},
		{name: "v6 no next header", pkt: chain6(blocked6, ip("2001:db8:2::7"), protoNoNext, nil), want: dropBlock, drop: drop(ReasonBlock, "2001:db8:1::66", "2001:db8:2::7", protoNoNext, 0, 0)},

		// What cannot be parsed passes unchanged.
		{name: "ARP passes unchanged", pkt: ether(etherARP, arp()), want: passNonIP},
		{name: "LLDP passes unchanged", pkt: ether(0x88cc, make([]byte, 40)), want: passNonIP},
		// Truncated IP headers: BPF_PROG_TEST_RUN refuses them, so
		// TestClassifyTruncatedOnVeth sends truncatedFrames over a veth.
		{name: "IPv4 ethertype with version 6 is malformed", pkt: ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), version: 6}.build(nil)), want: passMalformed},
		{name: "IPv4 header length below 5 is malformed", pkt: ether(etherIPv4, ip4{src: blocked4, dst: ip("100.64.2.7"), ihl: 4}.build(nil)), want: passMalformed},
		{name: "IPv6 ethertype with version 4 is malformed", pkt: ether(etherIPv6, ip6{src: blocked6, dst: ip("2001:db8:2::7"), version: 4}.build(nil)), want: passMalformed},
		{name: "truncated VLAN tag is malformed", pkt: ether(etherVLAN, []byte{0, 1}), want: passMalformed},

		// Node-wide settings.
		{name: "not strict: remote without tunnel passes", policy: func(s *State) { s.Config.Strict = false }, pkt: udp4(src4, ip("100.64.3.7")), want: passNoTunnel},
		{name: "not strict: cluster CIDR passes", policy: func(s *State) { s.Config.Strict = false }, pkt: udp6(src6, ip("2001:db8:0:9::1")), want: passNoTunnel},
		{name: "not strict: blocks still drop", policy: func(s *State) { s.Config.Strict = false }, pkt: udp4(blocked4, ip("100.64.2.7")), want: dropBlock, drop: udp(ReasonBlock, "100.64.1.66", "100.64.2.7")},
		{name: "isolated node: ready remote drops", policy: func(s *State) { s.Config.Isolated = true }, pkt: udp4(src4, ip("100.64.2.7")), want: dropIsolated, drop: udp(ReasonIsolated, "100.64.1.10", "100.64.2.7")},
		{name: "isolated node: cluster CIDR drops", policy: func(s *State) { s.Config.Isolated = true; s.Config.Strict = false }, pkt: udp6(src6, ip("2001:db8:0:9::1")), want: dropIsolated, drop: udp(ReasonIsolated, "2001:db8:1::10", "2001:db8:0:9::1")},
		{name: "isolated node: local traffic passes", policy: func(s *State) { s.Config.Isolated = true }, pkt: udp4(src4, ip("100.64.1.20")), want: passLocal},
		{name: "isolated node: outside the cluster passes", policy: func(s *State) { s.Config.Isolated = true }, pkt: udp4(src4, ip("198.18.0.1")), want: passOther},
		{name: "no sampling: drops are counted, not sent", policy: func(s *State) { s.Config.DropSample = 0 }, pkt: udp4(blocked4, ip("100.64.2.7")), want: dropBlock},
		{name: "empty state passes everything", policy: func(s *State) { *s = State{} }, pkt: udp4(blocked4, ip("100.64.2.7")), want: passOther},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := tablePolicy()
			if c.policy != nil {
				c.policy(&s)
			}
			if err := d.Apply(s); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			drops.drain(t)
			got := run(t, d, HookClassify, c.pkt)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			var want []Drop
			if c.drop != nil {
				want = []Drop{*c.drop}
			}
			if diff := cmp.Diff(want, drops.drain(t), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("sampled drops (-want +got):\n%s", diff)
			}
			// The reference model agrees wherever it applies.
			if h, ok := headerOf(c.pkt); ok {
				if m := modelClassify(s, h); m != got {
					t.Errorf("reference model says %+v, kernel %+v", m, got)
				}
			}
		})
	}
}

// TestDeliverVerdicts runs deliver on L3 packets (no Ethernet header).
// BPF_PROG_TEST_RUN always derives skb->protocol from bytes 12-13 of the
// input as if it were an Ethernet header, so these packets come from
// 8.0.0.0/16 (IPv4: source bytes 0-1 are 0x0800) and 2001:db8:86dd::/48
// (IPv6: source bytes 4-5 are 0x86dd): skb->protocol then says what an
// L3 device would say. TestDeliverOnTun covers any address on a real L3
// device.
func TestDeliverVerdicts(t *testing.T) {
	d := openTest(t, Options{})
	drops := newDropReader(t, d)
	policy := func() State {
		return State{
			Config: Config{Strict: true, DropSample: 1},
			Locals: []netip.Prefix{pfx("100.64.1.0/24"), pfx("2001:db8:1::/64")},
			Remotes: []Remote{
				{pfx("8.0.2.0/24"), 2, 0x102}, {pfx("2001:db8:86dd:2::/64"), 2, 0x102},
				{pfx("8.0.7.0/24"), 7, 0x107}, {pfx("2001:db8:86dd:7::/64"), 7, 0x107},
			},
			Clusters: []netip.Prefix{pfx("8.0.0.0/20"), pfx("2001:db8:86dd::/56")},
			Nodes:    []Node{{ID: 2, Ready: true}, {ID: 7, Ready: true, Isolated: true}},
			Blocks: []blocks.Rule{
				{Src: pfx("8.0.2.66/32"), Dst: pfx("100.64.1.0/24")},
				{Src: pfx("2001:db8:86dd:2::66/128"), Dst: pfx("2001:db8:1::/64")},
			},
		}
	}
	pass := outcome{VerdictPass, ReasonTunnel, 0}
	dropBlock := outcome{VerdictDrop, ReasonBlock, 0}
	dropIsolated := outcome{VerdictDrop, ReasonIsolated, 0}
	v4 := func(src, dst string) []byte {
		return ip4{src: ip(src), dst: ip(dst), proto: protoUDP}.build(l4(1000, 53))
	}
	v6 := func(src, dst string) []byte {
		return ip6{src: ip(src), dst: ip(dst), next: protoUDP}.build(l4(1000, 53))
	}
	drop := func(r Reason, src, dst string) *Drop {
		return &Drop{Ifindex: 1, Hook: HookDeliver, Verdict: VerdictDrop, Reason: r, Src: ip(src), Dst: ip(dst), Proto: protoUDP, SrcPort: 1000, DstPort: 53}
	}
	for _, c := range []struct {
		name   string
		policy func(*State)
		pkt    []byte
		want   outcome
		drop   *Drop
	}{
		{name: "v4 from a peer's pod is delivered", pkt: v4("8.0.2.10", "100.64.1.5"), want: pass},
		{name: "v4 block holds on the receiving side", pkt: v4("8.0.2.66", "100.64.1.5"), want: dropBlock, drop: drop(ReasonBlock, "8.0.2.66", "100.64.1.5")},
		{name: "v4 block needs its destination", pkt: v4("8.0.2.66", "100.64.3.5"), want: pass},
		{name: "v4 from an isolated node drops", pkt: v4("8.0.7.10", "100.64.1.5"), want: dropIsolated, drop: drop(ReasonIsolated, "8.0.7.10", "100.64.1.5")},
		{name: "v6 from a peer's pod is delivered", pkt: v6("2001:db8:86dd:2::10", "2001:db8:1::5"), want: pass},
		{name: "v6 block holds on the receiving side", pkt: v6("2001:db8:86dd:2::66", "2001:db8:1::5"), want: dropBlock, drop: drop(ReasonBlock, "2001:db8:86dd:2::66", "2001:db8:1::5")},
		{name: "v6 from an isolated node drops", pkt: v6("2001:db8:86dd:7::10", "2001:db8:1::5"), want: dropIsolated, drop: drop(ReasonIsolated, "2001:db8:86dd:7::10", "2001:db8:1::5")},
		{name: "v6 fragment header: ports found for the sample", pkt: ip6{src: ip("2001:db8:86dd:2::66"), dst: ip("2001:db8:1::5"), next: protoFragment}.build(fragExt(protoUDP, 0, true, l4(1000, 53))), want: dropBlock, drop: drop(ReasonBlock, "2001:db8:86dd:2::66", "2001:db8:1::5")},
		{name: "isolated self: from a ready peer drops", policy: func(s *State) { s.Config.Isolated = true }, pkt: v4("8.0.2.10", "100.64.1.5"), want: dropIsolated, drop: drop(ReasonIsolated, "8.0.2.10", "100.64.1.5")},
		{name: "isolated self: from a cluster CIDR drops", policy: func(s *State) { s.Config.Isolated = true }, pkt: v6("2001:db8:86dd:9::1", "2001:db8:1::5"), want: dropIsolated, drop: drop(ReasonIsolated, "2001:db8:86dd:9::1", "2001:db8:1::5")},
		{name: "isolated self: from outside the cluster passes", policy: func(s *State) { s.Config.Isolated = true }, pkt: v4("8.0.200.1", "100.64.1.5"), want: pass},
		{name: "IPv4 protocol with version 6 is malformed", pkt: ip4{src: ip("8.0.2.66"), dst: ip("100.64.1.5"), version: 6}.build(nil), want: outcome{VerdictPass, ReasonMalformed, 0}},
		{name: "IPv4 header length below 5 is malformed", pkt: ip4{src: ip("8.0.2.66"), dst: ip("100.64.1.5"), ihl: 3}.build(nil), want: outcome{VerdictPass, ReasonMalformed, 0}},
		{name: "IPv6 protocol with version 4 is malformed", pkt: ip6{src: ip("2001:db8:86dd:2::66"), dst: ip("2001:db8:1::5"), version: 4}.build(nil), want: outcome{VerdictPass, ReasonMalformed, 0}},
		// Truncated L3 packets cannot pass the test runner (it pads
		// nothing and refuses short headers): TestDeliverOnTun sends them.
		{name: "ARP protocol passes unchanged", pkt: ip4{src: ip("8.6.0.1"), dst: ip("100.64.1.5")}.build(nil), want: outcome{VerdictPass, ReasonNonIP, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := policy()
			if c.policy != nil {
				c.policy(&s)
			}
			if err := d.Apply(s); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			drops.drain(t)
			// The test runner also wants a whole IP header after its
			// imagined Ethernet header: pad (the IP length fields stay).
			got := run(t, d, HookDeliver, append(c.pkt, make([]byte, 64)...))
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			var want []Drop
			if c.drop != nil {
				want = []Drop{*c.drop}
			}
			if diff := cmp.Diff(want, drops.drain(t), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("sampled drops (-want +got):\n%s", diff)
			}
			typ := uint16(c.pkt[12])<<8 | uint16(c.pkt[13])
			if m := modelDeliver(s, headerOfIP(typ, c.pkt)); m != got {
				t.Errorf("reference model says %+v, kernel %+v", m, got)
			}
		})
	}
}
