package streamserver

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// GRPCServer returns a gRPC server over TLS with Mesh registered. Its
// transport settings suit thousands of mostly idle streams: small
// per-connection buffers (the shared write buffer is gRPC's default), and keepalive pings
// that find dead daemons within a minute.
func (s *Server) GRPCServer(tlsConfig *tls.Config, extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// crypto/tls buffers whole records: a second buffer is memory for
		// nothing on thousands of connections.
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(16 << 10),
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.MaxConcurrentStreams(4),
	}, extra...)
	g := grpc.NewServer(opts...)
	meshpb.RegisterMeshServer(g, s)
	return g
}
