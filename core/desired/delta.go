package desired

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strings"

	"github.com/lumbrjx/vpblu/core/cidr"
)

// ErrDelta is wrapped by Apply's errors: the delta does not fit the state
// it is applied to (it was computed from another base).
var ErrDelta = errors.New("delta does not apply")

// Delta is the set of operations that turns one NodeState into another.
// Diff returns the smallest one; Apply performs it. Like NodeState, a Delta
// shares storage with other deltas: treat it as read-only.
type Delta struct {
	// Config, when set, replaces the node config.
	Config *Config
	// UpsertPeers are peers that are new or changed.
	UpsertPeers PeerSet
	// RemovePeers names peers that go away, sorted.
	RemovePeers NameList
	// AddRoutes and RemoveRoutes follow from the peer changes: the
	// allowed IPs each upserted or removed peer gained or lost.
	AddRoutes    RouteList
	RemoveRoutes RouteList
	// AddBlocks and RemoveBlocks change the block rules (sorted).
	AddBlocks    []BlockRule
	RemoveBlocks []BlockRule
	// AddClusterCIDRs and RemoveClusterCIDRs change the cluster CIDRs
	// (sorted).
	AddClusterCIDRs    []netip.Prefix
	RemoveClusterCIDRs []netip.Prefix
}

// IsEmpty reports whether the delta changes nothing.
func (d Delta) IsEmpty() bool {
	return d.Config == nil && d.UpsertPeers.Len() == 0 && d.RemovePeers.Len() == 0 &&
		d.AddRoutes.Len() == 0 && d.RemoveRoutes.Len() == 0 &&
		len(d.AddBlocks) == 0 && len(d.RemoveBlocks) == 0 &&
		len(d.AddClusterCIDRs) == 0 && len(d.RemoveClusterCIDRs) == 0
}

// Size counts the delta's operations (a config replacement counts one).
func (d Delta) Size() int {
	n := d.UpsertPeers.Len() + d.RemovePeers.Len() + d.AddRoutes.Len() + d.RemoveRoutes.Len() +
		len(d.AddBlocks) + len(d.RemoveBlocks) + len(d.AddClusterCIDRs) + len(d.RemoveClusterCIDRs)
	if d.Config != nil {
		n++
	}
	return n
}

// NameList is an immutable sorted list of node names that may share
// storage with other deltas' lists. The zero NameList is empty.
type NameList struct {
	s     []string
	t     *peerTable // when set, the names of every entry of t
	omit  string
	omitN int
}

// NewNameList returns a sorted list of copies of names, without
// duplicates.
func NewNameList(names ...string) NameList {
	s := slices.Clone(names)
	slices.Sort(s)
	return NameList{s: slices.Compact(s)}
}

// Len returns the number of names.
func (l NameList) Len() int {
	if l.t != nil {
		return len(l.t.peers) - l.omitN
	}
	return len(l.s) - l.omitN
}

// All yields the names in order.
func (l NameList) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		if l.t != nil {
			for _, p := range l.t.peers {
				if l.omitN > 0 && p.Node == l.omit {
					continue
				}
				if !yield(p.Node) {
					return
				}
			}
			return
		}
		for _, n := range l.s {
			if l.omitN > 0 && n == l.omit {
				continue
			}
			if !yield(n) {
				return
			}
		}
	}
}

// Slice returns the names as a new slice.
func (l NameList) Slice() []string {
	if l.Len() == 0 {
		return nil
	}
	return slices.Collect(l.All())
}

// Diff returns the smallest delta that turns old into new:
// Apply(old, Diff(old, new)) equals new.
func Diff(old, new NodeState) Delta {
	var m differ
	return m.diff(old, new)
}

// differ computes deltas and remembers the differences of shared tables,
// so that the N members of a mesh whose table changed cost one table diff
// plus O(1) each.
type differ struct {
	lastKey    deltaKey
	lastShared *Delta
	lastTK     tableKey
	lastTD     *tableDiff
	lastPK     [2]sliceKey
	lastPD     *prefixDiff
	tables     map[tableKey]*tableDiff
	prefixes   map[[2]sliceKey]prefixDiff
	blocks     map[[2]sliceKey]blockDiff
}

// deltaKey identifies a delta that hides no node's entry, by the storage
// it views: such deltas are equal exactly when their keys are.
type deltaKey struct {
	up                   *peerTable
	stamp                bool
	ka                   uint16
	rm, addR, rmR        sliceKey
	addB, rmB, addC, rmC sliceKey
}

