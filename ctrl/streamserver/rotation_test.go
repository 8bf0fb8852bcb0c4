package streamserver_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

func rotationCmd(id string) *meshpb.RotationCommand {
	return &meshpb.RotationCommand{Id: id, Subject: "a", NewKeyGeneration: 2, Phase: meshpb.RotationPhase_ROTATION_PHASE_PREPARE}
}

func TestRotationCommandsFollowAPendingSyncStateAndMoveTheDeltaBase(t *testing.T) {
	// The node has no desired state yet: its SyncState stays pending, and
	// the rotation commands must wait for it rather than be folded into it
	// or sent under an older generation the daemon would drop as stale.
	state := newFakeState(1)
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state, RetryBackoff: 50 * time.Millisecond})
	a := h.agent(t, "a")
	eventually(t, "connected", func() bool { return h.obs.has("connected a") })
	for _, id := range []string{"a/2 first", "a/2 second"} {
		if !h.srv.SendRotation("a", rotationCmd(id)) {
			t.Fatalf("SendRotation(%s) dropped a command for a connected node", id)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if snap := a.Snapshot(); len(snap.Log) != 0 {
		t.Fatalf("commands sent before the pending SyncState: %v", kinds(snap.Log))
	}
	state.addNode("a")
	snap := waitFor(t, a, "the sync and both rotations", func(s agenttest.Snapshot) bool { return len(s.Log) >= 3 })
	g := state.addPeer(h.srv, "b", "a")
	snap = waitFor(t, a, "the delta", func(s agenttest.Snapshot) bool { return s.Applied == g })
	sync, first, second := snap.Log[0].Gen, snap.Log[1].Gen, snap.Log[2].Gen
	want := []string{
		"sync " + sync.String(),
		"rotation " + first.String() + " a/2 first",
		"rotation " + second.String() + " a/2 second",
		"delta " + g.String() + " base " + second.String(),
	}
	if d := cmp.Diff(want, kinds(snap.Log)); d != "" {
		t.Errorf("a's commands (-want +got):\n%s", d)
	}
	if !sync.Less(first) || !first.Less(second) {
		t.Errorf("generations %v, %v, %v do not grow", sync, first, second)
	}
	eventually(t, "a up to date at the delta", func() bool {
		s := h.srv.NodeSync("a")
		return s.UpToDate && s.Applied == g
	})
}

func TestDeltasPushedBeforeARotationIsStampedAreSentBeforeIt(t *testing.T) {
	state := newFakeState(1, "a")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state})
	a := h.agent(t, "a")
	first := waitFor(t, a, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	// While a change is being pushed (its lock held), the sender comes to
	// stamp the rotation and waits; the deltas pushed meanwhile carry
	// older generations and must reach the daemon before the rotation.
	state.mu.Lock()
	h.srv.SendRotation("a", rotationCmd("a/2"))
	time.Sleep(100 * time.Millisecond)
	g1 := state.addPeerLocked(h.srv, "b", "a")
	g2 := state.addPeerLocked(h.srv, "c", "a")
	state.mu.Unlock()
	snap := waitFor(t, a, "the deltas and the rotation", func(s agenttest.Snapshot) bool { return len(s.Log) == 4 })
	rot := snap.Log[3].Gen
	want := []string{
		"sync " + first.Applied.String(),
		"delta " + g1.String() + " base " + first.Applied.String(),
		"delta " + g2.String() + " base " + g1.String(),
		"rotation " + rot.String() + " a/2",
	}
	if d := cmp.Diff(want, kinds(snap.Log)); d != "" {
		t.Errorf("a's commands (-want +got):\n%s", d)
	}
	if !g2.Less(rot) {
		t.Errorf("rotation stamped %v, not after the deltas' %v", rot, g2)
	}
}

func TestRotationCommandsInterleavedWithDeltasAndResyncsKeepGenerationsGrowing(t *testing.T) {
	state := newFakeState(1, "a")
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: state})
	a := h.agent(t, "a")
	waitFor(t, a, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })

	const deltas, rotations = 200, 60
	var wg sync.WaitGroup
	var last generation.Gen
	wg.Go(func() {
		for i := range deltas {
			last = state.addPeer(h.srv, fmt.Sprintf("p%03d", i), "a")
		}
	})
	wg.Go(func() {
		for i := range rotations {
			h.srv.SendRotation("a", rotationCmd(fmt.Sprintf("r%02d", i)))
			if i%20 == 0 {
				h.srv.Resync("a", "test")
			}
		}
	})
	wg.Wait()
	snap := waitFor(t, a, "every command", func(s agenttest.Snapshot) bool {
		n := 0
		for _, r := range s.Log {
			if r.Kind == "rotation" {
				n++
			}
		}
		return n == rotations && !s.Applied.Less(last)
	})
	var ids []string
	var prev generation.Gen
	for i, r := range snap.Log {
		if r.Ack != meshpb.AckCode_ACK_OK {
			t.Errorf("command %d (%s %v) acked %v", i, r.Kind, r.Gen, r.Ack)
		}
		if !prev.Less(r.Gen) {
			t.Errorf("command %d (%s) has generation %v after %v", i, r.Kind, r.Gen, prev)
		}
		if r.Kind == "delta" && r.Base != prev {
			t.Errorf("delta %v has base %v, want the previous command's %v", r.Gen, r.Base, prev)
		}
		if r.Kind == "rotation" {
			ids = append(ids, r.Msg.GetRotation().GetId())
		}
		prev = r.Gen
	}
	var want []string
	for i := range rotations {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	if d := cmp.Diff(want, ids); d != "" {
		t.Errorf("rotation commands out of order or lost (-want +got):\n%s", d)
	}
	if d := cmp.Diff(stateOf(t, state, "a"), snap.State); d != "" {
		t.Errorf("a runs (-desired +got):\n%s", d)
	}
}

func TestRotationReportsReachTheObserver(t *testing.T) {
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: newFakeState(1, "a")})
	a := h.agent(t, "a")
	waitFor(t, a, "first sync", func(s agenttest.Snapshot) bool { return !s.Applied.IsZero() })
	report := &meshpb.RotationReport{Id: "a/2", Subject: "a", Phase: meshpb.RotationPhase_ROTATION_PHASE_PREPARE, Done: true}
	if err := a.Send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Rotation{Rotation: report}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the report observed", func() bool { return h.obs.has("rotation a id=a/2 done=true") })
}

func TestSendRotationToANodeWithoutSessionDropsIt(t *testing.T) {
	h := startServer(t, streamserver.Options{Leader: newLeader(true), State: newFakeState(1, "a")})
	if h.srv.SendRotation("a", rotationCmd("a/2")) {
		t.Error("SendRotation queued a command for a node that is not connected")
	}
}

func TestHasCapability(t *testing.T) {
	h := &meshpb.Hello{Capabilities: []string{"ipv6", "rotation/v1"}}
	if !streamserver.HasCapability(h, "rotation/v1") || streamserver.HasCapability(h, "rotation/v2") || streamserver.HasCapability(nil, "ipv6") {
		t.Error("HasCapability does not match the hello's list exactly")
	}
}
