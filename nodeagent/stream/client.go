package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// HelloProvider describes the daemon at each connect.
type HelloProvider interface {
	// Hello returns node, capabilities, version, backend, MTU and active
	// key; the client sets last_applied.
	Hello(ctx context.Context) (*meshpb.Hello, error)
}

// StatusProvider reports the tunnels.
type StatusProvider interface {
	// TunnelStatus returns the status now; the client sets applied and
	// unix_nano.
	TunnelStatus(ctx context.Context) (*meshpb.TunnelStatus, error)
}

// RotationProvider reports the key rotation in progress on the node.
type RotationProvider interface {
	// RotationReport returns where the rotation in progress stands, with
	// its confirmations; nil when none.
	RotationReport(ctx context.Context) (*meshpb.RotationReport, error)
}

var (
	// ErrInvalid marks bad Options.
	ErrInvalid = errors.New("invalid stream options")
	// ErrNotLeader: the controller is a standby.
	ErrNotLeader = errors.New("controller is not the leader")
	// ErrNotReady: the stream is down or the last state is not applied.
	ErrNotReady = errors.New("not ready")
)

// Defaults of Options.
const (
	DefaultStatusInterval = 10 * time.Second
	DefaultKeepalive      = 30 * time.Second
)

// Options configure a Client.
type Options struct {
	// Addresses of the controllers ("host:port"), tried in turn.
	Addresses []string
	// CAFile is the PEM bundle that verifies the controllers' serving
	// certificate; re-read at every connect, so a rotated CA is picked up.
	CAFile string
	// ServerName overrides the name checked in the certificate (default:
	// the host of the address).
	ServerName string
	// TokenFile is the projected ServiceAccount token.
	TokenFile string

	Handler Handler
	Hello   HelloProvider
	Status  StatusProvider
	// Rotation, when set, is asked after every connect: its report is
	// sent after the queued reports, so a controller (a new leader too)
	// learns where a rotation in progress stands.
	Rotation RotationProvider

	// Applied is the generation of the state the daemon runs at start.
	Applied Generation
	// StatusInterval between TunnelStatus messages; DefaultStatusInterval
	// when 0.
	StatusInterval time.Duration
	Backoff        Backoff
	// Keepalive is the HTTP/2 ping interval that detects a dead
	// controller; DefaultKeepalive when 0, off when negative. The
	// controller must permit it (keepalive.EnforcementPolicy.MinTime).
	Keepalive time.Duration
	// OnState, when set, is called (from the client's goroutine) after
	// every connect and disconnect.
	OnState func(State)
}

// State is what the client reports about the stream.
type State struct {
	Connected bool
	// Address of the controller connected to, or last tried.
	Address string
	// Since is when Connected last changed.
	Since time.Time
	// LastError is why the last connect attempt or stream ended.
	LastError string
	Applied   Generation
	// InSync is true once the last command was applied (or was a no-op
	// repeat of the applied generation) and no gap or failure followed.
	InSync bool
	// Connects counts established streams.
	Connects uint64
	// Acks counts acks sent by code.
	Acks map[meshpb.AckCode]uint64
}

// Client is the daemon's stream client.
type Client struct {
	opts  Options
	token *tokenFile

	mu   sync.Mutex
	st   State
	send func(*meshpb.AgentMessage) error // current stream's sender, nil when down or flushing
	// outbox holds key and rotation reports waiting for a stream, in
	// order; at most one rotation report (the latest).
	outbox []*meshpb.AgentMessage
	kick   chan struct{} // wakes the status loop
}

// New checks opts and returns a Client; Run connects.
func New(opts Options) (*Client, error) {
	switch {
	case len(opts.Addresses) == 0:
		return nil, fmt.Errorf("%w: no controller address", ErrInvalid)
	case opts.CAFile == "":
		return nil, fmt.Errorf("%w: no CA bundle", ErrInvalid)
	case opts.TokenFile == "":
		return nil, fmt.Errorf("%w: no token file", ErrInvalid)
	case opts.Handler == nil || opts.Hello == nil || opts.Status == nil:
		return nil, fmt.Errorf("%w: handler, hello and status providers are required", ErrInvalid)
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = DefaultStatusInterval
	}
	if opts.Keepalive == 0 {
		opts.Keepalive = DefaultKeepalive
	}
	opts.Backoff = opts.Backoff.withDefaults()
	return &Client{
		opts:  opts,
		token: &tokenFile{path: opts.TokenFile},
		st:    State{Applied: opts.Applied, Acks: map[meshpb.AckCode]uint64{}},
		kick:  make(chan struct{}, 1),
	}, nil
}

