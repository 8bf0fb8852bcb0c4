package bpf

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/lumbrjx/vpblu/core/blocks"
)

// universe draws addresses from a small space per family (1024 each), so
// random prefixes overlap, nest and match often.
type universe struct {
	v4, v6 func(hi, lo byte) netip.Addr
}

// podUniverse is where classify's packets live.
var podUniverse = universe{
	v4: func(hi, lo byte) netip.Addr { return netip.AddrFrom4([4]byte{100, 64, hi & 3, lo}) },
	v6: func(hi, lo byte) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: hi & 3, 15: lo})
	},
}

// l3Universe is where deliver's packets live: see TestDeliverVerdicts for
// why these prefixes (skb->protocol in the test runner).
var l3Universe = universe{
	v4: func(hi, lo byte) netip.Addr { return netip.AddrFrom4([4]byte{8, 0, hi & 3, lo}) },
	v6: func(hi, lo byte) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x86, 0xdd, 14: hi & 3, 15: lo})
	},
}

func (u universe) addr(r *rand.Rand, v6 bool) netip.Addr {
	if v6 {
		return u.v6(byte(r.Uint32()), byte(r.Uint32()))
	}
	return u.v4(byte(r.Uint32()), byte(r.Uint32()))
}

// prefix returns a random prefix that mostly splits the universe and
// sometimes covers all of it.
func (u universe) prefix(r *rand.Rand, v6 bool) netip.Prefix {
	width := 32
	if v6 {
		width = 128
	}
	bits := width - r.IntN(11) // splits the 1024 addresses
	if r.IntN(8) == 0 {
		bits = r.IntN(width - 9) // covers them all
	}
	return netip.PrefixFrom(u.addr(r, v6), bits).Masked()
}

func (u universe) policy(r *rand.Rand) State {
	fam := func() bool { return r.IntN(2) == 0 }
	s := State{Config: Config{Strict: r.IntN(2) == 0, Isolated: r.IntN(10) == 0}}
	for id := uint32(1); id <= 6; id++ {
		if r.IntN(5) != 0 {
			s.Nodes = append(s.Nodes, Node{ID: id, Ready: r.IntN(5) < 3, Isolated: r.IntN(5) == 0})
		}
	}
	seen := map[netip.Prefix]bool{}
	for range r.IntN(9) {
		p := u.prefix(r, fam())
		if !seen[p] {
			seen[p] = true
			s.Remotes = append(s.Remotes, Remote{CIDR: p, Node: 1 + r.Uint32N(7), Mark: 1 + r.Uint32N(1<<20)})
		}
	}
	for range r.IntN(3) {
		s.Locals = append(s.Locals, u.prefix(r, fam()))
	}
	for range r.IntN(3) {
		s.Clusters = append(s.Clusters, u.prefix(r, fam()))
	}
	for range r.IntN(13) {
		v6 := fam()
		s.Blocks = append(s.Blocks, blocks.Rule{Src: u.prefix(r, v6), Dst: u.prefix(r, v6)})
	}
	return s
}

// shape is one way to wrap the same addresses in a packet; valid shapes
// must not change the verdict, broken ones make the packet unparsable.
type shape struct {
	name string
	v6   bool // which family it applies to
	// build returns the frame and what the reference model should see.
	build func(src, dst netip.Addr) ([]byte, header)
}

func validShape(name string, v6 bool, build func(src, dst netip.Addr) []byte) shape {
	return shape{name, v6, func(src, dst netip.Addr) ([]byte, header) {
		return build(src, dst), header{src: src, dst: dst}
	}}
}

// classifyShapes are Ethernet frames.
var classifyShapes = []shape{
	validShape("v4 udp", false, udp4),
	validShape("v4 vlan", false, func(s, d netip.Addr) []byte {
		return ether(etherIPv4, ip4{src: s, dst: d, proto: protoTCP}.build(l4(1, 2)), etherVLAN)
	}),
	validShape("v4 qinq", false, func(s, d netip.Addr) []byte {
		return ether(etherIPv4, ip4{src: s, dst: d, proto: protoUDP}.build(l4(1, 2)), etherQinQ, etherVLAN)
	}),
	validShape("v4 options", false, func(s, d netip.Addr) []byte {
		return ether(etherIPv4, ip4{src: s, dst: d, proto: protoUDP, ihl: 15}.build(l4(1, 2)))
	}),
	validShape("v4 later fragment", false, func(s, d netip.Addr) []byte {
		return ether(etherIPv4, ip4{src: s, dst: d, proto: protoUDP, fragOff: 9}.build(nil))
	}),
	validShape("v6 udp", true, udp6),
	validShape("v6 vlan", true, func(s, d netip.Addr) []byte {
		return ether(etherIPv6, ip6{src: s, dst: d, next: protoICMPv6}.build(make([]byte, 8)), etherVLAN)
	}),
	validShape("v6 ext chain", true, func(s, d netip.Addr) []byte {
		return chain6(s, d, protoHopOpts, optsExt(protoRouting, 1, optsExt(protoFragment, 0, fragExt(protoDstOpts, 0, true, optsExt(protoUDP, 0, l4(1, 2))))))
	}),
	validShape("v6 later fragment", true, func(s, d netip.Addr) []byte {
		return chain6(s, d, protoFragment, fragExt(protoUDP, 77, false, nil))
	}),
	validShape("v6 broken ext", true, func(s, d netip.Addr) []byte {
		return chain6(s, d, protoDstOpts, optsExt(protoUDP, 255, nil))
	}),
	{"v4 as version 6", false, func(s, d netip.Addr) ([]byte, header) {
		return ether(etherIPv4, ip4{src: s, dst: d, version: 6}.build(nil)), header{malformed: true}
	}},
	{"v6 as version 4", true, func(s, d netip.Addr) ([]byte, header) {
		return ether(etherIPv6, ip6{src: s, dst: d, version: 4}.build(nil)), header{malformed: true}
	}},
	{"arp", false, func(s, d netip.Addr) ([]byte, header) { return ether(etherARP, arp()), header{nonIP: true} }},
}

