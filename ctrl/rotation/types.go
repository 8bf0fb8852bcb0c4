package rotation

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Capability is what a daemon's Hello must advertise for its node to take
// part in a rotation (as the subject or a peer).
const Capability = "rotation/v1"

// Stage is where a rotation stands. It is persisted as the reason of the
// VpbluNode's Rotating condition, next to status.rotationPhase.
type Stage string

const (
	StageIdle                 Stage = "Idle"
	StagePrepare              Stage = "Prepare"
	StageDistribute           Stage = "Distribute"
	StageSwitchToTemp         Stage = "SwitchToTemp"
	StageRekey                Stage = "Rekey"
	StageSwitchBack           Stage = "SwitchBack"
	StageRetire               Stage = "Retire"
	StageRollbackSwitchToTemp Stage = "RollbackSwitchToTemp"
	StageRollbackRestore      Stage = "RollbackRestore"
	StageRollbackSwitchBack   Stage = "RollbackSwitchBack"
	StageRollbackTeardown     Stage = "RollbackTeardown"
)

type stageInfo struct {
	phase v1alpha1.RotationPhase
	wire  meshpb.RotationPhase
	step  meshpb.RotationStep
	// confirm: the stage completes only once every pair confirmed a
	// handshake. settle: after every node did it, the machine waits
	// Options.Settle before the next stage changes the path just left.
	confirm, settle, rollback bool
	// subjectFirst: the peers get the stage's command once the subject
	// did it. A peer's new entry for the subject starts a handshake at
	// once; sent before the subject changed its key, that handshake is
	// dropped and WireGuard tries again only after REKEY_TIMEOUT (5 s).
	subjectFirst bool
}

var stages = map[Stage]stageInfo{
	StagePrepare:              {phase: v1alpha1.RotationPrepare, wire: meshpb.RotationPhase_ROTATION_PHASE_PREPARE},
	StageDistribute:           {phase: v1alpha1.RotationDistribute, wire: meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE, confirm: true},
	StageSwitchToTemp:         {phase: v1alpha1.RotationActivate, wire: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, step: meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP, settle: true},
	StageRekey:                {phase: v1alpha1.RotationActivate, wire: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, step: meshpb.RotationStep_ROTATION_STEP_REKEY, confirm: true, subjectFirst: true},
	StageSwitchBack:           {phase: v1alpha1.RotationActivate, wire: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, step: meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK, settle: true},
	StageRetire:               {phase: v1alpha1.RotationRetire, wire: meshpb.RotationPhase_ROTATION_PHASE_RETIRE},
	StageRollbackSwitchToTemp: {phase: v1alpha1.RotationRollingBack, wire: meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, step: meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP, settle: true, rollback: true},
	StageRollbackRestore:      {phase: v1alpha1.RotationRollingBack, wire: meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, step: meshpb.RotationStep_ROTATION_STEP_RESTORE, confirm: true, rollback: true, subjectFirst: true},
	StageRollbackSwitchBack:   {phase: v1alpha1.RotationRollingBack, wire: meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, step: meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK, settle: true, rollback: true},
	StageRollbackTeardown:     {phase: v1alpha1.RotationRollingBack, wire: meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK, step: meshpb.RotationStep_ROTATION_STEP_TEARDOWN, rollback: true},
}

// next is the stage after a completed one.
var next = map[Stage]Stage{
	StagePrepare: StageDistribute, StageDistribute: StageSwitchToTemp, StageSwitchToTemp: StageRekey,
	StageRekey: StageSwitchBack, StageSwitchBack: StageRetire, StageRetire: StageIdle,
	StageRollbackSwitchToTemp: StageRollbackRestore, StageRollbackRestore: StageRollbackSwitchBack,
	StageRollbackSwitchBack: StageRollbackTeardown, StageRollbackTeardown: StageIdle,
}

// Phase is the API phase of the stage.
func (s Stage) Phase() v1alpha1.RotationPhase {
	if i, ok := stages[s]; ok {
		return i.phase
	}
	return v1alpha1.RotationIdle
}

// Wire is the stage's (phase, step) on the stream.
func (s Stage) Wire() (meshpb.RotationPhase, meshpb.RotationStep) {
	i := stages[s]
	return i.wire, i.step
}

// StageOf maps a (phase, step) from the stream back to a Stage; ok is
// false for pairs no stage sends. ROLLBACK with no step is a teardown.
func StageOf(p meshpb.RotationPhase, s meshpb.RotationStep) (Stage, bool) {
	if p == meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK && s == meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED {
		return StageRollbackTeardown, true
	}
	for st, i := range stages {
		if i.wire == p && i.step == s {
			return st, true
		}
	}
	return "", false
}

