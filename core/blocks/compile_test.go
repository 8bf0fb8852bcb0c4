package blocks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// compare lets cmp.Diff print netip values.
var compare = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestCompileTables(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []Rule
		want  Table
	}{
		{
			name: "empty policy compiles to nothing",
			want: Table{},
		},
		{
			name:  "one rule is one class and one drop",
			rules: []Rule{{pfx("100.64.1.0/24"), pfx("100.64.2.0/24")}},
			want: Table{
				Classes: []Class{{pfx("100.64.1.0/24"), 1}},
				Drops:   []Drop{{1, pfx("100.64.2.0/24")}},
			},
		},
		{
			name: "a longer source inherits the rules of shorter ones",
			rules: []Rule{
				{pfx("100.64.0.0/16"), pfx("100.80.0.0/16")},
				{pfx("100.64.1.0/24"), pfx("100.90.0.0/16")},
			},
			want: Table{
				Classes: []Class{{pfx("100.64.0.0/16"), 1}, {pfx("100.64.1.0/24"), 2}},
				Drops: []Drop{
					{1, pfx("100.80.0.0/16")},
					{2, pfx("100.80.0.0/16")}, {2, pfx("100.90.0.0/16")},
				},
			},
		},
		{
			name: "the default source is a class every other inherits",
			rules: []Rule{
				{pfx("0.0.0.0/0"), pfx("100.99.0.0/16")},
				{pfx("100.64.1.0/24"), pfx("100.90.0.0/16")},
				{pfx("::/0"), pfx("2001:db8:9::/48")},
			},
			want: Table{
				Classes: []Class{{pfx("0.0.0.0/0"), 1}, {pfx("100.64.1.0/24"), 2}, {pfx("::/0"), 3}},
				Drops: []Drop{
					{1, pfx("100.99.0.0/16")},
					{2, pfx("100.90.0.0/16")}, {2, pfx("100.99.0.0/16")},
					{3, pfx("2001:db8:9::/48")},
				},
			},
		},
		{
			name: "a destination inside a wider one of the class is left out",
			rules: []Rule{
				{pfx("100.64.0.0/16"), pfx("100.80.0.0/12")},
				{pfx("100.64.1.0/24"), pfx("100.80.5.0/24")},
				{pfx("100.64.2.0/24"), pfx("100.64.0.0/10")},
			},
			want: Table{
				// 100.64.1.0/24 adds nothing its parent does not drop.
				Classes: []Class{{pfx("100.64.0.0/16"), 1}, {pfx("100.64.2.0/24"), 2}},
				Drops: []Drop{
					{1, pfx("100.80.0.0/12")},
					{2, pfx("100.64.0.0/10")},
				},
			},
		},
		{
			name: "sources with the same destinations share a class",
			rules: []Rule{
				{pfx("100.64.1.0/24"), pfx("100.80.0.0/16")},
				{pfx("100.64.7.0/24"), pfx("100.80.0.0/16")},
				{pfx("2001:db8:1::/48"), pfx("2001:db8:9::/48")},
				{pfx("2001:db8:2::/48"), pfx("2001:db8:9::/48")},
			},
			want: Table{
				Classes: []Class{
					{pfx("100.64.1.0/24"), 1}, {pfx("100.64.7.0/24"), 1},
					{pfx("2001:db8:1::/48"), 2}, {pfx("2001:db8:2::/48"), 2},
				},
				Drops: []Drop{{1, pfx("100.80.0.0/16")}, {2, pfx("2001:db8:9::/48")}},
			},
		},
		{
			name: "duplicates and host bits collapse",
			rules: []Rule{
				{pfx("100.64.1.9/24"), pfx("100.80.3.3/16")},
				{pfx("100.64.1.0/24"), pfx("100.80.0.0/16")},
			},
			want: Table{
				Classes: []Class{{pfx("100.64.1.0/24"), 1}},
				Drops:   []Drop{{1, pfx("100.80.0.0/16")}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compile(tc.rules, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, compare); diff != "" {
				t.Fatalf("Compile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileStopsAtLimits(t *testing.T) {
	rules := []Rule{
		{pfx("0.0.0.0/0"), pfx("100.99.0.0/16")},
		{pfx("100.64.1.0/24"), pfx("100.90.0.0/16")},
		{pfx("100.64.2.0/24"), pfx("100.91.0.0/16")},
	}
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"no limit", Options{}, true},
		{"exact fit", Options{MaxClasses: 3, MaxDrops: 5}, true},
		{"one class short", Options{MaxClasses: 2}, false},
		{"one drop short", Options{MaxDrops: 4}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(rules, tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("Compile = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is not ErrTooLarge", err)
			}
		})
	}
}

func TestCompileIgnoresRuleOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		rules := randomRules(r, 40)
		want, err := Compile(rules, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r.Shuffle(len(rules), func(i, j int) { rules[i], rules[j] = rules[j], rules[i] })
		got, err := Compile(rules, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, compare); diff != "" {
			t.Fatalf("case %d: shuffled rules compile differently (-want +got):\n%s", i, diff)
		}
	}
}

// TestCompiledAgreesWithNaive is the property test: on random rules of
// both families, the two-stage lookup drops exactly what Match drops, for
// random addresses and for the first and last address of every prefix.
func TestCompiledAgreesWithNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	checked := 0
	for range 300 {
		rules := randomRules(r, 1+r.IntN(60))
		checked += checkAgrees(t, rules, queries(r, rules, 200))
	}
	t.Logf("%d (source, destination) pairs agreed", checked)
}

