package rotation_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

var update = flag.Bool("update", false, "rewrite golden traces")

const overlap = rotation.DefaultOverlap

// Each case scripts events against a three-node full mesh (a, b, c) and
// compares the machine's condensed outputs with testdata/<name>.trace.
// The first lines of every case start a rotation of a on demand.
var transitionCases = []struct {
	name   string
	script func(e *env)
}{
	{"forward_through_every_stage", func(e *env) { e.drive("") }},
	{"prepare_waits_for_the_pending_key_not_just_the_ack", func(e *env) {
		e.ack(rotation.StagePrepare, "", "a")
		e.tick(time.Second)
		e.pending("a", 2)
	}},
	{"prepare_ignores_a_pending_key_of_another_generation_or_node", func(e *env) {
		e.pending("a", 5)
		e.pending("b", 2)
		e.ack(rotation.StagePrepare, "", "a")
		e.tick(time.Second)
	}},
	{"prepare_timeout_tears_down_the_subject_only", func(e *env) {
		e.tick(overlap)
		e.ack(rotation.StageRollbackTeardown, "", "a")
	}},
	{"distribute_ack_error_tears_down_every_node", func(e *env) {
		e.drive(rotation.StageDistribute)
		e.ack(rotation.StageDistribute, "", "a", "c")
		e.ack(rotation.StageDistribute, "creating wg-rot: port 51821 in use", "b")
		e.ack(rotation.StageRollbackTeardown, "", "a", "b", "c")
	}},
	{"distribute_waits_for_both_sides_of_every_handshake", func(e *env) {
		e.drive(rotation.StageDistribute)
		e.ack(rotation.StageDistribute, "", "a", "b", "c")
		id, _ := e.m.Stage()
		e.handle(rotation.Confirmed{Node: "a", ID: id, Stage: rotation.StageDistribute, Peers: []string{"b", "c"}})
		e.handle(rotation.Confirmed{Node: "b", ID: id, Stage: rotation.StageDistribute, Peers: []string{"a"}})
		e.tick(time.Second) // c has not confirmed: still Distribute
		e.handle(rotation.Confirmed{Node: "c", ID: id, Stage: rotation.StageDistribute, Peers: []string{"a"}})
	}},
	{"confirmations_of_another_stage_do_not_count", func(e *env) {
		e.drive(rotation.StageDistribute)
		e.ack(rotation.StageDistribute, "", "a", "b", "c")
		e.confirmAll(rotation.StageSwitchToTemp)
		e.tick(time.Second)
	}},
	{"switch_to_temp_waits_for_settle_before_rekey", func(e *env) {
		e.drive(rotation.StageSwitchToTemp)
		e.ack(rotation.StageSwitchToTemp, "", "a", "b", "c")
		e.tick(rotation.DefaultSettle / 2)
		e.tick(rotation.DefaultSettle / 2)
	}},
	{"switch_to_temp_error_switches_back_then_tears_down", func(e *env) {
		e.drive(rotation.StageSwitchToTemp)
		e.ack(rotation.StageSwitchToTemp, "bpf: map write failed", "c")
		e.ack(rotation.StageRollbackSwitchBack, "", "a", "b", "c")
		e.tick(rotation.DefaultSettle)
		e.ack(rotation.StageRollbackTeardown, "", "a", "b", "c")
	}},
	{"rekey_reaches_the_peers_once_the_subject_did_it", func(e *env) {
		// A peer's new entry for the subject handshakes at once: it must
		// find the subject already on its new key.
		e.drive(rotation.StageRekey)
		e.tick(rotation.DefaultResend) // the subject has not acked: only it gets REKEY again
		e.ack(rotation.StageRekey, "", "a")
		e.ack(rotation.StageRekey, "", "b", "c")
		e.confirmAll(rotation.StageRekey)
	}},
	{"peer_never_confirms_rekey_full_rollback", func(e *env) {
		e.drive(rotation.StageRekey)
		e.ack(rotation.StageRekey, "", "a", "b", "c")
		id, _ := e.m.Stage()
		e.handle(rotation.Confirmed{Node: "a", ID: id, Stage: rotation.StageRekey, Peers: []string{"b", "c"}})
		e.handle(rotation.Confirmed{Node: "b", ID: id, Stage: rotation.StageRekey, Peers: []string{"a"}})
		e.tick(overlap)
		e.ack(rotation.StageRollbackSwitchToTemp, "", "a", "b", "c")
		e.tick(rotation.DefaultSettle)
		e.ack(rotation.StageRollbackRestore, "", "a", "b", "c")
		e.confirmAll(rotation.StageRollbackRestore)
		e.ack(rotation.StageRollbackSwitchBack, "", "a", "b", "c")
		e.tick(rotation.DefaultSettle)
		e.ack(rotation.StageRollbackTeardown, "", "a", "b", "c")
	}},
	{"rollback_steps_proceed_at_their_deadline_without_a_dead_node", func(e *env) {
		e.drive(rotation.StageSwitchBack)
		e.handle(rotation.Disconnected{Node: "c"})
		e.node("c").Connected = false
		e.tick(overlap) // SwitchBack times out: rollback
		for range 10 {
			if _, ok := e.m.Rotating(); !ok {
				break
			}
			_, st := e.m.Stage()
			e.ack(st, "", "a", "b")
			e.tick(overlap)
		}
	}},
	{"disconnect_and_reconnect_before_the_deadline_resends_and_goes_on", func(e *env) {
		e.drive(rotation.StageSwitchToTemp)
		e.ack(rotation.StageSwitchToTemp, "", "a", "b")
		e.handle(rotation.Disconnected{Node: "c"})
		e.tick(10 * time.Second) // no resend to a disconnected daemon
		e.handle(rotation.Connected{Node: "c", Capable: true})
		e.ack(rotation.StageSwitchToTemp, "", "c")
		e.tick(rotation.DefaultSettle)
	}},
	{"a_lost_command_is_sent_again", func(e *env) {
		e.drive(rotation.StageDistribute)
		e.tick(rotation.DefaultResend)
	}},
	{"a_peer_joining_before_retire_rolls_back", func(e *env) {
		e.drive(rotation.StageRekey)
		e.world.Nodes = append(e.world.Nodes, rotation.Node{Name: "d", Connected: true, Capable: true,
			Status: v1alpha1.VpbluNodeStatus{PublicKey: key("d", 1).String(), KeyGeneration: 1}})
		e.observe()
	}},
	{"a_peer_leaving_is_dropped_and_told_to_tear_down", func(e *env) {
		e.drive(rotation.StageDistribute)
		e.node("c").Status.PublicKey = "" // no key: no longer anyone's peer
		e.observe()
		e.ack(rotation.StageDistribute, "", "a", "b")
		e.confirmAll(rotation.StageDistribute)
	}},
	{"retire_never_rolls_back_and_ends_at_its_deadline", func(e *env) {
		e.drive(rotation.StageRetire)
		e.ack(rotation.StageRetire, "zeroizing: disk full", "b")
		e.ack(rotation.StageRetire, "", "a")
		e.tick(overlap)
	}},
	{"the_subject_deleted_mid_rotation_tears_down_its_peers", func(e *env) {
		e.drive(rotation.StageSwitchToTemp)
		e.world.Nodes = e.world.Nodes[1:]
		e.observe()
		e.ack(rotation.StageRollbackSwitchBack, "", "b", "c")
		e.tick(rotation.DefaultSettle)
		e.ack(rotation.StageRollbackTeardown, "", "b", "c")
	}},
	{"a_stray_report_gets_retire_when_committed_and_teardown_otherwise", func(e *env) {
		e.drive("")
		e.handle(rotation.Acked{Node: "b", ID: "a/2", Stage: rotation.StageSwitchBack})
		e.handle(rotation.Acked{Node: "c", ID: "a/3", Stage: rotation.StageDistribute})
		e.handle(rotation.Acked{Node: "c", ID: "a/3", Stage: rotation.StageDistribute}) // rate limited
		e.handle(rotation.Acked{Node: "c", ID: "a/2", Stage: rotation.StageRetire})     // finished: nothing
	}},
	{"a_restarted_peer_still_waiting_in_a_rolled_back_rotation_is_told_to_tear_down", func(e *env) {
		e.drive(rotation.StageDistribute)
		// Still waiting on its handshake: not done, so Distribute waits.
		e.handle(rotation.Acked{Node: "c", ID: "a/2", Stage: rotation.StageDistribute, InProgress: true})
		e.tick(overlap)
		e.ack(rotation.StageRollbackTeardown, "", "a", "b")
		e.tick(overlap)
		// c comes back journaling Distribute, not done: it ends its part.
		e.handle(rotation.Acked{Node: "c", ID: "a/2", Stage: rotation.StageDistribute, InProgress: true})
	}},
}