// rolledBack reports whether the stage belongs to a rollback.
func (s Stage) rollingBack() bool { return stages[s].rollback }

// ID names the rotation of node to key generation gen; every command and
// report of it carries the ID, and a new leader derives it from the
// VpbluNode status.
func ID(node string, gen uint64) string { return node + "/" + strconv.FormatUint(gen, 10) }

// ParseID splits an ID.
func ParseID(id string) (node string, gen uint64, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, false
	}
	g, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil || g == 0 {
		return "", 0, false
	}
	return id[:i], g, true
}

// Peer is one peer entry of a node's desired state.
type Peer struct {
	Node      string
	PublicKey desired.Key
	// Endpoint is where the node reaches the peer's wg-mesh; the peer's
	// temporary interface listens on the next port.
	Endpoint netip.AddrPort
}

// Mesh answers what the desired state says; the controller's desired-state
// engine implements it.
type Mesh interface {
	// Peers returns node's peers, sorted by node name (nil when the node
	// has none or is unknown).
	Peers(node string) []Peer
}

// Node is what the machine reads of one node.
type Node struct {
	Name string
	// Labels are the Kubernetes Node's labels (RotationPolicy selectors
	// match them).
	Labels map[string]string
	// RotateRequest is the VpbluNode's vpblu.io/rotate annotation ("" when
	// absent).
	RotateRequest string
	// Status is the VpbluNode status as last read.
	Status v1alpha1.VpbluNodeStatus
	// Connected: the daemon holds a stream to this controller. Capable:
	// its Hello advertised Capability.
	Connected, Capable bool
	// ListenPort is wg-mesh's port in the node's desired state (0 means
	// v1alpha1.DefaultListenPort); the temporary interface uses the next.
	ListenPort uint16
}

// World is everything the machine reads, as the informers show it.
type World struct {
	Nodes    []Node
	Policies []v1alpha1.RotationPolicy
	Mesh     Mesh
}

// Event is an input of the machine.
type Event interface{ isEvent() }

// Observe replaces the machine's view of the world. The first one after
// New adopts a rotation the API shows in progress (a leader change).
type Observe struct{ World World }

// Tick: only time passed (cron due, settle over, a deadline, a resend).
type Tick struct{}

// KeyReported: a daemon reported a key (the subject's PENDING key ends
// Prepare).
type KeyReported struct {
	Node string
	Key  *meshpb.KeyReport
}

// Acked: a node completed (Err empty) or failed a stage of rotation ID.
type Acked struct {
	Node, ID string
	Stage    Stage
	Err      string
	// NewGeneration is the rotation's new key generation, as reported.
	NewGeneration uint64
	// InProgress: the node journals the stage but has neither finished
	// nor failed it, e.g. a restarted daemon waiting on a handshake of a
	// rotation that ended while it was away. It counts for nothing in the
	// rotation in progress; a rotation no longer in progress answers it.
	InProgress bool
}

// Confirmed: node has confirmed handshakes with Peers at Stage.
type Confirmed struct {
	Node, ID string
	Stage    Stage
	Peers    []string
}

// Connected and Disconnected: a daemon's stream came or went.
type Connected struct {
	Node    string
	Capable bool
}

type Disconnected struct{ Node string }

func (Observe) isEvent()      {}
func (Tick) isEvent()         {}
func (KeyReported) isEvent()  {}
func (Acked) isEvent()        {}
func (Confirmed) isEvent()    {}
func (Connected) isEvent()    {}
func (Disconnected) isEvent() {}

// FromReport turns a daemon's RotationReport into events: Acked when the
// node finished (or failed) the step, or InProgress when it did neither,
// and Confirmed for its handshakes.
func FromReport(node string, r *meshpb.RotationReport) []Event {
	st, ok := StageOf(r.GetPhase(), r.GetStep())
	if !ok || r.GetId() == "" {
		return nil
	}
	var out []Event
	out = append(out, Acked{Node: node, ID: r.GetId(), Stage: st, Err: r.GetError(), NewGeneration: r.GetNewKeyGeneration(),
		InProgress: !r.GetDone() && r.GetError() == ""})
	if len(r.GetConfirmed()) > 0 {
		out = append(out, Confirmed{Node: node, ID: r.GetId(), Stage: st, Peers: r.GetConfirmed()})
	}
	return out
}

// Command is a RotationCommand for one node.
type Command struct {
	Node string
	Cmd  *meshpb.RotationCommand
}

