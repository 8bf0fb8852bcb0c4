package agent_test

// The agent's part of a key rotation (docs/rotation.md), on fakes: the
// controller's RotationCommands go through Agent.Apply in the order
// ctrl/rotation sends them, to node-a as the subject and as a peer. After
// every command the node is restarted (new agent, same kernel, keys and
// journal), given its state again as a reconnect would, and sent the same
// command again: nothing may change.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/agent"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
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

func keyBytes(k desired.Key) []byte { return k[:] }

// fakeReporter records what the agent reports.
type fakeReporter struct {
	mu    sync.Mutex
	keys  []*meshpb.KeyReport
	rots  []*meshpb.RotationReport
	lines []string
}

var _ agent.Reporter = (*fakeReporter)(nil)

func (f *fakeReporter) ReportKey(k *meshpb.KeyReport) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, k)
	f.lines = append(f.lines, fmt.Sprintf("key generation %d %s %s", k.GetGeneration(), k.GetState(), wgtypes.Key(k.GetPublicKey())))
}

func (f *fakeReporter) ReportRotation(r *meshpb.RotationReport) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rots = append(f.rots, r)
	f.lines = append(f.lines, "rotation "+reportText(r))
}

// take returns the reports since the last take.
func (f *fakeReporter) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.lines
	f.lines = nil
	return l
}

func (f *fakeReporter) lastRotation() *meshpb.RotationReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rots) == 0 {
		return nil
	}
	return f.rots[len(f.rots)-1]
}

func reportText(r *meshpb.RotationReport) string {
	if r == nil {
		return "none"
	}
	s := fmt.Sprintf("%s %s done=%t confirmed=[%s]", r.GetId(), rotation.Stage{Phase: r.GetPhase(), Step: r.GetStep()}, r.GetDone(), strings.Join(r.GetConfirmed(), " "))
	if r.GetError() != "" {
		s += " error=" + r.GetError()
	}
	return s
}

// subjectNewKey is node-b's new key when node-b rotates.
var subjectNewKey = pubKey(12)

// driver plays the controller for one rotation seen by node-a.
type driver struct {
	t     *testing.T
	r     *rig
	rep   *fakeReporter
	state desired.NodeState
	// subject: node-a rotates (peers node-b, node-c); otherwise node-b
	// rotates and node-a is its peer.
	subject bool
	id      string
	oldKey  desired.Key
	newKey  desired.Key
	seq     uint64
	names   map[string]string // key text → placeholder in renders
}

func newDriver(t *testing.T, subject bool) *driver {
	t.Helper()
	d := &driver{t: t, r: newRig(t, ""), rep: &fakeReporter{}, state: states["two-peers-strict"], subject: subject, names: map[string]string{}}
	d.r.a.SetReporter(d.rep)
	if err := d.r.a.Start(); err != nil {
		t.Fatal(err)
	}
	reconcile(t, d.r, d.state)
	d.names[d.r.pub] = "<node-a key>"
	if subject {
		d.id, d.oldKey = "node-a/2", desired.Key(wgtypes.Key(mustParseKey(t, d.r.pub)))
	} else {
		d.id, d.oldKey, d.newKey = "node-b/2", peerB.PublicKey, subjectNewKey
	}
	d.rep.take()
	return d
}

func mustParseKey(t *testing.T, s string) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// command is the controller's command of a stage for node-a.
func (d *driver) command(phase meshpb.RotationPhase, step meshpb.RotationStep) *meshpb.ControllerMessage {
	d.seq++
	c := &meshpb.RotationCommand{Id: d.id, Phase: phase, Step: step, NewKeyGeneration: 2, SubjectPublicKey: keyBytes(d.oldKey), TempPort: 51821}
	if d.newKey != (desired.Key{}) {
		c.SubjectNewPublicKey = keyBytes(d.newKey)
	}
	if d.subject {
		c.Subject = "node-a"
		c.Peers = []*meshpb.Peer{
			{Node: "node-b", PublicKey: keyBytes(peerB.PublicKey), Endpoint: "198.18.0.2:51821"},
			{Node: "node-c", PublicKey: keyBytes(peerC.PublicKey), Endpoint: "198.18.0.3:51821"},
		}
	} else {
		c.Subject = "node-b"
		c.Peers = []*meshpb.Peer{{Node: "node-b", PublicKey: keyBytes(d.newKey), Endpoint: "198.18.0.2:51821"}}
	}
	return &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: 100 + d.seq}, Cmd: &meshpb.ControllerMessage_Rotation{Rotation: c}}
}

