package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
)

// The dump names a rotation only while one runs, so with none it is the
// same before and after a restart, whatever the journal keeps (a
// supersession, or nothing).
func TestDumpShowsARotationOnlyWhileOneRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ks, err := keys.Open(keys.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ks.Active()
	pub := k.Public()
	_ = ks.Close()
	c := config{stateDir: dir, pinDir: filepath.Join(t.TempDir(), "no-bpf")}
	run := func() string {
		t.Helper()
		var b bytes.Buffer
		if err := dump(&b, c); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	want := "key active generation 1 " + pub.String() + "\nebpf: not installed\n"
	if d := cmp.Diff(want, run()); d != "" {
		t.Errorf("no journal (-want +got):\n%s", d)
	}
	stale, _ := wgtypes.GeneratePrivateKey()
	use, _ := wgtypes.GeneratePrivateKey()
	ended := rotation.Overlay{Supersede: []rotation.Supersession{{Node: "node-b", Stale: stale.PublicKey(), Use: use.PublicKey()}}}
	if err := journal(dir).Save(ended); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, run()); d != "" {
		t.Errorf("a journal without a rotation (-want +got):\n%s", d)
	}
	running := rotation.Overlay{ID: "node-b/2", Subject: "node-b", Role: rotation.Peer, NewGeneration: 2, Done: true,
		Stage: rotation.Stage{Phase: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, Step: meshpb.RotationStep_ROTATION_STEP_REKEY}}
	if err := journal(dir).Save(running); err != nil {
		t.Fatal(err)
	}
	if got := run(); !strings.Contains(got, "rotation node-b/2 ACTIVATE/REKEY role peer done=true\n") {
		t.Errorf("a rotation in progress is not shown:\n%s", got)
	}
	if err := journal(dir).Remove(); err != nil {
		t.Fatal(err)
	}
	if err := keys.Remove(dir); err != nil {
		t.Errorf("the state directory cannot go once the journal is removed: %v", err)
	}
}
