package desired

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/cidr"
)

// ErrNodeName is returned by UpsertNode for a node without a name.
var ErrNodeName = errors.New("node without a name")

// Engine holds the current inputs (nodes, policies) and the desired state
// they produce, and turns each change of input into per-node deltas. It is
// pure and deterministic: the same inputs give the same states and
// deltas, whatever the order of the calls that led there, and always what
// Compute gives for the same inputs.
//
// Cost: an update walks every node a few times doing O(1) work each, so a
// node joining or leaving an N-node mesh costs O(N) time and memory for
// the whole cluster; every node's peer set views one shared table, and
// each other node's delta is one peer. See doc.go for the limits.
//
// An Engine is not safe for concurrent use.
type Engine struct {
	static []netip.Prefix // configured cluster CIDRs
	pol    *compiled
	nodes  map[string]*nodeRec
	recs   []*nodeRec // sorted by name
	// derived are the pod CIDR claims of members, sorted.
	derived []claim
	// clusterN counts, per prefix, the nodes (and configuration) that have
	// it; cluster is its sorted key set, replaced (never modified) when it
	// changes because states share it.
	clusterN    map[netip.Prefix]int
	cluster     []netip.Prefix
	blocks      []BlockRule
	blocksDirty bool
	groupTabs   []*peerTable
	unions      map[string]*union
	activeVia   map[string]string
	res         resolver
	// claimsDirty says the claims changed since the last resolve, whose
	// results (allowed IPs of complex owners, conflicts) are kept.
	claimsDirty   bool
	lastComplex   map[*nodeRec][]netip.Prefix
	lastClaimErrs []*PolicyError
	errs          []error
	epoch         uint64
}

// union is the peer table of the members of one set of groups: the union
// of the groups' tables.
type union struct {
	key    string
	groups []int32
	srcs   []*peerTable
	t      *peerTable
	seen   uint64
	dead   bool
}

// nodeRec is one node: its input, what follows from it and the policies
// alone, and its current results.
type nodeRec struct {
	in Node
	// derived are the node's pod CIDRs (or pod IPs as host prefixes),
	// sorted: its LocalCIDRs and its claims as a member.
	derived     []netip.Prefix
	selected    bool
	winner      *tunnelPol
	conflicts   []tunnelConflict
	cfg         Config
	isolated    bool
	quarantined bool
	drained     bool
	member      bool
	groups      []int32
	gkey        string
	endpoint    netip.AddrPort
	errs        []*PolicyError

	allowed []netip.Prefix
	entry   *Peer
	union   *union
	state   NodeState
}

// tunnelConflict records a TunnelPolicy that selects the node but lost the
// node's port or keepalive to rec.winner.
type tunnelConflict struct {
	loser       *tunnelPol
	field       string
	lost, value uint16
}

// NodeDelta is the change of one node's state. Nodes whose changes are
// the same (every member of a mesh that gained one peer) share one *Delta:
// treat it as read-only.
type NodeDelta struct {
	Node  string
	Delta *Delta
}

// Update is what one change of input did.
type Update struct {
	// Deltas holds the nodes whose state changed, sorted by node name. A
	// node added by this update has a delta from the empty state; a
	// removed node has none.
	Deltas []NodeDelta
	// Errors is the complete list of current problems (not only new
	// ones), sorted; each is a *PolicyError.
	Errors []error
}

// NodeStatus is what the controller reports about a node besides its state.
type NodeStatus struct {
	// Selected: some TunnelPolicy selects the node.
	Selected bool
	// TunnelPolicy is the selecting policy whose listen port and keepalive
	// apply (the oldest).
	TunnelPolicy string
	// Member: the node is in the mesh (selected, has a key, not isolated
	// or awaiting a rotation after isolation).
	Member bool
	// Isolated: a BlockPolicy isolates the node now.
	Isolated bool
	// QuarantinePending: the isolation was lifted but the node has not
	// rotated its key since.
	QuarantinePending bool
	// Drained: a BlockPolicy drains the node.
	Drained bool
	// Endpoint is where peers reach the node; zero when unknown.
	Endpoint netip.AddrPort
	// AllowedIPs are the prefixes the mesh routes to the node.
	AllowedIPs []netip.Prefix
	// Peers counts the node's peers.
	Peers int
}

