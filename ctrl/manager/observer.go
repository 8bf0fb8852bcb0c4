package manager

import (
	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/reconcile"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
	"github.com/lumbrjx/vpblu/ctrl/status"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// observer hands what daemons report to the parts that use it: keys to the
// desired-state feed, rotation reports and streams to the key rotations,
// everything to the status writer.
type observer struct {
	feed  *reconcile.Feed
	nodes *status.Nodes
	rot   *rotations
}

var _ streamserver.Observer = observer{}

func (o observer) Connected(node string, h *meshpb.Hello) {
	o.rot.Connected(node, streamserver.HasCapability(h, rotation.Capability))
	if o.rot.Rotating(node) && h.GetKey() != nil {
		// A rotating node's key changes only by the rotation's commit.
		h = proto.CloneOf(h)
		h.Key = nil
	}
	o.feed.KeyReported(node, h.GetKey())
	o.nodes.Connected(node, h)
}

func (o observer) Disconnected(node string, cause error) {
	o.rot.Disconnected(node)
	o.nodes.Disconnected(node, cause)
}

func (o observer) KeyReported(node string, k *meshpb.KeyReport) {
	o.rot.KeyReported(node, k)
	if o.rot.Rotating(node) {
		// A rotating node's key changes only by the rotation's commit.
		return
	}
	o.feed.KeyReported(node, k)
	o.nodes.KeyReported(node, k)
}

func (o observer) RotationReported(node string, r *meshpb.RotationReport) {
	o.rot.RotationReported(node, r)
}

func (o observer) StatusReported(node string, s *meshpb.TunnelStatus) {
	o.nodes.StatusReported(node, s)
}

func (o observer) Acked(node string, a *meshpb.Ack, s streamserver.NodeSync) {
	o.nodes.Acked(node, a, s)
}

func (o observer) Refused(r streamserver.Refusal) { o.nodes.Refused(r) }
