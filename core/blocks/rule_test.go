package blocks

import (
	"errors"
	"net/netip"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestValidateRefusesWhatCannotCompile(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		ok   bool
	}{
		{"v4 to v4", Rule{pfx("100.64.0.0/16"), pfx("100.65.0.0/16")}, true},
		{"v6 to v6", Rule{pfx("2001:db8::/32"), pfx("2001:db8:1::/48")}, true},
		{"default sources", Rule{pfx("0.0.0.0/0"), pfx("::/0")}, false},
		{"mixed families", Rule{pfx("100.64.0.0/16"), pfx("2001:db8::/32")}, false},
		{"zero source", Rule{Dst: pfx("100.64.0.0/16")}, false},
		{"zero destination", Rule{Src: pfx("100.64.0.0/16")}, false},
		{"IPv4-mapped", Rule{pfx("::ffff:100.64.0.0/112"), pfx("2001:db8::/32")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%s) = %v, want ok=%v", tc.rule, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidRule) {
				t.Fatalf("error %v is not ErrInvalidRule", err)
			}
			if _, cerr := Compile([]Rule{tc.rule}, Options{}); (cerr == nil) != tc.ok {
				t.Fatalf("Compile = %v, want ok=%v", cerr, tc.ok)
			}
		})
	}
}

func TestMatchIsPerFamilyAndContainment(t *testing.T) {
	rules := []Rule{
		{pfx("100.64.1.0/24"), pfx("100.64.2.0/24")},
		{pfx("::/0"), pfx("2001:db8:9::/48")},
		{pfx("100.64.9.9/16"), pfx("100.70.0.0/16")}, // host bits ignored
	}
	for _, tc := range []struct {
		name     string
		src, dst string
		want     bool
	}{
		{"inside both prefixes", "100.64.1.7", "100.64.2.9", true},
		{"source outside", "100.64.3.7", "100.64.2.9", false},
		{"destination outside", "100.64.1.7", "100.64.3.9", false},
		{"v6 default source", "2001:db8:5::1", "2001:db8:9::1", true},
		{"v6 rule ignores v4", "100.64.1.7", "100.64.9.1", false},
		{"v4 default not implied", "100.99.0.1", "100.64.2.9", false},
		{"unmasked rule prefix", "100.64.200.1", "100.70.1.1", true},
		{"IPv4-mapped source is v6", "::ffff:100.64.1.7", "::ffff:100.64.2.9", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Match(rules, addr(tc.src), addr(tc.dst)); got != tc.want {
				t.Fatalf("Match(%s, %s) = %v, want %v", tc.src, tc.dst, got, tc.want)
			}
		})
	}
}