// Result is the complete output for a snapshot.
type Result struct {
	// States holds every node's desired state.
	States map[string]NodeState
	// Nodes holds every node's status.
	Nodes map[string]NodeStatus
	// ActiveVia maps each RoutePolicy to the node carrying its CIDRs (""
	// when none qualifies).
	ActiveVia map[string]string
	// Errors are the problems found, sorted.
	Errors []error
}

// Compute returns the desired state of every node of s. It is
// NewEngine(s) followed by Result.
func Compute(s Snapshot) Result {
	e, errs := NewEngine(s)
	r := e.Result()
	r.Errors = errs
	return r
}

// NewEngine returns an engine loaded with s, and the problems found
// (including snapshot problems: nodes without a name or listed twice,
// which are left out).
func NewEngine(s Snapshot) (*Engine, []error) {
	e := &Engine{
		nodes:     map[string]*nodeRec{},
		clusterN:  map[netip.Prefix]int{},
		unions:    map[string]*union{},
		activeVia: map[string]string{},
	}
	var load []*PolicyError
	for _, p := range s.ClusterCIDRs {
		if err := cidr.Check(p); err != nil {
			load = append(load, &PolicyError{Object: Ref{KindNode, ""}, Field: "clusterCIDRs", Err: ErrInvalid, Detail: err.Error()})
			continue
		}
		e.static = append(e.static, p.Masked())
	}
	e.static = cidr.Sort(e.static)
	for _, p := range e.static {
		e.clusterN[p]++
	}
	e.pol = compile(s.Policies)
	for _, n := range s.Nodes {
		if n.Name == "" {
			load = append(load, &PolicyError{Object: Ref{KindNode, ""}, Err: ErrInvalid, Detail: "a node without a name is left out"})
			continue
		}
		if e.nodes[n.Name] != nil {
			load = append(load, &PolicyError{Object: Ref{KindNode, n.Name}, Err: ErrInvalid, Detail: "the snapshot lists the node twice; the first one is used"})
			continue
		}
		r := &nodeRec{in: cloneNode(n)}
		e.layer1(r)
		e.nodes[n.Name] = r
		e.recs = append(e.recs, r)
		for _, p := range r.derived {
			e.clusterN[p]++
		}
	}
	slices.SortFunc(e.recs, func(a, b *nodeRec) int { return strings.Compare(a.in.Name, b.in.Name) })
	e.cluster = e.clusterFromCounts()
	e.rebuildDerived()
	e.blocksDirty = true
	u := e.update(false)
	return e, append(u.Errors, toErrors(load)...)
}

// SetPolicies replaces every policy and returns the deltas.
func (e *Engine) SetPolicies(p Policies) Update {
	e.pol = compile(p)
	for _, r := range e.recs {
		e.layer1(r)
	}
	e.rebuildDerived()
	e.blocksDirty = true
	return e.update(true)
}

// UpsertNode adds a node or replaces one (matched by name) and returns the
// deltas. A node without a name is refused with ErrNodeName and nothing
// changes.
func (e *Engine) UpsertNode(n Node) (Update, error) {
	if n.Name == "" {
		return Update{Errors: e.errs}, ErrNodeName
	}
	r := e.nodes[n.Name]
	isNew := r == nil
	if isNew {
		r = &nodeRec{}
		i, _ := slices.BinarySearchFunc(e.recs, n.Name, func(r *nodeRec, n string) int { return strings.Compare(r.in.Name, n) })
		e.recs = slices.Insert(e.recs, i, r)
		e.nodes[n.Name] = r
	}
	oldDerived, oldMember := r.derived, r.member
	r.in = cloneNode(n)
	e.layer1(r)
	e.adjustCluster(oldDerived, r.derived)
	if oldMember != r.member || !prefixesEqual(oldDerived, r.derived) {
		if oldMember {
			e.removeClaims(r, oldDerived)
		}
		if r.member {
			e.insertClaims(r)
		}
	}
	if e.pol.isolate[n.Name] != nil && (isNew || !prefixesEqual(oldDerived, r.derived)) {
		e.blocksDirty = true
	}
	return e.update(true), nil
}

