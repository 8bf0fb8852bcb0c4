package rotation_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/rotation/rotationtest"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

const (
	prepare    = meshpb.RotationPhase_ROTATION_PHASE_PREPARE
	distribute = meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE
	activate   = meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE
	retire     = meshpb.RotationPhase_ROTATION_PHASE_RETIRE
	rollback   = meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK

	noStep       = meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED
	switchToTemp = meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP
	rekey        = meshpb.RotationStep_ROTATION_STEP_REKEY
	switchBack   = meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK
	restore      = meshpb.RotationStep_ROTATION_STEP_RESTORE
	teardown     = meshpb.RotationStep_ROTATION_STEP_TEARDOWN
)

// cluster is the three test nodes.
type cluster map[string]*node

func newCluster(t *testing.T, keepalive uint16) cluster {
	c := cluster{}
	for _, n := range nodeNames {
		c[n] = newNode(t, n, keepalive)
	}
	return c
}

// send delivers one command to the named nodes, in order, and returns a
// transcript; every command must succeed.
func (c cluster) send(t *testing.T, phase meshpb.RotationPhase, step meshpb.RotationStep, nodes ...string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range nodes {
		n := c[name]
		res, err := n.exec.Handle(cmdFor(name, phase, step))
		if err != nil {
			t.Fatalf("%s %s: %v", name, rotation.Stage{Phase: phase, Step: step}, err)
		}
		fmt.Fprintf(&b, "## %s <- %s\n%s", name, rotation.Stage{Phase: phase, Step: step}, stepsText(res.Steps))
		fmt.Fprintf(&b, "report: %s\n", reportText(res.Report))
		for _, k := range res.Keys {
			fmt.Fprintf(&b, "key report: generation %d %s\n", k.GetGeneration(), k.GetState())
		}
	}
	return b.String()
}

// handshake completes, now, every handshake the nodes' current stage
// waits on.
func (c cluster) handshake(t *testing.T, iface string) {
	t.Helper()
	a := c["a"]
	for _, p := range nodeNames[1:] {
		if err := a.host.Handshake(iface, pubKey(p, 1), a.clock.t); err != nil {
			t.Fatal(err)
		}
		o := c[p].exec.Overlay()
		key := o.NewKey
		if iface == wg.MeshInterface && o.MeshPeerKey != o.NewKey {
			key = o.OldKey
		}
		if err := c[p].host.Handshake(iface, key, c[p].clock.t); err != nil {
			t.Fatal(err)
		}
	}
}

func (c cluster) reports(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, n := range nodeNames {
		r, err := c[n].exec.Report()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s awaiting=%t\n", n, reportText(r), c[n].exec.Awaiting())
	}
	return b.String()
}

func (c cluster) state(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "==== %s\n%s", n, c[n].render())
	}
	return b.String()
}

// forward runs the controller's forward sequence up to and including
// stop, writing a transcript.
func (c cluster) forward(t *testing.T, b *strings.Builder, stop rotation.Stage) {
	t.Helper()
	all := nodeNames
	type stage struct {
		phase meshpb.RotationPhase
		step  meshpb.RotationStep
		nodes []string
		after func()
	}
	stages := []stage{
		{prepare, noStep, []string{"a"}, nil},
		{distribute, noStep, all, func() {
			b.WriteString("-- before handshakes\n" + c.reports(t))
			c.handshake(t, wg.RotationInterface)
			b.WriteString("-- after handshakes\n" + c.reports(t))
		}},
		{activate, switchToTemp, all, nil},
		{activate, rekey, all, func() {
			b.WriteString("-- before handshakes\n" + c.reports(t))
			c.handshake(t, wg.MeshInterface)
			b.WriteString("-- after handshakes\n" + c.reports(t))
		}},
		{activate, switchBack, all, nil},
		{retire, noStep, all, nil},
	}
	for _, s := range stages {
		b.WriteString(c.send(t, s.phase, s.step, s.nodes...))
		if s.after != nil {
			s.after()
		}
		b.WriteString(c.state("a", "b"))
		if (rotation.Stage{Phase: s.phase, Step: s.step}) == stop {
			return
		}
	}
}

func TestForwardRotationGolden(t *testing.T) {
	c := newCluster(t, 0)
	var b strings.Builder
	b.WriteString("==== initial\n" + c.state("a", "b"))
	c.forward(t, &b, rotation.Stage{Phase: retire})
	golden(t, "forward.golden", b.String())

	// The controller's commit reaches the peers' desired state after
	// RETIRE: nothing changes on the wire, and the supersession goes.
	for _, p := range nodeNames[1:] {
		before := c[p].host.Render()
		st := stateOf(t, p, map[string]int{"a": 2}, 0)
		if err := c[p].host.SetState(st); err != nil {
			t.Fatal(err)
		}
		if err := c[p].exec.Prune(st); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, c[p].host.Render()); diff != "" {
			t.Errorf("%s: the controller's new key changed the node (-before +after):\n%s", p, diff)
		}
		if got := c[p].exec.Overlay().Supersede; len(got) != 0 {
			t.Errorf("%s: supersession kept after the desired state caught up: %v", p, got)
		}
	}
	if _, ok := c["a"].store.Previous(); ok {
		t.Error("subject kept its old key after RETIRE")
	}
}

