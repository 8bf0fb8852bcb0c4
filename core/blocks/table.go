package blocks

import (
	"net/netip"
)

// Class is a stage-one entry: packets whose source's longest match is Src
// belong to class ID.
type Class struct {
	Src netip.Prefix
	ID  uint32
}

// Drop is a stage-two entry: packets of class Class whose destination is in
// Dst are dropped.
type Drop struct {
	Class uint32
	Dst   netip.Prefix
}

// Table is a compiled rule set: the entries of the two LPM stages. Entries
// of both families are mixed; each belongs to the family of its prefix.
// Class IDs start at 1 and are unique across families.
type Table struct {
	Classes []Class
	Drops   []Drop
}

// Size counts a table's entries per stage and family, which is what the
// data plane's map capacities are checked against.
type Size struct {
	Classes4, Classes6 int
	Drops4, Drops6     int
}

// Size counts t's entries.
func (t Table) Size() Size {
	var s Size
	for _, c := range t.Classes {
		if c.Src.Addr().Is4() {
			s.Classes4++
		} else {
			s.Classes6++
		}
	}
	for _, d := range t.Drops {
		if d.Dst.Addr().Is4() {
			s.Drops4++
		} else {
			s.Drops6++
		}
	}
	return s
}

// Match looks src and dst up the way the data plane does: the longest
// stage-one prefix containing src gives a class, and the packet is dropped
// when a stage-two entry of that class contains dst. It is a model of the
// two LPM lookups for tests, not a fast path.
func (t Table) Match(src, dst netip.Addr) bool {
	best, found := -1, false
	var class uint32
	for _, c := range t.Classes {
		if c.Src.Contains(src) && c.Src.Bits() > best {
			best, class, found = c.Src.Bits(), c.ID, true
		}
	}
	if !found {
		return false
	}
	for _, d := range t.Drops {
		if d.Class == class && d.Dst.Contains(dst) {
			return true
		}
	}
	return false
}