// State returns a copy of the stream state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Acks = make(map[meshpb.AckCode]uint64, len(c.st.Acks))
	for k, v := range c.st.Acks {
		s.Acks[k] = v
	}
	return s
}

// Ready is nil when the stream is connected and the last state is
// applied; otherwise it says why not (wrapping ErrNotReady).
func (c *Client) Ready() error {
	s := c.State()
	switch {
	case !s.Connected:
		return fmt.Errorf("%w: stream not connected (%s)", ErrNotReady, s.LastError)
	case !s.InSync:
		return fmt.Errorf("%w: last state not applied (applied %s)", ErrNotReady, s.Applied)
	}
	return nil
}

// Applied is the generation of the state the daemon runs.
func (c *Client) Applied() Generation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Applied
}

// ReportKey sends a key report now, or right after the next Hello when
// no stream is up. Reports are not replayed on later reconnects.
func (c *Client) ReportKey(kr *meshpb.KeyReport) {
	kr = proto.Clone(kr).(*meshpb.KeyReport)
	c.report(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_KeyReport{KeyReport: kr}})
}

// ReportRotation sends a rotation report now, or right after the next
// Hello when no stream is up, after the key reports queued before it. A
// report waiting for a stream is replaced by a newer one: each says where
// the rotation stands. After every connect the Rotation provider's
// report replaces a waiting one, so a rotation in progress is reported
// again on every reconnect.
func (c *Client) ReportRotation(r *meshpb.RotationReport) {
	r = proto.Clone(r).(*meshpb.RotationReport)
	c.report(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Rotation{Rotation: r}})
}

func (c *Client) report(m *meshpb.AgentMessage) {
	c.mu.Lock()
	send := c.send
	if send == nil {
		c.enqueueLocked(m)
	}
	c.mu.Unlock()
	if send != nil {
		if err := send(m); err != nil {
			c.mu.Lock()
			c.enqueueLocked(m)
			c.mu.Unlock()
		}
	}
}

// enqueueLocked appends m to the outbox; a rotation report replaces the
// one waiting.
func (c *Client) enqueueLocked(m *meshpb.AgentMessage) {
	if m.GetRotation() != nil {
		c.outbox = slices.DeleteFunc(c.outbox, func(x *meshpb.AgentMessage) bool { return x.GetRotation() != nil })
	}
	c.outbox = append(c.outbox, m)
}

// flush sends the outbox in order; reports made meanwhile join it. Once
// it is empty, reports go straight to the stream.
func (c *Client) flush(send func(*meshpb.AgentMessage) error) error {
	for {
		c.mu.Lock()
		if len(c.outbox) == 0 {
			c.send = send
			c.mu.Unlock()
			return nil
		}
		m := c.outbox[0]
		c.outbox = c.outbox[1:]
		c.mu.Unlock()
		if err := send(m); err != nil {
			c.mu.Lock()
			if m.GetRotation() == nil || !slices.ContainsFunc(c.outbox, func(x *meshpb.AgentMessage) bool { return x.GetRotation() != nil }) {
				c.outbox = append([]*meshpb.AgentMessage{m}, c.outbox...)
			}
			c.mu.Unlock()
			return err
		}
	}
}

// SendStatus asks for a TunnelStatus to be sent now (when connected).
func (c *Client) SendStatus() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run connects and serves the stream until ctx ends, reconnecting as
// needed. It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	idx, failedRounds, failures := 0, 0, 0
	standby := false // a controller of this round answered "not leader"
	for {
		addr := c.opts.Addresses[idx]
		established, err := c.session(ctx, addr)
		if ctx.Err() != nil {
			c.setDown(addr, ctx.Err())
			return ctx.Err()
		}
		c.setDown(addr, err)
		var wait time.Duration
		if established {
			// The leader dropped us: try it again first, after a short
			// jittered pause.
			failedRounds, failures, standby = 0, 0, false
			wait = c.opts.Backoff.delay(0, false)
		} else {
			idx = (idx + 1) % len(c.opts.Addresses)
			failures++
			standby = standby || errors.Is(err, ErrNotLeader)
			if failures%len(c.opts.Addresses) == 0 {
				wait = c.opts.Backoff.delay(failedRounds, standby)
				failedRounds++
				standby = false
			}
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
}

func (c *Client) setDown(addr string, err error) {
	c.mu.Lock()
	was := c.st.Connected
	c.st.Connected, c.st.InSync, c.st.Address = false, false, addr
	c.send = nil
	if err != nil {
		c.st.LastError = err.Error()
	}
	if was {
		c.st.Since = time.Now()
	}
	s := c.st
	c.mu.Unlock()
	if was && c.opts.OnState != nil {
		c.opts.OnState(s)
	}
}

func (c *Client) transport() (credentials.TransportCredentials, error) {
	pem, err := os.ReadFile(c.opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no certificate", c.opts.CAFile)
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: c.opts.ServerName, MinVersion: tls.VersionTLS13}), nil
}

