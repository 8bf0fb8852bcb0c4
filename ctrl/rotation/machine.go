package rotation

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Defaults of Options.
const (
	DefaultOverlap = 30 * time.Second
	DefaultSettle  = time.Second
	DefaultResend  = 5 * time.Second
)

// Options tune a Machine.
type Options struct {
	// Overlap bounds each stage of a rotation no RotationPolicy selects
	// (an on-demand rotation); DefaultOverlap when 0. Rotations a policy
	// selects use its overlapWindow.
	Overlap time.Duration
	// Settle is how long packets already steered onto a path are given to
	// arrive before the next stage changes that path (re-keys it or tears
	// it down); DefaultSettle when 0, at most a quarter of the overlap.
	Settle time.Duration
	// Resend is how often a stage's command is sent again to a node that
	// has not reported it done; DefaultResend when 0.
	Resend time.Duration
}

func (o Options) withDefaults() Options {
	if o.Overlap <= 0 {
		o.Overlap = DefaultOverlap
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.Resend <= 0 {
		o.Resend = DefaultResend
	}
	return o
}

// Machine is the rotation state machine of the leading controller. It is
// not safe for concurrent use: the caller serializes Handle.
type Machine struct {
	opts    Options
	world   World
	nodes   map[string]*Node
	adopted bool
	cur     *rot
	// attempted keys rounds and requests already tried, so a failed node
	// is not retried until the next round (or the next leader).
	attempted map[string]bool
	// rotated: when each node's last rotation completed under this leader
	// (policy status may lag behind).
	rotated map[string]time.Time
	runs    map[string]run
	sched   map[string]schedule
	// valid: the Valid condition last written per policy.
	valid map[string]string
	// observed: the generation last written per policy.
	observed map[string]int64
	stray    map[string]time.Time
	blocked  map[string]string
	// committed: the key generation each node committed under this leader
	// (the status may lag behind).
	committed map[string]int64
	commits   map[string]KeyCommit
	selectors map[string]selector
}

// rot is the rotation in progress.
type rot struct {
	id       string
	subject  string
	newGen   uint64
	oldGen   int64
	oldKey   desired.Key
	newKey   desired.Key
	stage    Stage
	since    time.Time // stage entered
	started  time.Time
	overlap  time.Duration
	peers    []string // participants, sorted
	touched  bool     // peers got a command (Distribute entered)
	switched bool     // SwitchToTemp entered
	rekeyed  bool     // Rekey entered
	done     map[string]bool
	failed   map[string]string
	conf     map[string]map[string]bool
	sent     map[string]time.Time
	settle   time.Time // zero: not settling
	timedOut bool      // the stage passed its deadline (rollback and Retire go on)
	reason   string    // why it rolls back
	policy   string
	request  string
	// keyAcked names the peers that reported a stage at or after Rekey
	// done: they run the new key on wg-mesh.
	keyAcked map[string]bool
}

type run struct{ last, next time.Time }

// New returns a machine with nothing in progress. The first Observe adopts
// what the API shows.
func New(opts Options) *Machine {
	return &Machine{
		opts: opts.withDefaults(), nodes: map[string]*Node{}, attempted: map[string]bool{},
		rotated: map[string]time.Time{}, runs: map[string]run{}, sched: map[string]schedule{},
		valid: map[string]string{}, observed: map[string]int64{}, stray: map[string]time.Time{}, blocked: map[string]string{},
		committed: map[string]int64{}, commits: map[string]KeyCommit{}, selectors: map[string]selector{},
	}
}

// Rotating returns the subject of the rotation in progress, if any. Its
// daemon's key reports must not reach the desired state meanwhile.
func (m *Machine) Rotating() (node string, ok bool) {
	if m.cur == nil {
		return "", false
	}
	return m.cur.subject, true
}

// Stage returns the rotation in progress: its ID and stage.
func (m *Machine) Stage() (id string, stage Stage) {
	if m.cur == nil {
		return "", StageIdle
	}
	return m.cur.id, m.cur.stage
}

// KeyAcked reports whether node reported a stage of the current rotation
// that runs the new key on its wg-mesh (Rekey or later) done.
func (m *Machine) KeyAcked(node string) bool { return m.cur != nil && m.cur.keyAcked[node] }

// Handle takes one event at time now.
func (m *Machine) Handle(now time.Time, ev Event) Output {
	var out Output
	switch e := ev.(type) {
	case Observe:
		m.observe(e.World)
		if !m.adopted {
			m.adopted = true
			m.adopt(now, &out)
		}
		m.membership(now, &out)
	case KeyReported:
		m.keyReported(e)
	case Acked:
		m.acked(now, e, &out)
	case Confirmed:
		m.confirmed(now, e, &out)
	case Connected:
		if n := m.nodes[e.Node]; n != nil {
			n.Connected, n.Capable = true, e.Capable
		}
		if m.cur != nil {
			delete(m.cur.sent, e.Node) // send the stage again at once
		}
	case Disconnected:
		if n := m.nodes[e.Node]; n != nil {
			n.Connected = false
		}
	}
	if m.adopted {
		m.tickPolicies(now, &out)
		m.advance(now, &out)
		if m.cur == nil {
			m.schedule(now, &out)
			m.advance(now, &out)
		}
	}
	out.WakeAt = m.wakeAt()
	return out
}

func (m *Machine) observe(w World) {
	m.world = w
	m.nodes = make(map[string]*Node, len(w.Nodes))
	for i := range w.Nodes {
		m.nodes[w.Nodes[i].Name] = &w.Nodes[i]
	}
}

func (m *Machine) peersOf(node string) []Peer {
	if m.world.Mesh == nil {
		return nil
	}
	return m.world.Mesh.Peers(node)
}

func peerNames(ps []Peer) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Node)
	}
	slices.Sort(out)
	return out
}

