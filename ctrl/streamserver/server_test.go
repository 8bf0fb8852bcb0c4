package streamserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/metrics/metricstest"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

func TestStandbyEndsStreamsWithNotLeader(t *testing.T) {
	h := startServer(t, streamserver.Options{Leader: newLeader(false), State: newFakeState(1, "a")})
	a := h.agent(t, "a")
	snap := waitFor(t, a, "a refused stream", func(s agenttest.Snapshot) bool { return len(s.Ends) > 0 })
	st := status.Convert(snap.Ends[0])
	if st.Code() != codes.Unavailable || st.Message() != streamserver.NotLeaderMessage {
		t.Errorf("stream ended with %v %q, want Unavailable %q", st.Code(), st.Message(), streamserver.NotLeaderMessage)
	}
	if snap.Connects != 0 {
		t.Errorf("standby delivered %d streams", snap.Connects)
	}
	if got := metricstest.Value(h.metrics.AuthRefusals); got != 0 {
		t.Errorf("a standby's answer counted as %v refusals", got)
	}
}

func TestDeltasFollowTheSyncStateInOrder(t *testing.T) {
	state := newFakeState(3, "a", "b")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state})
	a, b := h.agent(t, "a"), h.agent(t, "b")
	for _, ag := range []*agenttest.Agent{a, b} {
		waitFor(t, ag, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	}
	g1 := state.addPeer(h.srv, "c", "a", "b")
	g2 := state.addPeer(h.srv, "d", "a")
	snap := waitFor(t, a, "both deltas", func(s agenttest.Snapshot) bool { return s.Applied == g2 })
	syncGen := snap.Log[0].Gen
	want := []string{
		"sync " + syncGen.String(),
		"delta " + g1.String() + " base " + syncGen.String(),
		"delta " + g2.String() + " base " + g1.String(),
	}
	if d := cmp.Diff(want, kinds(snap.Log)); d != "" {
		t.Errorf("a's commands (-want +got):\n%s", d)
	}
	if d := cmp.Diff(stateOf(t, state, "a"), snap.State); d != "" {
		t.Errorf("a runs (-desired +got):\n%s", d)
	}
	// b was not concerned by the second change and got no command for it.
	snapB := waitFor(t, b, "first delta", func(s agenttest.Snapshot) bool { return s.Applied == g1 })
	if got := len(snapB.Log); got != 2 {
		t.Errorf("b got %d commands %v, want sync and one delta", got, kinds(snapB.Log))
	}
	eventually(t, "acks counted as push latency", func() bool { return metricstest.Value(h.metrics.PushLatency) >= 5 })
	if got := metricstest.Value(h.metrics.ConnectedDaemons); got != 2 {
		t.Errorf("connected daemons = %v, want 2", got)
	}
	if s := h.srv.NodeSync("a"); !s.UpToDate || s.Applied != g2 {
		t.Errorf("NodeSync(a) = %+v, want up to date at %v", s, g2)
	}
}

// stateOf renders what the fake state wants node to run, as agenttest
// renders what it runs.
func stateOf(t *testing.T, f *fakeState, node string) string {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	return agenttest.Render(f.nodes[node])
}