// send applies a stage's command; it must succeed.
func (d *driver) send(phase meshpb.RotationPhase, step meshpb.RotationStep) {
	d.t.Helper()
	code, err := d.r.a.Apply(context.Background(), d.command(phase, step))
	if code != meshpb.AckCode_ACK_OK || err != nil {
		d.t.Fatalf("%s: %s %v", rotation.Stage{Phase: phase, Step: step}, code, err)
	}
	if phase == prepare && d.subject {
		k := d.rep.keys[len(d.rep.keys)-1]
		d.newKey = desired.Key(k.GetPublicKey())
		d.names[wgtypes.Key(d.newKey).String()] = "<node-a new key>"
	}
}

// handshake completes, now, the handshakes a stage waits on.
func (d *driver) handshake(iface string, rollingBack bool) {
	d.t.Helper()
	keys := []desired.Key{peerB.PublicKey, peerC.PublicKey}
	if !d.subject {
		keys = []desired.Key{d.newKey}
		if rollingBack {
			keys = []desired.Key{d.oldKey}
		}
	}
	for _, k := range keys {
		if err := d.r.wgb.SetTraffic(iface, wgtypes.Key(k), time.Now(), 1, 1); err != nil {
			d.t.Fatal(err)
		}
	}
}

// waitsOn is the interface a stage's confirmations come from; "" when
// the controller waits on none.
func waitsOn(phase meshpb.RotationPhase, step meshpb.RotationStep) string {
	switch {
	case phase == distribute:
		return wg.RotationInterface
	case step == rekey, step == restore:
		return wg.MeshInterface
	}
	return ""
}

// render is the whole node with its keys, journal and deliver
// attachments, keys that differ per run replaced by placeholders.
func (d *driver) render() string {
	var b strings.Builder
	b.WriteString(d.r.render())
	b.WriteString("# keys\n")
	infos, err := keys.Inspect(d.r.dir)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, k := range infos {
		fmt.Fprintf(&b, "%s generation %d %s\n", k.State, k.Generation, k.Public)
	}
	o := d.r.a.Rotation()
	b.WriteString("# journal\n")
	if o.Active() {
		fmt.Fprintf(&b, "%s %s %s done=%t switched=[%s]\n", o.ID, o.Role, o.Stage, o.Done, strings.Join(o.Switched, " "))
	} else {
		b.WriteString("none\n")
	}
	for _, s := range o.Supersede {
		fmt.Fprintf(&b, "supersede %s %s -> %s\n", s.Node, s.Stale, s.Use)
	}
	b.WriteString("# deliver\n")
	_, deliver := d.r.dp.attached()
	for _, i := range deliver {
		fmt.Fprintf(&b, "deliver on %s\n", d.r.links.name(i))
	}
	return d.replaceKeys(b.String())
}