// RemoveNode removes a node and returns the deltas of the others. Removing
// an unknown node changes nothing.
func (e *Engine) RemoveNode(name string) Update {
	r := e.nodes[name]
	if r == nil {
		return Update{Errors: e.errs}
	}
	if r.member {
		e.removeClaims(r, r.derived)
	}
	e.adjustCluster(r.derived, nil)
	if e.pol.isolate[name] != nil {
		e.blocksDirty = true
	}
	delete(e.nodes, name)
	i, _ := slices.BinarySearchFunc(e.recs, name, func(r *nodeRec, n string) int { return strings.Compare(r.in.Name, n) })
	e.recs = slices.Delete(e.recs, i, i+1)
	return e.update(true)
}

// State returns a node's current desired state.
func (e *Engine) State(node string) (NodeState, bool) {
	r := e.nodes[node]
	if r == nil {
		return NodeState{}, false
	}
	return r.state, true
}

// States yields every node's state in name order.
func (e *Engine) States() iter.Seq2[string, NodeState] {
	return func(yield func(string, NodeState) bool) {
		for _, r := range e.recs {
			if !yield(r.in.Name, r.state) {
				return
			}
		}
	}
}

// Status returns a node's status.
func (e *Engine) Status(node string) (NodeStatus, bool) {
	r := e.nodes[node]
	if r == nil {
		return NodeStatus{}, false
	}
	return r.status(), true
}

// Errors returns the current problems, sorted.
func (e *Engine) Errors() []error { return e.errs }

// ActiveVia returns the node carrying a RoutePolicy's CIDRs, "" if none.
func (e *Engine) ActiveVia(routePolicy string) string { return e.activeVia[routePolicy] }

// Result returns every node's state and status.
func (e *Engine) Result() Result {
	r := Result{
		States:    make(map[string]NodeState, len(e.recs)),
		Nodes:     make(map[string]NodeStatus, len(e.recs)),
		ActiveVia: make(map[string]string, len(e.activeVia)),
		Errors:    e.errs,
	}
	for _, n := range e.recs {
		r.States[n.in.Name] = n.state
		r.Nodes[n.in.Name] = n.status()
	}
	for k, v := range e.activeVia {
		r.ActiveVia[k] = v
	}
	return r
}

func (r *nodeRec) status() NodeStatus {
	s := NodeStatus{
		Selected: r.selected, Member: r.member, Isolated: r.isolated,
		QuarantinePending: r.quarantined, Drained: r.drained,
		Endpoint: r.endpoint, AllowedIPs: r.allowed, Peers: r.state.Peers.Len(),
	}
	if r.winner != nil {
		s.TunnelPolicy = r.winner.name
	}
	return s
}

