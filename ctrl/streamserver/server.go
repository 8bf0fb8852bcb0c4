package streamserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
)

// Defaults of Options.
const (
	DefaultQueueSize          = 64
	DefaultHelloTimeout       = 10 * time.Second
	DefaultResyncPeriod       = 5 * time.Minute
	DefaultSendTimeout        = 30 * time.Second
	DefaultMaxConcurrentSyncs = 8
	DefaultRetryBackoff       = time.Second
	DefaultSyncSlotHold       = 2 * time.Second
	DefaultMaxConcurrentAuth  = 32
)

// NotLeaderMessage is the status message a standby ends streams with.
const NotLeaderMessage = meshpb.NotLeader

// Options configure a Server.
type Options struct {
	Leader   Leader
	Auth     Authenticator
	State    StateSource
	Observer Observer
	Metrics  *metrics.Metrics
	// Logger receives refusals and session ends (default: discard).
	Logger *slog.Logger

	// QueueSize bounds each daemon's queue of deltas; an overflow drops
	// the queue and sends one SyncState instead.
	QueueSize int
	// HelloTimeout is how long a daemon has to send Hello.
	HelloTimeout time.Duration
	// ResyncPeriod is the interval of full SyncStates (jittered ±10%).
	ResyncPeriod time.Duration
	// SendTimeout ends a session whose daemon does not take a message in
	// time.
	SendTimeout time.Duration
	// MaxConcurrentSyncs bounds SyncStates being built, sent or awaiting
	// their ack at once, so a reconnect storm does not hold thousands of
	// full states in memory.
	MaxConcurrentSyncs int
	// SyncSlotHold is the longest a SyncState keeps its slot waiting for
	// the daemon's ack, so a slow daemon delays the others' SyncStates by
	// at most this much.
	SyncSlotHold time.Duration
	// MaxConcurrentAuth bounds token reviews in flight, so thousands of
	// daemons reconnecting at once (after a failover) queue here instead of
	// flooding the API server.
	MaxConcurrentAuth int
	// RetryBackoff is the first delay before a SyncState is retried after
	// the daemon failed to apply one (doubling up to ResyncPeriod), or
	// after the node had no state yet.
	RetryBackoff time.Duration
}

// Server implements meshpb.MeshServer.
type Server struct {
	meshpb.UnimplementedMeshServer

	opts    Options
	log     *slog.Logger
	metrics *serverMetrics
	syncs   chan struct{}
	auths   chan struct{}

	mu       sync.RWMutex
	sessions map[string]*session
}

var _ meshpb.MeshServer = (*Server)(nil)

// New returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Leader == nil || opts.Auth == nil || opts.State == nil || opts.Observer == nil || opts.Metrics == nil {
		return nil, errors.New("streamserver: Leader, Auth, State, Observer and Metrics are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.HelloTimeout <= 0 {
		opts.HelloTimeout = DefaultHelloTimeout
	}
	if opts.ResyncPeriod <= 0 {
		opts.ResyncPeriod = DefaultResyncPeriod
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.MaxConcurrentSyncs <= 0 {
		opts.MaxConcurrentSyncs = DefaultMaxConcurrentSyncs
	}
	if opts.MaxConcurrentAuth <= 0 {
		opts.MaxConcurrentAuth = DefaultMaxConcurrentAuth
	}
	if opts.SyncSlotHold <= 0 {
		opts.SyncSlotHold = DefaultSyncSlotHold
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	return &Server{
		opts:     opts,
		log:      opts.Logger,
		metrics:  newServerMetrics(opts.Metrics),
		syncs:    make(chan struct{}, opts.MaxConcurrentSyncs),
		auths:    make(chan struct{}, opts.MaxConcurrentAuth),
		sessions: map[string]*session{},
	}, nil
}

// Errors a session ends with (the cause of its context).
var (
	errReplaced    = errors.New("replaced by a newer stream of the same node")
	errSendTimeout = errors.New("daemon did not take a message in time")
	errClosed      = errors.New("server closing")
)

// Connect serves one daemon's stream.
func (s *Server) Connect(stream meshpb.Mesh_ConnectServer) error {
	ctx := stream.Context()
	if !s.opts.Leader.Leading() {
		return status.Error(codes.Unavailable, NotLeaderMessage)
	}
	remote := ""
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	id, err := s.authenticate(ctx)
	if err != nil {
		if errors.Is(err, auth.ErrReview) {
			// Not the daemon's fault: let it retry.
			s.log.Warn("token review failed", "peer", remote, "err", err)
			return status.Error(codes.Unavailable, "token review failed")
		}
		return s.refuse(Refusal{Reason: auth.Reason(err), Peer: remote, Err: err}, codes.Unauthenticated)
	}
	hello, err := s.recvHello(ctx, stream)
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return s.refuse(Refusal{Reason: "bad_hello", TokenNode: id.Node, Peer: remote, Err: err}, codes.InvalidArgument)
	}
	if err := id.CheckNode(hello.GetNode()); err != nil {
		return s.refuse(Refusal{Reason: auth.Reason(err), TokenNode: id.Node, ClaimedNode: hello.GetNode(), Peer: remote, Err: err}, codes.PermissionDenied)
	}
	select {
	case <-s.opts.Leader.Ready():
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	if !s.opts.Leader.Leading() {
		return status.Error(codes.Unavailable, NotLeaderMessage)
	}
	return s.serve(ctx, stream, id, hello)
}

func (s *Server) authenticate(ctx context.Context) (auth.Identity, error) {
	select {
	case s.auths <- struct{}{}:
	case <-ctx.Done():
		return auth.Identity{}, fmt.Errorf("%w: %w", auth.ErrReview, ctx.Err())
	}
	defer func() { <-s.auths }()
	return s.opts.Auth.Authenticate(ctx, bearerToken(ctx))
}

func (s *Server) refuse(r Refusal, code codes.Code) error {
	s.metrics.AuthRefusals.WithLabelValues(r.Reason).Inc()
	s.log.Info("daemon stream refused", "reason", r.Reason, "tokenNode", r.TokenNode, "claimedNode", r.ClaimedNode, "peer", r.Peer, "err", r.Err)
	s.opts.Observer.Refused(r)
	return status.Error(code, r.Err.Error())
}

func bearerToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && (v[:7] == "Bearer " || v[:7] == "bearer ") {
			return v[7:]
		}
	}
	return ""
}