func TestTransitions(t *testing.T) {
	for _, c := range transitionCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "a", "b", "c")
			e.observe()
			e.request("a", "r1")
			c.script(e)
			goldenTrace(t, c.name, e.takeTrace())
		})
	}
}

// Leader changes at every stage: the new machine resumes from the API or
// rolls back, and finishes the rotation.
func TestLeaderChange(t *testing.T) {
	for _, stop := range []rotation.Stage{
		rotation.StagePrepare, rotation.StageDistribute, rotation.StageSwitchToTemp, rotation.StageRekey,
		rotation.StageSwitchBack, rotation.StageRetire, rotation.StageRollbackRestore,
	} {
		t.Run(string(stop), func(t *testing.T) {
			e := newEnv(t, "a", "b", "c")
			e.observe()
			e.request("a", "r1")
			if stop == rotation.StageRollbackRestore {
				e.drive(rotation.StageRekey)
				e.ack(rotation.StageRekey, "wgctrl: device busy", "b")
				e.drive(rotation.StageRollbackRestore)
			} else {
				e.drive(stop)
			}
			e.takeTrace()
			e.leaderChange()
			e.drive("")
			goldenTrace(t, "leader_change_at_"+string(stop), e.takeTrace())
			if st := e.node("a").Status; st.RotationPhase != v1alpha1.RotationIdle || st.PendingPublicKey != "" {
				t.Errorf("after the new leader finished: phase %q pending %q, want Idle and none", st.RotationPhase, st.PendingPublicKey)
			}
		})
	}
	t.Run("pending key lost from the API rolls back", func(t *testing.T) {
		e := newEnv(t, "a", "b", "c")
		e.observe()
		e.request("a", "r1")
		e.drive(rotation.StageRekey)
		e.node("a").Status.PendingPublicKey = ""
		e.takeTrace()
		e.leaderChange()
		goldenTrace(t, "leader_change_without_pending_key", e.takeTrace())
	})
	t.Run("two persisted rotations: the one further along resumes, the other ends", func(t *testing.T) {
		e := newEnv(t, "a", "b", "c")
		e.node("b").Status.RotationPhase = v1alpha1.RotationDistribute
		e.node("b").Status.PendingPublicKey = key("b", 2).String()
		e.node("c").Status.RotationPhase = v1alpha1.RotationRetire
		e.node("c").Status.PendingPublicKey = key("c", 2).String()
		e.observe()
		goldenTrace(t, "leader_change_with_two_rotations", e.takeTrace())
	})
}

