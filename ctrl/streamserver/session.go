package streamserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/generation"
)

// maxInflight bounds the commands remembered for latency measurement.
const maxInflight = 256

// maxRotations bounds the rotation commands waiting for one daemon. Each
// command names a whole state and the controller resends what is not
// done, so dropping the oldest loses nothing for good.
const maxRotations = 64

// session is one daemon's stream. Push hands deltas over through inbox, a
// bounded channel, and never takes a lock the sender holds: with thousands
// of sender goroutines runnable at once, a sender preempted while holding
// a lock would stall Push for everyone. An inbox that overflows sets a flag
// and the sender replaces what was lost with one SyncState.
//
// Rotation commands wait in their own queue and get their generation when
// they are sent (sendRotation), never while a SyncState is pending: a
// SyncState built later would carry a newer generation and make the
// daemon drop the command as stale.
type session struct {
	srv    *Server
	node   string
	stream interface {
		Send(*meshpb.ControllerMessage) error
		Recv() (*meshpb.AgentMessage, error)
	}
	cancel   context.CancelCauseFunc
	wake     chan struct{}
	inbox    chan pushed
	overflow atomic.Bool

	// The sender goroutine's own state.
	nextPeriod time.Time
	// backlog holds deltas taken out of inbox while a rotation command was
	// stamped; they are older than it and go first.
	backlog []pushed

	mu          sync.Mutex
	closed      bool
	syncPending bool
	syncReason  string
	syncAfter   time.Time
	errBackoff  time.Duration
	sent        generation.Gen // base of the next delta
	lastSync    generation.Gen // generation of the last SyncState
	applied     generation.Gen
	inflight    []queued // sent, not acked, in generation order
	rotations   []*meshpb.RotationCommand
	// syncAcked is closed when the daemon acks the SyncState in flight.
	syncAcked chan struct{}
}

// pushed is a delta on its way to the sender.
type pushed struct {
	gen generation.Gen
	d   *meshpb.Delta
	at  time.Time
}

type queued struct {
	gen    generation.Gen
	kind   string // "sync", "delta" or "rotation"
	msg    *meshpb.ControllerMessage
	queued time.Time
}

func newSession(srv *Server, node string, stream interface {
	Send(*meshpb.ControllerMessage) error
	Recv() (*meshpb.AgentMessage, error)
}, cancel context.CancelCauseFunc) *session {
	return &session{
		srv: srv, node: node, stream: stream, cancel: cancel,
		wake:        make(chan struct{}, 1),
		inbox:       make(chan pushed, srv.opts.QueueSize),
		syncPending: true,
		syncReason:  "connect",
		nextPeriod:  time.Now().Add(jitter(srv.opts.ResyncPeriod)),
	}
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *session) close(cause error) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel(cause)
}

// push hands a delta to the sender; see Server.Push. It never blocks.
func (s *session) push(gen generation.Gen, d *meshpb.Delta, now time.Time) {
	select {
	case s.inbox <- pushed{gen: gen, d: d, at: now}:
		s.srv.metrics.queueDepth.Inc()
	default:
		if s.overflow.CompareAndSwap(false, true) {
			s.srv.metrics.overflows.Inc()
		}
		s.signal()
	}
}

// queueRotation queues a rotation command for the sender; it reports
// false when the session is closed.
func (s *session) queueRotation(cmd *meshpb.RotationCommand) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(s.rotations) >= maxRotations {
		s.rotations = s.rotations[1:]
	}
	s.rotations = append(s.rotations, cmd)
	s.signal()
	return true
}

// nextRotation takes the first queued rotation command, unless a SyncState
// is pending: the command follows it.
func (s *session) nextRotation() *meshpb.RotationCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncPending || len(s.rotations) == 0 {
		return nil
	}
	cmd := s.rotations[0]
	s.rotations[0] = nil
	s.rotations = s.rotations[1:]
	return cmd
}

// requestSync marks a SyncState as due after delay (0: now). An earlier
// request stands.
func (s *session) requestSync(reason string, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestSyncLocked(reason, delay)
}

func (s *session) requestSyncLocked(reason string, delay time.Duration) {
	if s.closed {
		return
	}
	after := time.Now().Add(delay)
	if s.syncPending && !s.syncAfter.After(after) {
		return
	}
	s.syncPending, s.syncReason, s.syncAfter = true, reason, after
	s.signal()
}

func (s *session) syncInfo() NodeSync {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncInfoLocked()
}

func (s *session) syncInfoLocked() NodeSync {
	return NodeSync{
		Connected: !s.closed,
		Sent:      s.sent,
		Applied:   s.applied,
		UpToDate: !s.closed && !s.syncPending && len(s.inbox) == 0 && len(s.rotations) == 0 && !s.overflow.Load() &&
			s.applied == s.sent && !s.sent.IsZero(),
	}
}