// NodePatch changes rotation fields of one VpbluNode status; nil fields
// stay as they are.
type NodePatch struct {
	Node              string
	PublicKey         *string
	KeyGeneration     *int64
	PendingPublicKey  *string
	RotationPhase     *v1alpha1.RotationPhase
	LastRotateRequest *string
	// Rotating replaces the Rotating condition (its reason is the Stage).
	Rotating *metav1.Condition
}

// PolicyPatch changes one RotationPolicy status; nil fields stay.
type PolicyPatch struct {
	Policy             string
	ObservedGeneration *int64
	LastRun, NextRun   *time.Time
	CurrentNode        *string
	Phase              *v1alpha1.RotationPhase
	// Node replaces (or adds) that node's entry of status.nodes.
	Node *v1alpha1.NodeRotation
	// Conditions replace the conditions of the same types.
	Conditions []metav1.Condition
}

// Apply sets the fields p carries on st; the others stay.
func (p NodePatch) Apply(st *v1alpha1.VpbluNodeStatus) {
	if p.PublicKey != nil {
		st.PublicKey = *p.PublicKey
	}
	if p.KeyGeneration != nil {
		st.KeyGeneration = *p.KeyGeneration
	}
	if p.PendingPublicKey != nil {
		st.PendingPublicKey = *p.PendingPublicKey
	}
	if p.RotationPhase != nil {
		st.RotationPhase = *p.RotationPhase
	}
	if p.LastRotateRequest != nil {
		st.LastRotateRequest = *p.LastRotateRequest
	}
	if p.Rotating != nil {
		meta.SetStatusCondition(&st.Conditions, *p.Rotating)
	}
}

// Apply sets the fields p carries on st; the others stay. A node entry
// replaces the node's (status.nodes stays sorted by node).
func (p PolicyPatch) Apply(st *v1alpha1.RotationPolicyStatus) {
	if p.ObservedGeneration != nil {
		st.ObservedGeneration = *p.ObservedGeneration
	}
	if p.LastRun != nil {
		t := metav1.NewTime(*p.LastRun)
		st.LastRun = &t
	}
	if p.NextRun != nil {
		t := metav1.NewTime(*p.NextRun)
		st.NextRun = &t
	}
	if p.CurrentNode != nil {
		st.CurrentNode = *p.CurrentNode
	}
	if p.Phase != nil {
		st.Phase = *p.Phase
	}
	if p.Node != nil {
		i := slices.IndexFunc(st.Nodes, func(n v1alpha1.NodeRotation) bool { return n.Node == p.Node.Node })
		if i >= 0 {
			st.Nodes[i] = *p.Node
		} else {
			st.Nodes = append(st.Nodes, *p.Node)
			slices.SortFunc(st.Nodes, func(a, b v1alpha1.NodeRotation) int { return strings.Compare(a.Node, b.Node) })
		}
	}
	for _, c := range p.Conditions {
		meta.SetStatusCondition(&st.Conditions, c)
	}
}

// KeyCommit makes Key the node's key in the desired state, as if its
// daemon had reported it ACTIVE. While a node rotates (Machine.Rotating),
// its own key reports must not reach the desired state: only KeyCommits
// do.
type KeyCommit struct {
	Node       string
	Key        desired.Key
	Generation int64
}

// EventRecord is a Kubernetes Event to record.
type EventRecord struct {
	// Kind is "VpbluNode" or "RotationPolicy".
	Kind, Name string
	// Type is corev1.EventTypeNormal or EventTypeWarning.
	Type, Reason, Message string
}

// Transition is a stage change, for the rotation_stage metric and logs.
type Transition struct {
	Node, ID string
	From, To Stage
	Reason   string
}

// Outcome is how a rotation ended.
type Outcome string

const (
	Completed  Outcome = "completed"
	RolledBack Outcome = "rolled_back"
)

// Finished is a rotation that ended, for the rotations_total and
// rotation_duration_seconds metrics.
type Finished struct {
	Node, ID string
	Outcome  Outcome
	Duration time.Duration
	Reason   string
}

// Output is what one Handle asks the caller to do, in this order: persist
// Nodes and Policies, feed Keys to the desired state, send Commands,
// record Events; then call Handle(Tick) at WakeAt (zero: no need).
type Output struct {
	Nodes       []NodePatch
	Policies    []PolicyPatch
	Keys        []KeyCommit
	Commands    []Command
	Events      []EventRecord
	Transitions []Transition
	Finished    []Finished
	WakeAt      time.Time
}
