package stream_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/stream"
)

// agent is a fake daemon: it records what it applies and answers with
// scripted codes.
type agent struct {
	mu      sync.Mutex
	applied []*meshpb.ControllerMessage
	answer  func(*meshpb.ControllerMessage) (meshpb.AckCode, error)
}

func (a *agent) Apply(_ context.Context, m *meshpb.ControllerMessage) (meshpb.AckCode, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied = append(a.applied, m)
	if a.answer != nil {
		return a.answer(m)
	}
	return meshpb.AckCode_ACK_OK, nil
}

func (a *agent) Hello(context.Context) (*meshpb.Hello, error) {
	return &meshpb.Hello{Node: "node-a", Capabilities: []string{"backend/userspace", "ipv6"}, Backend: "userspace", Mtu: 1420,
		Key: &meshpb.KeyReport{PublicKey: []byte("0123456789abcdef0123456789abcdef"), Generation: 1, State: meshpb.KeyState_KEY_STATE_ACTIVE}}, nil
}

func (a *agent) TunnelStatus(context.Context) (*meshpb.TunnelStatus, error) {
	return &meshpb.TunnelStatus{Backend: "userspace", Mtu: 1420}, nil
}

type env struct {
	pki       pki
	tokenFile string
	agent     *agent
}

func newEnv(t *testing.T) *env {
	e := &env{pki: newPKI(t), tokenFile: filepath.Join(t.TempDir(), "token"), agent: &agent{}}
	writeToken(t, e.tokenFile, "token-1")
	return e
}