func cloneNode(n Node) Node {
	n.Labels = cloneMap(n.Labels)
	n.InternalIPs = slices.Clone(n.InternalIPs)
	n.PodCIDRs = slices.Clone(n.PodCIDRs)
	n.PodIPs = slices.Clone(n.PodIPs)
	if n.Endpoint != nil {
		ep := *n.Endpoint
		n.Endpoint = &ep
	}
	return n
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// layer1 recomputes what follows from the node and the policies alone.
func (e *Engine) layer1(r *nodeRec) {
	n := &r.in
	r.errs = r.errs[:0]
	nodeErr := func(format string, args ...any) {
		r.errs = append(r.errs, &PolicyError{Object: Ref{KindNode, n.Name}, Err: ErrInvalid, Detail: fmt.Sprintf(format, args...)})
	}
	var d []netip.Prefix
	for _, p := range n.PodCIDRs {
		if err := cidr.Check(p); err != nil {
			nodeErr("pod CIDR: %v; left out", err)
			continue
		}
		d = append(d, p.Masked())
	}
	if len(d) == 0 {
		for _, a := range n.PodIPs {
			if !a.IsValid() {
				nodeErr("pod IP not valid; left out")
				continue
			}
			d = append(d, cidr.Host(a))
		}
	}
	d = cidr.Sort(d)
	if len(d) == 0 {
		d = nil
	}
	if !prefixesEqual(d, r.derived) {
		r.derived = d
	}

	// Tunnel policies: the oldest selecting one sets port and keepalive;
	// strict if any is strict.
	r.selected, r.winner, r.conflicts = false, nil, r.conflicts[:0]
	cfg := Config{ListenPort: v1alpha1.DefaultListenPort, LocalCIDRs: r.derived}
	set := labels.Set(n.Labels)
	var selecting []*tunnelPol
	for _, t := range e.pol.tunnels {
		if !t.sel.Matches(set) {
			continue
		}
		selecting = append(selecting, t)
		if r.winner == nil {
			r.winner = t
			r.selected = true
			cfg.ListenPort, cfg.PersistentKeepalive = t.port, t.keepalive
		} else {
			if t.port != r.winner.port {
				r.conflicts = append(r.conflicts, tunnelConflict{t, "spec.listenPort", t.port, r.winner.port})
			}
			if t.keepalive != r.winner.keepalive {
				r.conflicts = append(r.conflicts, tunnelConflict{t, "spec.persistentKeepaliveSeconds", t.keepalive, r.winner.keepalive})
			}
		}
		cfg.Strict = cfg.Strict || t.strict
	}
	r.isolated = e.pol.isolate[n.Name] != nil
	r.quarantined = !r.isolated && n.QuarantineKeyGeneration > 0 && n.KeyGeneration <= n.QuarantineKeyGeneration
	r.drained = e.pol.drain[n.Name] != nil
	cfg.Isolated = r.isolated || r.quarantined
	r.member = r.selected && !n.PublicKey.IsZero() && !cfg.Isolated
	r.cfg = cfg

	// Endpoint as peers see it.
	r.endpoint = netip.AddrPort{}
	var addr netip.Addr
	port := cfg.ListenPort
	if ep := n.Endpoint; ep != nil && ep.Addr.IsValid() {
		addr = ep.Addr
		if ep.Port != 0 {
			port = ep.Port
		}
	} else {
		for _, a := range n.InternalIPs {
			if a.Unmap().Is4() {
				addr = a
				break
			}
		}
		if !addr.IsValid() {
			for _, a := range n.InternalIPs {
				if a.IsValid() {
					addr = a
					break
				}
			}
		}
	}
	if addr.IsValid() {
		r.endpoint = netip.AddrPortFrom(addr.Unmap().WithZone(""), port)
	}

	// Groups: which member tables the node is in.
	r.groups = r.groups[:0]
	if r.member {
		for _, t := range selecting {
			if t.fullMesh >= 0 {
				r.groups = append(r.groups, t.fullMesh)
			}
			for _, g := range t.groups {
				if g.sel.Matches(set) {
					r.groups = append(r.groups, g.id)
				}
			}
			r.groups = append(r.groups, t.pairs[n.Name]...)
		}
		slices.Sort(r.groups)
		r.groups = slices.Compact(r.groups)
	}
	r.gkey = groupKey(r.groups)
}

func groupKey(gs []int32) string {
	if len(gs) == 0 {
		return ""
	}
	b := make([]byte, 0, 8*len(gs))
	for i, g := range gs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(g), 10)
	}
	return string(b)
}

// rebuildDerived collects every member's claims and sorts them.
func (e *Engine) rebuildDerived() {
	e.claimsDirty = true
	e.derived = e.derived[:0]
	for _, r := range e.recs {
		if r.member {
			for _, p := range r.derived {
				e.derived = append(e.derived, claim{p: p, owner: r})
			}
		}
	}
	slices.SortFunc(e.derived, compareDerived)
}

func (e *Engine) removeClaims(r *nodeRec, ps []netip.Prefix) {
	e.claimsDirty = true
	for _, p := range ps {
		if i, ok := slices.BinarySearchFunc(e.derived, claim{p: p, owner: r}, compareDerived); ok {
			e.derived = slices.Delete(e.derived, i, i+1)
		}
	}
}

func (e *Engine) insertClaims(r *nodeRec) {
	e.claimsDirty = true
	for _, p := range r.derived {
		c := claim{p: p, owner: r}
		i, _ := slices.BinarySearchFunc(e.derived, c, compareDerived)
		e.derived = slices.Insert(e.derived, i, c)
	}
}