// share returns a pointer to d, the same pointer for every equal delta
// that hides nothing node-specific.
func (m *differ) share(d Delta) *Delta {
	if d.Config != nil || d.UpsertPeers.omitN != 0 || d.RemovePeers.omitN != 0 || d.AddRoutes.omitN != 0 || d.RemoveRoutes.omitN != 0 {
		p := new(Delta)
		*p = d
		return p
	}
	k := deltaKey{
		up: d.UpsertPeers.t, stamp: d.UpsertPeers.stamp, ka: d.UpsertPeers.ka,
		rm: keyOf(d.RemovePeers.s), addR: keyOf(d.AddRoutes.s), rmR: keyOf(d.RemoveRoutes.s),
		addB: keyOf(d.AddBlocks), rmB: keyOf(d.RemoveBlocks), addC: keyOf(d.AddClusterCIDRs), rmC: keyOf(d.RemoveClusterCIDRs),
	}
	// Nodes come in name order and members of one mesh produce the same
	// delta, so remembering the last one catches nearly every repeat.
	if m.lastShared != nil && m.lastKey == k {
		return m.lastShared
	}
	p := new(Delta)
	*p = d
	p.UpsertPeers.omit, p.RemovePeers.omit, p.AddRoutes.omit, p.RemoveRoutes.omit = "", "", "", ""
	m.lastKey, m.lastShared = k, p
	return p
}

type tableKey struct {
	old, new *peerTable
	stamped  bool
}

type sliceKey struct {
	p any
	n int
}

// tableDiff is the difference between two peer tables. When one side is
// empty it refers to the other table instead of listing its entries, so a
// node's first state costs O(1) to describe.
type tableDiff struct {
	up        *peerTable // new or changed entries
	rm        []string   // names gone
	addR, rmR []Route
	// all, when set, is the one non-empty side: every entry of it is
	// added, or removed when gone. allN counts its routes.
	all  *peerTable
	allN int
	gone bool
	// nodes counts, per node the diff touches, its routes in addR and
	// rmR and whether it is in rm.
	nodes map[string]touch
}

type touch struct {
	addR, rmR int
	removed   bool
}

// touchOf returns what the diff does to node's own entry.
func (td *tableDiff) touchOf(node string) touch {
	if td.all == nil {
		return td.nodes[node]
	}
	i, ok := td.all.find(node)
	if !ok {
		return touch{}
	}
	n := len(td.all.peers[i].AllowedIPs)
	if td.gone {
		return touch{rmR: n, removed: true}
	}
	return touch{addR: n}
}

// lists returns the diff's removed names and route lists, omitting node's
// entry (t says what the diff does to it).
func (td *tableDiff) lists(omit string, t touch) (rm NameList, add, del RouteList) {
	rm = NameList{s: td.rm, omit: omit}
	add = RouteList{s: td.addR, omit: omit, omitN: t.addR}
	del = RouteList{s: td.rmR, omit: omit, omitN: t.rmR}
	if td.all != nil {
		if td.gone {
			rm.t = td.all
			del.t, del.tn = td.all, td.allN
		} else {
			add.t, add.tn = td.all, td.allN
		}
	}
	if t.removed {
		rm.omitN = 1
	}
	return rm, add, del
}

type prefixDiff struct{ add, rm []netip.Prefix }
type blockDiff struct{ add, rm []BlockRule }

func (m *differ) diff(old, new NodeState) Delta {
	var d Delta
	if !configEqual(old.Config, new.Config) {
		c := new.Config
		d.Config = &c
	}
	pd := m.prefixDiff(old.ClusterCIDRs, new.ClusterCIDRs)
	d.AddClusterCIDRs, d.RemoveClusterCIDRs = pd.add, pd.rm
	bd := m.blockDiff(old.Blocks, new.Blocks)
	d.AddBlocks, d.RemoveBlocks = bd.add, bd.rm
	m.peerDiff(&d, old.Peers, new.Peers)
	return d
}