func TestWaitsForEveryDaemon(t *testing.T) {
	e := newEnv(t, "a", "b", "c")
	e.node("c").Connected = false
	e.node("b").Capable = false
	e.observe()
	e.request("a", "r1")
	e.tick(time.Minute) // same reason: no second event
	e.node("b").Capable = true
	e.node("c").Connected = true
	e.observe()
	goldenTrace(t, "waits_for_every_daemon", e.takeTrace())
}

func TestOnDemandRequests(t *testing.T) {
	e := newEnv(t, "a", "b", "c")
	e.observe()
	e.request("b", "2026-03-01T03:00:00Z")
	e.drive("")
	e.observe() // the request is recorded in lastRotateRequest: no second rotation
	e.request("b", "again")
	e.drive(rotation.StageDistribute)
	e.ack(rotation.StageDistribute, "boom", "a")
	e.drive("")
	e.observe() // a failed request is not retried by this leader
	e.tick(time.Hour)
	goldenTrace(t, "on_demand_requests", e.takeTrace())
}

func policy(name, schedule string) v1alpha1.RotationPolicy {
	return v1alpha1.RotationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec:       v1alpha1.RotationPolicySpec{Schedule: v1alpha1.CronSchedule(schedule), OverlapWindow: metav1.Duration{Duration: 20 * time.Second}},
	}
}

