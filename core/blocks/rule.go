package blocks

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrInvalidRule is returned for a rule that cannot be compiled: an invalid
// prefix, or a source and destination of different families.
var ErrInvalidRule = errors.New("invalid block rule")

// Rule drops every packet whose source address is in Src and whose
// destination address is in Dst. Both prefixes are of one family; a rule
// only matches packets of that family.
type Rule struct {
	Src netip.Prefix
	Dst netip.Prefix
}

// String renders the rule as "src -> dst".
func (r Rule) String() string { return r.Src.String() + " -> " + r.Dst.String() }

// Validate says why the rule cannot be compiled, or returns nil.
func (r Rule) Validate() error {
	if !r.Src.IsValid() || !r.Dst.IsValid() {
		return fmt.Errorf("%w: %s: prefix not valid", ErrInvalidRule, r)
	}
	if r.Src.Addr().Is4In6() || r.Dst.Addr().Is4In6() {
		return fmt.Errorf("%w: %s: IPv4-mapped IPv6 prefix, use the IPv4 form", ErrInvalidRule, r)
	}
	if r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		return fmt.Errorf("%w: %s: source and destination of different families", ErrInvalidRule, r)
	}
	return nil
}

// canonical returns r with both prefixes masked and zones dropped.
func (r Rule) canonical() Rule {
	return Rule{Src: r.Src.Masked(), Dst: r.Dst.Masked()}
}

// Match reports whether any rule drops a packet from src to dst. It is the
// naive reference: it tries every rule. Rules that are not valid never
// match.
func Match(rules []Rule, src, dst netip.Addr) bool {
	for _, r := range rules {
		if r.Validate() != nil {
			continue
		}
		if r.Src.Contains(src) && r.Dst.Contains(dst) {
			return true
		}
	}
	return false
}