// due says whether a SyncState is to be built now, and otherwise until
// when the sender may sleep (zero: until woken).
func (s *session) due(now time.Time) (build bool, reason string, wait time.Time) {
	if s.overflow.Swap(false) {
		s.requestSync("overflow", 0)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.syncPending && !now.Before(s.nextPeriod) {
		s.syncPending, s.syncReason, s.syncAfter = true, "periodic", time.Time{}
	}
	if s.syncPending {
		if !now.Before(s.syncAfter) {
			return true, s.syncReason, time.Time{}
		}
		return false, "", s.syncAfter
	}
	return false, "", s.nextPeriod
}

func (s *session) sendLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer func() { s.srv.metrics.queueDepth.Sub(float64(len(s.inbox))) }()
	for {
		build, reason, wait := s.due(time.Now())
		if build {
			if err := s.sync(ctx, reason); err != nil {
				s.cancel(err)
				return
			}
			continue
		}
		if len(s.backlog) > 0 {
			p := s.backlog[0]
			s.backlog = s.backlog[1:]
			if err := s.sendDelta(p); err != nil {
				s.cancel(err)
				return
			}
			continue
		}
		if cmd := s.nextRotation(); cmd != nil {
			if err := s.sendRotation(cmd); err != nil {
				s.cancel(err)
				return
			}
			continue
		}
		timer.Reset(time.Until(wait))
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		case p := <-s.inbox:
			s.srv.metrics.queueDepth.Dec()
			if err := s.sendDelta(p); err != nil {
				s.cancel(err)
				return
			}
		}
	}
}

// sendDelta sends a delta unless a SyncState replaces it: one is pending,
// or the last one was built after the delta's change.
func (s *session) sendDelta(p pushed) error {
	s.mu.Lock()
	if s.syncPending || !s.lastSync.Less(p.gen) {
		s.mu.Unlock()
		return nil
	}
	p.d.Base = s.sent.Proto()
	s.sent = p.gen
	s.mu.Unlock()
	return s.send(queued{gen: p.gen, kind: "delta", queued: p.at,
		msg: &meshpb.ControllerMessage{Generation: p.gen.Proto(), Cmd: &meshpb.ControllerMessage_Delta{Delta: p.d}}})
}