func (e *env) client(t *testing.T, addrs []string, mod func(*stream.Options)) *stream.Client {
	t.Helper()
	o := stream.Options{
		Addresses: addrs, CAFile: e.pki.caFile, TokenFile: e.tokenFile,
		Handler: e.agent, Hello: e.agent, Status: e.agent,
		StatusInterval: time.Hour,
		Backoff:        stream.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
	}
	if mod != nil {
		mod(&o)
	}
	c, err := stream.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func gen(seq uint64) *meshpb.Generation { return &meshpb.Generation{Epoch: 1, Seq: seq} }

func TestHelloFirstThenAckedSync(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	fc.setScript(func(s *serverStream) error {
		if err := s.Send(syncMsg(1)); err != nil {
			return err
		}
		return s.drain()
	})
	c := e.client(t, []string{fc.addr}, nil)
	waitFor(t, "ack", func() bool { ss := fc.snapshot(); return len(ss) == 1 && len(ss[0].acks) == 1 })
	s := fc.snapshot()[0]
	wantHello, _ := e.agent.Hello(context.Background())
	wantHello.LastApplied = gen(0)
	wantHello.LastApplied.Epoch = 0
	if d := cmp.Diff(wantHello, s.hello, protocmp.Transform()); d != "" {
		t.Errorf("hello (-want +got):\n%s", d)
	}
	if s.token != "Bearer token-1" {
		t.Errorf("authorization %q", s.token)
	}
	want := &meshpb.Ack{Generation: gen(1), Code: meshpb.AckCode_ACK_OK, Applied: gen(1)}
	if d := cmp.Diff(want, s.acks[0], protocmp.Transform()); d != "" {
		t.Errorf("ack (-want +got):\n%s", d)
	}
	waitFor(t, "readiness", func() bool { return c.Ready() == nil })
	waitFor(t, "status after the applied command", func() bool { return len(fc.snapshot()[0].stats) >= 1 })
	st := fc.snapshot()[0].stats[0]
	if d := cmp.Diff(gen(1), st.Applied, protocmp.Transform()); d != "" || st.UnixNano == 0 || st.Mtu != 1420 {
		t.Errorf("status applied %v unix_nano %d mtu %d", st.Applied, st.UnixNano, st.Mtu)
	}
}

// TestGenerationGuard sends one script of commands and checks every ack
// and which commands reached the handler.
func TestGenerationGuard(t *testing.T) {
	type step struct {
		msg     *meshpb.ControllerMessage
		answer  meshpb.AckCode
		err     error
		want    *meshpb.Ack
		handled bool
	}
	rot := &meshpb.ControllerMessage{Generation: gen(6), Cmd: &meshpb.ControllerMessage_Rotation{Rotation: &meshpb.RotationCommand{Id: "r1", Phase: meshpb.RotationPhase_ROTATION_PHASE_PREPARE}}}
	steps := []step{
		{msg: syncMsg(2), want: &meshpb.Ack{Generation: gen(2), Applied: gen(2)}, handled: true},
		{msg: syncMsg(2), want: &meshpb.Ack{Generation: gen(2), Code: meshpb.AckCode_ACK_STALE, Error: "generation 1/2 not newer than applied 1/2", Applied: gen(2)}},
		{msg: syncMsg(1), want: &meshpb.Ack{Generation: gen(1), Code: meshpb.AckCode_ACK_STALE, Error: "generation 1/1 not newer than applied 1/2", Applied: gen(2)}},
		{msg: delta(2, 3), want: &meshpb.Ack{Generation: gen(3), Applied: gen(3)}, handled: true},
		{msg: delta(2, 4), want: &meshpb.Ack{Generation: gen(4), Code: meshpb.AckCode_ACK_GAP, Error: "delta base 1/2 is not applied 1/3", Applied: gen(3)}},
		{msg: delta(3, 3), want: &meshpb.Ack{Generation: gen(3), Code: meshpb.AckCode_ACK_STALE, Error: "generation 1/3 not newer than applied 1/3", Applied: gen(3)}},
		{msg: delta(3, 4), answer: meshpb.AckCode_ACK_CAPACITY, err: errors.New("block map full: 70000 > 65536"),
			want: &meshpb.Ack{Generation: gen(4), Code: meshpb.AckCode_ACK_CAPACITY, Error: "block map full: 70000 > 65536", Applied: gen(3)}, handled: true},
		{msg: delta(3, 5), err: errors.New("netlink: operation not permitted"),
			want: &meshpb.Ack{Generation: gen(5), Code: meshpb.AckCode_ACK_FAILED, Error: "netlink: operation not permitted", Applied: gen(3)}, handled: true},
		{msg: &meshpb.ControllerMessage{Cmd: &meshpb.ControllerMessage_Sync{Sync: &meshpb.SyncState{}}},
			want: &meshpb.Ack{Generation: &meshpb.Generation{}, Code: meshpb.AckCode_ACK_INVALID, Error: "command without generation", Applied: gen(3)}},
		{msg: &meshpb.ControllerMessage{Generation: gen(9)},
			want: &meshpb.Ack{Generation: gen(9), Code: meshpb.AckCode_ACK_INVALID, Error: "command without a body", Applied: gen(3)}},
		{msg: rot, want: &meshpb.Ack{Generation: gen(6), Applied: gen(6)}, handled: true},
		{msg: &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 2, Seq: 1}, Cmd: &meshpb.ControllerMessage_Sync{Sync: &meshpb.SyncState{}}},
			want: &meshpb.Ack{Generation: &meshpb.Generation{Epoch: 2, Seq: 1}, Applied: &meshpb.Generation{Epoch: 2, Seq: 1}}, handled: true},
		{msg: syncMsg(100), want: &meshpb.Ack{Generation: gen(100), Code: meshpb.AckCode_ACK_STALE, Error: "generation 1/100 not newer than applied 2/1", Applied: &meshpb.Generation{Epoch: 2, Seq: 1}}},
	}
	e := newEnv(t)
	var mu sync.Mutex
	var sent []*meshpb.ControllerMessage
	e.agent.answer = func(m *meshpb.ControllerMessage) (meshpb.AckCode, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range steps {
			if s.msg.GetGeneration().GetSeq() == m.GetGeneration().GetSeq() && s.msg.GetGeneration().GetEpoch() == m.GetGeneration().GetEpoch() && s.handled {
				if s.err != nil && s.answer == 0 {
					return meshpb.AckCode_ACK_OK, s.err // OK with an error must become FAILED
				}
				return s.answer, s.err
			}
		}
		return meshpb.AckCode_ACK_OK, nil
	}
	fc := startController(t, e.pki, false)
	acks := make(chan *meshpb.Ack, len(steps))
	fc.setScript(func(s *serverStream) error {
		for _, st := range steps {
			if err := s.Send(st.msg); err != nil {
				return err
			}
			a, err := s.waitAck()
			if err != nil {
				return err
			}
			acks <- a
		}
		return s.drain()
	})
	c := e.client(t, []string{fc.addr}, nil)
	for i, st := range steps {
		select {
		case a := <-acks:
			if d := cmp.Diff(st.want, a, protocmp.Transform()); d != "" {
				t.Errorf("step %d ack (-want +got):\n%s", i, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("step %d: no ack", i)
		}
		if st.handled {
			sent = append(sent, st.msg)
		}
	}
	e.agent.mu.Lock()
	if d := cmp.Diff(sent, e.agent.applied, protocmp.Transform()); d != "" {
		t.Errorf("commands that reached the handler (-want +got):\n%s", d)
	}
	e.agent.mu.Unlock()
	if got := c.Applied(); got != (stream.Generation{Epoch: 2, Seq: 1}) {
		t.Errorf("applied %s", got)
	}
	if err := c.Ready(); err != nil {
		t.Errorf("not ready after a stale repeat: %v", err)
	}
}

func TestReconnectsAfterTheControllerDrops(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	var n int
	var mu sync.Mutex
	fc.setScript(func(s *serverStream) error {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			if err := s.Send(syncMsg(1)); err != nil {
				return err
			}
			if _, err := s.waitAck(); err != nil {
				return err
			}
			return errors.New("controller restarting") // drops the stream
		}
		if err := s.Send(syncMsg(2)); err != nil {
			return err
		}
		return s.drain()
	})
	c := e.client(t, []string{fc.addr}, nil)
	waitFor(t, "second stream acked", func() bool { ss := fc.snapshot(); return len(ss) == 2 && len(ss[1].acks) == 1 })
	ss := fc.snapshot()
	if d := cmp.Diff(gen(1), ss[1].hello.LastApplied, protocmp.Transform()); d != "" {
		t.Errorf("second hello's last_applied (-want +got):\n%s", d)
	}
	waitFor(t, "connected again", func() bool { return c.State().Connected })
	if st := c.State(); st.Connects != 2 || st.Applied != (stream.Generation{Epoch: 1, Seq: 2}) {
		t.Errorf("state after reconnect: %+v", st)
	}
}