func (d *driver) replaceKeys(s string) string {
	for k, v := range d.names {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// restartAndResend restarts the agent on the same kernel, key directory
// and journal, gives it its state (the SyncState of a reconnect) and
// sends the last command again: nothing may change, and the report says
// the stage is done.
func (d *driver) restartAndResend(phase meshpb.RotationPhase, step meshpb.RotationStep) {
	d.t.Helper()
	before, writes := d.render(), d.r.writes()
	if err := d.r.a.Close(); err != nil {
		d.t.Fatal(err)
	}
	d.r.restart(d.t)
	d.rep.take()
	d.r.a.SetReporter(d.rep)
	if err := d.r.a.Start(); err != nil {
		d.t.Fatalf("restart after %s: %v", rotation.Stage{Phase: phase, Step: step}, err)
	}
	reconcile(d.t, d.r, d.state)
	code, err := d.r.a.Apply(context.Background(), d.command(phase, step))
	if code != meshpb.AckCode_ACK_OK {
		d.t.Fatalf("%s sent again after a restart: %s %v", rotation.Stage{Phase: phase, Step: step}, code, err)
	}
	if r := d.rep.lastRotation(); !r.GetDone() || r.GetError() != "" {
		d.t.Errorf("%s sent again after a restart: report %s", rotation.Stage{Phase: phase, Step: step}, reportText(r))
	}
	// The state given after the restart may name the key a supersession
	// stood for (after a rollback): the supersession goes, nothing else.
	if diff := cmp.Diff(withoutSupersede(before), withoutSupersede(d.render())); diff != "" {
		d.t.Errorf("%s sent again after a restart changed the node (-before +after):\n%s", rotation.Stage{Phase: phase, Step: step}, diff)
	}
	if got := d.r.writes(); got != writes {
		d.t.Errorf("%s sent again after a restart wrote: %v -> %v", rotation.Stage{Phase: phase, Step: step}, writes, got)
	}
	d.rep.take()
}

// stage sends one stage, completes its handshakes, checks that a restart
// and the command sent again change nothing, and writes a transcript
// with the changes to the node.
func (d *driver) stage(b *strings.Builder, phase meshpb.RotationPhase, step meshpb.RotationStep) {
	d.t.Helper()
	before := d.render()
	d.send(phase, step)
	fmt.Fprintf(b, "## <- %s\n", rotation.Stage{Phase: phase, Step: step})
	for _, l := range d.rep.take() {
		fmt.Fprintf(b, "report: %s\n", d.replaceKeys(l))
	}
	if iface := waitsOn(phase, step); iface != "" {
		d.handshake(iface, phase == rollback)
		r, err := d.r.a.RotationReport(context.Background())
		if err != nil {
			d.t.Fatal(err)
		}
		fmt.Fprintf(b, "after handshakes on %s: %s\n", iface, reportText(r))
	}
	fmt.Fprintf(b, "changes:\n%s", lineDiff(before, d.render()))
	d.restartAndResend(phase, step)
}

type stage struct {
	phase meshpb.RotationPhase
	step  meshpb.RotationStep
}

func (d *driver) forward() []stage {
	s := []stage{{distribute, noStep}, {activate, switchToTemp}, {activate, rekey}, {activate, switchBack}, {retire, noStep}}
	if d.subject {
		s = append([]stage{{prepare, noStep}}, s...)
	}
	return s
}

// TestRotationGolden runs a whole rotation with node-a as the subject and
// as a peer, and renders what every command changed.
func TestRotationGolden(t *testing.T) {
	for _, subject := range []bool{true, false} {
		name := map[bool]string{true: "subject", false: "peer"}[subject]
		t.Run(name, func(t *testing.T) {
			d := newDriver(t, subject)
			var b strings.Builder
			fmt.Fprintf(&b, "# node-a as the %s of %s\n==== initial\n%s", name, d.id, d.render())
			for _, s := range d.forward() {
				d.stage(&b, s.phase, s.step)
			}
			if !subject {
				// The controller's commit reaches node-a's desired state
				// after RETIRE: only the supersession goes.
				withNewKey := peerB
				withNewKey.PublicKey = subjectNewKey
				next := nodeState(true, nil, withNewKey, peerC)
				before := d.render()
				reconcile(t, d.r, next)
				d.state = next
				fmt.Fprintf(&b, "## <- the desired state with node-b's new key\nchanges:\n%s", lineDiff(before, d.render()))
			}
			got := d.render()
			if o := d.r.a.Rotation(); o.Active() || len(o.Supersede) != 0 {
				t.Errorf("rotation journaled after it ended: %+v", o)
			}
			if strings.Contains(got, wg.RotationInterface) || strings.Contains(got, "51821") {
				t.Errorf("the temporary interface or its path survived the rotation:\n%s", got)
			}
			if subject {
				infos, _ := keys.Inspect(d.r.dir)
				if len(infos) != 1 || infos[0].Generation != 2 || infos[0].Public != wgtypes.Key(d.newKey) {
					t.Errorf("keys after the rotation: %+v, want only generation 2", infos)
				}
			} else if strings.Contains(got, wgtypes.Key(peerB.PublicKey).String()) {
				t.Error("node-b's old key is still configured")
			}
			if d := cmp.Diff(golden(t, "rotation-"+name, b.String()), b.String()); d != "" {
				t.Errorf("(-golden +got):\n%s", d)
			}
		})
	}
}

// TestRotationRollbackFromEveryStage rolls back from every stage before
// Retire with the sequence ctrl/rotation sends: node-a ends exactly where
// it started, with its old key.
func TestRotationRollbackFromEveryStage(t *testing.T) {
	full := []stage{{rollback, switchToTemp}, {rollback, restore}, {rollback, switchBack}, {rollback, teardown}}
	cases := []struct {
		from stage
		seq  []stage
	}{
		{stage{prepare, noStep}, []stage{{rollback, teardown}}},
		{stage{distribute, noStep}, []stage{{rollback, teardown}}},
		{stage{activate, switchToTemp}, []stage{{rollback, switchBack}, {rollback, teardown}}},
		{stage{activate, rekey}, full},
		{stage{activate, switchBack}, full},
	}
	for _, subject := range []bool{true, false} {
		name := map[bool]string{true: "subject", false: "peer"}[subject]
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			fmt.Fprintf(&b, "# node-a as the %s: rollback from every stage\n", name)
			for _, tc := range cases {
				if !subject && tc.from.phase == prepare {
					continue // PREPARE goes to the subject only
				}
				d := newDriver(t, subject)
				initial := d.render()
				for _, s := range d.forward() {
					d.send(s.phase, s.step)
					if iface := waitsOn(s.phase, s.step); iface != "" {
						d.handshake(iface, false)
					}
					if s == tc.from {
						break
					}
				}
				d.rep.take()
				fmt.Fprintf(&b, "==== from %s\n", rotation.Stage{Phase: tc.from.phase, Step: tc.from.step})
				for _, s := range tc.seq {
					d.stage(&b, s.phase, s.step)
				}
				// The controller's next SyncState (the old key still)
				// drops a peer's supersession.
				reconcile(t, d.r, d.state)
				if diff := cmp.Diff(initial, d.render()); diff != "" {
					t.Errorf("from %s: node after rollback (-before the rotation +after):\n%s", rotation.Stage{Phase: tc.from.phase, Step: tc.from.step}, diff)
				}
			}
			if d := cmp.Diff(golden(t, "rotation-rollback-"+name, b.String()), b.String()); d != "" {
				t.Errorf("(-golden +got):\n%s", d)
			}
		})
	}
}