// FuzzCompile decodes rules and addresses from the input and checks the
// compiled table against the naive matcher. The seed corpus is in
// testdata/fuzz/FuzzCompile.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{0x00, 1, 2, 0x90, 3, 4, 0x05})
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, qs := decode(data)
		checkAgrees(t, rules, qs)
	})
}

// checkAgrees compiles rules and compares every query; it returns how many
// queries it checked.
func checkAgrees(t *testing.T, rules []Rule, qs [][2]netip.Addr) int {
	t.Helper()
	table, err := Compile(rules, Options{})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	for _, q := range qs {
		want := Match(rules, q[0], q[1])
		if got := table.Match(q[0], q[1]); got != want {
			t.Fatalf("%s -> %s: compiled says drop=%v, naive %v\nrules: %v\ntable: %+v", q[0], q[1], got, want, rules, table)
		}
	}
	return len(qs)
}

// Addresses are drawn from a small universe per family (1024 addresses) so
// random prefixes overlap, nest and coincide often.
func universeAddr(v6 bool, hi, lo byte) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: hi & 3, 15: lo})
	}
	return netip.AddrFrom4([4]byte{100, 64, hi & 3, lo})
}

// universeBits mostly picks lengths that split the universe, sometimes any.
func universeBits(v6 bool, b byte) int {
	width, floor := 32, 22
	if v6 {
		width, floor = 128, 118
	}
	if b&0x80 != 0 {
		return int(b) % (width + 1)
	}
	return floor + int(b)%11
}

func randomRules(r *rand.Rand, n int) []Rule {
	rules := make([]Rule, n)
	for i := range rules {
		v6 := r.IntN(2) == 0
		p := func() netip.Prefix {
			a := universeAddr(v6, byte(r.Uint32()), byte(r.Uint32()))
			return netip.PrefixFrom(a, universeBits(v6, byte(r.Uint32())))
		}
		rules[i] = Rule{Src: p(), Dst: p()}
	}
	return rules
}

// queries returns n random pairs of both families plus the edges of every
// rule prefix.
func queries(r *rand.Rand, rules []Rule, n int) [][2]netip.Addr {
	var qs [][2]netip.Addr
	for range n {
		v6 := r.IntN(2) == 0
		qs = append(qs, [2]netip.Addr{
			universeAddr(v6, byte(r.Uint32()), byte(r.Uint32())),
			universeAddr(v6, byte(r.Uint32()), byte(r.Uint32())),
		})
	}
	for _, ru := range rules {
		for _, s := range edges(ru.Src) {
			for _, d := range edges(ru.Dst) {
				qs = append(qs, [2]netip.Addr{s, d})
			}
		}
	}
	return qs
}

// edges returns the first and last address of p and the ones just outside.
func edges(p netip.Prefix) []netip.Addr {
	p = p.Masked()
	first := p.Addr()
	last := first
	for i := p.Bits(); i < first.BitLen(); i++ {
		b := last.AsSlice()
		b[i/8] |= 0x80 >> (i % 8)
		last, _ = netip.AddrFromSlice(b)
	}
	out := []netip.Addr{first, last}
	if prev := first.Prev(); prev.IsValid() {
		out = append(out, prev)
	}
	if next := last.Next(); next.IsValid() {
		out = append(out, next)
	}
	return out
}