func TestNotLeaderMovesToTheNextAddress(t *testing.T) {
	e := newEnv(t)
	standby := startController(t, e.pki, true)
	leader := startController(t, e.pki, false)
	leader.setScript(func(s *serverStream) error {
		if err := s.Send(syncMsg(1)); err != nil {
			return err
		}
		return s.drain()
	})
	c := e.client(t, []string{standby.addr, leader.addr}, nil)
	waitFor(t, "ack from the leader", func() bool { ss := leader.snapshot(); return len(ss) == 1 && len(ss[0].acks) == 1 })
	if st := c.State(); !st.Connected || st.Address != leader.addr {
		t.Errorf("state %+v, want connected to %s", st, leader.addr)
	}
	if len(standby.snapshot()) != 0 {
		t.Error("the standby served a stream")
	}
}

// A failed round over all addresses is followed by a backoff; a client
// keeps trying until a leader appears.
func TestKeepsTryingUntilALeaderAppears(t *testing.T) {
	e := newEnv(t)
	a := startController(t, e.pki, true)
	b := startController(t, e.pki, true)
	c := e.client(t, []string{a.addr, b.addr}, nil)
	waitFor(t, "a few rounds", func() bool { return strings.Contains(c.State().LastError, stream.ErrNotLeader.Error()) })
	time.Sleep(100 * time.Millisecond)
	b.lead()
	waitFor(t, "connected to the new leader", func() bool { st := c.State(); return st.Connected && st.Address == b.addr })
}

// While the lease of a dead leader runs out, every controller a daemon
// reaches is a standby; the daemon keeps polling them at most StandbyMax
// apart, so it is on the new leader soon after the election, not after a
// backoff grown meanwhile.
func TestAStandbyKeepsTheBackoffShortUntilTheNewLeaderServes(t *testing.T) {
	e := newEnv(t)
	a := startController(t, e.pki, true)
	b := startController(t, e.pki, true)
	// Without the standby cap the fourth round would wait 8³ × 20 ms ≈ 10 s.
	c := e.client(t, []string{a.addr, b.addr}, func(o *stream.Options) {
		o.Backoff = stream.Backoff{Initial: 20 * time.Millisecond, Max: time.Minute, StandbyMax: 50 * time.Millisecond, Multiplier: 8}
	})
	waitFor(t, "four rounds of standbys", func() bool { return b.standbyRefusals() >= 4 })
	b.lead()
	elected := time.Now()
	waitFor(t, "connected to the new leader", func() bool { st := c.State(); return st.Connected && st.Address == b.addr })
	// Generous against a loaded machine, far below the uncapped 10 s.
	if took := time.Since(elected); took > 5*time.Second {
		t.Errorf("on the new leader %s after it took over, want ≤ 5s (StandbyMax 50ms)", took)
	}
}

