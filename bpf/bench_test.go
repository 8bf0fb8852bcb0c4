package bpf

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/core/blocks"
)

// benchState is a node of a big cluster: 5,000 remote /24 pod CIDRs
// (100.65.0.0 up), one ready node each, this node's 100.64.1.0/24, and
// nRules random block rules between pod CIDRs and pods. One rule starts
// at 100.64.1.0/24, so that source has a class whose destination is held
// inline in stage one; six start at 100.64.9.0/24, a class too big to be
// inline, so its packets also take the stage-two lookup.
func benchState(nRules, nRemotes int) State {
	r := rand.New(rand.NewPCG(uint64(nRules), 9))
	remote := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 65 + byte(i>>8), byte(i), 0}), 24)
	}
	s := State{
		Config:   Config{Strict: true},
		Locals:   []netip.Prefix{pfx("100.64.1.0/24")},
		Clusters: []netip.Prefix{pfx("100.64.0.0/10")},
	}
	for i := range nRemotes {
		s.Remotes = append(s.Remotes, Remote{CIDR: remote(i), Node: uint32(i + 1), Mark: 0x100 + uint32(i)})
		s.Nodes = append(s.Nodes, Node{ID: uint32(i + 1), Ready: true})
	}
	pod := func() netip.Prefix {
		p := remote(r.IntN(nRemotes))
		if r.IntN(2) == 0 {
			a := p.Addr().As4()
			a[3] = byte(r.Uint32())
			return netip.PrefixFrom(netip.AddrFrom4(a), 32)
		}
		return p
	}
	s.Blocks = append(s.Blocks, blocks.Rule{Src: pfx("100.64.1.0/24"), Dst: pfx("100.66.200.0/24")})
	for i := range 6 {
		s.Blocks = append(s.Blocks, blocks.Rule{Src: pfx("100.64.9.0/24"), Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 66, 210 + byte(i), 0}), 24)})
	}
	for len(s.Blocks) < nRules {
		s.Blocks = append(s.Blocks, blocks.Rule{Src: pod(), Dst: pod()})
	}
	return s
}

// BenchmarkClassify measures classify per packet through
// BPF_PROG_TEST_RUN with 10,000 block rules and 5,000 remote CIDRs
// loaded, and how flat that cost is against 100 rules. The packet goes
// the longest common way: its source has a block class, it is not
// blocked, and it is steered to a ready remote. The two policies are
// measured alternately in one run and the medians compared; the same is
// done for a source whose class needs the stage-two lookup.
func BenchmarkClassify(b *testing.B) {
	d := openTest(b, Options{})
	big, small := benchState(10000, 5000), benchState(100, 5000)
	canonical, err := big.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	table, err := blocks.Compile(canonical.Blocks, blocks.Options{})
	if err != nil {
		b.Fatal(err)
	}
	contents := policyContents(canonical, table)
	inlinePkt := udp4(ip("100.64.1.10"), ip("100.65.7.9"))
	stage2Pkt := udp4(ip("100.64.9.10"), ip("100.65.7.9"))

	start := time.Now()
	if err := d.Apply(big); err != nil {
		b.Fatal(err)
	}
	applyBig := time.Since(start)
	for _, pkt := range [][]byte{inlinePkt, stage2Pkt} {
		if got := run(b, d, HookClassify, pkt); got.Verdict != VerdictSteer {
			b.Fatalf("benchmark packet is not steered: %+v", got)
		}
	}

	const repeat, rounds = 1 << 20, 7
	measure := func(s State, pkt []byte) float64 {
		if err := d.Apply(s); err != nil {
			b.Fatal(err)
		}
		_, per, err := d.classify.VpbluClassify.Benchmark(pkt, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		return float64(per.Nanoseconds())
	}
	var nsBig, nsSmall, nsBig2, nsSmall2 []float64
	for range rounds {
		nsBig = append(nsBig, measure(big, inlinePkt))
		nsSmall = append(nsSmall, measure(small, inlinePkt))
		nsBig2 = append(nsBig2, measure(big, stage2Pkt))
		nsSmall2 = append(nsSmall2, measure(small, stage2Pkt))
	}
	mBig, mSmall, mBig2, mSmall2 := median(nsBig), median(nsSmall), median(nsBig2), median(nsSmall2)
	b.ReportMetric(mBig, "ns/packet")
	b.Logf("10k rules: stage one %d+%d, stage two %d+%d entries (%d+%d before inlining); apply %v",
		contents["vpblu_block_src4"].n, contents["vpblu_block_src6"].n,
		contents["vpblu_block_dst4"].n, contents["vpblu_block_dst6"].n,
		table.Size().Drops4, table.Size().Drops6, applyBig)
	b.Logf("ns per packet, inline class: 10k %v, 100 %v", nsBig, nsSmall)
	b.Logf("ns per packet, stage-two class: 10k %v, 100 %v", nsBig2, nsSmall2)
	fmt.Printf("bpf: apply-ms-10k %.1f\n", float64(applyBig.Microseconds())/1000)
	fmt.Printf("bpf: classify-ns-10k %.1f\n", mBig)
	fmt.Printf("bpf: classify-flatness-10k/100 %.2f\n", mBig/max(mSmall, 1))
	fmt.Printf("bpf: classify-stage2-ns-10k %.1f\n", mBig2)
	fmt.Printf("bpf: classify-stage2-flatness-10k/100 %.2f\n", mBig2/max(mSmall2, 1))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
