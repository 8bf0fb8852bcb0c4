package rotation_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

func TestEveryStageRoundTripsOverTheWire(t *testing.T) {
	for _, s := range []rotation.Stage{
		rotation.StagePrepare, rotation.StageDistribute, rotation.StageSwitchToTemp, rotation.StageRekey,
		rotation.StageSwitchBack, rotation.StageRetire, rotation.StageRollbackSwitchToTemp,
		rotation.StageRollbackRestore, rotation.StageRollbackSwitchBack, rotation.StageRollbackTeardown,
	} {
		p, st := s.Wire()
		got, ok := rotation.StageOf(p, st)
		if !ok || got != s {
			t.Errorf("%s -> (%s, %s) -> %s, %t", s, p, st, got, ok)
		}
	}
	if got, ok := rotation.StageOf(meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED); !ok || got != rotation.StageRollbackTeardown {
		t.Errorf("ROLLBACK without a step is %s, %t; want RollbackTeardown", got, ok)
	}
	if _, ok := rotation.StageOf(meshpb.RotationPhase_ROTATION_PHASE_PREPARE, meshpb.RotationStep_ROTATION_STEP_REKEY); ok {
		t.Error("PREPARE/REKEY mapped to a stage")
	}
}

func TestParseID(t *testing.T) {
	cases := []struct {
		id   string
		node string
		gen  uint64
		ok   bool
	}{
		{"node-a/2", "node-a", 2, true},
		{"a.b.c/17", "a.b.c", 17, true},
		{"node-a", "", 0, false},
		{"/2", "", 0, false},
		{"node-a/0", "", 0, false},
		{"node-a/x", "", 0, false},
	}
	for _, c := range cases {
		node, gen, ok := rotation.ParseID(c.id)
		if node != c.node || gen != c.gen || ok != c.ok {
			t.Errorf("ParseID(%q) = %q, %d, %t; want %q, %d, %t", c.id, node, gen, ok, c.node, c.gen, c.ok)
		}
	}
}

func TestFromReport(t *testing.T) {
	cases := []struct {
		name string
		r    *meshpb.RotationReport
		want []rotation.Event
	}{
		{"done with confirmations is an ack and a confirmation",
			&meshpb.RotationReport{Id: "a/2", Phase: meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE, Done: true, Confirmed: []string{"b"}, NewKeyGeneration: 2},
			[]rotation.Event{
				rotation.Acked{Node: "x", ID: "a/2", Stage: rotation.StageDistribute, NewGeneration: 2},
				rotation.Confirmed{Node: "x", ID: "a/2", Stage: rotation.StageDistribute, Peers: []string{"b"}},
			}},
		{"an error is a failed ack",
			&meshpb.RotationReport{Id: "a/2", Phase: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, Step: meshpb.RotationStep_ROTATION_STEP_REKEY, Error: "boom"},
			[]rotation.Event{rotation.Acked{Node: "x", ID: "a/2", Stage: rotation.StageRekey, Err: "boom"}}},
		{"not done and nothing confirmed is a stage in progress",
			&meshpb.RotationReport{Id: "a/2", Phase: meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE},
			[]rotation.Event{rotation.Acked{Node: "x", ID: "a/2", Stage: rotation.StageDistribute, InProgress: true}}},
		{"an unknown stage is nothing",
			&meshpb.RotationReport{Id: "a/2", Phase: meshpb.RotationPhase_ROTATION_PHASE_PREPARE, Step: meshpb.RotationStep_ROTATION_STEP_REKEY, Done: true}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, rotation.FromReport("x", c.r)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWakeAtIsTheNextDeadlineSettleOrResend(t *testing.T) {
	e := newEnv(t, "a", "b")
	e.observe()
	e.world.Nodes[0].RotateRequest = "x"
	out := e.observe()
	if want := e.now.Add(rotation.DefaultResend); !out.WakeAt.Equal(want) {
		t.Errorf("after sending PREPARE: wake at %s, want the resend at %s", out.WakeAt, want)
	}
	e.drive(rotation.StageSwitchToTemp)
	id, _ := e.m.Stage()
	e.handle(rotation.Acked{Node: "a", ID: id, Stage: rotation.StageSwitchToTemp})
	out = e.handle(rotation.Acked{Node: "b", ID: id, Stage: rotation.StageSwitchToTemp})
	if want := e.now.Add(rotation.DefaultSettle); !out.WakeAt.Equal(want) {
		t.Errorf("settling: wake at %s, want %s", out.WakeAt, want)
	}
}