// adjustCluster moves the cluster CIDR counts from old to new prefixes.
// The cluster slice is replaced, not modified, when its key set changes.
func (e *Engine) adjustCluster(old, new []netip.Prefix) {
	if prefixesEqual(old, new) {
		return
	}
	var gone, added []netip.Prefix
	for _, p := range old {
		if e.clusterN[p]--; e.clusterN[p] == 0 {
			delete(e.clusterN, p)
			gone = append(gone, p)
		}
	}
	for _, p := range new {
		if e.clusterN[p]++; e.clusterN[p] == 1 {
			added = append(added, p)
		}
	}
	// A prefix both gone and added cancels out.
	slices.SortFunc(gone, cidr.Compare)
	slices.SortFunc(added, cidr.Compare)
	added, gone = sortedDiff(gone, added, cidr.Compare)
	if len(gone) == 0 && len(added) == 0 {
		return
	}
	c, ok := mergeSorted(e.cluster, added, gone, cidr.Compare)
	if !ok {
		// Counts and the slice change together, so this does not happen;
		// if it did, the counts are the truth.
		c = e.clusterFromCounts()
	}
	e.cluster = c
}

func (e *Engine) clusterFromCounts() []netip.Prefix {
	if len(e.clusterN) == 0 {
		return nil
	}
	c := make([]netip.Prefix, 0, len(e.clusterN))
	for p := range e.clusterN {
		c = append(c, p)
	}
	return cidr.Sort(c)
}

// mergeSorted returns s with add inserted and rm removed, in one new
// slice; all three are sorted by cmp. It fails if rm has an element s has
// not, or add one it has.
func mergeSorted[T any](s, add, rm []T, cmp func(a, b T) int) ([]T, bool) {
	out := make([]T, 0, len(s)+len(add)-len(rm))
	i, j, k := 0, 0, 0
	for i < len(s) || j < len(add) {
		switch {
		case j == len(add) || (i < len(s) && cmp(s[i], add[j]) < 0):
			if k < len(rm) && cmp(s[i], rm[k]) == 0 {
				k++
			} else {
				out = append(out, s[i])
			}
			i++
		case i == len(s) || cmp(add[j], s[i]) < 0:
			out = append(out, add[j])
			j++
		default:
			return nil, false
		}
	}
	if k != len(rm) {
		return nil, false
	}
	if len(out) == 0 {
		return nil, true
	}
	return out, true
}

func (e *Engine) rebuildBlocks() {
	rules := slices.Clone(e.pol.static)
	for name := range e.pol.isolate {
		r := e.nodes[name]
		if r == nil {
			continue
		}
		for _, p := range r.derived {
			all := cidr.All(p.Addr())
			rules = append(rules, BlockRule{Src: p, Dst: all}, BlockRule{Src: all, Dst: p})
		}
	}
	slices.SortFunc(rules, compareBlock)
	rules = slices.Compact(rules)
	if len(rules) == 0 {
		rules = nil
	}
	if !slices.Equal(rules, e.blocks) {
		e.blocks = rules
	}
}

// tableBuilder rebuilds a group table, reusing the old one when the
// entries come out the same.
type tableBuilder struct {
	old   *peerTable
	i     int
	fresh []*Peer
	diff  bool
}

func (b *tableBuilder) add(p *Peer) {
	if !b.diff {
		if b.old != nil && b.i < len(b.old.peers) && b.old.peers[b.i] == p {
			b.i++
			return
		}
		b.diff = true
		n := 0
		if b.old != nil {
			n = len(b.old.peers)
		}
		b.fresh = make([]*Peer, b.i, n+1)
		if b.i > 0 {
			copy(b.fresh, b.old.peers[:b.i])
		}
	}
	b.fresh = append(b.fresh, p)
}

func (b *tableBuilder) finish() *peerTable {
	if !b.diff {
		if b.old == nil || b.i == len(b.old.peers) {
			return b.old
		}
		if b.i == 0 {
			return nil
		}
		return &peerTable{peers: b.old.peers[:b.i:b.i]}
	}
	if len(b.fresh) == 0 {
		return nil
	}
	return &peerTable{peers: b.fresh}
}