// recipients are the nodes the current stage's command goes to.
func (r *rot) recipients() []string {
	if !r.touched {
		return []string{r.subject}
	}
	return append([]string{r.subject}, r.peers...)
}

func (m *Machine) keyReported(e KeyReported) {
	r := m.cur
	if r == nil || e.Node != r.subject || r.stage != StagePrepare ||
		e.Key.GetState() != meshpb.KeyState_KEY_STATE_PENDING || e.Key.GetGeneration() != r.newGen {
		return
	}
	k, err := desired.KeyFromBytes(e.Key.GetPublicKey())
	if err != nil || k == r.oldKey {
		return
	}
	for _, p := range m.peersOf(r.subject) {
		if p.PublicKey == k {
			return // a key another node uses is no key for this one
		}
	}
	r.newKey = k
}

func (m *Machine) acked(now time.Time, e Acked, out *Output) {
	r := m.cur
	if r == nil || e.ID != r.id {
		m.strayReport(now, e, out)
		return
	}
	if e.InProgress {
		return
	}
	if e.Err == "" && (e.Stage == StageRekey || e.Stage == StageSwitchBack || e.Stage == StageRetire) && e.Node != r.subject {
		r.keyAcked[e.Node] = true
	}
	if e.Stage != r.stage || !slices.Contains(r.recipients(), e.Node) {
		return
	}
	if e.Err != "" {
		r.failed[e.Node] = e.Err
		delete(r.done, e.Node)
		return
	}
	r.done[e.Node] = true
	delete(r.failed, e.Node)
}

func (m *Machine) confirmed(now time.Time, e Confirmed, out *Output) {
	r := m.cur
	if r == nil || e.ID != r.id {
		return
	}
	if e.Stage != r.stage {
		return
	}
	set := r.conf[e.Node]
	if set == nil {
		set = map[string]bool{}
		r.conf[e.Node] = set
	}
	for _, p := range e.Peers {
		set[p] = true
	}
}

