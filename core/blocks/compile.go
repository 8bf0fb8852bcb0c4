package blocks

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
)

// ErrTooLarge is returned when a compiled table would exceed a limit of
// Options.
var ErrTooLarge = errors.New("compiled block table too large")

// Options bound what Compile may produce. Limits apply to each address
// family separately, matching one BPF map per family; zero means no limit.
type Options struct {
	// MaxClasses bounds the stage-one entries (distinct source prefixes
	// kept as classes).
	MaxClasses int
	// MaxDrops bounds the stage-two entries (class, destination).
	MaxDrops int
}

// Compile turns rules into the two LPM stages. The result drops exactly
// the packets Match drops. Entries that cannot change a verdict are left
// out: a destination inside a wider destination of the same class, a
// source prefix whose class equals its parent's, and a second class with
// the same destinations as an earlier one (the source prefixes share the
// ID). Output is sorted and deterministic: the same rules in any order
// compile to the same table.
func Compile(rules []Rule, opts Options) (Table, error) {
	var v4, v6 []Rule
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return Table{}, err
		}
		r = r.canonical()
		if r.Src.Addr().Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	c := compiler{opts: opts, seed: maphash.MakeSeed(), next: 1}
	var t Table
	for _, fam := range []struct {
		name  string
		rules []Rule
	}{{"IPv4", v4}, {"IPv6", v6}} {
		if err := c.family(&t, fam.name, fam.rules); err != nil {
			return Table{}, err
		}
	}
	slices.SortFunc(t.Classes, func(a, b Class) int { return comparePrefix(a.Src, b.Src) })
	slices.SortFunc(t.Drops, func(a, b Drop) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), comparePrefix(a.Dst, b.Dst))
	})
	return t, nil
}

// class is a distinct set of destinations with its ID.
type class struct {
	id   uint32
	dsts []netip.Prefix // pairwise disjoint, sorted by comparePrefix
}

type compiler struct {
	opts Options
	seed maphash.Seed
	next uint32
}

// family compiles the rules of one address family into t.
func (c *compiler) family(t *Table, name string, rules []Rule) error {
	own := map[netip.Prefix][]netip.Prefix{}
	for _, r := range rules {
		own[r.Src] = append(own[r.Src], r.Dst)
	}
	srcs := make([]netip.Prefix, 0, len(own))
	for p := range own {
		srcs = append(srcs, p)
	}
	// Shorter prefixes first, so every ancestor is settled before its
	// descendants.
	slices.SortFunc(srcs, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})

	kept := map[netip.Prefix]*class{}
	byHash := map[uint64][]*class{}
	classes, drops := 0, 0
	for _, p := range srcs {
		parent := nearestAncestor(kept, p)
		var base []netip.Prefix
		if parent != nil {
			base = parent.dsts
		}
		set := mergeDisjoint(base, minimal(own[p]))
		if parent != nil && slices.Equal(set, parent.dsts) {
			continue // the parent's class already gives p's verdicts
		}
		h := maphash.Comparable(c.seed, len(set))
		for _, d := range set {
			h ^= maphash.Comparable(c.seed, d) + h<<7
		}
		var cl *class
		for _, cand := range byHash[h] {
			if slices.Equal(cand.dsts, set) {
				cl = cand
				break
			}
		}
		if cl == nil {
			drops += len(set)
			if c.opts.MaxDrops > 0 && drops > c.opts.MaxDrops {
				return fmt.Errorf("%w: %s stage two needs more than %d entries", ErrTooLarge, name, c.opts.MaxDrops)
			}
			cl = &class{id: c.next, dsts: set}
			c.next++
			byHash[h] = append(byHash[h], cl)
			for _, d := range set {
				t.Drops = append(t.Drops, Drop{Class: cl.id, Dst: d})
			}
		}
		classes++
		if c.opts.MaxClasses > 0 && classes > c.opts.MaxClasses {
			return fmt.Errorf("%w: %s stage one needs more than %d entries", ErrTooLarge, name, c.opts.MaxClasses)
		}
		kept[p] = cl
		t.Classes = append(t.Classes, Class{Src: p, ID: cl.id})
	}
	return nil
}

// nearestAncestor returns the class of the longest kept prefix strictly
// containing p, or nil.
func nearestAncestor(kept map[netip.Prefix]*class, p netip.Prefix) *class {
	for bits := p.Bits() - 1; bits >= 0; bits-- {
		if cl, ok := kept[netip.PrefixFrom(p.Addr(), bits).Masked()]; ok {
			return cl
		}
	}
	return nil
}

// minimal sorts ps and drops every prefix contained in another one, so the
// rest are pairwise disjoint.
func minimal(ps []netip.Prefix) []netip.Prefix {
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, comparePrefix)
	return sweep(sorted)
}

// mergeDisjoint merges two sorted, pairwise disjoint prefix lists into one,
// dropping every prefix contained in another.
func mergeDisjoint(a, b []netip.Prefix) []netip.Prefix {
	all := make([]netip.Prefix, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if comparePrefix(a[i], b[j]) <= 0 {
			all = append(all, a[i])
			i++
		} else {
			all = append(all, b[j])
			j++
		}
	}
	all = append(all, a[i:]...)
	all = append(all, b[j:]...)
	return sweep(all)
}

// sweep keeps, from prefixes sorted by comparePrefix, those not contained
// in an earlier kept one. A prefix sorts before everything it contains, and
// kept prefixes are disjoint, so comparing with the last kept one is enough.
func sweep(sorted []netip.Prefix) []netip.Prefix {
	out := sorted[:0]
	for _, p := range sorted {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// comparePrefix orders prefixes by address, then shorter first.
func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