// Every command sent again, and every daemon restart, changes nothing.
func TestCommandsAreIdempotentAndSurviveRestarts(t *testing.T) {
	c := newCluster(t, 25)
	stages := []rotation.Stage{
		{Phase: prepare}, {Phase: distribute}, {Phase: activate, Step: switchToTemp},
		{Phase: activate, Step: rekey}, {Phase: activate, Step: switchBack}, {Phase: retire},
	}
	for _, s := range stages {
		nodes := nodeNames
		if s.Phase == prepare {
			nodes = []string{"a"}
		}
		c.send(t, s.Phase, s.Step, nodes...)
		for _, name := range nodes {
			n := c[name]
			before := n.render()
			res, err := n.exec.Handle(cmdFor(name, s.Phase, s.Step))
			if err != nil {
				t.Fatalf("%s %s again: %v", name, s, err)
			}
			for _, st := range res.Steps {
				if st.Kind != rotation.StepJournal && st.Kind != rotation.StepDone && st.Kind != rotation.StepStageKey {
					t.Errorf("%s %s again planned %s", name, s, st)
				}
			}
			if diff := cmp.Diff(before, n.render()); diff != "" {
				t.Errorf("%s %s again changed the node (-before +after):\n%s", name, s, diff)
			}
			n.exec = n.restart(t)
			if err := n.host.SetState(stateOf(t, name, nil, 25)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, n.render()); diff != "" {
				t.Errorf("%s restarted after %s changed the node (-before +after):\n%s", name, s, diff)
			}
		}
	}
}

// The rollback sequences ctrl/rotation sends from each stage return every
// node to what it ran before the rotation.
func TestRollbackFromEveryStage(t *testing.T) {
	full := []rotation.Stage{{Phase: rollback, Step: switchToTemp}, {Phase: rollback, Step: restore},
		{Phase: rollback, Step: switchBack}, {Phase: rollback, Step: teardown}}
	cases := []struct {
		name  string
		from  rotation.Stage
		seq   []rotation.Stage
		nodes []string
	}{
		{"after prepare the subject zeroizes its staged key", rotation.Stage{Phase: prepare},
			[]rotation.Stage{{Phase: rollback, Step: teardown}}, []string{"a"}},
		{"after distribute wg-rot goes", rotation.Stage{Phase: distribute},
			[]rotation.Stage{{Phase: rollback, Step: teardown}}, nodeNames},
		{"after switch to temp traffic returns before wg-rot goes", rotation.Stage{Phase: activate, Step: switchToTemp},
			[]rotation.Stage{{Phase: rollback, Step: switchBack}, {Phase: rollback, Step: teardown}}, nodeNames},
		{"after rekey wg-mesh takes the old keys back under wg-rot", rotation.Stage{Phase: activate, Step: rekey}, full, nodeNames},
		{"after switch back traffic moves to wg-rot for the restore", rotation.Stage{Phase: activate, Step: switchBack}, full, nodeNames},
		{"an unspecified rollback step tears down at once", rotation.Stage{Phase: activate, Step: rekey},
			[]rotation.Stage{{Phase: rollback}}, nodeNames},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 0)
			initial := map[string]string{}
			for _, n := range nodeNames {
				initial[n] = withoutSessions(c[n].host.Render())
			}
			var b strings.Builder
			c.forward(t, &b, tc.from)
			for _, s := range tc.seq {
				c.send(t, s.Phase, s.Step, tc.nodes...)
			}
			for _, n := range nodeNames {
				if diff := cmp.Diff(initial[n], withoutSessions(c[n].host.Render())); diff != "" {
					t.Errorf("%s after rollback (-before rotation +after):\n%s", n, diff)
				}
				if o := c[n].exec.Overlay(); o.Active() {
					t.Errorf("%s still journals %s", n, o.ID)
				}
			}
			if got := c["a"].keySlots(); got != "active 1" {
				t.Errorf("subject keys after rollback: %s, want active 1", got)
			}
		})
	}
}