// strayReport answers a report of a rotation that is not in progress: the
// node journals it still (it missed the end, e.g. while disconnected). It
// gets RETIRE when the subject's status shows the new key generation, a
// teardown otherwise.
func (m *Machine) strayReport(now time.Time, e Acked, out *Output) {
	if e.Err == "" && !e.InProgress && (e.Stage == StageRetire || e.Stage == StageRollbackTeardown) {
		return
	}
	subject, gen, ok := ParseID(e.ID)
	if !ok || gen < 2 {
		return // generation 1 is a node's first key, never a rotation
	}
	key := e.Node + " " + e.ID
	if t, ok := m.stray[key]; ok && now.Before(t.Add(m.opts.Resend)) {
		return
	}
	m.stray[key] = now
	cmd := &meshpb.RotationCommand{Id: e.ID, Subject: subject, NewKeyGeneration: gen}
	s := m.nodes[subject]
	if s != nil && max(s.Status.KeyGeneration, m.committed[subject]) >= int64(gen) {
		k, err := desired.ParseKey(s.Status.PublicKey)
		if c, ok := m.commits[subject]; ok && c.Generation >= s.Status.KeyGeneration {
			k, err = c.Key, nil
		}
		if err == nil {
			cmd.Phase, cmd.SubjectNewPublicKey = meshpb.RotationPhase_ROTATION_PHASE_RETIRE, k[:]
			out.Commands = append(out.Commands, Command{Node: e.Node, Cmd: cmd})
			return
		}
	}
	cmd.Phase, cmd.Step = meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, meshpb.RotationStep_ROTATION_STEP_TEARDOWN
	out.Commands = append(out.Commands, Command{Node: e.Node, Cmd: cmd})
}

// membership follows the subject's peers: a peer that leaves is dropped
// (and told to end its part), one that joins before Retire rolls the
// rotation back (it never got the temporary interface).
func (m *Machine) membership(now time.Time, out *Output) {
	r := m.cur
	if r == nil {
		return
	}
	if m.nodes[r.subject] == nil {
		if r.stage == StageRetire {
			m.finish(now, Completed, "node deleted", out)
			return
		}
		r.peers = slices.DeleteFunc(r.peers, func(p string) bool { return m.nodes[p] == nil })
		if !r.stage.rollingBack() {
			m.rollback(now, "node deleted", out)
		}
		return
	}
	cur := peerNames(m.peersOf(r.subject))
	var gone []string
	for _, p := range r.peers {
		if !slices.Contains(cur, p) {
			gone = append(gone, p)
		}
	}
	if len(gone) > 0 {
		r.peers = slices.DeleteFunc(r.peers, func(p string) bool { return slices.Contains(gone, p) })
		if r.touched {
			for _, p := range gone {
				if m.nodes[p] == nil {
					continue
				}
				st := StageRollbackTeardown
				if r.stage == StageRetire {
					st = StageRetire
				}
				out.Commands = append(out.Commands, Command{Node: p, Cmd: m.command(r, st, p)})
			}
		}
	}
	for _, p := range cur {
		if !slices.Contains(r.peers, p) && r.stage != StageRetire && !r.stage.rollingBack() {
			m.rollback(now, "peer "+p+" joined", out)
			return
		}
	}
}