// A round in which no controller answers at all (all down, none a
// standby) backs off to Max as usual.
func TestStandbyDelayIsCappedOnlyAfterAStandby(t *testing.T) {
	b := stream.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, StandbyMax: time.Second, Multiplier: 2, Jitter: 0.2}
	for _, tc := range []struct {
		n              int
		plain, standby time.Duration
	}{
		{0, 100 * time.Millisecond, 100 * time.Millisecond},
		{3, 800 * time.Millisecond, 800 * time.Millisecond},
		{4, 1600 * time.Millisecond, time.Second},
		{40, 10 * time.Second, time.Second},
	} {
		if got := b.Delay(tc.n, 0.5); got != tc.plain {
			t.Errorf("Delay(%d) = %s, want %s", tc.n, got, tc.plain)
		}
		if got := b.StandbyDelay(tc.n, 0.5); got != tc.standby {
			t.Errorf("StandbyDelay(%d) = %s, want %s", tc.n, got, tc.standby)
		}
	}
}

func TestTokenIsReReadWhenTheFileChanges(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	drop := make(chan struct{})
	fc.setScript(func(s *serverStream) error {
		if err := s.Send(syncMsg(1)); err != nil {
			return err
		}
		select {
		case <-drop:
			return errors.New("dropped")
		case <-s.Context().Done():
			return nil
		}
	})
	e.client(t, []string{fc.addr}, nil)
	waitFor(t, "first stream", func() bool { return len(fc.snapshot()) == 1 })
	writeToken(t, e.tokenFile, "token-2")
	close(drop)
	waitFor(t, "second stream", func() bool { return len(fc.snapshot()) >= 2 })
	ss := fc.snapshot()
	if ss[0].token != "Bearer token-1" || ss[1].token != "Bearer token-2" {
		t.Errorf("tokens %q then %q, want token-1 then token-2", ss[0].token, ss[1].token)
	}
}

func TestStatusIsSentPeriodically(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	fc.setScript(func(s *serverStream) error {
		if err := s.Send(syncMsg(1)); err != nil {
			return err
		}
		return s.drain()
	})
	e.client(t, []string{fc.addr}, func(o *stream.Options) { o.StatusInterval = 20 * time.Millisecond })
	waitFor(t, "several statuses", func() bool { ss := fc.snapshot(); return len(ss) == 1 && len(ss[0].stats) >= 4 })
}

func TestKeyReportsAreSentOnDemand(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	release := make(chan struct{})
	fc.setScript(func(s *serverStream) error {
		<-release
		if err := s.Send(syncMsg(1)); err != nil {
			return err
		}
		return s.drain()
	})
	c := e.client(t, []string{fc.addr}, nil)
	pending := &meshpb.KeyReport{PublicKey: []byte("pending-key-pending-key-pending!!"), Generation: 2, State: meshpb.KeyState_KEY_STATE_PENDING}
	c.ReportKey(pending) // before the stream is accepted: queued
	close(release)
	waitFor(t, "queued report", func() bool { ss := fc.snapshot(); return len(ss) == 1 && len(ss[0].keys) == 1 })
	later := &meshpb.KeyReport{PublicKey: []byte("active-key-active-key-active-key"), Generation: 2, State: meshpb.KeyState_KEY_STATE_ACTIVE}
	c.ReportKey(later)
	waitFor(t, "second report", func() bool { return len(fc.snapshot()[0].keys) == 2 })
	if d := cmp.Diff([]*meshpb.KeyReport{pending, later}, fc.snapshot()[0].keys, protocmp.Transform()); d != "" {
		t.Errorf("key reports (-want +got):\n%s", d)
	}
}

// rotations is a fake RotationProvider.
type rotations struct {
	mu  sync.Mutex
	cur *meshpb.RotationReport
}

func (r *rotations) set(x *meshpb.RotationReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = x
}

func (r *rotations) RotationReport(context.Context) (*meshpb.RotationReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, nil
}

func rotationReport(step meshpb.RotationStep, confirmed ...string) *meshpb.RotationReport {
	return &meshpb.RotationReport{Id: "node-a/2", Subject: "node-a", Phase: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, Step: step,
		NewKeyGeneration: 2, Done: true, Confirmed: confirmed}
}