// update recomputes everything that depends on more than one node, and
// the per-node states; with deltas, it diffs them against the previous
// ones.
func (e *Engine) update(deltas bool) Update {
	e.epoch++
	var errs []*PolicyError
	report := func(pe *PolicyError) { errs = append(errs, pe) }

	// RoutePolicies: the first qualifying via carries the CIDRs.
	var routes []claim
	for _, rp := range e.pol.routes {
		via := ""
		for _, v := range rp.via {
			if r := e.nodes[v]; r != nil && r.member && !r.drained {
				via = v
				break
			}
		}
		if old, ok := e.activeVia[rp.name]; !ok || old != via {
			e.claimsDirty = true
		}
		e.activeVia[rp.name] = via
		if via == "" {
			report(e.noVia(rp))
			continue
		}
		for _, p := range rp.cidrs {
			routes = append(routes, claim{p: p, owner: e.nodes[via], route: rp})
		}
	}
	for k := range e.activeVia {
		if !slices.ContainsFunc(e.pol.routes, func(rp *routePol) bool { return rp.name == k }) {
			delete(e.activeVia, k)
		}
	}
	if e.claimsDirty {
		slices.SortFunc(routes, compareRouteClaims)
		var claimErrs []*PolicyError
		e.lastComplex = e.res.resolve(e.derived, routes, func(pe *PolicyError) { claimErrs = append(claimErrs, pe) })
		e.lastClaimErrs = claimErrs
		e.claimsDirty = false
	}
	complexAllowed := e.lastComplex
	errs = append(errs, e.lastClaimErrs...)

	// Peer entries of members.
	for _, r := range e.recs {
		if !r.member {
			r.allowed, r.entry = nil, nil
			continue
		}
		allowed := r.derived
		if a, ok := complexAllowed[r]; ok {
			allowed = a
		}
		if !prefixesEqual(allowed, r.allowed) {
			r.allowed = allowed
		}
		if p := r.entry; p == nil || p.PublicKey != r.in.PublicKey || p.Endpoint != r.endpoint || !prefixesEqual(p.AllowedIPs, r.allowed) {
			r.entry = &Peer{Node: r.in.Name, PublicKey: r.in.PublicKey, Endpoint: r.endpoint, AllowedIPs: r.allowed}
		}
	}

	// Group tables, in node-name order.
	if len(e.groupTabs) != e.pol.groups {
		e.groupTabs = make([]*peerTable, e.pol.groups)
	}
	builders := make([]tableBuilder, e.pol.groups)
	for g := range builders {
		builders[g].old = e.groupTabs[g]
	}
	for _, r := range e.recs {
		if r.member {
			for _, g := range r.groups {
				builders[g].add(r.entry)
			}
		}
	}
	for g := range builders {
		e.groupTabs[g] = builders[g].finish()
	}

	// Unions: one table per distinct set of groups among members.
	for _, r := range e.recs {
		if !r.member {
			r.union = nil
			continue
		}
		u := r.union
		if u == nil || u.dead || u.key != r.gkey {
			u = e.unions[r.gkey]
			if u == nil {
				u = &union{key: r.gkey, groups: slices.Clone(r.groups)}
				e.unions[r.gkey] = u
			}
			r.union = u
		}
		if u.seen != e.epoch {
			u.seen = e.epoch
			e.refreshUnion(u)
		}
	}
	for k, u := range e.unions {
		if u.seen != e.epoch {
			u.dead = true
			delete(e.unions, k)
		}
	}

	if e.blocksDirty {
		e.rebuildBlocks()
		e.blocksDirty = false
	}

	// States and deltas.
	var up Update
	var m differ
	for _, r := range e.recs {
		st := NodeState{Config: r.cfg, ClusterCIDRs: e.cluster, Blocks: e.blocks}
		if r.member && r.union.t != nil {
			st.Peers = view(r.union.t, r.in.Name, true, r.cfg.PersistentKeepalive)
		}
		if deltas {
			if d := m.diff(r.state, st); !d.IsEmpty() {
				up.Deltas = append(up.Deltas, NodeDelta{Node: r.in.Name, Delta: m.share(d)})
			}
		}
		r.state = st
	}

	e.collectErrors(report)
	slices.SortFunc(errs, comparePolicyErrors)
	e.errs = toErrors(errs)
	up.Errors = e.errs
	return up
}

