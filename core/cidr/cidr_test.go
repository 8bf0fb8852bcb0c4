package cidr

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     netip.Prefix
		wantErr  bool
	}{
		{name: "canonical IPv4 stays as is", in: "100.64.1.0/24", want: pfx("100.64.1.0/24")},
		{name: "host bits are masked", in: "100.64.1.7/24", want: pfx("100.64.1.0/24")},
		{name: "IPv6 is masked too", in: "2001:db8:1::5/64", want: pfx("2001:db8:1::/64")},
		{name: "a bare address is refused", in: "100.64.1.1", wantErr: true},
		{name: "a prefix length past the family is refused", in: "100.64.1.0/33", wantErr: true},
		{name: "IPv4-mapped IPv6 is refused", in: "::ffff:100.64.1.0/120", wantErr: true},
		{name: "garbage is refused", in: "not-a-cidr", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q) = %v, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpPrefix); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestCompareIsPreorder(t *testing.T) {
	got := []netip.Prefix{pfx("2001:db8::/32"), pfx("100.64.1.0/24"), pfx("100.64.0.0/16"), pfx("0.0.0.0/0"), pfx("100.65.0.0/16"), pfx("100.64.1.0/25")}
	slices.SortFunc(got, Compare)
	want := []netip.Prefix{pfx("0.0.0.0/0"), pfx("100.64.0.0/16"), pfx("100.64.1.0/24"), pfx("100.64.1.0/25"), pfx("100.65.0.0/16"), pfx("2001:db8::/32")}
	if diff := cmp.Diff(want, got, cmpPrefix); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     string
		holes []string
		want  []string
	}{
		{name: "no holes leaves the prefix", p: "100.64.0.0/24", want: []string{"100.64.0.0/24"}},
		{name: "a hole outside is ignored", p: "100.64.0.0/24", holes: []string{"100.65.0.0/24", "2001:db8::/32"}, want: []string{"100.64.0.0/24"}},
		{name: "a hole containing the prefix leaves nothing", p: "100.64.0.0/24", holes: []string{"100.64.0.0/16"}},
		{name: "an equal hole leaves nothing", p: "100.64.0.0/24", holes: []string{"100.64.0.0/24"}},
		{name: "half removed leaves the other half", p: "100.64.0.0/24", holes: []string{"100.64.0.128/25"}, want: []string{"100.64.0.0/25"}},
		{name: "a quarter removed leaves two prefixes", p: "100.64.0.0/24", holes: []string{"100.64.0.64/26"}, want: []string{"100.64.0.0/26", "100.64.0.128/25"}},
		{name: "two holes in separate halves", p: "100.64.0.0/24", holes: []string{"100.64.0.0/26", "100.64.0.192/26"}, want: []string{"100.64.0.64/26", "100.64.0.128/26"}},
		{name: "nested holes count once", p: "100.64.0.0/24", holes: []string{"100.64.0.0/25", "100.64.0.0/26"}, want: []string{"100.64.0.128/25"}},
		{name: "IPv6 carving", p: "2001:db8::/62", holes: []string{"2001:db8:0:1::/64"}, want: []string{"2001:db8::/64", "2001:db8:0:2::/63"}},
		{name: "host hole in an IPv4 /30", p: "100.64.0.0/30", holes: []string{"100.64.0.3/32"}, want: []string{"100.64.0.0/31", "100.64.0.2/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var holes, want []netip.Prefix
			for _, h := range tc.holes {
				holes = append(holes, pfx(h))
			}
			for _, w := range tc.want {
				want = append(want, pfx(w))
			}
			got := Subtract(pfx(tc.p), holes)
			if diff := cmp.Diff(want, got, cmpPrefix); diff != "" {
				t.Errorf("Subtract (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSubtractMatchesAddresses checks Subtract address by address inside a
// small IPv4 prefix: an address is in the result exactly when it is in p
// and in no hole, and the pieces are disjoint.
func TestSubtractMatchesAddresses(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := pfx("100.64.0.0/24")
	for range 500 {
		var holes []netip.Prefix
		for range r.IntN(5) {
			a := netip.AddrFrom4([4]byte{100, 64, 0, byte(r.IntN(256))})
			holes = append(holes, netip.PrefixFrom(a, 24+r.IntN(9)).Masked())
		}
		got := Subtract(base, holes)
		for i := range 256 {
			a := netip.AddrFrom4([4]byte{100, 64, 0, byte(i)})
			inHole := slices.ContainsFunc(holes, func(h netip.Prefix) bool { return h.Contains(a) })
			n := 0
			for _, p := range got {
				if p.Contains(a) {
					n++
				}
			}
			if want := map[bool]int{true: 0, false: 1}[inHole]; n != want {
				t.Fatalf("holes %v: address %s is in %d pieces of %v, want %d", holes, a, n, got, want)
			}
		}
	}
}

func TestHostAndAll(t *testing.T) {
	if got, want := Host(netip.MustParseAddr("::ffff:100.64.0.1")), pfx("100.64.0.1/32"); got != want {
		t.Errorf("Host(mapped) = %s, want %s", got, want)
	}
	if got, want := Host(netip.MustParseAddr("2001:db8::1")), pfx("2001:db8::1/128"); got != want {
		t.Errorf("Host(v6) = %s, want %s", got, want)
	}
	if got, want := All(netip.MustParseAddr("2001:db8::1")), pfx("::/0"); got != want {
		t.Errorf("All(v6) = %s, want %s", got, want)
	}
	if got, want := All(netip.MustParseAddr("100.64.0.1")), pfx("0.0.0.0/0"); got != want {
		t.Errorf("All(v4) = %s, want %s", got, want)
	}
}
