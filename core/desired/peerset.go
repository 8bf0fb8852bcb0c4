package desired

import (
	"fmt"
	"iter"
	"slices"
	"strings"
)

// PeerSet is an immutable set of peers, ordered by node name. Many sets
// share one table: every member of a full mesh sees the same table of
// members, minus its own entry, with its own keepalive stamped on every
// entry. Building such a view costs O(1), which is what keeps a node join
// O(N) for the whole cluster.
//
// The zero PeerSet is empty. Peers returned by a PeerSet share their
// AllowedIPs with the table: do not modify them.
type PeerSet struct {
	t *peerTable
	// omit hides the entry of this node, if t has one (omitN is then 1).
	omit  string
	omitN int
	// stamp, when set, replaces every entry's keepalive with ka.
	stamp bool
	ka    uint16
}

// peerTable is an immutable list of peers sorted by node name, without
// duplicates. Entries are immutable too; a changed peer is a new entry.
type peerTable struct {
	peers []*Peer
}

// NewPeerSet returns a set holding copies of peers. Two peers with the same
// node name are an error.
func NewPeerSet(peers ...Peer) (PeerSet, error) {
	if len(peers) == 0 {
		return PeerSet{}, nil
	}
	t := &peerTable{peers: make([]*Peer, len(peers))}
	for i := range peers {
		p := peers[i]
		t.peers[i] = &p
	}
	slices.SortFunc(t.peers, comparePeerName)
	for i := 1; i < len(t.peers); i++ {
		if t.peers[i].Node == t.peers[i-1].Node {
			return PeerSet{}, fmt.Errorf("duplicate peer %q", t.peers[i].Node)
		}
	}
	return PeerSet{t: t}, nil
}

// view returns the set of t's entries except omit's, each with keepalive
// ka. inT says whether omit has an entry in t (the caller knows; it saves
// a search).
func view(t *peerTable, omit string, inT bool, ka uint16) PeerSet {
	if t == nil || len(t.peers) == 0 {
		return PeerSet{}
	}
	s := PeerSet{t: t, omit: omit, stamp: true, ka: ka}
	if inT {
		s.omitN = 1
	}
	return s
}

// viewSearch is view for a caller that does not know whether omit is in t.
func viewSearch(t *peerTable, omit string, ka uint16, stamp bool) PeerSet {
	if t == nil || len(t.peers) == 0 {
		return PeerSet{}
	}
	s := PeerSet{t: t, omit: omit, stamp: stamp, ka: ka}
	if _, ok := t.find(omit); ok && omit != "" {
		s.omitN = 1
	}
	return s
}

func (t *peerTable) find(node string) (int, bool) {
	if t == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(t.peers, node, func(p *Peer, n string) int { return strings.Compare(p.Node, n) })
}

// Len returns the number of peers.
func (s PeerSet) Len() int {
	if s.t == nil {
		return 0
	}
	return len(s.t.peers) - s.omitN
}

// All yields the peers in node-name order.
func (s PeerSet) All() iter.Seq[Peer] {
	return func(yield func(Peer) bool) {
		for _, p := range s.entries() {
			if !yield(s.stamped(p)) {
				return
			}
		}
	}
}

// Names yields the peers' node names in order.
func (s PeerSet) Names() iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, p := range s.entries() {
			if !yield(p.Node) {
				return
			}
		}
	}
}

// Slice returns the peers in node-name order as a new slice.
func (s PeerSet) Slice() []Peer {
	if s.Len() == 0 {
		return nil
	}
	out := make([]Peer, 0, s.Len())
	for p := range s.All() {
		out = append(out, p)
	}
	return out
}

// Get returns the peer of node, if the set has it.
func (s PeerSet) Get(node string) (Peer, bool) {
	p, ok := s.get(node)
	if !ok {
		return Peer{}, false
	}
	return s.stamped(p), true
}

func (s PeerSet) get(node string) (*Peer, bool) {
	if s.t == nil || (s.omitN == 1 && node == s.omit) {
		return nil, false
	}
	i, ok := s.t.find(node)
	if !ok {
		return nil, false
	}
	return s.t.peers[i], true
}

// Has reports whether the set has a peer for node.
func (s PeerSet) Has(node string) bool {
	_, ok := s.get(node)
	return ok
}

// Equal reports whether both sets hold the same peers.
func (s PeerSet) Equal(o PeerSet) bool {
	if s.Len() != o.Len() {
		return false
	}
	if s.t == o.t && s.omit == o.omit && s.stamp == o.stamp && s.ka == o.ka {
		return true
	}
	next, stop := iter.Pull(o.All())
	defer stop()
	for p := range s.All() {
		q, _ := next()
		if !peerEqual(&p, &q) {
			return false
		}
	}
	return true
}

// String renders the set for test failures and debugging.
func (s PeerSet) String() string {
	var b strings.Builder
	b.WriteString("[")
	for p := range s.All() {
		if b.Len() > 1 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s%v", p.Node, p.AllowedIPs)
	}
	b.WriteString("]")
	return b.String()
}

// entries returns the visible table entries (unstamped) as an iterator
// over pointers, in order.
func (s PeerSet) entries() iter.Seq2[int, *Peer] {
	return func(yield func(int, *Peer) bool) {
		if s.t == nil {
			return
		}
		for i, p := range s.t.peers {
			if s.omitN == 1 && p.Node == s.omit {
				continue
			}
			if !yield(i, p) {
				return
			}
		}
	}
}

func (s PeerSet) stamped(p *Peer) Peer {
	q := *p
	if s.stamp {
		q.PersistentKeepalive = s.ka
	}
	return q
}

func comparePeerName(a, b *Peer) int { return strings.Compare(a.Node, b.Node) }

// RouteList is an immutable list of routes sorted by node, then prefix,
// which may share storage with the lists of other nodes' deltas: it is a
// slice, or every allowed IP of a peer table, minus the routes of one node
// (the owner's own entry). The zero RouteList is empty.
type RouteList struct {
	s     []Route
	t     *peerTable // when set, the routes of every entry of t
	tn    int        // number of routes in t
	omit  string
	omitN int
}

// NewRouteList returns a sorted list holding copies of routes. Duplicates
// are removed.
func NewRouteList(routes ...Route) RouteList {
	s := slices.Clone(routes)
	slices.SortFunc(s, compareRoute)
	return RouteList{s: slices.Compact(s)}
}

// Len returns the number of routes.
func (l RouteList) Len() int {
	if l.t != nil {
		return l.tn - l.omitN
	}
	return len(l.s) - l.omitN
}

// All yields the routes in order.
func (l RouteList) All() iter.Seq[Route] {
	return func(yield func(Route) bool) {
		if l.t != nil {
			for _, p := range l.t.peers {
				if l.omitN > 0 && p.Node == l.omit {
					continue
				}
				for _, a := range p.AllowedIPs {
					if !yield(Route{Prefix: a, Node: p.Node}) {
						return
					}
				}
			}
			return
		}
		for _, r := range l.s {
			if l.omitN > 0 && r.Node == l.omit {
				continue
			}
			if !yield(r) {
				return
			}
		}
	}
}

// Slice returns the routes as a new slice.
func (l RouteList) Slice() []Route {
	if l.Len() == 0 {
		return nil
	}
	out := make([]Route, 0, l.Len())
	for r := range l.All() {
		out = append(out, r)
	}
	return out
}

// Equal reports whether both lists hold the same routes.
func (l RouteList) Equal(o RouteList) bool {
	return l.Len() == o.Len() && slices.Equal(l.Slice(), o.Slice())
}
