package reconcile

import (
	"errors"
	"sync"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/core/wire"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// Pusher delivers commands to connected daemons; *streamserver.Server is
// one.
type Pusher interface {
	// Push queues deltas taking each node to gen; it must not block.
	Push(gen generation.Gen, deltas map[string]*meshpb.Delta)
	// Resync asks for a full SyncState to node.
	Resync(node, reason string)
}

var _ Pusher = (*streamserver.Server)(nil)

// ErrNotLoaded is returned before Load: there is no desired state yet.
var ErrNotLoaded = errors.New("desired state not loaded")

// Change is what one planner update did.
type Change struct {
	// Gen is the generation of the deltas (zero if none were sent).
	Gen generation.Gen
	// Nodes are the nodes whose desired state changed.
	Nodes []string
	// Policies is true when the policies were replaced.
	Policies bool
}

// Planner owns the desired-state engine and the generation counter. Every
// change of input becomes deltas pushed under one new generation while the
// planner's lock is held, so a SyncState built under the same lock is
// never overtaken by an older delta. It is safe for concurrent use.
type Planner struct {
	push     Pusher
	onChange func(Change)

	enc encoder

	mu       sync.RWMutex
	counter  generation.Counter
	engine   *desired.Engine
	inputs   map[string]desired.Node
	policies map[desired.Ref]PolicyVersion // version of each loaded policy
}

var _ streamserver.StateSource = (*Planner)(nil)

// NewPlanner returns a planner that pushes through push and calls onChange
// (may be nil) after each update, outside its lock.
func NewPlanner(push Pusher, onChange func(Change)) *Planner {
	if onChange == nil {
		onChange = func(Change) {}
	}
	return &Planner{push: push, onChange: onChange}
}

// Load builds the engine from a complete snapshot at the start of a
// leadership with the given epoch. No deltas are pushed: daemons get a
// SyncState when they connect. It returns the problems core/desired
// found.
func (p *Planner) Load(epoch uint64, snap desired.Snapshot, policyGens map[desired.Ref]PolicyVersion) []error {
	engine, errs := desired.NewEngine(snap)
	p.mu.Lock()
	p.counter.StartEpoch(epoch)
	p.engine = engine
	p.inputs = make(map[string]desired.Node, len(snap.Nodes))
	for _, n := range snap.Nodes {
		p.inputs[n.Name] = n
	}
	p.policies = policyGens
	p.mu.Unlock()
	p.onChange(Change{Policies: true})
	return errs
}

// Loaded reports whether Load ran.
func (p *Planner) Loaded() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.engine != nil
}

// UpsertNode feeds one node's input; an input equal to the last one costs
// nothing. It reports whether anything was fed.
func (p *Planner) UpsertNode(n desired.Node) (bool, error) {
	p.mu.Lock()
	if p.engine == nil {
		p.mu.Unlock()
		return false, ErrNotLoaded
	}
	old, known := p.inputs[n.Name]
	if known && nodeInputEqual(old, n) {
		p.mu.Unlock()
		return false, nil
	}
	up, err := p.engine.UpsertNode(n)
	if err != nil {
		p.mu.Unlock()
		return false, err
	}
	p.inputs[n.Name] = n
	ch := p.pushLocked(up)
	p.mu.Unlock()
	if !known {
		// Its daemon may have connected before the Node existed.
		p.push.Resync(n.Name, "node_added")
	}
	p.onChange(ch)
	return true, nil
}

// RemoveNode removes a node; the others lose it as a peer.
func (p *Planner) RemoveNode(name string) (bool, error) {
	p.mu.Lock()
	if p.engine == nil {
		p.mu.Unlock()
		return false, ErrNotLoaded
	}
	if _, known := p.inputs[name]; !known {
		p.mu.Unlock()
		return false, nil
	}
	delete(p.inputs, name)
	ch := p.pushLocked(p.engine.RemoveNode(name))
	p.mu.Unlock()
	ch.Nodes = append(ch.Nodes, name)
	p.onChange(ch)
	return true, nil
}