// session runs one stream to addr. established is true when the
// controller accepted the stream (its first message arrived).
func (c *Client) session(ctx context.Context, addr string) (established bool, err error) {
	creds, err := c.transport()
	if err != nil {
		return false, err
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(c.token)}
	if c.opts.Keepalive > 0 {
		dopts = append(dopts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: c.opts.Keepalive, Timeout: c.opts.Keepalive / 3}))
	}
	conn, err := grpc.NewClient(addr, dopts...)
	if err != nil {
		return false, fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := meshpb.NewMeshClient(conn).Connect(sctx)
	if err != nil {
		return false, streamErr(addr, err)
	}
	var sendMu sync.Mutex
	send := func(m *meshpb.AgentMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}

	hello, err := c.opts.Hello.Hello(sctx)
	if err != nil {
		return false, fmt.Errorf("building hello: %w", err)
	}
	hello = proto.Clone(hello).(*meshpb.Hello)
	hello.LastApplied = c.Applied().proto()
	if err := send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Hello{Hello: hello}}); err != nil {
		return false, streamErr(addr, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return false, streamErr(addr, err)
	}

	var current *meshpb.RotationReport
	if c.opts.Rotation != nil {
		// A report that cannot be read now is sent when it next changes.
		if r, err := c.opts.Rotation.RotationReport(sctx); err == nil && r != nil {
			current = proto.Clone(r).(*meshpb.RotationReport)
		}
	}
	c.mu.Lock()
	c.st.Connected, c.st.Address, c.st.Since, c.st.LastError = true, addr, time.Now(), ""
	c.st.Connects++
	if current != nil {
		c.enqueueLocked(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Rotation{Rotation: current}})
	}
	s := c.st
	c.mu.Unlock()
	if c.opts.OnState != nil {
		c.opts.OnState(s)
	}
	if err := c.flush(send); err != nil {
		return true, streamErr(addr, err)
	}

	errc := make(chan error, 1)
	go func() { errc <- c.statusLoop(sctx, send) }()
	msg := first
	for {
		if err := c.handle(sctx, msg, send); err != nil {
			return true, streamErr(addr, err)
		}
		select {
		case err := <-errc:
			return true, streamErr(addr, err)
		default:
		}
		if msg, err = stream.Recv(); err != nil {
			return true, streamErr(addr, err)
		}
	}
}

// handle runs one command through the guard and acks it; an applied
// command is followed by a status.
func (c *Client) handle(ctx context.Context, msg *meshpb.ControllerMessage, send func(*meshpb.AgentMessage) error) error {
	applied := c.Applied()
	ack, next := guard(ctx, c.opts.Handler, applied, msg)
	c.mu.Lock()
	c.st.Applied = next
	switch ack.Code {
	case meshpb.AckCode_ACK_OK:
		c.st.InSync = true
	case meshpb.AckCode_ACK_STALE:
		if genOf(msg.GetGeneration()) == applied {
			c.st.InSync = true
		}
	default:
		c.st.InSync = false
	}
	c.st.Acks[ack.Code]++
	c.mu.Unlock()
	if err := send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Ack{Ack: ack}}); err != nil {
		return err
	}
	if ack.Code == meshpb.AckCode_ACK_OK {
		c.SendStatus()
	}
	return nil
}

func (c *Client) statusLoop(ctx context.Context, send func(*meshpb.AgentMessage) error) error {
	t := time.NewTicker(c.opts.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.kick:
		}
		st, err := c.opts.Status.TunnelStatus(ctx)
		if err != nil {
			// A status that cannot be read is skipped, not fatal.
			continue
		}
		st = proto.Clone(st).(*meshpb.TunnelStatus)
		st.Applied = c.Applied().proto()
		st.UnixNano = time.Now().UnixNano()
		if err := send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Status{Status: st}}); err != nil {
			return err
		}
	}
}

func streamErr(addr string, err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable && s.Message() == meshpb.NotLeader {
		return fmt.Errorf("%s: %w", addr, ErrNotLeader)
	}
	return fmt.Errorf("%s: %w", addr, err)
}