// Rotation reports wait for a stream after the key reports made before
// them, the provider's current report replaces a waiting one, and a
// rotation in progress is reported again after every reconnect.
func TestRotationReportsAreQueuedAndReplayedAfterReconnects(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	release := make(chan struct{})
	drop := make(chan struct{})
	var streams int
	var mu sync.Mutex
	fc.setScript(func(s *serverStream) error {
		mu.Lock()
		streams++
		first := streams == 1
		mu.Unlock()
		if first {
			<-release
		}
		if err := s.Send(syncMsg(uint64(streams))); err != nil {
			return err
		}
		if first {
			go func() { _ = s.drain() }()
			select {
			case <-drop:
				return errors.New("controller restarting")
			case <-s.Context().Done():
				return nil
			}
		}
		return s.drain()
	})
	rp := &rotations{}
	c := e.client(t, []string{fc.addr}, func(o *stream.Options) { o.Rotation = rp })
	key := &meshpb.KeyReport{PublicKey: []byte("pending-key-pending-key-pending!!"), Generation: 2, State: meshpb.KeyState_KEY_STATE_PENDING}
	c.ReportKey(key) // before the stream is accepted: queued
	c.ReportRotation(rotationReport(meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP))
	current := rotationReport(meshpb.RotationStep_ROTATION_STEP_REKEY)
	rp.set(current)
	close(release)
	waitFor(t, "queued reports", func() bool { ss := fc.snapshot(); return len(ss) == 1 && len(ss[0].order) == 2 })
	confirmed := rotationReport(meshpb.RotationStep_ROTATION_STEP_REKEY, "node-b")
	c.ReportRotation(confirmed)
	waitFor(t, "a report sent at once", func() bool { return len(fc.snapshot()[0].rots) == 2 })
	first := fc.snapshot()[0]
	if d := cmp.Diff([]string{"key", "rotation", "rotation"}, first.order); d != "" {
		t.Errorf("first stream's report order (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]*meshpb.RotationReport{current, confirmed}, first.rots, protocmp.Transform()); d != "" {
		t.Errorf("first stream's rotation reports (-want +got):\n%s", d)
	}

	rp.set(confirmed)
	close(drop)
	waitFor(t, "second stream's report", func() bool { ss := fc.snapshot(); return len(ss) == 2 && len(ss[1].rots) == 1 })
	second := fc.snapshot()[1]
	if d := cmp.Diff([]*meshpb.RotationReport{confirmed}, second.rots, protocmp.Transform()); d != "" || len(second.keys) != 0 {
		t.Errorf("second stream: keys %v, rotation reports (-want +got):\n%s", second.keys, d)
	}
}

func TestUntrustedControllerIsRefused(t *testing.T) {
	e := newEnv(t)
	other := newPKI(t) // the controller's certificate comes from another CA
	fc := startController(t, other, false)
	c := e.client(t, []string{fc.addr}, nil)
	waitFor(t, "a certificate error", func() bool { return strings.Contains(c.State().LastError, "certificate") })
	if len(fc.snapshot()) != 0 {
		t.Error("a stream reached the untrusted controller")
	}
	if err := c.Ready(); !errors.Is(err, stream.ErrNotReady) {
		t.Errorf("Ready: %v", err)
	}
}

func TestMissingTokenSendsNothing(t *testing.T) {
	e := newEnv(t)
	fc := startController(t, e.pki, false)
	c := e.client(t, []string{fc.addr}, func(o *stream.Options) { o.TokenFile = filepath.Join(t.TempDir(), "absent") })
	waitFor(t, "a token error", func() bool { return strings.Contains(c.State().LastError, stream.ErrNoToken.Error()) })
	if len(fc.snapshot()) != 0 {
		t.Error("a stream without a token reached the controller")
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	a := &agent{}
	base := stream.Options{Addresses: []string{"x:1"}, CAFile: "ca", TokenFile: "tok", Handler: a, Hello: a, Status: a}
	cases := map[string]func(*stream.Options){
		"no address": func(o *stream.Options) { o.Addresses = nil },
		"no ca":      func(o *stream.Options) { o.CAFile = "" },
		"no token":   func(o *stream.Options) { o.TokenFile = "" },
		"no handler": func(o *stream.Options) { o.Handler = nil },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			o := base
			mod(&o)
			if _, err := stream.New(o); !errors.Is(err, stream.ErrInvalid) {
				t.Errorf("New: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBackoffGrowsToMaxWithJitter(t *testing.T) {
	b := stream.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2}
	cases := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{0, 0.5, 100 * time.Millisecond},
		{1, 0.5, 200 * time.Millisecond},
		{3, 0.5, 800 * time.Millisecond},
		{4, 0.5, time.Second},
		{40, 0.5, time.Second},
		{0, 0, 80 * time.Millisecond},
		{4, 0.999999, 1199999 * time.Microsecond},
	}
	for _, tc := range cases {
		got := b.Delay(tc.n, tc.r)
		if d := got - tc.want; d > time.Microsecond || d < -time.Microsecond {
			t.Errorf("Delay(%d, %v) = %s, want %s", tc.n, tc.r, got, tc.want)
		}
	}
}