// SetPolicies replaces every policy; gens are their versions, used to skip
// an update when nothing changed.
func (p *Planner) SetPolicies(pol desired.Policies, gens map[desired.Ref]PolicyVersion) (bool, error) {
	p.mu.Lock()
	if p.engine == nil {
		p.mu.Unlock()
		return false, ErrNotLoaded
	}
	if sameGens(p.policies, gens) {
		p.mu.Unlock()
		return false, nil
	}
	p.policies = gens
	ch := p.pushLocked(p.engine.SetPolicies(pol))
	p.mu.Unlock()
	ch.Policies = true
	p.onChange(ch)
	return true, nil
}

func sameGens(a, b map[desired.Ref]PolicyVersion) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// pushLocked encodes an update's deltas (once per shared delta) and pushes
// them under a new generation.
func (p *Planner) pushLocked(up desired.Update) Change {
	if len(up.Deltas) == 0 {
		return Change{}
	}
	gen := p.counter.Next()
	encoded := map[*desired.Delta]*meshpb.Delta{}
	out := make(map[string]*meshpb.Delta, len(up.Deltas))
	nodes := make([]string, 0, len(up.Deltas))
	for _, nd := range up.Deltas {
		proto := encoded[nd.Delta]
		if proto == nil {
			proto = wire.EncodeDelta(nd.Delta, nil)
			encoded[nd.Delta] = proto
		}
		out[nd.Node] = shallowCopy(proto)
		nodes = append(nodes, nd.Node)
	}
	p.push.Push(gen, out)
	return Change{Gen: gen, Nodes: nodes}
}

// shallowCopy returns a Delta of its own (the pusher sets its base) that
// shares every field's contents with m; none of them is modified.
func shallowCopy(m *meshpb.Delta) *meshpb.Delta {
	return &meshpb.Delta{
		Config:             m.Config,
		UpsertPeers:        m.UpsertPeers,
		RemovePeers:        m.RemovePeers,
		AddRoutes:          m.AddRoutes,
		RemoveRoutes:       m.RemoveRoutes,
		AddBlocks:          m.AddBlocks,
		RemoveBlocks:       m.RemoveBlocks,
		AddClusterCidrs:    m.AddClusterCidrs,
		RemoveClusterCidrs: m.RemoveClusterCidrs,
	}
}

// SyncState builds node's complete state under a fresh generation.
func (p *Planner) SyncState(node string, fn func(generation.Gen, *meshpb.SyncState)) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.engine == nil {
		return ErrNotLoaded
	}
	st, ok := p.engine.State(node)
	if !ok {
		return streamserver.ErrUnknownNode
	}
	fn(p.counter.Next(), p.enc.syncState(st))
	return nil
}

// Observe moves the epoch past a generation a daemon runs.
func (p *Planner) Observe(seen generation.Gen) { p.counter.Observe(seen) }

// Current is the last generation handed out.
func (p *Planner) Current() generation.Gen { return p.counter.Current() }

// NodeStatus returns what the desired state says about node.
func (p *Planner) NodeStatus(node string) (desired.NodeStatus, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.engine == nil {
		return desired.NodeStatus{}, false
	}
	return p.engine.Status(node)
}

// Problems returns core/desired's current problems.
func (p *Planner) Problems() []error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.engine == nil {
		return nil
	}
	return p.engine.Errors()
}

// PolicyGeneration returns the metadata.generation of ref the desired state
// was computed from.
func (p *Planner) PolicyGeneration(ref desired.Ref) (int64, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	v, ok := p.policies[ref]
	return v.Generation, ok
}

// ActiveVia returns the node carrying a RoutePolicy's CIDRs.
func (p *Planner) ActiveVia(routePolicy string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.engine == nil {
		return ""
	}
	return p.engine.ActiveVia(routePolicy)
}