func (m *differ) peerDiff(d *Delta, old, new PeerSet) {
	if old.Len() == 0 && new.Len() == 0 {
		return
	}
	if old.t == new.t && old.omit == new.omit && old.omitN == new.omitN && old.stamp == new.stamp && (!old.stamp || old.ka == new.ka) {
		return
	}
	// Shared-table path: both views hide the same node and stamp alike
	// (or one side is empty), so the per-node delta is the table delta
	// with the hidden node left out.
	sameOmit := old.Len() == 0 || new.Len() == 0 || old.omit == new.omit
	sameStamp := old.Len() == 0 || new.Len() == 0 || (old.stamp == new.stamp && (!old.stamp || old.ka == new.ka))
	if sameOmit && sameStamp {
		omit := new.omit
		stamp, ka := new.stamp, new.ka
		if new.Len() == 0 {
			omit, stamp, ka = old.omit, old.stamp, old.ka
		}
		var ot, nt *peerTable
		if old.Len() > 0 {
			ot = old.t
		}
		if new.Len() > 0 {
			nt = new.t
		}
		td := m.tableDiff(ot, nt, stamp)
		var t touch
		if omit != "" {
			t = td.touchOf(omit)
		}
		d.UpsertPeers = viewSearch(td.up, omit, ka, stamp)
		d.RemovePeers, d.AddRoutes, d.RemoveRoutes = td.lists(omit, t)
		return
	}
	// General path: compare the visible, stamped peers one by one.
	var up []Peer
	var rm []string
	var addR, rmR []Route
	olds, news := old.Slice(), new.Slice()
	i, j := 0, 0
	for i < len(olds) || j < len(news) {
		switch {
		case j == len(news) || (i < len(olds) && olds[i].Node < news[j].Node):
			rm = append(rm, olds[i].Node)
			rmR = appendRoutes(rmR, olds[i].Node, olds[i].AllowedIPs)
			i++
		case i == len(olds) || news[j].Node < olds[i].Node:
			up = append(up, news[j])
			addR = appendRoutes(addR, news[j].Node, news[j].AllowedIPs)
			j++
		default:
			if !peerEqual(&olds[i], &news[j]) {
				up = append(up, news[j])
				a, r := prefixSetDiff(olds[i].AllowedIPs, news[j].AllowedIPs)
				addR = appendRoutes(addR, news[j].Node, a)
				rmR = appendRoutes(rmR, news[j].Node, r)
			}
			i++
			j++
		}
	}
	d.UpsertPeers, _ = NewPeerSet(up...)
	d.RemovePeers = NameList{s: rm}
	d.AddRoutes, d.RemoveRoutes = NewRouteList(addR...), NewRouteList(rmR...)
}

// tableDiff diffs two tables (nil is empty). With stamped, entries'
// keepalives are ignored (the views replace them).
func (m *differ) tableDiff(ot, nt *peerTable, stamped bool) *tableDiff {
	k := tableKey{ot, nt, stamped}
	if m.lastTD != nil && m.lastTK == k {
		return m.lastTD
	}
	if td, ok := m.tables[k]; ok {
		m.lastTK, m.lastTD = k, td
		return td
	}
	td := &tableDiff{nodes: map[string]touch{}}
	var olds, news []*Peer
	if ot != nil {
		olds = ot.peers
	}
	if nt != nil {
		news = nt.peers
	}
	if len(olds) == 0 || len(news) == 0 {
		td.all, td.gone = nt, len(news) == 0
		if td.gone {
			td.all = ot
		} else {
			td.up = nt
		}
		if td.all != nil {
			for _, p := range td.all.peers {
				td.allN += len(p.AllowedIPs)
			}
		}
		m.remember(k, td)
		return td
	}
	var up []*Peer
	i, j := 0, 0
	for i < len(olds) || j < len(news) {
		switch {
		case j == len(news) || (i < len(olds) && olds[i].Node < news[j].Node):
			td.rm = append(td.rm, olds[i].Node)
			td.rmR = appendRoutes(td.rmR, olds[i].Node, olds[i].AllowedIPs)
			td.nodes[olds[i].Node] = touch{rmR: len(olds[i].AllowedIPs), removed: true}
			i++
		case i == len(olds) || news[j].Node < olds[i].Node:
			up = append(up, news[j])
			td.addR = appendRoutes(td.addR, news[j].Node, news[j].AllowedIPs)
			td.nodes[news[j].Node] = touch{addR: len(news[j].AllowedIPs)}
			j++
		default:
			o, n := olds[i], news[j]
			if o != n && !(peerEqualIgnoringKA(o, n) && (stamped || o.PersistentKeepalive == n.PersistentKeepalive)) {
				up = append(up, n)
				a, r := prefixSetDiff(o.AllowedIPs, n.AllowedIPs)
				td.rmR = appendRoutes(td.rmR, n.Node, r)
				td.addR = appendRoutes(td.addR, n.Node, a)
				td.nodes[n.Node] = touch{addR: len(a), rmR: len(r)}
			}
			i++
			j++
		}
	}
	if len(up) > 0 {
		td.up = &peerTable{peers: up}
	}
	// Walking the tables in name order keeps the routes in compareRoute
	// order: no sort.
	m.remember(k, td)
	return td
}