// FollowRotation sends the report again when a handshake the controller
// waits on completes, and only then.
func TestFollowRotationReportsNewConfirmations(t *testing.T) {
	d := newDriver(t, true)
	d.send(prepare, noStep)
	d.send(distribute, noStep)
	d.rep.take()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.r.a.FollowRotation(ctx, func(err error) { t.Errorf("FollowRotation: %v", err) }) }()
	t.Cleanup(func() { cancel(); <-done })
	waitReport := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for reportText(d.rep.lastRotation()) != want {
			if time.Now().After(deadline) {
				t.Fatalf("report %s, want %s", reportText(d.rep.lastRotation()), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		peer desired.Key
		want string
	}{
		{peerB.PublicKey, "node-a/2 DISTRIBUTE done=true confirmed=[node-b]"},
		{peerC.PublicKey, "node-a/2 DISTRIBUTE done=true confirmed=[node-b node-c]"},
	} {
		if err := d.r.wgb.SetTraffic(wg.RotationInterface, wgtypes.Key(tc.peer), time.Now(), 1, 1); err != nil {
			t.Fatal(err)
		}
		waitReport(tc.want)
	}
	time.Sleep(4 * agent.RotationPollInterval)
	if got := d.rep.take(); len(got) != 2 {
		t.Errorf("reports %q, want one per new confirmation", got)
	}
}

// During a rotation the status names the peers of both interfaces and
// the phase.
func TestStatusDuringARotation(t *testing.T) {
	for _, subject := range []bool{true, false} {
		d := newDriver(t, subject)
		for _, s := range d.forward()[:len(d.forward())-3] { // up to SWITCH_TO_TEMP
			d.send(s.phase, s.step)
		}
		st, err := d.r.a.TunnelStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range st.Peers {
			got = append(got, p.Interface+" "+p.Node)
		}
		want := []string{"wg-mesh node-b", "wg-mesh node-c", "wg-rot node-b", "wg-rot node-c"}
		if !subject {
			want = []string{"wg-mesh node-b", "wg-mesh node-c", "wg-rot node-b"}
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" || st.RotationPhase != activate {
			t.Errorf("subject %t: phase %s, peers (-want +got):\n%s", subject, st.RotationPhase, diff)
		}
	}
}

// Uninstall during a rotation removes wg-rot and the journal too, so the
// key directory can go.
func TestUninstallDuringARotation(t *testing.T) {
	d := newDriver(t, true)
	d.send(prepare, noStep)
	d.send(distribute, noStep)
	if !strings.Contains(d.r.wgb.Render(), wg.RotationInterface) {
		t.Fatal("no wg-rot after DISTRIBUTE")
	}
	if err := d.r.a.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if got := d.r.wgb.Render(); got != "" {
		t.Errorf("interfaces after Uninstall:\n%s", got)
	}
	if err := keys.Remove(d.r.dir); err != nil {
		t.Fatalf("removing the state directory: %v", err)
	}
	if _, err := os.Stat(d.r.dir); err == nil {
		t.Error("state directory survived")
	}
}

// A restarted daemon whose journal names no temporary interface deletes
// one it finds, and removes the pin of the deliver link it had on it.
func TestStartRemovesALeftoverTemporaryInterface(t *testing.T) {
	r := newRig(t, "")
	reconcile(t, r, states["two-peers-strict"])
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := (linkedTunnels{Manager: wg.NewManager(r.wgb), rk: r.rk, links: r.links}).Set(wg.Config{Name: wg.RotationInterface, PrivateKey: keys.NewPrivate(k), ListenPort: 51821}); err != nil {
		t.Fatal(err)
	}
	idx, _ := r.links.Index(wg.RotationInterface)
	if err := r.dp.AttachDeliver(idx); err != nil {
		t.Fatal(err)
	}
	_ = r.a.Close()
	r.restart(t)
	if err := r.a.Start(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.wgb.Render(), wg.RotationInterface) {
		t.Error("wg-rot survived the start")
	}
	if _, d := r.dp.attached(); slices.Contains(d, idx) {
		t.Error("deliver's link on the deleted wg-rot survived the start")
	}
}

// restart replaces the rig's agent with a new one on the same kernel,
// data plane and key directory, as a restarted daemon.
func (r *rig) restart(t *testing.T) {
	t.Helper()
	_ = r.keys.Close()
	ks, err := keys.Open(keys.Options{Dir: r.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	r.keys = ks
	r.a, err = agent.New(agent.Options{Node: "node-a", NodeIP: netip.MustParseAddr("198.18.0.1"), Version: "test"}, agent.Deps{
		Tunnels: linkedTunnels{Manager: wg.NewManager(r.wgb), rk: r.rk, links: r.links}, Routes: route.New(r.rk, route.Options{}),
		Clamp: mss.New(r.mk), Datapath: r.dp, Keys: ks, Links: r.links,
		Journal: rotation.FileJournal{Path: filepath.Join(r.dir, rotation.JournalFile)},
	})
	if err != nil {
		t.Fatal(err)
	}
}

var supersedeLine = regexp.MustCompile(`(?m)^supersede .*\n`)

func withoutSupersede(s string) string { return supersedeLine.ReplaceAllString(s, "") }

// lineDiff lists the lines that differ between a and b ("-" removed,
// "+" added) with one line of context, hunks separated by "@@".
func lineDiff(a, b string) string {
	x, y := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	// lcs[i][j] is the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var ops []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, line{' ', x[i]})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			ops = append(ops, line{'+', y[j]})
			j++
		default:
			ops = append(ops, line{'-', x[i]})
			i++
		}
	}
	var out strings.Builder
	last := -2
	for k, l := range ops {
		near := false
		for m := max(0, k-1); m <= min(len(ops)-1, k+1); m++ {
			near = near || ops[m].op != ' '
		}
		if !near || l.text == "" {
			continue
		}
		if last >= 0 && k > last+1 {
			out.WriteString("@@\n")
		}
		out.WriteString(string(l.op) + " " + strings.TrimSuffix(l.text, "\n") + "\n")
		last = k
	}
	if out.Len() == 0 {
		return "  (none)\n"
	}
	return out.String()
}