// advance moves the rotation as far as the events so far allow.
func (m *Machine) advance(now time.Time, out *Output) {
	for range 16 {
		r := m.cur
		if r == nil {
			return
		}
		info := stages[r.stage]
		deadline := r.since.Add(r.overlap)
		complete := m.stageComplete(r)
		if !complete && !info.rollback && r.stage != StageRetire {
			if len(r.failed) > 0 {
				m.rollback(now, m.failure(r), out)
				continue
			}
			if !now.Before(deadline) {
				m.rollback(now, fmt.Sprintf("%s timed out after %s waiting for %s", r.stage, r.overlap, m.waiting(r)), out)
				continue
			}
		}
		if !complete && (info.rollback || r.stage == StageRetire) && !now.Before(deadline) && !r.timedOut {
			r.timedOut = true
			out.Events = append(out.Events, EventRecord{Kind: "VpbluNode", Name: r.subject, Type: corev1.EventTypeWarning,
				Reason: "RotationStageTimedOut", Message: fmt.Sprintf("rotation %s: %s timed out waiting for %s; the nodes that missed it are told when they report", r.id, r.stage, m.waiting(r))})
		}
		complete = complete || ((info.rollback || r.stage == StageRetire) && r.timedOut)
		if !complete {
			m.resend(now, out)
			return
		}
		if info.settle {
			if r.settle.IsZero() {
				r.settle = now.Add(m.settle(r))
			}
			if now.Before(r.settle) {
				return
			}
		}
		m.enter(now, next[r.stage], "", out)
	}
}

func (m *Machine) settle(r *rot) time.Duration { return min(m.opts.Settle, r.overlap/4) }

// stageComplete: every recipient did the stage (in a rollback, failing
// counts as done) and, where the stage waits on them, every pair
// confirmed its handshake both ways. Prepare also needs the new key.
func (m *Machine) stageComplete(r *rot) bool {
	info := stages[r.stage]
	for _, n := range r.recipients() {
		if !r.done[n] && !(info.rollback && r.failed[n] != "") && m.nodes[n] != nil {
			return false
		}
	}
	if r.stage == StagePrepare && r.newKey.IsZero() {
		return false
	}
	if info.confirm {
		for _, p := range r.peers {
			if !r.conf[r.subject][p] || !r.conf[p][r.subject] {
				return false
			}
		}
	}
	return true
}

func (m *Machine) waiting(r *rot) string {
	var w []string
	for _, n := range r.recipients() {
		if !r.done[n] && r.failed[n] == "" {
			w = append(w, n+" to finish")
		}
	}
	if r.stage == StagePrepare && r.newKey.IsZero() {
		w = append(w, r.subject+"'s pending key")
	}
	if stages[r.stage].confirm {
		for _, p := range r.peers {
			if !r.conf[r.subject][p] || !r.conf[p][r.subject] {
				w = append(w, "a handshake "+r.subject+"<->"+p)
			}
		}
	}
	if len(w) == 0 {
		return "nothing"
	}
	return strings.Join(w, ", ")
}

