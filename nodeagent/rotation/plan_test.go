package rotation_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
)

func mustParse(t *testing.T, c *meshpb.RotationCommand) rotation.Command {
	t.Helper()
	cmd, err := rotation.ParseCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// overlayAt is the overlay node runs after the forward sequence up to and
// including stage.
func overlayAt(t *testing.T, node string, stage rotation.Stage) (rotation.Overlay, rotation.KeySlots) {
	t.Helper()
	c := newCluster(t, 0)
	var b strings.Builder
	c.forward(t, &b, stage)
	slots := rotation.KeySlots{Active: 1}
	if node == "a" {
		slots.Pending = 2
	}
	return c[node].exec.Overlay(), slots
}

func TestPlan(t *testing.T) {
	opts := func(node string) rotation.PlanOptions { return rotation.PlanOptions{Node: node} }
	type tc struct {
		name    string
		node    string
		cur     rotation.Stage // zero: no rotation yet
		phase   meshpb.RotationPhase
		step    meshpb.RotationStep
		mutate  func(*meshpb.RotationCommand)
		want    []string
		wantErr error
	}
	cases := []tc{
		{name: "prepare stages the key and reports it pending", node: "a", phase: prepare, want: []string{
			"journal a/2 PREPARE (subject, subject a) done=false", "stage-key generation 2 report PENDING", "done PREPARE"}},
		{name: "prepare is refused on a peer", node: "b", phase: prepare, wantErr: rotation.ErrInvalid},
		{name: "a peer missing switch-to-temp switches before it re-keys", node: "b", cur: rotation.Stage{Phase: distribute},
			phase: activate, step: rekey, want: []string{
				"journal a/2 ACTIVATE/REKEY (peer, subject a) done=false", "switch-to-temp [a]",
				"rekey-mesh wg-mesh peer a gets CfaX/wWE", "done ACTIVATE/REKEY"}},
		{name: "distribute after the re-key is out of order", node: "b", cur: rotation.Stage{Phase: activate, Step: rekey},
			phase: distribute, wantErr: rotation.ErrOrder},
		{name: "rekey again after switch back moves traffic to wg-rot again", node: "a", cur: rotation.Stage{Phase: activate, Step: switchBack},
			phase: activate, step: rekey, want: []string{
				"journal a/2 ACTIVATE/REKEY (subject, subject a) done=false", "switch-to-temp [b c]", "done ACTIVATE/REKEY"}},
		{name: "distribute again after switch to temp moves traffic back", node: "a", cur: rotation.Stage{Phase: activate, Step: switchToTemp},
			phase: distribute, want: []string{
				"journal a/2 DISTRIBUTE (subject, subject a) done=false", "switch-back [b c]", "done DISTRIBUTE"}},
		{name: "restore under wg-rot gives the peer the old key back", node: "b", cur: rotation.Stage{Phase: activate, Step: switchBack},
			phase: rollback, step: restore, want: []string{
				"journal a/2 ROLLBACK/RESTORE (peer, subject a) done=false", "switch-to-temp [a]",
				"restore-mesh wg-mesh peer a gets snme78Lq", "done ROLLBACK/RESTORE"}},
		{name: "teardown in one command restores before it switches back and deletes", node: "a", cur: rotation.Stage{Phase: activate, Step: rekey},
			phase: rollback, step: teardown, want: []string{
				"journal a/2 ROLLBACK/TEARDOWN (subject, subject a) done=false", "restore-mesh wg-mesh runs active key",
				"switch-back [b c]", "delete-temp", "finish", "rollback-key report ACTIVE"}},
		{name: "a peer's teardown leaves a supersession of the new key by the old", node: "b", cur: rotation.Stage{Phase: distribute},
			phase: rollback, step: teardown, want: []string{
				"journal a/2 ROLLBACK/TEARDOWN (peer, subject a) done=false", "delete-temp", "finish supersede a CfaX/wWE->snme78Lq"}},
		{name: "retire on the subject activates the new key before wg-rot goes", node: "a", cur: rotation.Stage{Phase: activate, Step: switchBack},
			phase: retire, want: []string{
				"journal a/2 RETIRE (subject, subject a) done=false", "activate-key generation 2", "delete-temp", "finish",
				"retire-key report ACTIVE"}},
		{name: "retire on a peer that missed switch back re-keys and switches back first", node: "b", cur: rotation.Stage{Phase: activate, Step: switchToTemp},
			phase: retire, want: []string{
				"journal a/2 RETIRE (peer, subject a) done=false", "rekey-mesh wg-mesh peer a gets CfaX/wWE",
				"switch-back [a]", "delete-temp", "finish supersede a snme78Lq->CfaX/wWE"}},
		{name: "a rollback after retire started is refused", node: "a", cur: rotation.Stage{Phase: activate, Step: switchBack},
			phase: rollback, step: teardown, mutate: nil, wantErr: rotation.ErrRetiring},
		{name: "a rollback of a rotation never seen plans nothing", node: "b", phase: rollback, step: teardown, want: nil},
		{name: "a retire of a rotation never seen plans nothing", node: "c", phase: retire, want: nil},
		{name: "a command of another rotation is refused", node: "b", cur: rotation.Stage{Phase: distribute}, phase: distribute,
			mutate: func(c *meshpb.RotationCommand) { c.Id, c.Subject = "c/2", "c" }, wantErr: rotation.ErrBusy},
		{name: "a changed generation under the same id is refused", node: "b", cur: rotation.Stage{Phase: distribute}, phase: distribute,
			mutate: func(c *meshpb.RotationCommand) { c.NewKeyGeneration = 3 }, wantErr: rotation.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cur rotation.Current
			if c.cur != (rotation.Stage{}) {
				cur.Overlay, cur.Keys = overlayAt(t, c.node, c.cur)
			}
			if c.wantErr == rotation.ErrRetiring {
				cur.Overlay.Stage = rotation.Stage{Phase: retire}
			}
			raw := cmdFor(c.node, c.phase, c.step)
			if c.mutate != nil {
				c.mutate(raw)
			}
			steps, err := rotation.Plan(cur, mustParse(t, raw), t0, opts(c.node))
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("error %v, want %v", err, c.wantErr)
			}
			var got []string
			for _, s := range steps {
				got = append(got, s.String())
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCommandRefusesBadInput(t *testing.T) {
	cases := map[string]func(*meshpb.RotationCommand){
		"no id":                      func(c *meshpb.RotationCommand) { c.Id = "" },
		"no subject":                 func(c *meshpb.RotationCommand) { c.Subject = "" },
		"unknown phase":              func(c *meshpb.RotationCommand) { c.Phase = 42 },
		"activate without a step":    func(c *meshpb.RotationCommand) { c.Step = noStep },
		"restore outside rollback":   func(c *meshpb.RotationCommand) { c.Step = restore },
		"no new generation":          func(c *meshpb.RotationCommand) { c.NewKeyGeneration = 0 },
		"short new key":              func(c *meshpb.RotationCommand) { c.SubjectNewPublicKey = []byte{1, 2, 3} },
		"zero new key":               func(c *meshpb.RotationCommand) { c.SubjectNewPublicKey = make([]byte, 32) },
		"activate without new key":   func(c *meshpb.RotationCommand) { c.SubjectNewPublicKey = nil },
		"new key equals old key":     func(c *meshpb.RotationCommand) { c.SubjectNewPublicKey = c.SubjectPublicKey },
		"no temporary port":          func(c *meshpb.RotationCommand) { c.TempPort = 0 },
		"temporary port too large":   func(c *meshpb.RotationCommand) { c.TempPort = 65536 },
		"peer listed twice":          func(c *meshpb.RotationCommand) { c.Peers = append(c.Peers, c.Peers[0]) },
		"peer without a key":         func(c *meshpb.RotationCommand) { c.Peers[0].PublicKey = nil },
		"peer endpoint without port": func(c *meshpb.RotationCommand) { c.Peers[0].Endpoint = "198.18.0.2" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := cmdFor("a", activate, rekey)
			mutate(c)
			if _, err := rotation.ParseCommand(c); !errors.Is(err, rotation.ErrInvalid) {
				t.Errorf("error %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := rotation.ParseCommand(cmdFor("a", activate, rekey)); err != nil {
		t.Errorf("a good command: %v", err)
	}
}