func (s *Server) recvHello(ctx context.Context, stream meshpb.Mesh_ConnectServer) (*meshpb.Hello, error) {
	type result struct {
		msg *meshpb.AgentMessage
		err error
	}
	got := make(chan result, 1)
	go func() {
		msg, err := stream.Recv()
		got <- result{msg, err}
	}()
	timer := time.NewTimer(s.opts.HelloTimeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-got:
	case <-timer.C:
		return nil, errors.New("no hello in time")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, fmt.Errorf("receive hello: %w", r.err)
	}
	hello := r.msg.GetHello()
	switch {
	case hello == nil:
		return nil, errors.New("first message is not a hello")
	case hello.GetNode() == "":
		return nil, errors.New("hello names no node")
	case hello.GetKey() != nil && len(hello.GetKey().GetPublicKey()) != 32:
		return nil, fmt.Errorf("hello key is %d bytes, want 32", len(hello.GetKey().GetPublicKey()))
	}
	return hello, nil
}

func (s *Server) serve(ctx context.Context, stream meshpb.Mesh_ConnectServer, id auth.Identity, hello *meshpb.Hello) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sess := newSession(s, id.Node, stream, cancel)
	s.opts.State.Observe(generation.FromProto(hello.GetLastApplied()))
	s.register(sess)
	s.opts.Observer.Connected(id.Node, hello)

	go sess.sendLoop(ctx)
	go sess.recvLoop(ctx)
	<-ctx.Done()

	cause := context.Cause(ctx)
	s.unregister(sess, cause)
	switch {
	case errors.Is(cause, io.EOF), errors.Is(cause, context.Canceled):
		return nil
	case errors.Is(cause, errReplaced), errors.Is(cause, errClosed):
		return status.Error(codes.Aborted, cause.Error())
	case errors.Is(cause, errSendTimeout):
		return status.Error(codes.DeadlineExceeded, cause.Error())
	}
	if st, ok := status.FromError(cause); ok {
		return st.Err()
	}
	return status.Error(codes.Internal, cause.Error())
}

func (s *Server) register(sess *session) {
	s.mu.Lock()
	old := s.sessions[sess.node]
	s.sessions[sess.node] = sess
	s.mu.Unlock()
	if old != nil {
		old.close(errReplaced)
	} else {
		s.metrics.ConnectedDaemons.Inc()
	}
}

func (s *Server) unregister(sess *session, cause error) {
	s.mu.Lock()
	current := s.sessions[sess.node] == sess
	if current {
		delete(s.sessions, sess.node)
	}
	s.mu.Unlock()
	sess.close(cause)
	if current {
		s.metrics.ConnectedDaemons.Dec()
		s.opts.Observer.Disconnected(sess.node, cause)
	}
	s.log.Debug("daemon stream ended", "node", sess.node, "cause", cause)
}

func (s *Server) session(node string) *session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[node]
}

// Push queues one delta per node, all taking their nodes to gen. The caller
// holds the StateSource's lock (see StateSource.SyncState), calls Push in
// generation order, and hands over the Delta values (each is sent to one
// node only; Push sets its base). Nodes without a session are skipped: they
// get a SyncState when they connect. Push never blocks on a daemon.
func (s *Server) Push(gen generation.Gen, deltas map[string]*meshpb.Delta) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := time.Now()
	for node, d := range deltas {
		if sess := s.sessions[node]; sess != nil {
			sess.push(gen, d, now)
		}
	}
}

// SendRotation queues a key rotation command for node and reports whether
// it did; it drops the command when the node has no session (the rotation
// machine sends it again). The command is sent in order with the node's
// other rotation commands, after any SyncState that is pending, under a
// generation stamped when it is sent (StateSource.Stamp): newer than every
// command sent to the node before, older than every one after. It never
// blocks on a daemon, and must not be called with the StateSource's lock
// held.
func (s *Server) SendRotation(node string, cmd *meshpb.RotationCommand) bool {
	if sess := s.session(node); sess != nil {
		return sess.queueRotation(cmd)
	}
	return false
}

// Resync asks for a full SyncState to node (if connected) at once.
func (s *Server) Resync(node, reason string) {
	if sess := s.session(node); sess != nil {
		sess.requestSync(reason, 0)
	}
}

// ResyncAll asks for a full SyncState to every connected node.
func (s *Server) ResyncAll(reason string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sess := range s.sessions {
		sess.requestSync(reason, 0)
	}
}

// NodeSync tells where node stands; the zero value if not connected.
func (s *Server) NodeSync(node string) NodeSync {
	if sess := s.session(node); sess != nil {
		return sess.syncInfo()
	}
	return NodeSync{}
}

// Connected lists the nodes with a session.
func (s *Server) Connected() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.sessions))
	for n := range s.sessions {
		out = append(out, n)
	}
	return out
}

// CloseAll ends every session (the daemons reconnect, to whichever replica
// leads).
func (s *Server) CloseAll() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sess := range s.sessions {
		sess.close(errClosed)
	}
}

// jitter spreads d by ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}