// decode reads rules and queries from fuzz input, 5 bytes per item: a
// header byte (bit 0: IPv6, bit 1: query instead of rule), then two
// (address, length) byte pairs. It reads at most 64 items so each input
// stays fast to check.
func decode(data []byte) ([]Rule, [][2]netip.Addr) {
	var rules []Rule
	var qs [][2]netip.Addr
	for n := 0; len(data) >= 5 && n < 64; n++ {
		h, b := data[0], data[1:5]
		data = data[5:]
		v6 := h&1 != 0
		a1 := universeAddr(v6, h>>2, b[0])
		a2 := universeAddr(v6, h>>4, b[2])
		if h&2 != 0 {
			qs = append(qs, [2]netip.Addr{a1, a2})
			continue
		}
		rules = append(rules, Rule{
			Src: netip.PrefixFrom(a1, universeBits(v6, b[1])),
			Dst: netip.PrefixFrom(a2, universeBits(v6, b[3])),
		})
	}
	for _, ru := range rules {
		for _, s := range edges(ru.Src) {
			for _, d := range edges(ru.Dst) {
				qs = append(qs, [2]netip.Addr{s, d})
			}
		}
	}
	return rules, qs
}

// TestCompileCountsAt10k records the entry counts the data plane must hold
// for 10,000 rules, and pins the worst case the package doc describes.
func TestCompileCountsAt10k(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	hostOrNet := func(v6 bool) netip.Prefix {
		if v6 {
			a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(r.Uint32()), 5: byte(r.Uint32()), 15: byte(r.Uint32())}
			return netip.PrefixFrom(netip.AddrFrom16(a), []int{48, 56, 64, 128}[r.IntN(4)]).Masked()
		}
		a := [4]byte{100, 64 + byte(r.IntN(64)), byte(r.Uint32()), byte(r.Uint32())}
		return netip.PrefixFrom(netip.AddrFrom4(a), []int{16, 24, 28, 32}[r.IntN(4)]).Masked()
	}
	var mixed []Rule
	for i := range 10000 {
		v6 := i%2 == 1
		mixed = append(mixed, Rule{Src: hostOrNet(v6), Dst: hostOrNet(v6)})
	}
	var withDefault []Rule
	for i := range 10000 {
		src := hostOrNet(false)
		if i%100 == 0 {
			src = pfx("0.0.0.0/0")
		}
		withDefault = append(withDefault, Rule{Src: src, Dst: hostOrNet(false)})
	}
	for _, tc := range []struct {
		name  string
		rules []Rule
	}{
		{"10k random pod-CIDR rules, half IPv6", mixed},
		{"10k rules, 1% from the default source", withDefault},
	} {
		table, err := Compile(tc.rules, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s := table.Size()
		t.Logf("%s: stage one %d+%d, stage two %d+%d (IPv4+IPv6)", tc.name, s.Classes4, s.Classes6, s.Drops4, s.Drops6)
		if s.Drops4+s.Drops6 < len(tc.rules)/2 {
			t.Errorf("%s: implausibly few stage-two entries: %+v", tc.name, s)
		}
	}

	// Worst case: a rules from the default source to distinct
	// destinations and b rules from distinct /32 sources. Every /32 class
	// repeats the a inherited destinations: a + b(a+1) stage-two entries.
	for _, n := range []int{1000, 10000} {
		a, b := n/2, n/2
		var rules []Rule
		for i := range a {
			rules = append(rules, Rule{pfx("0.0.0.0/0"), netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 100, byte(i >> 8), byte(i)}), 32)})
		}
		for i := range b {
			rules = append(rules, Rule{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32), netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 101, byte(i >> 8), byte(i)}), 32)})
		}
		want := a + b*(a+1)
		limit := 0
		if n > 1000 {
			limit = 1 << 20 // 25 million entries would not fit any sane map
		}
		table, err := Compile(rules, Options{MaxDrops: limit})
		switch {
		case limit > 0 && want > limit:
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("worst case n=%d: want ErrTooLarge, got %v", n, err)
			}
			t.Logf("worst case n=%d: needs %d stage-two entries, stopped at the limit: %v", n, want, err)
		case err != nil:
			t.Fatal(err)
		default:
			if got := table.Size().Drops4; got != want {
				t.Fatalf("worst case n=%d: %d stage-two entries, want a+b(a+1) = %d", n, got, want)
			}
			t.Logf("worst case n=%d: stage one %d, stage two %d", n, table.Size().Classes4, want)
		}
	}
}

func BenchmarkCompile10k(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	rules := randomRules(r, 10000)
	for b.Loop() {
		if _, err := Compile(rules, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleCompile() {
	table, _ := Compile([]Rule{
		{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("100.99.0.0/16")},
		{netip.MustParsePrefix("100.64.1.0/24"), netip.MustParsePrefix("100.90.0.0/16")},
	}, Options{})
	for _, c := range table.Classes {
		fmt.Println("class", c.ID, c.Src)
	}
	for _, d := range table.Drops {
		fmt.Println("drop", d.Class, d.Dst)
	}
	// Output:
	// class 1 0.0.0.0/0
	// class 2 100.64.1.0/24
	// drop 1 100.99.0.0/16
	// drop 2 100.90.0.0/16
	// drop 2 100.99.0.0/16
}