func TestSlowDaemonDelaysNobodyAndCatchesUpWithOneSync(t *testing.T) {
	state := newFakeState(1, "slow", "fast")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state, QueueSize: 4})
	// A fixed flow-control window: the stuck daemon's transport takes
	// 64 KiB and no more.
	slow := h.agent(t, "slow", func(o *agenttest.Options) {
		o.DialOptions = []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)}
	})
	fast := h.agent(t, "fast")
	for _, ag := range []*agenttest.Agent{slow, fast} {
		waitFor(t, ag, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	}
	slow.Pause()
	const changes = 1000
	var slowest time.Duration
	var last generation.Gen
	for i := range changes {
		start := time.Now()
		// About 500 bytes per delta: the stuck daemon's window fills after
		// some 130 of them, then its queue, then the queue overflows.
		last = state.addPeer(h.srv, fmt.Sprintf("p%04d-%s", i, strings.Repeat("x", 200)), "slow", "fast")
		waitFor(t, fast, "the change", func(s agenttest.Snapshot) bool { return s.Applied == last })
		slowest = max(slowest, time.Since(start))
	}
	if slowest > time.Second {
		t.Errorf("the fast daemon waited up to %v for a change while the other was stuck", slowest)
	}
	if got := metricstest.Value(h.metrics.QueueOverflows); got < 1 {
		t.Fatalf("the stuck daemon's queue never overflowed (%v)", got)
	}
	if n := len(fast.Snapshot().Log); n != changes+1 {
		t.Errorf("fast daemon got %d commands, want the sync and %d deltas", n, changes)
	}
	slow.Resume()
	snap := waitFor(t, slow, "catching up", func(s agenttest.Snapshot) bool { return !s.Applied.Less(last) })
	if d := cmp.Diff(stateOf(t, state, "slow"), snap.State); d != "" {
		t.Errorf("slow daemon runs (-desired +got):\n%s", d)
	}
	var syncs int
	for _, r := range snap.Log {
		if r.Kind == "sync" {
			syncs++
		}
	}
	if syncs < 2 || len(snap.Log) > changes/2 {
		t.Errorf("slow daemon got %d commands with %d SyncStates; want the overflow collapsed into few SyncStates", len(snap.Log), syncs)
	}
	eventually(t, "empty queues", func() bool { return metricstest.Value(h.metrics.QueueDepth) == 0 })
}

func TestBadAcksBringASyncState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   meshpb.AckCode
		reason string
	}{
		{"a gap", meshpb.AckCode_ACK_GAP, "ack_gap"},
		{"a failure", meshpb.AckCode_ACK_FAILED, "ack_error"},
		{"full maps", meshpb.AckCode_ACK_CAPACITY, "ack_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := newFakeState(1, "a")
			h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state, RetryBackoff: 50 * time.Millisecond})
			var refuse atomic.Bool
			a := h.agent(t, "a", func(o *agenttest.Options) {
				o.Respond = func(m *meshpb.ControllerMessage) (meshpb.AckCode, bool) {
					if m.GetDelta() != nil && refuse.CompareAndSwap(true, false) {
						return tc.code, true
					}
					return 0, false
				}
			})
			waitFor(t, a, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
			refuse.Store(true)
			g := state.addPeer(h.srv, "b", "a")
			snap := waitFor(t, a, "a sync after the bad ack", func(s agenttest.Snapshot) bool { return g.Less(s.Applied) })
			got := kinds(snap.Log)
			if len(got) != 3 || !strings.HasPrefix(got[2], "sync ") || !strings.Contains(got[1], tc.code.String()) {
				t.Errorf("commands = %v, want sync, refused delta, sync", got)
			}
			if d := cmp.Diff(stateOf(t, state, "a"), snap.State); d != "" {
				t.Errorf("a runs (-desired +got):\n%s", d)
			}
			if got := metricstest.Value(h.metrics.Resyncs.WithLabelValues(tc.reason)); got != 1 {
				t.Errorf("resyncs{reason=%s} = %v, want 1", tc.reason, got)
			}
		})
	}
}

func TestReconnectGetsAFreshSyncState(t *testing.T) {
	state := newFakeState(1, "a")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state})
	a := h.agent(t, "a")
	first := waitFor(t, a, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	a.Stop()
	eventually(t, "disconnect seen", func() bool { return h.obs.has("disconnected a") })
	// The daemon restarts keeping what it applied (its Hello says so): the
	// SyncState it gets must be newer, or it would ignore it.
	b := h.agent(t, "a", func(o *agenttest.Options) { o.Applied = first.Applied })
	snap := waitFor(t, b, "sync after reconnect", func(s agenttest.Snapshot) bool { return len(s.Log) > 0 })
	if got := kinds(snap.Log); len(got) != 1 || snap.Log[0].Kind != "sync" || !first.Applied.Less(snap.Log[0].Gen) {
		t.Errorf("after reconnect got %v, want one applied sync later than %v", got, first.Applied)
	}
}

