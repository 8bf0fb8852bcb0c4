package manager

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// streamRunnable serves the daemons' gRPC streams on every replica.
type streamRunnable struct {
	srv  *streamserver.Server
	grpc *grpc.Server
	lis  net.Listener
}

// NeedLeaderElection is false: a standby answers streams too (with "not
// leader"), so daemons move on quickly.
func (s *streamRunnable) NeedLeaderElection() bool { return false }

func (s *streamRunnable) Start(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(s.lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Streams never end on their own: end the sessions (daemons move to
	// the other replica), give the transport a moment, then stop.
	s.srv.CloseAll()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.grpc.Stop()
	}
	return nil
}

// deferredPusher lets the Planner be built before the Server it pushes
// to.
type deferredPusher struct{ srv *streamserver.Server }

func (d *deferredPusher) Push(gen generation.Gen, deltas map[string]*meshpb.Delta) {
	d.srv.Push(gen, deltas)
}

func (d *deferredPusher) Resync(node, reason string) { d.srv.Resync(node, reason) }
