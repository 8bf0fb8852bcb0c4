package cidr

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("invalid CIDR")

// Parse parses an IPv4 or IPv6 prefix such as "100.64.1.0/24", accepting
// host bits ("100.64.1.7/24" becomes 100.64.1.0/24). It refuses zones and
// IPv4-mapped IPv6 prefixes (write the IPv4 form), so every family has one
// spelling.
func Parse(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q: %w", ErrInvalid, s, err)
	}
	if err := Check(p); err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: %w", s, err)
	}
	return p.Masked(), nil
}

// Check says why p cannot be used as a mesh prefix, or returns nil: it must
// be valid and not an IPv4-mapped IPv6 prefix. Host bits are allowed (use
// Masked).
func Check(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: not a valid prefix", ErrInvalid)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("%w: %s is IPv4-mapped IPv6, use the IPv4 form", ErrInvalid, p)
	}
	if p.Addr().Zone() != "" {
		return fmt.Errorf("%w: %s has a zone", ErrInvalid, p)
	}
	return nil
}

// Host returns the single-address prefix of a: /32 for IPv4 (also for an
// IPv4-mapped IPv6 address), /128 for IPv6. The zone is dropped.
func Host(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen())
}

// All returns the prefix holding every address of a's family: 0.0.0.0/0
// or ::/0.
func All(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

// Compare orders prefixes: IPv4 before IPv6, then by address, then shorter
// first. In this order a prefix comes right before the prefixes it
// contains (a pre-order walk of the binary trie), which makes nesting a
// stack walk. Compare expects masked prefixes.
func Compare(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Contains reports whether outer contains inner: same family and every
// address of inner is in outer (equal prefixes contain each other).
func Contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// Sort sorts ps in Compare order and removes duplicates. It returns the
// shortened slice, like slices.Compact.
func Sort(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, Compare)
	return slices.Compact(ps)
}

// Subtract returns the addresses of p that are in none of holes, as the
// fewest disjoint prefixes, in Compare order. Holes that do not overlap p
// are ignored; a hole that contains p leaves nothing. The result has at
// most bits(hole)-bits(p) prefixes per hole.
func Subtract(p netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	p = p.Masked()
	in := make([]netip.Prefix, 0, len(holes))
	for _, h := range holes {
		h = h.Masked()
		if !h.Overlaps(p) {
			continue
		}
		if h.Bits() <= p.Bits() {
			return nil
		}
		in = append(in, h)
	}
	return subtract(nil, p, in)
}

// subtract appends p minus holes to out; every hole lies strictly inside p.
func subtract(out []netip.Prefix, p netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	if len(holes) == 0 {
		return append(out, p)
	}
	lo, hi := halves(p)
	var inLo, inHi []netip.Prefix
	loGone, hiGone := false, false
	for _, h := range holes {
		switch {
		case h == lo:
			loGone = true
		case h == hi:
			hiGone = true
		case lo.Contains(h.Addr()):
			inLo = append(inLo, h)
		default:
			inHi = append(inHi, h)
		}
	}
	if !loGone {
		out = subtract(out, lo, inLo)
	}
	if !hiGone {
		out = subtract(out, hi, inHi)
	}
	return out
}

// halves splits p (not a host prefix) into its two children.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	bits := p.Bits()
	lo = netip.PrefixFrom(p.Addr(), bits+1)
	b := p.Addr().As16()
	i := bits
	if p.Addr().Is4() {
		i += 96
	}
	b[i/8] |= 0x80 >> (i % 8)
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return lo, netip.PrefixFrom(a, bits+1)
}
