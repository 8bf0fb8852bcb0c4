package agenttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/core/wire"
	"github.com/lumbrjx/vpblu/ctrl/generation"
)

// Options configure a fake daemon.
type Options struct {
	// Node is the node the daemon speaks for (Hello.node).
	Node string
	// Addrs are controller addresses, tried in turn.
	Addrs []string
	// RootCAs verify the controller's certificate; ServerName is the name
	// checked (default: the host part of the address).
	RootCAs    *x509.CertPool
	ServerName string
	// Token returns the bearer token for the next stream ("" sends none).
	Token func() string
	// PublicKey (32 bytes) is reported in Hello; nil reports none.
	PublicKey     []byte
	KeyGeneration uint64
	// Applied is the generation the daemon starts with, as a restarted
	// daemon that kept its state reports in Hello.
	Applied generation.Gen
	// Respond, when set, may override the ack code of a command (ok false
	// keeps the protocol's own decision). A non-OK code leaves the state
	// untouched.
	Respond func(msg *meshpb.ControllerMessage) (code meshpb.AckCode, ok bool)
	// Light keeps neither state nor message log: for benchmarks with
	// thousands of daemons. Applied generations are still tracked.
	Light bool
	// Capabilities are added to the Hello's.
	Capabilities []string
	// Reply, when set, returns messages to send after a command's ack
	// (such as a RotationReport answering a RotationCommand).
	Reply func(msg *meshpb.ControllerMessage) []*meshpb.AgentMessage
	// OnMessage is called for every command received, with its receive
	// time, before it is applied.
	OnMessage func(node string, msg *meshpb.ControllerMessage, at time.Time)
	// RetryInterval is the pause between connection attempts (default
	// 100ms).
	RetryInterval time.Duration
	// DialOptions are added to the gRPC client's.
	DialOptions []grpc.DialOption
}

// Received is one command as the fake daemon received it.
type Received struct {
	Kind string // "sync", "delta" or "rotation"
	Gen  generation.Gen
	Base generation.Gen // deltas only
	Ack  meshpb.AckCode
	// Invalid says why core/wire refused the command (Ack is ACK_INVALID).
	Invalid error
	Msg     *meshpb.ControllerMessage
}

// Agent is a running fake daemon.
type Agent struct {
	opts   Options
	cancel context.CancelFunc
	done   chan struct{}

	sendMu sync.Mutex
	stream meshpb.Mesh_ConnectClient

	mu       sync.Mutex
	changed  chan struct{}
	state    *State
	applied  generation.Gen
	log      []Received
	connects int
	addr     string
	ends     []error
	paused   chan struct{} // non-nil while paused: closed on Resume
}

// Start runs a fake daemon in the background until Stop.
func Start(opts Options) *Agent {
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 100 * time.Millisecond
	}
	if opts.KeyGeneration == 0 {
		opts.KeyGeneration = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{opts: opts, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}), state: newState(), applied: opts.Applied}
	go a.run(ctx)
	return a
}

// Stop ends the daemon and waits for it.
func (a *Agent) Stop() {
	a.cancel()
	<-a.done
}

func (a *Agent) run(ctx context.Context) {
	defer close(a.done)
	conns := make([]*grpc.ClientConn, len(a.opts.Addrs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for i := 0; ctx.Err() == nil; i = (i + 1) % len(a.opts.Addrs) {
		if conns[i] == nil {
			c, err := a.dial(a.opts.Addrs[i])
			if err != nil {
				a.ended(err)
				continue
			}
			conns[i] = c
		}
		err := a.session(ctx, conns[i], a.opts.Addrs[i])
		a.ended(err)
		select {
		case <-ctx.Done():
		case <-time.After(a.opts.RetryInterval):
		}
	}
}

// Dial opens a gRPC client connection to addr with opts' TLS settings.
func Dial(addr string, opts Options) (*grpc.ClientConn, error) {
	name := opts.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", addr, err)
		}
		name = host
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: opts.RootCAs, ServerName: name, MinVersion: tls.VersionTLS13})
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithReadBufferSize(8 << 10),
		grpc.WithWriteBufferSize(8 << 10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}, opts.DialOptions...)
	c, err := grpc.NewClient("passthrough:///"+addr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}

func (a *Agent) dial(addr string) (*grpc.ClientConn, error) { return Dial(addr, a.opts) }

// Hello is the first message the fake daemon sends.
func (a *Agent) Hello() *meshpb.Hello {
	a.mu.Lock()
	applied := a.applied
	a.mu.Unlock()
	h := &meshpb.Hello{
		Node: a.opts.Node, LastApplied: applied.Proto(), AgentVersion: "agenttest",
		Backend: "userspace", Mtu: 1420, Capabilities: append([]string{"backend/userspace", "ipv6"}, a.opts.Capabilities...),
	}
	if a.opts.PublicKey != nil {
		h.Key = &meshpb.KeyReport{PublicKey: a.opts.PublicKey, Generation: a.opts.KeyGeneration, State: meshpb.KeyState_KEY_STATE_ACTIVE}
	}
	return h
}

// OpenStream opens a Connect stream on conn with token as bearer.
func OpenStream(ctx context.Context, conn *grpc.ClientConn, token string) (meshpb.Mesh_ConnectClient, error) {
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return meshpb.NewMeshClient(conn).Connect(ctx)
}

