package streamserver_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/certs"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

// fakeLeader is a Leader a test flips.
type fakeLeader struct {
	leading atomic.Bool
	ready   chan struct{}
}

func newLeader(leading bool) *fakeLeader {
	l := &fakeLeader{ready: make(chan struct{})}
	l.leading.Store(leading)
	if leading {
		close(l.ready)
	}
	return l
}
func (l *fakeLeader) Leading() bool          { return l.leading.Load() }
func (l *fakeLeader) Ready() <-chan struct{} { return l.ready }

// tokenAuth accepts "token-<node>" for node.
type tokenAuth struct{}

func (tokenAuth) Authenticate(_ context.Context, token string) (auth.Identity, error) {
	if token == "" {
		return auth.Identity{}, auth.ErrNoToken
	}
	node, ok := strings.CutPrefix(token, "token-")
	if !ok {
		return auth.Identity{}, fmt.Errorf("%w: unknown token", auth.ErrRejected)
	}
	return auth.Identity{Node: node, Pod: "agent-" + node}, nil
}

// fakeState keeps each node's SyncState and pushes deltas as a reconciler
// would: under its write lock, in generation order.
type fakeState struct {
	mu      sync.RWMutex
	counter generation.Counter
	nodes   map[string]*meshpb.SyncState
	peers   int
}

func newFakeState(epoch uint64, nodes ...string) *fakeState {
	f := &fakeState{nodes: map[string]*meshpb.SyncState{}}
	f.counter.StartEpoch(epoch)
	for _, n := range nodes {
		f.nodes[n] = &meshpb.SyncState{Config: &meshpb.NodeConfig{ListenPort: 51820, Strict: true}}
	}
	return f
}

func (f *fakeState) SyncState(node string, fn func(generation.Gen, *meshpb.SyncState)) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st, ok := f.nodes[node]
	if !ok {
		return streamserver.ErrUnknownNode
	}
	fn(f.counter.Next(), proto.CloneOf(st))
	return nil
}

func (f *fakeState) Observe(g generation.Gen) { f.counter.Observe(g) }

func (f *fakeState) Stamp(fn func(generation.Gen)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.counter.Next())
}

// addPeer gives every node in to a peer entry for peer, with a key and a
// host prefix of its own and the route that follows, so core/wire accepts
// the messages.
func (f *fakeState) addPeer(srv *streamserver.Server, peer string, to ...string) generation.Gen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addPeerLocked(srv, peer, to...)
}

// addPeerLocked is addPeer for a caller that holds f.mu.
func (f *fakeState) addPeerLocked(srv *streamserver.Server, peer string, to ...string) generation.Gen {
	f.peers++
	key := sha256.Sum256([]byte(peer))
	allowed := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(f.peers>>16), byte(f.peers >> 8), byte(f.peers)}), 32).String()
	gen := f.counter.Next()
	deltas := map[string]*meshpb.Delta{}
	for _, n := range to {
		p := &meshpb.Peer{Node: peer, PublicKey: key[:], AllowedIps: []string{allowed}}
		r := &meshpb.Route{Cidr: allowed, Node: peer}
		f.nodes[n].Peers = append(f.nodes[n].Peers, proto.CloneOf(p))
		f.nodes[n].Routes = append(f.nodes[n].Routes, proto.CloneOf(r))
		deltas[n] = &meshpb.Delta{UpsertPeers: []*meshpb.Peer{p}, AddRoutes: []*meshpb.Route{r}}
	}
	srv.Push(gen, deltas)
	return gen
}

func (f *fakeState) addNode(n string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[n] = &meshpb.SyncState{Config: &meshpb.NodeConfig{ListenPort: 51820}}
}

// recorder is an Observer that writes what it hears as lines.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}
func (r *recorder) Connected(node string, h *meshpb.Hello) { r.add("connected %s", node) }
func (r *recorder) Disconnected(node string, _ error)      { r.add("disconnected %s", node) }
func (r *recorder) KeyReported(node string, k *meshpb.KeyReport) {
	r.add("key %s gen=%d", node, k.GetGeneration())
}
func (r *recorder) StatusReported(node string, s *meshpb.TunnelStatus) {
	r.add("status %s mtu=%d", node, s.GetMtu())
}
func (r *recorder) RotationReported(node string, x *meshpb.RotationReport) {
	r.add("rotation %s id=%s done=%v", node, x.GetId(), x.GetDone())
}
func (r *recorder) Acked(node string, a *meshpb.Ack, s streamserver.NodeSync) {}
func (r *recorder) Refused(x streamserver.Refusal) {
	r.add("refused %s token=%s claimed=%s", x.Reason, x.TokenNode, x.ClaimedNode)
}
func (r *recorder) has(line string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.lines, line)
}

// harness runs a Server on loopback with TLS from a fresh CA.
type harness struct {
	srv     *streamserver.Server
	metrics *metrics.Metrics
	addr    string
	ca      *certs.CA
	obs     *recorder
}

func startServer(t *testing.T, opts streamserver.Options) *harness {
	t.Helper()
	ca, err := certs.NewCA("test", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	renewer, err := certs.NewRenewer(ca, certs.ServingOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{ca: ca, obs: &recorder{}, metrics: metrics.NewUnregistered()}
	if opts.Observer == nil {
		opts.Observer = h.obs
	}
	if opts.Auth == nil {
		opts.Auth = tokenAuth{}
	}
	opts.Metrics = h.metrics
	h.srv, err = streamserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := h.srv.GRPCServer(renewer.TLSConfig())
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	h.addr = lis.Addr().String()
	return h
}

// agent starts a fake daemon for node with its token.
func (h *harness) agent(t *testing.T, node string, mod ...func(*agenttest.Options)) *agenttest.Agent {
	t.Helper()
	opts := agenttest.Options{
		Node: node, Addrs: []string{h.addr}, RootCAs: h.ca.Pool(),
		Token:         func() string { return "token-" + node },
		PublicKey:     make([]byte, 32),
		RetryInterval: 20 * time.Millisecond,
	}
	for _, m := range mod {
		m(&opts)
	}
	a := agenttest.Start(opts)
	t.Cleanup(a.Stop)
	return a
}

func waitFor(t *testing.T, a *agenttest.Agent, what string, cond func(agenttest.Snapshot) bool) agenttest.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := a.WaitFor(ctx, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return snap
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kinds renders a daemon's command log as "kind gen [base]" lines.
func kinds(log []agenttest.Received) []string {
	var out []string
	for _, r := range log {
		s := r.Kind + " " + r.Gen.String()
		if r.Kind == "delta" {
			s += " base " + r.Base.String()
		}
		if r.Kind == "rotation" {
			s += " " + r.Msg.GetRotation().GetId()
		}
		if r.Ack != meshpb.AckCode_ACK_OK {
			s += " " + r.Ack.String()
		}
		out = append(out, s)
	}
	return out
}