func toErrors(pes []*PolicyError) []error {
	if len(pes) == 0 {
		return nil
	}
	out := make([]error, len(pes))
	for i, pe := range pes {
		out[i] = pe
	}
	return out
}

// refreshUnion recomputes a union table if one of its groups changed.
func (e *Engine) refreshUnion(u *union) {
	switch len(u.groups) {
	case 0:
		u.t = nil
		return
	case 1:
		u.t = e.groupTabs[u.groups[0]]
		return
	}
	same := len(u.srcs) == len(u.groups)
	for i, g := range u.groups {
		if same && u.srcs[i] != e.groupTabs[g] {
			same = false
		}
	}
	if same {
		return
	}
	u.srcs = u.srcs[:0]
	var all []*Peer
	for _, g := range u.groups {
		t := e.groupTabs[g]
		u.srcs = append(u.srcs, t)
		if t != nil {
			all = append(all, t.peers...)
		}
	}
	slices.SortFunc(all, comparePeerName)
	all = slices.CompactFunc(all, func(a, b *Peer) bool { return a == b })
	if u.t != nil && slices.Equal(u.t.peers, all) {
		return
	}
	if len(all) == 0 {
		u.t = nil
		return
	}
	u.t = &peerTable{peers: all}
}

// noVia explains why no via candidate of rp qualifies.
func (e *Engine) noVia(rp *routePol) *PolicyError {
	var why []string
	for _, v := range rp.via {
		r := e.nodes[v]
		switch {
		case r == nil:
			why = append(why, fmt.Sprintf("%q does not exist", v))
		case r.isolated:
			why = append(why, fmt.Sprintf("%q is isolated", v))
		case r.quarantined:
			why = append(why, fmt.Sprintf("%q awaits a key rotation after isolation", v))
		case !r.selected:
			why = append(why, fmt.Sprintf("%q is selected by no TunnelPolicy", v))
		case r.in.PublicKey.IsZero():
			why = append(why, fmt.Sprintf("%q has no public key yet", v))
		case r.drained:
			why = append(why, fmt.Sprintf("%q is drained", v))
		}
	}
	return &PolicyError{
		Object: Ref{KindRoutePolicy, rp.name}, Field: "spec.via", Err: ErrNoVia,
		Detail: "no candidate qualifies (" + strings.Join(why, ", ") + "); its CIDRs are not routed",
	}
}

// collectErrors reports what is not found while computing: node input
// problems, TunnelPolicy conflicts, names of unknown nodes.
func (e *Engine) collectErrors(report func(*PolicyError)) {
	for _, pe := range e.pol.errs {
		report(pe)
	}
	type conflictKey struct {
		loser, winner *tunnelPol
		field         string
		lost, value   uint16
	}
	type agg struct {
		first string
		n     int
	}
	var conflicts map[conflictKey]*agg
	var order []conflictKey
	for _, r := range e.recs {
		for _, pe := range r.errs {
			report(pe)
		}
		for _, c := range r.conflicts {
			if conflicts == nil {
				conflicts = map[conflictKey]*agg{}
			}
			k := conflictKey{c.loser, r.winner, c.field, c.lost, c.value}
			a := conflicts[k]
			if a == nil {
				a = &agg{first: r.in.Name}
				conflicts[k] = a
				order = append(order, k)
			}
			a.n++
		}
	}
	for _, k := range order {
		a := conflicts[k]
		report(&PolicyError{
			Object: Ref{KindTunnelPolicy, k.loser.name}, Other: Ref{KindTunnelPolicy, k.winner.name},
			Field: k.field, Err: ErrConflict,
			Detail: fmt.Sprintf("%d node(s) (first %q) are also selected by the older TunnelPolicy %q, whose value %d applies instead of %d",
				a.n, a.first, k.winner.name, k.value, k.lost),
		})
	}
	for _, ref := range e.pol.nodeRefs {
		if e.nodes[ref.node] == nil {
			report(&PolicyError{Object: ref.obj, Field: ref.field, Err: ErrUnknownNode,
				Detail: fmt.Sprintf("node %q does not exist; it takes effect if the node joins", ref.node)})
		}
	}
}
