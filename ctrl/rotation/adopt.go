package rotation

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

// adoptOrder ranks phases for adoption: the rotation furthest along is
// resumed, a committed one first.
var adoptOrder = map[v1alpha1.RotationPhase]int{
	v1alpha1.RotationRetire: 0, v1alpha1.RotationRollingBack: 1, v1alpha1.RotationActivate: 2,
	v1alpha1.RotationDistribute: 3, v1alpha1.RotationPrepare: 4,
}

// resumeAt is where a new leader resumes a persisted stage. Stages that
// follow a confirmation barrier go back to it, because the new leader has
// not seen the confirmations: SwitchToTemp resumes at Distribute (nodes
// that had switched move back onto wg-mesh, whose old keys are intact)
// and SwitchBack at Rekey (nodes that had switched back move onto wg-rot
// again). Neither crosses the re-key, so neither loses a packet.
var resumeAt = map[Stage]Stage{
	StageSwitchToTemp: StageDistribute,
	StageSwitchBack:   StageRekey,
}

// defaultStage is the stage a phase resumes at when the Rotating condition
// does not say (or says something that does not fit the phase).
var defaultStage = map[v1alpha1.RotationPhase]Stage{
	v1alpha1.RotationPrepare:     StagePrepare,
	v1alpha1.RotationDistribute:  StageDistribute,
	v1alpha1.RotationActivate:    StageRekey,
	v1alpha1.RotationRetire:      StageRetire,
	v1alpha1.RotationRollingBack: StageRollbackSwitchToTemp,
}

// adopt takes over what the API shows: a leader change mid-rotation. The
// rotation furthest along is resumed; any other (there should be none)
// is ended: RETIRE when it passed its point of no return, a teardown
// otherwise.
func (m *Machine) adopt(now time.Time, out *Output) {
	var busy []*Node
	for i := range m.world.Nodes {
		n := &m.world.Nodes[i]
		if _, ok := adoptOrder[n.Status.RotationPhase]; ok {
			busy = append(busy, n)
		}
	}
	slices.SortFunc(busy, func(a, b *Node) int {
		return cmp.Or(cmp.Compare(adoptOrder[a.Status.RotationPhase], adoptOrder[b.Status.RotationPhase]), strings.Compare(a.Name, b.Name))
	})
	for i, n := range busy {
		if i == 0 {
			m.resume(now, n, out)
			continue
		}
		m.endStray(now, n, out)
	}
}

// persisted reads the rotation a node's status shows.
func persisted(n *Node) (stage Stage, gen uint64, committed bool, newKey desired.Key) {
	st := n.Status
	stage = defaultStage[st.RotationPhase]
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionRotating); c != nil {
		if s := Stage(c.Reason); s.Phase() == st.RotationPhase {
			stage = s
		}
	}
	newKey, _ = desired.ParseKey(st.PendingPublicKey)
	committed = !newKey.IsZero() && st.PublicKey == st.PendingPublicKey
	gen = uint64(st.KeyGeneration) + 1
	if committed {
		gen = uint64(st.KeyGeneration)
	}
	return stage, gen, committed, newKey
}

func (m *Machine) resume(now time.Time, n *Node, out *Output) {
	stage, gen, committed, newKey := persisted(n)
	if r, ok := resumeAt[stage]; ok {
		stage = r
	}
	r := &rot{
		id: ID(n.Name, gen), subject: n.Name, newGen: gen, newKey: newKey, stage: stage, since: now, started: now,
		overlap: m.opts.Overlap, peers: peerNames(m.peersOf(n.Name)), keyAcked: map[string]bool{},
		touched: stage != StagePrepare, switched: stage != StagePrepare && stage != StageDistribute,
		rekeyed: stage == StageRekey || stage == StageRetire || stage.rollingBack(),
		reason:  "resumed by a new leader",
		done:    map[string]bool{}, failed: map[string]string{}, conf: map[string]map[string]bool{}, sent: map[string]time.Time{},
	}
	if stage == StageRollbackTeardown && n.Status.PendingPublicKey == "" {
		r.touched = true
	}
	if !committed {
		r.oldGen = n.Status.KeyGeneration
		r.oldKey, _ = desired.ParseKey(n.Status.PublicKey)
	} else {
		r.oldGen = n.Status.KeyGeneration - 1
	}
	for _, p := range m.selecting(n.Name) {
		r.overlap = min(r.overlap, overlapOf(p))
		if p.Status.CurrentNode == n.Name {
			r.policy = p.Name
		}
	}
	if r.overlap <= 0 {
		r.overlap = m.opts.Overlap
	}
	m.cur = r
	out.Events = append(out.Events, EventRecord{Kind: "VpbluNode", Name: n.Name, Type: corev1.EventTypeNormal,
		Reason: "RotationResumed", Message: fmt.Sprintf("rotation %s resumed by a new leader at %s", r.id, stage)})
	needsKey := stage != StagePrepare && !stage.rollingBack()
	if needsKey && newKey.IsZero() {
		m.rollback(now, "resumed without the pending key in the API", out)
		return
	}
	// Persist where the rotation resumes, then send that stage to all.
	phase := stage.Phase()
	p := NodePatch{Node: n.Name, RotationPhase: &phase, Rotating: rotating(now, stage, r, r.reason)}
	if stage == StageRetire {
		k, g := newKey.String(), int64(gen)
		p.PublicKey, p.KeyGeneration = &k, &g
		m.commit(KeyCommit{Node: n.Name, Key: newKey, Generation: g}, out)
	}
	out.Nodes = append(out.Nodes, p)
	m.resend(now, out)
}

// endStray ends a rotation the new leader does not resume.
func (m *Machine) endStray(now time.Time, n *Node, out *Output) {
	_, gen, _, newKey := persisted(n)
	id := ID(n.Name, gen)
	cmd := func() *meshpb.RotationCommand {
		return &meshpb.RotationCommand{Id: id, Subject: n.Name, NewKeyGeneration: gen,
			Phase: meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, Step: meshpb.RotationStep_ROTATION_STEP_TEARDOWN}
	}
	idle, empty := v1alpha1.RotationIdle, ""
	p := NodePatch{Node: n.Name, RotationPhase: &idle, PendingPublicKey: &empty}
	retire := n.Status.RotationPhase == v1alpha1.RotationRetire && !newKey.IsZero()
	if retire {
		k, g := newKey.String(), int64(gen)
		p.PublicKey, p.KeyGeneration = &k, &g
		m.commit(KeyCommit{Node: n.Name, Key: newKey, Generation: g}, out)
	}
	out.Nodes = append(out.Nodes, p)
	for _, to := range append([]string{n.Name}, peerNames(m.peersOf(n.Name))...) {
		c := cmd()
		if retire {
			c.Phase, c.Step, c.SubjectNewPublicKey = meshpb.RotationPhase_ROTATION_PHASE_RETIRE, meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED, newKey[:]
		}
		out.Commands = append(out.Commands, Command{Node: to, Cmd: c})
	}
	out.Events = append(out.Events, EventRecord{Kind: "VpbluNode", Name: n.Name, Type: corev1.EventTypeWarning,
		Reason: "RotationEnded", Message: fmt.Sprintf("rotation %s ended by a new leader: only one rotation runs at a time", id)})
}