func (a *Agent) session(ctx context.Context, conn *grpc.ClientConn, addr string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	token := ""
	if a.opts.Token != nil {
		token = a.opts.Token()
	}
	stream, err := OpenStream(ctx, conn, token)
	if err != nil {
		return err
	}
	if err := stream.Send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Hello{Hello: a.Hello()}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream; Recv tells why.
			_, err = stream.Recv()
		}
		return err
	}
	first := true
	for {
		a.waitResumed(ctx)
		msg, err := stream.Recv()
		if err != nil {
			a.sendMu.Lock()
			if a.stream == stream {
				a.stream = nil
			}
			a.sendMu.Unlock()
			return err
		}
		at := time.Now()
		if first {
			first = false
			a.sendMu.Lock()
			a.stream = stream
			a.sendMu.Unlock()
			a.mu.Lock()
			a.connects++
			a.addr = addr
			a.mu.Unlock()
		}
		if a.opts.OnMessage != nil {
			a.opts.OnMessage(a.opts.Node, msg, at)
		}
		ack := a.apply(msg)
		if err := a.Send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Ack{Ack: ack}}); err != nil {
			return err
		}
		if a.opts.Reply != nil {
			for _, m := range a.opts.Reply(msg) {
				if err := a.Send(m); err != nil {
					return err
				}
			}
		}
	}
}

// apply follows the protocol: a command whose generation is not newer than
// the applied one is stale; a delta whose base is not the applied
// generation is a gap; anything else is applied.
func (a *Agent) apply(msg *meshpb.ControllerMessage) *meshpb.Ack {
	gen := generation.FromProto(msg.GetGeneration())
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := Received{Gen: gen}
	code := meshpb.AckCode_ACK_OK
	var invalid error
	switch cmd := msg.GetCmd().(type) {
	case *meshpb.ControllerMessage_Sync:
		rec.Kind = "sync"
		if !a.opts.Light {
			_, invalid = wire.DecodeState(cmd.Sync)
		}
	case *meshpb.ControllerMessage_Delta:
		rec.Kind = "delta"
		rec.Base = generation.FromProto(cmd.Delta.GetBase())
		if rec.Base != a.applied {
			code = meshpb.AckCode_ACK_GAP
		}
		if !a.opts.Light {
			_, invalid = wire.DecodeDelta(cmd.Delta)
		}
	case *meshpb.ControllerMessage_Rotation:
		rec.Kind = "rotation"
	default:
		code = meshpb.AckCode_ACK_INVALID
	}
	if !a.applied.Less(gen) {
		code = meshpb.AckCode_ACK_STALE
	}
	if invalid != nil {
		// The real daemon decodes with core/wire and refuses what it
		// refuses: a controller sending malformed state fails tests.
		code = meshpb.AckCode_ACK_INVALID
		rec.Invalid = invalid
	}
	if a.opts.Respond != nil {
		if c, ok := a.opts.Respond(msg); ok {
			code = c
		}
	}
	if code == meshpb.AckCode_ACK_OK {
		if !a.opts.Light {
			switch cmd := msg.GetCmd().(type) {
			case *meshpb.ControllerMessage_Sync:
				a.state.sync(cmd.Sync)
			case *meshpb.ControllerMessage_Delta:
				a.state.delta(cmd.Delta)
			}
		}
		a.applied = gen
	}
	rec.Ack = code
	if !a.opts.Light {
		rec.Msg = proto.CloneOf(msg)
		a.log = append(a.log, rec)
	}
	a.notifyLocked()
	ack := &meshpb.Ack{Generation: gen.Proto(), Code: code, Applied: a.applied.Proto()}
	if invalid != nil {
		ack.Error = invalid.Error()
	}
	return ack
}

// Send sends a message on the current stream.
func (a *Agent) Send(msg *meshpb.AgentMessage) error {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	if a.stream == nil {
		return errors.New("agenttest: not connected")
	}
	return a.stream.Send(msg)
}

func (a *Agent) ended(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ends = append(a.ends, err)
	a.notifyLocked()
}

func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// Pause stops reading from the stream, like a stuck daemon; Resume reads
// again.
func (a *Agent) Pause() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused == nil {
		a.paused = make(chan struct{})
	}
}

// Resume undoes Pause.
func (a *Agent) Resume() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused != nil {
		close(a.paused)
		a.paused = nil
	}
}

func (a *Agent) waitResumed(ctx context.Context) {
	a.mu.Lock()
	p := a.paused
	a.mu.Unlock()
	if p != nil {
		select {
		case <-p:
		case <-ctx.Done():
		}
	}
}

// Snapshot is a consistent view of a fake daemon.
type Snapshot struct {
	Node     string
	State    string
	Applied  generation.Gen
	Log      []Received
	Connects int
	// Addr is the controller address of the last stream that delivered a
	// command.
	Addr string
	// Ends are the errors streams ended with, oldest first.
	Ends []error
}

// Snapshot returns the daemon's current view.
func (a *Agent) Snapshot() Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.snapshotLocked()
}

func (a *Agent) snapshotLocked() Snapshot {
	return Snapshot{
		Node: a.opts.Node, State: a.state.String(), Applied: a.applied,
		Log: append([]Received(nil), a.log...), Connects: a.connects, Addr: a.addr,
		Ends: append([]error(nil), a.ends...),
	}
}

// WaitFor waits until cond holds for the daemon's snapshot, or fails with
// the last snapshot when ctx ends.
func (a *Agent) WaitFor(ctx context.Context, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		a.mu.Lock()
		snap := a.snapshotLocked()
		ch := a.changed
		a.mu.Unlock()
		if cond(snap) {
			return snap, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return snap, fmt.Errorf("%s: %w; applied %v after %d commands, %d streams ended, last: %v",
				a.opts.Node, ctx.Err(), snap.Applied, len(snap.Log), len(snap.Ends), lastErrs(snap.Ends, 3))
		}
	}
}

func lastErrs(errs []error, n int) []error {
	if len(errs) > n {
		return errs[len(errs)-n:]
	}
	return errs
}

// Code is the gRPC code of err (OK for nil).
func Code(err error) string { return status.Code(err).String() }