func TestCronRounds(t *testing.T) {
	e := newEnv(t, "a", "b", "c")
	p := policy("weekly", "0 3 * * *")
	p.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "default"}}
	e.node("c").Labels = map[string]string{"pool": "other"}
	bad := policy("bad", "61 * * * *")
	e.world.Policies = []v1alpha1.RotationPolicy{p, bad}
	e.observe() // next run computed from the injected time
	e.tick(time.Minute)
	e.drive("")
	e.drive("")
	e.tick(time.Hour) // round over: c is not selected
	goldenTrace(t, "cron_rounds", e.takeTrace())
}

func TestSuspendSkipsRoundsButFinishesTheRotation(t *testing.T) {
	e := newEnv(t, "a", "b")
	p := policy("daily", "@daily")
	e.world.Policies = []v1alpha1.RotationPolicy{p}
	e.observe()
	e.tick(24 * time.Hour) // due: a round starts
	e.drive(rotation.StageRekey)
	e.world.Policies[0].Spec.Suspend = true
	e.observe()
	e.drive("") // the rotation in progress finishes, b does not start
	e.tick(24 * time.Hour)
	goldenTrace(t, "suspend", e.takeTrace())
}

func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 3, 1, 2, 59, 30, 0, time.UTC) // a Sunday
	cases := []struct {
		spec, next string
		bad        bool
	}{
		{spec: "0 3 * * *", next: "2026-03-01 03:00:00"},
		{spec: "*/15 * * * *", next: "2026-03-01 03:00:00"},
		{spec: "0 3 * * 0", next: "2026-03-01 03:00:00"},
		{spec: "0 3 * * mon", next: "2026-03-02 03:00:00"},
		{spec: "@hourly", next: "2026-03-01 03:00:00"},
		{spec: "@weekly", next: "2026-03-08 00:00:00"},
		{spec: "30 2 1 */2 *", next: "2026-05-01 02:30:00"},
		{spec: "61 * * * *", bad: true},
		{spec: "* * * *", bad: true},
		{spec: "@every 5m", bad: true},
		{spec: "TZ=Europe/Paris 0 3 * * *", bad: true},
		{spec: "", bad: true},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			s, err := rotation.ParseSchedule(c.spec)
			if c.bad {
				if err == nil {
					t.Fatalf("parsed; want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rotation.NextRun(s, from).Format(time.DateTime); got != c.next {
				t.Errorf("next run %s, want %s", got, c.next)
			}
		})
	}
}

func TestTransitionsAndFinishedCarryMetricLabels(t *testing.T) {
	e := newEnv(t, "a", "b")
	e.observe()
	var trans []string
	var fin []rotation.Finished
	collect := func(out rotation.Output) {
		for _, tr := range out.Transitions {
			trans = append(trans, string(tr.From)+">"+string(tr.To))
		}
		fin = append(fin, out.Finished...)
	}
	e.world.Nodes[0].RotateRequest = "x"
	collect(e.observe())
	collect(e.m.Handle(e.now, rotation.KeyReported{Node: "a", Key: pendingKey("a", 2)}))
	collect(e.m.Handle(e.now, rotation.Acked{Node: "a", ID: "a/2", Stage: rotation.StagePrepare}))
	e.now = e.now.Add(overlap)
	collect(e.m.Handle(e.now, rotation.Tick{}))
	e.now = e.now.Add(overlap)
	collect(e.m.Handle(e.now, rotation.Tick{}))
	want := []string{"Idle>Prepare", "Prepare>Distribute", "Distribute>RollbackTeardown", "RollbackTeardown>Idle"}
	if diff := cmp.Diff(want, trans); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	if len(fin) != 1 || fin[0].Outcome != rotation.RolledBack || fin[0].Duration != 2*overlap {
		t.Errorf("finished %+v, want one rolled_back after %s", fin, 2*overlap)
	}
}

func goldenTrace(t *testing.T, name string, lines []string) {
	t.Helper()
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", name+".trace")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}