// deliverShapes are L3 packets, padded for the test runner (see
// TestDeliverVerdicts).
var deliverShapes = []shape{
	validShape("v4 udp", false, func(s, d netip.Addr) []byte {
		return ip4{src: s, dst: d, proto: protoUDP}.build(l4(1, 2))
	}),
	validShape("v4 later fragment", false, func(s, d netip.Addr) []byte {
		return ip4{src: s, dst: d, proto: protoUDP, fragOff: 3}.build(nil)
	}),
	validShape("v6 udp", true, func(s, d netip.Addr) []byte {
		return ip6{src: s, dst: d, next: protoUDP}.build(l4(1, 2))
	}),
	validShape("v6 ext chain", true, func(s, d netip.Addr) []byte {
		return ip6{src: s, dst: d, next: protoHopOpts}.build(optsExt(protoFragment, 0, fragExt(protoTCP, 0, false, l4(1, 2))))
	}),
	{"v4 bad header length", false, func(s, d netip.Addr) ([]byte, header) {
		return ip4{src: s, dst: d, ihl: 2}.build(nil), header{malformed: true}
	}},
}

// TestDifferential runs classify and deliver on random policies and
// packets, IPv4 and IPv6, and checks every kernel verdict against the Go
// reference model (modelClassify, modelDeliver), which uses the naive
// block matcher of core/blocks.
func TestDifferential(t *testing.T) {
	d := openTest(t, Options{})
	r := rand.New(rand.NewPCG(20, 26))
	const policies, packets = 170, 60
	for _, hc := range []struct {
		hook   Hook
		u      universe
		shapes []shape
		model  func(State, header) outcome
		pad    int
	}{
		{HookClassify, podUniverse, classifyShapes, modelClassify, 0},
		{HookDeliver, l3Universe, deliverShapes, modelDeliver, 64},
	} {
		t.Run(hc.hook.String(), func(t *testing.T) {
			seen := map[outcome]int{}
			cases := 0
			for i := range policies {
				s := hc.u.policy(r)
				if err := d.Apply(s); err != nil {
					t.Fatalf("policy %d: Apply: %v", i, err)
				}
				for range packets {
					sh := hc.shapes[r.IntN(len(hc.shapes))]
					src, dst := hc.u.addr(r, sh.v6), hc.u.addr(r, sh.v6)
					pkt, h := sh.build(src, dst)
					want := hc.model(s, h)
					got := run(t, d, hc.hook, append(pkt, make([]byte, hc.pad)...))
					if want.Verdict != VerdictSteer {
						want.Mark = 0
					}
					if got != want {
						t.Fatalf("policy %d, %s %s -> %s: kernel %+v, reference %+v\npolicy: %s", i, sh.name, src, dst, got, want, fmt.Sprintf("%+v", s))
					}
					seen[got]++
					cases++
				}
			}
			t.Logf("%d cases agreed over %d policies; outcomes: %v", cases, policies, summarize(seen))
			// The generator must reach every verdict, or the test
			// proves little.
			for _, o := range expectedOutcomes(hc.hook) {
				if seen[o] == 0 {
					t.Errorf("no case produced %s/%s", o.Verdict, o.Reason)
				}
			}
		})
	}
}

func expectedOutcomes(h Hook) []outcome {
	if h == HookDeliver {
		return []outcome{
			{VerdictPass, ReasonMalformed, 0}, {VerdictDrop, ReasonBlock, 0},
			{VerdictDrop, ReasonIsolated, 0}, {VerdictPass, ReasonTunnel, 0},
		}
	}
	return []outcome{
		{VerdictPass, ReasonNonIP, 0}, {VerdictPass, ReasonMalformed, 0}, {VerdictDrop, ReasonBlock, 0},
		{VerdictPass, ReasonLocal, 0}, {VerdictDrop, ReasonNoTunnel, 0}, {VerdictPass, ReasonNoTunnel, 0},
		{VerdictDrop, ReasonIsolated, 0}, {VerdictPass, ReasonOther, 0},
	}
}

// summarize counts outcomes by verdict and reason, ignoring marks.
func summarize(seen map[outcome]int) map[string]int {
	out := map[string]int{}
	for o, n := range seen {
		out[o.Verdict.String()+"/"+o.Reason.String()] += n
	}
	return out
}