func (m *differ) remember(k tableKey, td *tableDiff) {
	if m.tables == nil {
		m.tables = map[tableKey]*tableDiff{}
	}
	m.tables[k] = td
	m.lastTK, m.lastTD = k, td
}

func peerEqualIgnoringKA(a, b *Peer) bool {
	return a.Node == b.Node && a.PublicKey == b.PublicKey && a.Endpoint == b.Endpoint &&
		prefixesEqual(a.AllowedIPs, b.AllowedIPs)
}

func appendRoutes(rs []Route, node string, ps []netip.Prefix) []Route {
	for _, p := range ps {
		rs = append(rs, Route{Prefix: p, Node: node})
	}
	return rs
}

func keyOf[T any](s []T) sliceKey {
	if len(s) == 0 {
		return sliceKey{}
	}
	return sliceKey{&s[0], len(s)}
}

func (m *differ) prefixDiff(old, new []netip.Prefix) prefixDiff {
	if prefixesEqual(old, new) {
		return prefixDiff{}
	}
	k := [2]sliceKey{keyOf(old), keyOf(new)}
	if m.lastPK == k && m.lastPD != nil {
		return *m.lastPD
	}
	if d, ok := m.prefixes[k]; ok {
		return d
	}
	a, r := prefixSetDiff(old, new)
	d := prefixDiff{add: a, rm: r}
	if m.prefixes == nil {
		m.prefixes = map[[2]sliceKey]prefixDiff{}
	}
	m.prefixes[k] = d
	m.lastPK, m.lastPD = k, &d
	return d
}

func (m *differ) blockDiff(old, new []BlockRule) blockDiff {
	if len(old) == len(new) && (len(old) == 0 || &old[0] == &new[0]) {
		return blockDiff{}
	}
	k := [2]sliceKey{keyOf(old), keyOf(new)}
	if d, ok := m.blocks[k]; ok {
		return d
	}
	a, r := sortedDiff(old, new, compareBlock)
	d := blockDiff{add: a, rm: r}
	if m.blocks == nil {
		m.blocks = map[[2]sliceKey]blockDiff{}
	}
	m.blocks[k] = d
	return d
}

// prefixSetDiff returns what new has that old has not, and the reverse;
// both inputs are sorted by cidr.Compare.
func prefixSetDiff(old, new []netip.Prefix) (add, rm []netip.Prefix) {
	if prefixesEqual(old, new) {
		return nil, nil
	}
	return sortedDiff(old, new, cidr.Compare)
}

func sortedDiff[T any](old, new []T, cmp func(a, b T) int) (add, rm []T) {
	if len(old) == 0 {
		return new, nil
	}
	if len(new) == 0 {
		return nil, old
	}
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new):
			rm = append(rm, old[i])
			i++
		case i == len(old):
			add = append(add, new[j])
			j++
		default:
			switch c := cmp(old[i], new[j]); {
			case c < 0:
				rm = append(rm, old[i])
				i++
			case c > 0:
				add = append(add, new[j])
				j++
			default:
				i++
				j++
			}
		}
	}
	return add, rm
}

// Apply performs d on s and returns the new state; s is not modified. It
// refuses a delta that does not fit s (removing what is not there, adding
// what is, route changes that do not follow the peer changes) and then
// returns s unchanged with an error wrapping ErrDelta.
func Apply(s NodeState, d Delta) (NodeState, error) {
	out := s
	if d.Config != nil {
		out.Config = *d.Config
	}
	var err error
	if out.ClusterCIDRs, err = applySet(s.ClusterCIDRs, d.AddClusterCIDRs, d.RemoveClusterCIDRs, cidr.Compare); err != nil {
		return s, fmt.Errorf("%w: cluster CIDRs: %w", ErrDelta, err)
	}
	if out.Blocks, err = applySet(s.Blocks, d.AddBlocks, d.RemoveBlocks, compareBlock); err != nil {
		return s, fmt.Errorf("%w: blocks: %w", ErrDelta, err)
	}
	if out.Peers, err = applyPeers(s.Peers, d); err != nil {
		return s, fmt.Errorf("%w: %w", ErrDelta, err)
	}
	return out, nil
}

