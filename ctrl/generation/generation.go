package generation

import (
	"fmt"
	"sync"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Gen orders controller commands. The zero Gen is "nothing applied".
type Gen struct {
	Epoch uint64
	Seq   uint64
}

// Less reports whether g orders before o.
func (g Gen) Less(o Gen) bool {
	if g.Epoch != o.Epoch {
		return g.Epoch < o.Epoch
	}
	return g.Seq < o.Seq
}

// IsZero reports whether g is the zero generation.
func (g Gen) IsZero() bool { return g == Gen{} }

// String renders g as "epoch.seq", the form VpbluNode status uses.
func (g Gen) String() string { return fmt.Sprintf("%d.%d", g.Epoch, g.Seq) }

// Proto returns g as a wire message.
func (g Gen) Proto() *meshpb.Generation {
	return &meshpb.Generation{Epoch: g.Epoch, Seq: g.Seq}
}

// FromProto reads a wire generation; nil is the zero generation.
func FromProto(p *meshpb.Generation) Gen {
	if p == nil {
		return Gen{}
	}
	return Gen{Epoch: p.GetEpoch(), Seq: p.GetSeq()}
}

// Max returns the later of a and b.
func Max(a, b Gen) Gen {
	if a.Less(b) {
		return b
	}
	return a
}

// Counter hands out generations that only grow. It is safe for concurrent
// use.
type Counter struct {
	mu  sync.Mutex
	cur Gen
}

// Current returns the last generation handed out (or set).
func (c *Counter) Current() Gen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Next advances seq and returns the new generation.
func (c *Counter) Next() Gen {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur.Seq++
	return c.cur
}

// StartEpoch moves the counter to epoch e, seq 0, when e is later than the
// current epoch; it never moves backwards. It returns the current
// generation afterwards.
func (c *Counter) StartEpoch(e uint64) Gen {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e > c.cur.Epoch {
		c.cur = Gen{Epoch: e}
	}
	return c.cur
}

// Observe makes sure later generations order after seen (a generation a
// daemon reports it runs): if seen is not before the current generation,
// the epoch moves past it. It reports whether the epoch moved.
func (c *Counter) Observe(seen Gen) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seen.Less(c.cur) {
		return false
	}
	c.cur = Gen{Epoch: seen.Epoch + 1}
	return true
}
