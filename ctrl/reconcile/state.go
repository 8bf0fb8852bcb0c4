package reconcile

import (
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/ctrl/generation"
)

// State returns node's desired state as last computed; ok is false
// before Load or for a node the engine does not know. The state is
// immutable and shared: do not modify it.
func (p *Planner) State(node string) (desired.NodeState, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.engine == nil {
		return desired.NodeState{}, false
	}
	return p.engine.State(node)
}

// Stamp calls fn with a fresh generation while holding the lock Push is
// called under: no delta can be pushed while fn runs, and every delta
// pushed before carries an earlier generation. The stream server stamps
// rotation commands this way.
func (p *Planner) Stamp(fn func(gen generation.Gen)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p.counter.Next())
}
