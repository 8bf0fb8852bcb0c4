package desired

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lumbrjx/vpblu/core/cidr"
)

// claim is one prefix some node's peer entry wants as allowed IPs: a pod
// CIDR of a member (derived, route nil) or a CIDR of a RoutePolicy whose
// active via is owner.
type claim struct {
	p     netip.Prefix
	owner *nodeRec
	route *routePol
}

// compareDerived orders derived claims: prefix, then node name (the node
// that sorts first wins an equal prefix).
func compareDerived(a, b claim) int {
	if c := cidr.Compare(a.p, b.p); c != 0 {
		return c
	}
	return strings.Compare(a.owner.in.Name, b.owner.in.Name)
}

// compareRouteClaims orders route claims: prefix, then the older policy.
func compareRouteClaims(a, b claim) int {
	if c := cidr.Compare(a.p, b.p); c != 0 {
		return c
	}
	return a.route.rank - b.route.rank
}

// frame is a claimed prefix on the walk's stack of open ancestors.
type frame struct {
	c  claim
	cp int // change point whose region this prefix belongs to
}

// changePoint is a winning claim whose owner differs from its nearest
// claimed ancestor's: the owner's region starts here and ends at holes.
type changePoint struct {
	c     claim
	holes []netip.Prefix
}

// resolver turns claims into disjoint allowed IPs (see doc.go, "Allowed
// IPs"). It keeps its scratch space between runs.
type resolver struct {
	stack []frame
	cps   []changePoint
}

// resolve assigns allowed IPs. derived and routes are sorted by
// compareDerived and compareRouteClaims. It returns the allowed IPs of the
// owners whose claims interact with others ("complex"); every other member
// gets exactly its own pod CIDRs.
func (r *resolver) resolve(derived, routes []claim, report func(*PolicyError)) map[*nodeRec][]netip.Prefix {
	complexOwners := map[*nodeRec][]netip.Prefix{}
	mark := func(n *nodeRec) {
		if _, ok := complexOwners[n]; !ok {
			complexOwners[n] = nil
		}
	}
	// A route CIDR overrides every pod CIDR it equals or contains.
	var covered func(p netip.Prefix) bool
	if len(routes) > 0 {
		set := make(map[netip.Prefix]bool, len(routes))
		var lens4, lens6 []int
		for _, c := range routes {
			set[c.p] = true
			mark(c.owner)
			if c.p.Addr().Is4() {
				lens4 = append(lens4, c.p.Bits())
			} else {
				lens6 = append(lens6, c.p.Bits())
			}
		}
		lens4, lens6 = sortInts(lens4), sortInts(lens6)
		covered = func(p netip.Prefix) bool {
			lens := lens4
			if !p.Addr().Is4() {
				lens = lens6
			}
			for _, l := range lens {
				if l > p.Bits() {
					break
				}
				if q, _ := p.Addr().Prefix(l); set[q] {
					return true
				}
			}
			return false
		}
	}
	r.stack, r.cps = r.stack[:0], r.cps[:0]
	var last claim // the last winning claim, to find equal prefixes
	i, j := 0, 0
	for i < len(derived) || j < len(routes) {
		var c claim
		if j < len(routes) && (i == len(derived) || cidr.Compare(routes[j].p, derived[i].p) <= 0) {
			c = routes[j]
			j++
		} else {
			c = derived[i]
			i++
			if covered != nil && covered(c.p) {
				mark(c.owner)
				continue
			}
		}
		if last.owner != nil && last.p == c.p {
			reportEqual(last, c, report)
			mark(c.owner)
			continue
		}
		last = c
		for len(r.stack) > 0 && !cidr.Contains(r.stack[len(r.stack)-1].c.p, c.p) {
			r.stack = r.stack[:len(r.stack)-1]
		}
		if len(r.stack) > 0 {
			top := r.stack[len(r.stack)-1]
			if top.c.owner == c.owner {
				mark(c.owner) // redundant: the owner has these addresses already
				r.stack = append(r.stack, frame{c, top.cp})
				continue
			}
			cp := &r.cps[top.cp]
			cp.holes = append(cp.holes, c.p)
			mark(cp.c.owner)
			mark(c.owner)
			reportNested(top.c, c, report)
		}
		r.cps = append(r.cps, changePoint{c: c, holes: nil})
		r.stack = append(r.stack, frame{c, len(r.cps) - 1})
	}
	for _, cp := range r.cps {
		out, ok := complexOwners[cp.c.owner]
		if !ok {
			continue
		}
		if len(cp.holes) == 0 {
			out = append(out, cp.c.p)
		} else {
			out = append(out, cidr.Subtract(cp.c.p, cp.holes)...)
		}
		complexOwners[cp.c.owner] = out
	}
	for n, ps := range complexOwners {
		complexOwners[n] = cidr.Sort(ps)
	}
	// Holes hold pointers into claims of this run only; drop them.
	for k := range r.cps {
		r.cps[k] = changePoint{}
	}
	return complexOwners
}

func sortInts(s []int) []int {
	slices.Sort(s)
	return slices.Compact(s)
}

// reportEqual reports a second claim on a prefix already won by w.
func reportEqual(w, l claim, report func(*PolicyError)) {
	switch {
	case w.route != nil && l.route != nil:
		report(&PolicyError{
			Object: Ref{KindRoutePolicy, l.route.name}, Other: Ref{KindRoutePolicy, w.route.name},
			Field: "spec.cidrs", Err: ErrConflict,
			Detail: fmt.Sprintf("%s is also claimed by the older RoutePolicy %q, which wins (via %q)", l.p, w.route.name, w.owner.in.Name),
		})
	case w.route == nil && l.route == nil && w.owner != l.owner:
		report(&PolicyError{
			Object: Ref{KindNode, l.owner.in.Name}, Other: Ref{KindNode, w.owner.in.Name},
			Err:    ErrConflict,
			Detail: fmt.Sprintf("pod CIDR %s is also a pod CIDR of node %q, which sorts first and wins", l.p, w.owner.in.Name),
		})
	}
}

// reportNested reports claim c lying strictly inside claim a of another
// owner, when that is not the documented precedence.
func reportNested(a, c claim, report func(*PolicyError)) {
	switch {
	case c.route != nil && a.route == nil:
		report(&PolicyError{
			Object: Ref{KindRoutePolicy, c.route.name}, Other: Ref{KindNode, a.owner.in.Name},
			Field: "spec.cidrs", Err: ErrConflict,
			Detail: fmt.Sprintf("%s lies inside pod CIDR %s of node %q: it is routed via %q and the node keeps the rest of its pod CIDR", c.p, a.p, a.owner.in.Name, c.owner.in.Name),
		})
	case c.route == nil && a.route == nil:
		report(&PolicyError{
			Object: Ref{KindNode, c.owner.in.Name}, Other: Ref{KindNode, a.owner.in.Name},
			Err:    ErrConflict,
			Detail: fmt.Sprintf("pod CIDR %s lies inside pod CIDR %s of node %q: the longer prefix wins, node %q keeps the rest", c.p, a.p, a.owner.in.Name, a.owner.in.Name),
		})
	}
}