func TestRollbackTranscriptGolden(t *testing.T) {
	c := newCluster(t, 0)
	var b strings.Builder
	c.forward(t, &b, rotation.Stage{Phase: activate, Step: rekey})
	b.Reset()
	for _, s := range []meshpb.RotationStep{switchToTemp, restore} {
		b.WriteString(c.send(t, rollback, s, nodeNames...))
	}
	c.handshake(t, wg.MeshInterface)
	b.WriteString("-- after handshakes\n" + c.reports(t))
	for _, s := range []meshpb.RotationStep{switchBack, teardown} {
		b.WriteString(c.send(t, rollback, s, nodeNames...))
	}
	b.WriteString(c.state("a", "b"))
	golden(t, "rollback.golden", b.String())
}

func TestFailedStepIsUndone(t *testing.T) {
	c := newCluster(t, 0)
	c.send(t, prepare, noStep, "a")
	b := c["b"]
	before := b.render()
	b.host.FailTemp(rotationtest.ErrInjected)
	res, err := b.exec.Handle(cmdFor("b", distribute, noStep))
	if !errors.Is(err, rotationtest.ErrInjected) {
		t.Fatalf("error %v, want the injected failure", err)
	}
	if res.Report.GetError() == "" || res.Report.GetDone() {
		t.Errorf("report %s, want an error and not done", reportText(res.Report))
	}
	// The journal says distribute started, but nothing of it is left.
	if diff := cmp.Diff(withoutSessions(before), withoutSessions(strings.Replace(b.render(), "a/2 DISTRIBUTE done=false", "none", 1))); diff != "" {
		t.Errorf("failed DISTRIBUTE left state (-before +after):\n%s", diff)
	}
	b.host.FailTemp(nil)
	if _, err := b.exec.Handle(cmdFor("b", distribute, noStep)); err != nil {
		t.Fatalf("DISTRIBUTE sent again: %v", err)
	}
	if o := b.exec.Overlay(); o.Temp == nil || !o.Done {
		t.Errorf("DISTRIBUTE sent again did not bring wg-rot up: %+v", o)
	}
}

func TestOtherRotationIsRefusedButNotDisturbed(t *testing.T) {
	c := newCluster(t, 0)
	c.send(t, prepare, noStep, "a")
	c.send(t, distribute, noStep, nodeNames...)
	b := c["b"]
	before := b.render()
	other := cmdFor("b", distribute, noStep)
	other.Id, other.Subject = "c/2", "c"
	if _, err := b.exec.Handle(other); !errors.Is(err, rotation.ErrBusy) {
		t.Errorf("command of another rotation: error %v, want ErrBusy", err)
	}
	other.Phase, other.Step = rollback, teardown
	res, err := b.exec.Handle(other)
	if err != nil || len(res.Steps) != 0 {
		t.Errorf("rollback of a rotation the node does not hold: steps %v, error %v; want none", res.Steps, err)
	}
	if diff := cmp.Diff(before, b.render()); diff != "" {
		t.Errorf("another rotation's commands changed the node (-before +after):\n%s", diff)
	}
}

func TestRestartCompletesAnInterruptedRetire(t *testing.T) {
	c := newCluster(t, 0)
	var b strings.Builder
	c.forward(t, &b, rotation.Stage{Phase: activate, Step: switchBack})
	a := c["a"]
	// RETIRE was journaled, then the daemon died before finishing it.
	o := a.exec.Overlay()
	o.Stage, o.Done = rotation.Stage{Phase: retire}, false
	if err := a.journal.Save(o); err != nil {
		t.Fatal(err)
	}
	a.exec = a.restart(t)
	if got := a.keySlots(); got != "active 2" {
		t.Errorf("restart completed RETIRE with keys %q, want active 2", got)
	}
	if _, err := a.exec.Handle(cmdFor("a", rollback, teardown)); err != nil {
		t.Errorf("rollback after the rotation ended: %v, want a no-op", err)
	}
	if got := a.keySlots(); got != "active 2" {
		t.Errorf("rollback after RETIRE changed keys to %q", got)
	}
}

func TestStartDeletesALeftoverTemporaryInterface(t *testing.T) {
	cases := []struct {
		name string
		// journal runs the forward sequence up to this stage (zero: none)
		// and changes the journaled overlay before the restart.
		upTo    rotation.Stage
		journal func(o *rotation.Overlay)
		keep    bool
	}{
		{name: "no rotation journaled"},
		{name: "a rotation journaled before its temporary interface", upTo: rotation.Stage{Phase: prepare}},
		{name: "a crash after journaling the removal, before deleting it", upTo: rotation.Stage{Phase: activate, Step: switchBack},
			journal: func(o *rotation.Overlay) {
				o.Stage, o.Done, o.Temp, o.Switched = rotation.Stage{Phase: retire}, false, nil, nil
			}},
		{name: "a journaled temporary interface stays", upTo: rotation.Stage{Phase: distribute}, keep: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 0)
			if tc.upTo != (rotation.Stage{}) {
				var b strings.Builder
				c.forward(t, &b, tc.upTo)
			}
			a := c["a"]
			if tc.journal != nil {
				o := a.exec.Overlay()
				tc.journal(&o)
				if err := a.journal.Save(o); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.host.WG.Ensure(wg.RotationInterface); err != nil {
				t.Fatal(err)
			}
			a.host.Forget() // a restarted agent has no desired state yet
			a.exec = a.restart(t)
			if got := strings.Contains(a.host.WG.Render(), "interface: "+wg.RotationInterface); got != tc.keep {
				t.Errorf("wg-rot exists after the start: %t, want %t\n%s", got, tc.keep, a.host.WG.Render())
			}
		})
	}
}