func applySet[T any](s, add, rm []T, cmp func(a, b T) int) ([]T, error) {
	if len(add) == 0 && len(rm) == 0 {
		return s, nil
	}
	out := slices.Clone(s)
	for _, r := range rm {
		i, ok := slices.BinarySearchFunc(out, r, cmp)
		if !ok {
			return nil, fmt.Errorf("removing %v, which is not there", r)
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, a := range add {
		i, ok := slices.BinarySearchFunc(out, a, cmp)
		if ok {
			return nil, fmt.Errorf("adding %v, which is there already", a)
		}
		out = slices.Insert(out, i, a)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func applyPeers(s PeerSet, d Delta) (PeerSet, error) {
	if d.UpsertPeers.Len() == 0 && d.RemovePeers.Len() == 0 {
		if d.AddRoutes.Len() > 0 || d.RemoveRoutes.Len() > 0 {
			return s, errors.New("route changes without peer changes")
		}
		return s, nil
	}
	changed := map[string]bool{}
	var wantAdd, wantRm []Route
	for n := range d.RemovePeers.All() {
		old, ok := s.get(n)
		if !ok {
			return s, fmt.Errorf("removing peer %q, which is not there", n)
		}
		changed[n] = true
		wantRm = appendRoutes(wantRm, n, old.AllowedIPs)
	}
	for p := range d.UpsertPeers.All() {
		if changed[p.Node] {
			return s, fmt.Errorf("peer %q is both upserted and removed", p.Node)
		}
		changed[p.Node] = true
		var a, r []netip.Prefix
		if old, ok := s.get(p.Node); ok {
			a, r = prefixSetDiff(old.AllowedIPs, p.AllowedIPs)
		} else {
			a = p.AllowedIPs
		}
		wantAdd = appendRoutes(wantAdd, p.Node, a)
		wantRm = appendRoutes(wantRm, p.Node, r)
	}
	slices.SortFunc(wantAdd, compareRoute)
	slices.SortFunc(wantRm, compareRoute)
	if got := d.AddRoutes.Slice(); !slices.Equal(got, wantAdd) {
		return s, fmt.Errorf("added routes %v do not follow the peer changes, which add %v", got, wantAdd)
	}
	if got := d.RemoveRoutes.Slice(); !slices.Equal(got, wantRm) {
		return s, fmt.Errorf("removed routes %v do not follow the peer changes, which remove %v", got, wantRm)
	}
	peers := make([]*Peer, 0, s.Len()+d.UpsertPeers.Len())
	for _, p := range s.entries() {
		if !changed[p.Node] {
			q := s.stamped(p)
			peers = append(peers, &q)
		}
	}
	for p := range d.UpsertPeers.All() {
		q := p
		peers = append(peers, &q)
	}
	slices.SortFunc(peers, comparePeerName)
	if len(peers) == 0 {
		return PeerSet{}, nil
	}
	out := PeerSet{t: &peerTable{peers: peers}}
	if err := checkAllowedDisjoint(out); err != nil {
		return s, err
	}
	return out, nil
}

// checkAllowedDisjoint returns an error if two allowed IPs of the set
// overlap, in one peer or across peers.
func checkAllowedDisjoint(s PeerSet) error {
	var all []Route
	for p := range s.All() {
		all = appendRoutes(all, p.Node, p.AllowedIPs)
	}
	slices.SortFunc(all, compareRoute)
	// In cidr.Compare order a prefix that overlaps an earlier one is
	// contained in the nearest earlier prefix that is still "open"; with
	// disjoint prefixes each only needs checking against its predecessor
	// of the same family.
	for i := 1; i < len(all); i++ {
		if all[i-1].Prefix.Overlaps(all[i].Prefix) {
			return fmt.Errorf("allowed IPs overlap: %s of %q and %s of %q", all[i-1].Prefix, all[i-1].Node, all[i].Prefix, all[i].Node)
		}
	}
	return nil
}

// Validate says what is malformed in s, or returns nil: unmasked, unsorted
// or duplicate prefixes, IPv4-mapped prefixes, peers without a name or
// key, endpoints with an address but no port, overlapping allowed IPs,
// block rules mixing families, a listen port of 0.
func (s NodeState) Validate() error {
	if s.Config.ListenPort == 0 {
		return errors.New("listen port 0")
	}
	if err := checkPrefixes(s.Config.LocalCIDRs); err != nil {
		return fmt.Errorf("local CIDRs: %w", err)
	}
	if err := checkPrefixes(s.ClusterCIDRs); err != nil {
		return fmt.Errorf("cluster CIDRs: %w", err)
	}
	prev := ""
	for p := range s.Peers.All() {
		if err := p.Validate(); err != nil {
			return err
		}
		if p.Node <= prev && prev != "" {
			return fmt.Errorf("peer %q: not sorted or duplicate", p.Node)
		}
		prev = p.Node
	}
	if err := checkAllowedDisjoint(s.Peers); err != nil {
		return err
	}
	for i, b := range s.Blocks {
		if err := b.Validate(); err != nil {
			return err
		}
		if i > 0 && compareBlock(s.Blocks[i-1], b) >= 0 {
			return fmt.Errorf("block %s: not sorted or duplicate", b)
		}
	}
	return nil
}

// Validate says what is malformed in p, or returns nil.
func (p Peer) Validate() error {
	if p.Node == "" {
		return errors.New("peer without a node name")
	}
	if p.PublicKey.IsZero() {
		return fmt.Errorf("peer %q: %w: missing", p.Node, ErrInvalidKey)
	}
	if p.Endpoint.IsValid() {
		if p.Endpoint.Port() == 0 {
			return fmt.Errorf("peer %q: endpoint %s: port 0", p.Node, p.Endpoint)
		}
		if p.Endpoint.Addr().Zone() != "" || p.Endpoint.Addr().Is4In6() || p.Endpoint.Addr().IsUnspecified() {
			return fmt.Errorf("peer %q: endpoint %s: not a unicast address in canonical form", p.Node, p.Endpoint)
		}
	} else if p.Endpoint != (netip.AddrPort{}) {
		return fmt.Errorf("peer %q: endpoint %s: not valid", p.Node, p.Endpoint)
	}
	if err := checkPrefixes(p.AllowedIPs); err != nil {
		return fmt.Errorf("peer %q: allowed IPs: %w", p.Node, err)
	}
	return nil
}

// Validate says what is malformed in r, or returns nil.
func (r BlockRule) Validate() error {
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if err := cidr.Check(p); err != nil {
			return fmt.Errorf("block %s: %w", r, err)
		}
		if p != p.Masked() {
			return fmt.Errorf("block %s: %s has host bits set", r, p)
		}
	}
	if r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		return fmt.Errorf("block %s: source and destination of different families", r)
	}
	return nil
}

func checkPrefixes(ps []netip.Prefix) error {
	for i, p := range ps {
		if err := cidr.Check(p); err != nil {
			return err
		}
		if p != p.Masked() {
			return fmt.Errorf("%s has host bits set", p)
		}
		if i > 0 && cidr.Compare(ps[i-1], p) >= 0 {
			return fmt.Errorf("%s: not sorted or duplicate", p)
		}
	}
	return nil
}

// String renders the delta compactly for test failures and debugging.
func (d Delta) String() string {
	var b strings.Builder
	if d.Config != nil {
		fmt.Fprintf(&b, "config=%+v ", *d.Config)
	}
	if d.UpsertPeers.Len() > 0 {
		fmt.Fprintf(&b, "upsert=%v ", d.UpsertPeers)
	}
	if d.RemovePeers.Len() > 0 {
		fmt.Fprintf(&b, "remove=%v ", d.RemovePeers.Slice())
	}
	if d.AddRoutes.Len() > 0 {
		fmt.Fprintf(&b, "+routes=%v ", d.AddRoutes.Slice())
	}
	if d.RemoveRoutes.Len() > 0 {
		fmt.Fprintf(&b, "-routes=%v ", d.RemoveRoutes.Slice())
	}
	if len(d.AddBlocks) > 0 {
		fmt.Fprintf(&b, "+blocks=%v ", d.AddBlocks)
	}
	if len(d.RemoveBlocks) > 0 {
		fmt.Fprintf(&b, "-blocks=%v ", d.RemoveBlocks)
	}
	if len(d.AddClusterCIDRs) > 0 {
		fmt.Fprintf(&b, "+cluster=%v ", d.AddClusterCIDRs)
	}
	if len(d.RemoveClusterCIDRs) > 0 {
		fmt.Fprintf(&b, "-cluster=%v ", d.RemoveClusterCIDRs)
	}
	return strings.TrimSpace(b.String())
}