func TestSecondStreamOfANodeReplacesTheFirst(t *testing.T) {
	state := newFakeState(1, "a")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state})
	first := h.agent(t, "a", func(o *agenttest.Options) { o.RetryInterval = time.Hour })
	waitFor(t, first, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	second := h.agent(t, "a")
	waitFor(t, second, "second sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	snap := waitFor(t, first, "first stream ended", func(s agenttest.Snapshot) bool { return len(s.Ends) > 0 })
	if c := status.Code(snap.Ends[0]); c != codes.Aborted {
		t.Errorf("replaced stream ended with %v, want Aborted", c)
	}
	if got := metricstest.Value(h.metrics.ConnectedDaemons); got != 1 {
		t.Errorf("connected daemons = %v, want 1", got)
	}
	g := state.addPeer(h.srv, "b", "a")
	waitFor(t, second, "delta on the new stream", func(s agenttest.Snapshot) bool { return s.Applied == g })
}

func TestPeriodicSyncState(t *testing.T) {
	state := newFakeState(1, "a")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state, ResyncPeriod: 200 * time.Millisecond})
	a := h.agent(t, "a")
	waitFor(t, a, "three syncs", func(s agenttest.Snapshot) bool { return len(s.Log) >= 3 })
	if got := metricstest.Value(h.metrics.Resyncs.WithLabelValues("periodic")); got < 2 {
		t.Errorf("periodic resyncs = %v, want ≥ 2", got)
	}
}

func TestNodeWithoutStateWaitsForResync(t *testing.T) {
	state := newFakeState(1)
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state, RetryBackoff: time.Hour})
	a := h.agent(t, "late")
	eventually(t, "connected", func() bool { return h.obs.has("connected late") })
	time.Sleep(100 * time.Millisecond)
	if snap := a.Snapshot(); len(snap.Log) != 0 {
		t.Fatalf("a node without desired state got %v", kinds(snap.Log))
	}
	state.addNode("late")
	h.srv.Resync("late", "node_added")
	waitFor(t, a, "sync once the node exists", func(s agenttest.Snapshot) bool { return len(s.Log) >= 1 })
}

func TestDaemonAheadOfTheControllerMovesTheEpoch(t *testing.T) {
	// After a Lease reset the controller's epoch could fall behind what
	// daemons run; the first Hello that shows it moves the epoch past it.
	state := newFakeState(2, "a")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state})
	ahead := generation.Gen{Epoch: 9, Seq: 4}
	a := h.agent(t, "a", func(o *agenttest.Options) { o.Applied = ahead })
	snap := waitFor(t, a, "applied sync", func(s agenttest.Snapshot) bool { return ahead.Less(s.Applied) })
	if got := kinds(snap.Log); len(got) != 1 {
		t.Errorf("commands = %v, want one applied sync", got)
	}
	if snap.Applied.Epoch != 10 {
		t.Errorf("applied %v, want epoch 10", snap.Applied)
	}
}

func TestHelloIsRequired(t *testing.T) {
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: newFakeState(1, "a"), HelloTimeout: 200 * time.Millisecond})
	conn, err := agenttest.Dial(h.addr, agenttest.Options{RootCAs: h.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name string
		send *meshpb.AgentMessage
		want codes.Code
	}{
		{"silence", nil, codes.InvalidArgument},
		{"an ack first", &meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Ack{Ack: &meshpb.Ack{}}}, codes.InvalidArgument},
		{"a hello without node", &meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Hello{Hello: &meshpb.Hello{}}}, codes.InvalidArgument},
		{"a short key", &meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Hello{Hello: &meshpb.Hello{Node: "a", Key: &meshpb.KeyReport{PublicKey: []byte{1}}}}}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stream, err := agenttest.OpenStream(ctx, conn, "token-a")
			if err != nil {
				t.Fatal(err)
			}
			if tc.send != nil {
				if err := stream.Send(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			_, err = stream.Recv()
			if status.Code(err) != tc.want {
				t.Errorf("stream ended with %v, want %v", err, tc.want)
			}
		})
	}
	if got := metricstest.Value(h.metrics.AuthRefusals.WithLabelValues("bad_hello")); got != 4 {
		t.Errorf("bad_hello refusals = %v, want 4", got)
	}
}
