package manager

import (
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/reconcile"
	"github.com/lumbrjx/vpblu/ctrl/status"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// observer hands what daemons report to the parts that use it: keys to the
// desired-state feed, everything to the status writer.
type observer struct {
	feed  *reconcile.Feed
	nodes *status.Nodes
}

var _ streamserver.Observer = observer{}

func (o observer) Connected(node string, h *meshpb.Hello) {
	o.feed.KeyReported(node, h.GetKey())
	o.nodes.Connected(node, h)
}

func (o observer) Disconnected(node string, cause error) { o.nodes.Disconnected(node, cause) }

func (o observer) KeyReported(node string, k *meshpb.KeyReport) {
	o.feed.KeyReported(node, k)
	o.nodes.KeyReported(node, k)
}

func (o observer) StatusReported(node string, s *meshpb.TunnelStatus) {
	o.nodes.StatusReported(node, s)
}

func (o observer) Acked(node string, a *meshpb.Ack, s streamserver.NodeSync) {
	o.nodes.Acked(node, a, s)
}

func (o observer) Refused(r streamserver.Refusal) { o.nodes.Refused(r) }