func (m *Machine) failure(r *rot) string {
	var parts []string
	for _, n := range slices.Sorted(mapsKeys(r.failed)) {
		parts = append(parts, n+": "+r.failed[n])
	}
	return fmt.Sprintf("%s failed on %s", r.stage, strings.Join(parts, "; "))
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// resend sends the stage's command to every connected recipient that has
// not done it and was not sent it within Resend; in a subjectFirst stage
// the peers only once the subject did it (or failed it, or is gone).
func (m *Machine) resend(now time.Time, out *Output) {
	r := m.cur
	waitSubject := stages[r.stage].subjectFirst && !r.done[r.subject] && r.failed[r.subject] == "" && m.nodes[r.subject] != nil
	for _, n := range r.recipients() {
		if r.done[n] || r.failed[n] != "" || (waitSubject && n != r.subject) {
			continue
		}
		if node := m.nodes[n]; node == nil || !node.Connected {
			continue
		}
		if t, ok := r.sent[n]; ok && now.Before(t.Add(m.opts.Resend)) {
			continue
		}
		r.sent[n] = now
		out.Commands = append(out.Commands, Command{Node: n, Cmd: m.command(r, r.stage, n)})
	}
}

// enter moves the rotation to stage s (StageIdle ends it) and persists
// that before any command of the stage is sent.
func (m *Machine) enter(now time.Time, s Stage, reason string, out *Output) {
	r := m.cur
	if s == StageIdle {
		outcome := Completed
		if r.stage.rollingBack() {
			outcome = RolledBack
		}
		m.finish(now, outcome, r.reason, out)
		return
	}
	out.Transitions = append(out.Transitions, Transition{Node: r.subject, ID: r.id, From: r.stage, To: s, Reason: reason})
	r.stage, r.since, r.settle, r.timedOut = s, now, time.Time{}, false
	r.done, r.failed, r.conf, r.sent = map[string]bool{}, map[string]string{}, map[string]map[string]bool{}, map[string]time.Time{}
	switch s {
	case StageDistribute:
		r.touched = true
	case StageSwitchToTemp:
		r.switched = true
	case StageRekey:
		r.rekeyed = true
	}
	phase := s.Phase()
	p := NodePatch{Node: r.subject, RotationPhase: &phase, Rotating: rotating(now, s, r, reason)}
	if s == StageDistribute {
		k := r.newKey.String()
		p.PendingPublicKey = &k
	}
	if s == StageRetire {
		// The point of no return: the new key becomes the node's key.
		k, g := r.newKey.String(), int64(r.newGen)
		p.PublicKey, p.KeyGeneration = &k, &g
		m.commit(KeyCommit{Node: r.subject, Key: r.newKey, Generation: g}, out)
	}
	if m.nodes[r.subject] != nil {
		out.Nodes = append(out.Nodes, p)
	}
	if r.policy != "" {
		out.Policies = append(out.Policies, PolicyPatch{Policy: r.policy, CurrentNode: &r.subject, Phase: &phase})
	}
	m.resend(now, out)
}

func rotating(now time.Time, s Stage, r *rot, reason string) *metav1.Condition {
	msg := fmt.Sprintf("rotation %s: %s", r.id, s)
	if reason != "" {
		msg += ": " + reason
	}
	return &metav1.Condition{Type: v1alpha1.ConditionRotating, Status: metav1.ConditionTrue, Reason: string(s),
		Message: msg, LastTransitionTime: metav1.NewTime(now)}
}

// commit outputs a key commit and remembers it.
func (m *Machine) commit(k KeyCommit, out *Output) {
	out.Keys = append(out.Keys, k)
	m.committed[k.Node] = k.Generation
	m.commits[k.Node] = k
}

// rollback starts undoing the rotation from where it stands.
func (m *Machine) rollback(now time.Time, reason string, out *Output) {
	r := m.cur
	r.reason = reason
	s := StageRollbackTeardown
	switch {
	case r.rekeyed:
		s = StageRollbackSwitchToTemp
	case r.switched:
		s = StageRollbackSwitchBack
	}
	out.Events = append(out.Events, EventRecord{Kind: "VpbluNode", Name: r.subject, Type: corev1.EventTypeWarning,
		Reason: "RotationRollingBack", Message: fmt.Sprintf("rotation %s rolls back from %s: %s", r.id, r.stage, reason)})
	m.enter(now, s, reason, out)
}

// finish ends the rotation and records how.
func (m *Machine) finish(now time.Time, outcome Outcome, reason string, out *Output) {
	r := m.cur
	m.cur = nil
	out.Transitions = append(out.Transitions, Transition{Node: r.subject, ID: r.id, From: r.stage, To: StageIdle, Reason: reason})
	out.Finished = append(out.Finished, Finished{Node: r.subject, ID: r.id, Outcome: outcome, Duration: now.Sub(r.started), Reason: reason})
	idle, empty := v1alpha1.RotationIdle, ""
	cond := &metav1.Condition{Type: v1alpha1.ConditionRotating, Status: metav1.ConditionFalse, LastTransitionTime: metav1.NewTime(now)}
	entry := v1alpha1.NodeRotation{Node: r.subject, Phase: v1alpha1.RotationIdle}
	ev := EventRecord{Kind: "VpbluNode", Name: r.subject}
	if outcome == Completed {
		cond.Reason, cond.Message = "Rotated", fmt.Sprintf("rotation %s completed", r.id)
		t := metav1.NewTime(now)
		entry.KeyGeneration, entry.LastRotated = int64(r.newGen), &t
		m.rotated[r.subject] = now
		ev.Type, ev.Reason, ev.Message = corev1.EventTypeNormal, "Rotated", fmt.Sprintf("key rotated to generation %d", r.newGen)
	} else {
		cond.Reason, cond.Message = "RolledBack", fmt.Sprintf("rotation %s rolled back: %s", r.id, reason)
		entry.KeyGeneration, entry.Message = r.oldGen, "rolled back: "+reason
		if !r.oldKey.IsZero() {
			out.Keys = append(out.Keys, KeyCommit{Node: r.subject, Key: r.oldKey, Generation: r.oldGen})
		}
		ev.Type, ev.Reason, ev.Message = corev1.EventTypeWarning, "RotationRolledBack", cond.Message
	}
	if m.nodes[r.subject] != nil {
		out.Nodes = append(out.Nodes, NodePatch{Node: r.subject, RotationPhase: &idle, PendingPublicKey: &empty, Rotating: cond})
		out.Events = append(out.Events, ev)
	}
	for _, pol := range m.selecting(r.subject) {
		e := entry
		pp := PolicyPatch{Policy: pol.Name, Node: &e}
		if pol.Name == r.policy || r.policy == "" && pol.Status.CurrentNode == r.subject {
			pp.CurrentNode, pp.Phase = &empty, &idle
		}
		out.Policies = append(out.Policies, pp)
	}
}

// command builds the stage's RotationCommand for node n.
func (m *Machine) command(r *rot, s Stage, n string) *meshpb.RotationCommand {
	phase, step := s.Wire()
	c := &meshpb.RotationCommand{Id: r.id, Phase: phase, Step: step, Subject: r.subject, NewKeyGeneration: r.newGen}
	if !r.newKey.IsZero() {
		c.SubjectNewPublicKey = r.newKey[:]
	}
	if !r.oldKey.IsZero() {
		c.SubjectPublicKey = r.oldKey[:]
	}
	if node := m.nodes[n]; node != nil {
		c.TempPort = uint32(tempPort(node.ListenPort))
	}
	if n == r.subject {
		for _, p := range m.peersOf(r.subject) {
			if slices.Contains(r.peers, p.Node) {
				c.Peers = append(c.Peers, &meshpb.Peer{Node: p.Node, PublicKey: p.PublicKey[:], Endpoint: tempEndpoint(p.Endpoint)})
			}
		}
		return c
	}
	if r.newKey.IsZero() {
		return c
	}
	for _, p := range m.peersOf(n) {
		if p.Node == r.subject {
			c.Peers = []*meshpb.Peer{{Node: r.subject, PublicKey: r.newKey[:], Endpoint: tempEndpoint(p.Endpoint)}}
		}
	}
	return c
}

func tempPort(listen uint16) int {
	if listen == 0 {
		listen = v1alpha1.DefaultListenPort
	}
	return int(listen) + 1
}

func tempEndpoint(ep netip.AddrPort) string {
	if !ep.IsValid() || ep.Port() == 65535 {
		return ""
	}
	return netip.AddrPortFrom(ep.Addr(), ep.Port()+1).String()
}

func (m *Machine) wakeAt() time.Time {
	var at time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if r := m.cur; r != nil {
		earliest(r.since.Add(r.overlap))
		earliest(r.settle)
		for _, n := range r.recipients() {
			if t, ok := r.sent[n]; ok && !r.done[n] && r.failed[n] == "" {
				earliest(t.Add(m.opts.Resend))
			}
		}
	}
	for _, p := range m.world.Policies {
		if !p.Spec.Suspend {
			earliest(m.runOf(&p).next)
		}
	}
	return at
}