// sendRotation stamps a rotation command with a fresh generation and
// sends it. Deltas pushed before carry earlier generations: they are taken
// out of the inbox under the same lock and sent first, so the daemon sees
// generations in order. The command advances the base of the next delta.
func (s *session) sendRotation(cmd *meshpb.RotationCommand) error {
	var gen generation.Gen
	s.srv.opts.State.Stamp(func(g generation.Gen) {
		gen = g
		for {
			select {
			case p := <-s.inbox:
				s.srv.metrics.queueDepth.Dec()
				s.backlog = append(s.backlog, p)
				continue
			default:
			}
			return
		}
	})
	for len(s.backlog) > 0 {
		p := s.backlog[0]
		s.backlog = s.backlog[1:]
		if err := s.sendDelta(p); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.syncPending {
		// A SyncState became due meanwhile; it will carry a newer
		// generation, so the command waits and is stamped again after it.
		s.rotations = append([]*meshpb.RotationCommand{cmd}, s.rotations...)
		s.mu.Unlock()
		return nil
	}
	s.sent = gen
	s.mu.Unlock()
	return s.send(queued{gen: gen, kind: "rotation", queued: time.Now(),
		msg: &meshpb.ControllerMessage{Generation: gen.Proto(), Cmd: &meshpb.ControllerMessage_Rotation{Rotation: cmd}}})
}

// sync builds and sends a SyncState, holding one of the server's sync slots
// until the daemon acks it (at most SyncSlotHold), so that few full states
// are in memory at once: Send returns as soon as the message is queued in
// the transport, long before a large state is on the wire.
func (s *session) sync(ctx context.Context, reason string) error {
	select {
	case s.srv.syncs <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-s.srv.syncs }()
	// What overflowed so far is in the state built now.
	s.overflow.Store(false)
	var q queued
	acked := make(chan struct{})
	err := s.srv.opts.State.SyncState(s.node, func(gen generation.Gen, st *meshpb.SyncState) {
		s.mu.Lock()
		defer s.mu.Unlock()
		// Deltas still in the inbox predate this state; sendDelta drops
		// them by their generation.
		s.syncPending, s.syncReason = false, ""
		s.sent, s.lastSync = gen, gen
		s.syncAcked = acked
		q = queued{gen: gen, kind: "sync", queued: time.Now(),
			msg: &meshpb.ControllerMessage{Generation: gen.Proto(), Cmd: &meshpb.ControllerMessage_Sync{Sync: st}}}
	})
	if err != nil {
		if !errors.Is(err, ErrUnknownNode) {
			s.srv.log.Warn("build sync state", "node", s.node, "err", err)
		}
		s.requestSync(reason, s.srv.opts.RetryBackoff)
		return nil
	}
	s.nextPeriod = time.Now().Add(jitter(s.srv.opts.ResyncPeriod))
	s.srv.metrics.resyncs(reason).Inc()
	if err := s.send(q); err != nil {
		return err
	}
	q = queued{}
	hold := time.NewTimer(s.srv.opts.SyncSlotHold)
	defer hold.Stop()
	select {
	case <-acked:
	case <-hold.C:
	case <-ctx.Done():
	}
	return nil
}

// send writes one command, ending the session if the daemon does not take
// it within SendTimeout.
func (s *session) send(q queued) error {
	s.mu.Lock()
	if len(s.inflight) >= maxInflight {
		s.inflight = s.inflight[1:]
	}
	// Only the generation and the time are needed to measure the ack; a
	// full state is not kept alive for it.
	s.inflight = append(s.inflight, queued{gen: q.gen, kind: q.kind, queued: q.queued})
	s.mu.Unlock()
	watchdog := time.AfterFunc(s.srv.opts.SendTimeout, func() { s.cancel(errSendTimeout) })
	err := s.stream.Send(q.msg)
	watchdog.Stop()
	if err != nil {
		return fmt.Errorf("send %s: %w", q.kind, err)
	}
	s.srv.metrics.commands(q.kind).Inc()
	return nil
}

func (s *session) recvLoop(ctx context.Context) {
	for {
		msg, err := s.stream.Recv()
		if err != nil {
			s.cancel(err)
			return
		}
		obs := s.srv.opts.Observer
		switch m := msg.GetMsg().(type) {
		case *meshpb.AgentMessage_Ack:
			s.ack(m.Ack)
		case *meshpb.AgentMessage_KeyReport:
			if len(m.KeyReport.GetPublicKey()) != 32 {
				s.srv.log.Info("ignored malformed key report", "node", s.node, "bytes", len(m.KeyReport.GetPublicKey()))
				continue
			}
			obs.KeyReported(s.node, m.KeyReport)
		case *meshpb.AgentMessage_Status:
			obs.StatusReported(s.node, m.Status)
		case *meshpb.AgentMessage_Rotation:
			obs.RotationReported(s.node, m.Rotation)
		case *meshpb.AgentMessage_Hello:
			s.srv.log.Info("ignored repeated hello", "node", s.node)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *session) ack(a *meshpb.Ack) {
	m := s.srv.metrics
	m.acks(a.GetCode()).Inc()
	gen, applied := generation.FromProto(a.GetGeneration()), generation.FromProto(a.GetApplied())
	now := time.Now()

	s.mu.Lock()
	// Acks come in order: commands before this one will not be acked.
	i := 0
	for ; i < len(s.inflight) && !gen.Less(s.inflight[i].gen); i++ {
		if s.inflight[i].gen == gen && a.GetCode() == meshpb.AckCode_ACK_OK {
			m.latency(s.inflight[i].kind).Observe(now.Sub(s.inflight[i].queued).Seconds())
		}
	}
	clear(s.inflight[:i])
	s.inflight = s.inflight[i:]
	// An ack of a command older than the last SyncState is about a state
	// that SyncState replaced.
	superseded := gen.Less(s.lastSync)
	if !superseded && s.syncAcked != nil {
		close(s.syncAcked)
		s.syncAcked = nil
	}
	switch a.GetCode() {
	case meshpb.AckCode_ACK_OK:
		s.applied = generation.Max(gen, applied)
		s.errBackoff = 0
	case meshpb.AckCode_ACK_GAP:
		if !superseded {
			s.requestSyncLocked("ack_gap", 0)
		}
	case meshpb.AckCode_ACK_STALE:
		if !superseded {
			s.requestSyncLocked("ack_stale", 0)
		}
	default:
		if !superseded {
			s.errBackoff = min(max(2*s.errBackoff, s.srv.opts.RetryBackoff), s.srv.opts.ResyncPeriod)
			s.requestSyncLocked("ack_error", s.errBackoff)
		}
	}
	info := s.syncInfoLocked()
	s.mu.Unlock()

	if a.GetCode() == meshpb.AckCode_ACK_STALE {
		// The daemon runs something at least as new as what we sent: make
		// sure what follows orders after it.
		s.srv.opts.State.Observe(applied)
	}
	s.srv.opts.Observer.Acked(s.node, a, info)
}
