package stream

import (
	"fmt"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Generation is a controller generation (epoch, seq).
type Generation struct {
	Epoch, Seq uint64
}

func genOf(g *meshpb.Generation) Generation {
	return Generation{Epoch: g.GetEpoch(), Seq: g.GetSeq()}
}

func (g Generation) proto() *meshpb.Generation {
	return &meshpb.Generation{Epoch: g.Epoch, Seq: g.Seq}
}

// After reports whether g is newer than o: epoch first, then seq.
func (g Generation) After(o Generation) bool {
	if g.Epoch != o.Epoch {
		return g.Epoch > o.Epoch
	}
	return g.Seq > o.Seq
}

// IsZero reports whether g is the generation of "no state".
func (g Generation) IsZero() bool { return g == Generation{} }

func (g Generation) String() string { return fmt.Sprintf("%d/%d", g.Epoch, g.Seq) }