// A node whose mesh interface has another name confirms re-keys with
// that interface's handshakes.
func TestConfirmationsReadTheConfiguredMeshInterface(t *testing.T) {
	now := t0.Add(time.Hour)
	o := rotation.Overlay{ID: "a/2", Subject: "a", Role: rotation.Peer, NewGeneration: 2, NewKey: pubKey("a", 2), OldKey: pubKey("a", 1),
		Stage: rotation.Stage{Phase: activate, Step: rekey}, Done: true, MeshPeerKey: pubKey("a", 2),
		Temp:      &rotation.Temp{Interface: "vprot0", Port: listenPort + 1, Mark: rotation.DefaultMark, Table: rotation.DefaultTable, Peers: []rotation.TempPeer{{Node: "a", PublicKey: pubKey("a", 2)}}},
		TempSince: now, MeshSince: now}
	j := &rotationtest.Journal{}
	if err := j.Save(o); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, "b", 0)
	tun := statusTunnels{"vpmesh0": {Peers: []wg.PeerStatus{{PublicKey: pubKey("a", 2), LastHandshake: now.Add(time.Second)}}}}
	e, err := rotation.New(rotation.Options{Node: "b", Interface: "vprot0", MeshInterface: "vpmesh0"},
		rotation.Deps{Keys: n.store, Host: acceptHost{}, Tunnels: tun, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(); err != nil {
		t.Fatal(err)
	}
	r, err := e.Report()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a"}, r.GetConfirmed()); diff != "" {
		t.Errorf("confirmed (-want +got):\n%s", diff)
	}
	if e.Awaiting() {
		t.Error("still awaiting a confirmed handshake")
	}
	if _, err := rotation.New(rotation.Options{Node: "b", Interface: "vpmesh0", MeshInterface: "vpmesh0"},
		rotation.Deps{Keys: n.store, Host: acceptHost{}, Tunnels: tun, Journal: j}); !errors.Is(err, rotation.ErrInvalid) {
		t.Errorf("temporary interface named like the mesh: error %v, want ErrInvalid", err)
	}
}

// statusTunnels reports fixed interfaces.
type statusTunnels map[string]wg.Status

func (s statusTunnels) Delete(string) error { return nil }

func (s statusTunnels) Status(name string) (wg.Status, error) {
	st, ok := s[name]
	if !ok {
		return wg.Status{}, fmt.Errorf("%s: %w", name, wg.ErrNotFound)
	}
	return st, nil
}

// acceptHost applies every overlay.
type acceptHost struct{}

func (acceptHost) Apply(rotation.Overlay) error { return nil }

func TestRetireInterruptedByARestartCompletesAfterTheFirstReconcile(t *testing.T) {
	c := newCluster(t, 0)
	var b strings.Builder
	c.forward(t, &b, rotation.Stage{Phase: activate, Step: switchBack})
	a := c["a"]
	o := a.exec.Overlay()
	o.Stage, o.Done = rotation.Stage{Phase: retire}, false
	if err := a.journal.Save(o); err != nil {
		t.Fatal(err)
	}
	a.host.Forget()
	a.exec = a.restart(t) // no desired state yet: RETIRE waits
	if o := a.exec.Overlay(); !o.Active() {
		t.Fatal("RETIRE finished without a desired state to reconcile")
	}
	if err := a.host.SetState(stateOf(t, "a", nil, 0)); err != nil {
		t.Fatalf("first reconcile with the journaled overlay: %v", err)
	}
	res, err := a.exec.Resume()
	if err != nil {
		t.Fatal(err)
	}
	if got := a.keySlots(); got != "active 2" || a.exec.Overlay().Active() || !res.Report.GetDone() {
		t.Errorf("after Resume: keys %q, journal %+v, report %s; want active 2, no rotation, done", got, a.exec.Overlay(), reportText(res.Report))
	}
	if strings.Contains(a.host.WG.Render(), wg.RotationInterface) {
		t.Error("wg-rot survived RETIRE")
	}
}
