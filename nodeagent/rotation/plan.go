package rotation

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// StepKind says what a Step does besides moving the Overlay.
type StepKind int

const (
	// StepJournal records the rotation and the command being applied;
	// nothing on the node changes.
	StepJournal StepKind = iota
	// StepStageKey generates (or finds) the pending key.
	StepStageKey
	// StepSetTemp creates or updates wg-rot, its path (rule and table
	// ending in a blackhole) and deliver on it.
	StepSetTemp
	// StepSwitchToTemp steers the named peers' CIDRs into wg-rot (the
	// remote CIDRs' fwmark becomes the temporary mark).
	StepSwitchToTemp
	// StepRekeyMesh gives wg-mesh the new key: the subject's private key,
	// or the subject's new public key on a peer.
	StepRekeyMesh
	// StepRestoreMesh gives wg-mesh the old key back.
	StepRestoreMesh
	// StepSwitchBack steers the named peers' CIDRs into wg-mesh again.
	StepSwitchBack
	// StepActivateKey makes the new key the store's active key (the old
	// one becomes previous).
	StepActivateKey
	// StepDeleteTemp removes wg-rot's path and deliver, then wg-rot.
	StepDeleteTemp
	// StepFinish ends the rotation on the node; a peer keeps a
	// supersession of the subject's key.
	StepFinish
	// StepRetireKey zeroizes the previous (old) key.
	StepRetireKey
	// StepRollbackKey zeroizes the pending (new) key.
	StepRollbackKey
	// StepDone records that the command completed.
	StepDone
)

var stepNames = map[StepKind]string{
	StepJournal: "journal", StepStageKey: "stage-key", StepSetTemp: "set-temp", StepSwitchToTemp: "switch-to-temp",
	StepRekeyMesh: "rekey-mesh", StepRestoreMesh: "restore-mesh", StepSwitchBack: "switch-back",
	StepActivateKey: "activate-key", StepDeleteTemp: "delete-temp", StepFinish: "finish",
	StepRetireKey: "retire-key", StepRollbackKey: "rollback-key", StepDone: "done",
}

func (k StepKind) String() string {
	if s, ok := stepNames[k]; ok {
		return s
	}
	return fmt.Sprintf("step(%d)", int(k))
}

// Step is one action of a Plan. Overlay is the overlay after the step: the
// executor journals it before acting and hands it to the host when it
// composes differently from the one before.
type Step struct {
	Kind StepKind
	// Generation is the key generation of key steps.
	Generation uint64
	// Nodes are the peers a switch moves.
	Nodes   []string
	Overlay Overlay
	// Report is the KeyReport state to send after the step
	// (KEY_STATE_UNSPECIFIED: none).
	Report meshpb.KeyState
}

// String renders the step for logs and golden files. It never contains a
// private key.
func (s Step) String() string {
	var b strings.Builder
	b.WriteString(s.Kind.String())
	o := s.Overlay
	switch s.Kind {
	case StepJournal:
		fmt.Fprintf(&b, " %s %s (%s, subject %s) done=%t", o.ID, o.Stage, o.Role, o.Subject, o.Done)
	case StepStageKey, StepActivateKey:
		fmt.Fprintf(&b, " generation %d", s.Generation)
	case StepSetTemp:
		t := o.Temp
		key := "active key"
		if t.KeyGeneration != 0 {
			key = fmt.Sprintf("key generation %d", t.KeyGeneration)
		}
		fmt.Fprintf(&b, " %s port %d %s mark %#x table %d peers [%s]", t.Interface, t.Port, key, t.Mark, t.Table, tempPeersString(t.Peers))
	case StepSwitchToTemp, StepSwitchBack:
		fmt.Fprintf(&b, " [%s]", strings.Join(s.Nodes, " "))
	case StepRekeyMesh, StepRestoreMesh:
		if o.Role == Subject {
			gen := "active key"
			if o.MeshGeneration != 0 {
				gen = fmt.Sprintf("key generation %d", o.MeshGeneration)
			}
			fmt.Fprintf(&b, " wg-mesh runs %s", gen)
		} else {
			k := "the desired key"
			if o.MeshPeerKey != (wgtypes.Key{}) {
				k = shortKey(o.MeshPeerKey)
			}
			fmt.Fprintf(&b, " wg-mesh peer %s gets %s", o.Subject, k)
		}
	case StepFinish:
		for _, sp := range o.Supersede {
			fmt.Fprintf(&b, " supersede %s %s->%s", sp.Node, shortKey(sp.Stale), shortKey(sp.Use))
		}
	case StepDone:
		fmt.Fprintf(&b, " %s", o.Stage)
	}
	if s.Report != meshpb.KeyState_KEY_STATE_UNSPECIFIED {
		fmt.Fprintf(&b, " report %s", strings.TrimPrefix(s.Report.String(), "KEY_STATE_"))
	}
	return b.String()
}

func tempPeersString(ps []TempPeer) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		ep := "-"
		if p.Endpoint.IsValid() {
			ep = p.Endpoint.String()
		}
		parts = append(parts, p.Node+"="+shortKey(p.PublicKey)+"@"+ep)
	}
	return strings.Join(parts, " ")
}

// shortKey is the first 8 base64 characters of a public key.
func shortKey(k wgtypes.Key) string { return k.String()[:8] }

// KeySlots are the generations in the key store's slots (0: empty).
type KeySlots struct {
	Active, Pending, Previous uint64
}

// Current is what the planner needs to know of the node.
type Current struct {
	Overlay Overlay
	Keys    KeySlots
}

// PlanOptions are the node's fixed parameters.
type PlanOptions struct {
	// Node is this node's name.
	Node string
	// Interface, Mark and Table of the temporary path; wg.RotationInterface,
	// DefaultMark and DefaultTable when zero.
	Interface string
	Mark      uint32
	Table     int
}

// Plan returns the steps that take the node from cur to the state cmd
// names, in an order that never leaves a packet without a valid path and
// never steers one to a path that does not exist:
//
//	journal, stage key, set temp, switch to temp, rekey/restore wg-mesh,
//	switch back, activate key, delete temp, finish, retire/rollback key,
//	done
//
// A command whose state the node already runs plans only journal/done
// steps; one for a rotation the node does not hold plans nothing unless it
// ends that rotation. now stamps the changes handshakes must confirm.
func Plan(cur Current, cmd Command, now time.Time, opts PlanOptions) ([]Step, error) {
	o := cur.Overlay.Clone()
	role := Peer
	if cmd.Subject == opts.Node {
		role = Subject
	}
	if o.Active() && o.ID != cmd.ID {
		if cmd.Stage.terminal() {
			return nil, nil // ends a rotation this node does not hold
		}
		return nil, fmt.Errorf("%w: %s, command for %s", ErrBusy, o.ID, cmd.ID)
	}
	if !o.Active() && cmd.Stage.terminal() {
		return nil, nil // nothing of it here (never started, or already ended)
	}
	if cmd.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_PREPARE && role != Subject {
		return nil, fmt.Errorf("%w: PREPARE is for the subject %s", ErrInvalid, cmd.Subject)
	}
	if o.Active() && (o.Subject != cmd.Subject || o.NewGeneration != cmd.NewGeneration) {
		return nil, fmt.Errorf("%w: rotation %s changed subject or generation", ErrInvalid, cmd.ID)
	}
	retiring := o.Active() && o.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_RETIRE ||
		role == Subject && cur.Keys.Active == cmd.NewGeneration
	if cmd.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK && retiring {
		return nil, fmt.Errorf("%w: %s", ErrRetiring, cmd.ID)
	}

	p := planner{o: o, now: now}
	// Journal the rotation and the command before anything acts.
	o.ID, o.Subject, o.Role, o.NewGeneration = cmd.ID, cmd.Subject, role, cmd.NewGeneration
	if cmd.NewKey != (wgtypes.Key{}) {
		o.NewKey = cmd.NewKey
	}
	if cmd.OldKey != (wgtypes.Key{}) {
		o.OldKey = cmd.OldKey
	}
	o.Stage, o.Done = cmd.Stage, false
	p.add(Step{Kind: StepJournal}, o)

	if o.meshNew() && (cmd.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE ||
		cmd.Stage == Stage{Phase: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, Step: meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP}) {
		return nil, fmt.Errorf("%w: %s after wg-mesh was re-keyed", ErrOrder, cmd.Stage)
	}

	if cmd.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_PREPARE {
		p.add(Step{Kind: StepStageKey, Generation: cmd.NewGeneration, Report: meshpb.KeyState_KEY_STATE_PENDING}, p.o)
	}

	t := target(p.o, cmd, role, opts)
	if t.temp != nil && !p.o.Temp.equal(t.temp) {
		o := p.o.Clone()
		o.Temp, o.TempSince = t.temp, now
		// Peers that left the temporary interface are no longer switched.
		o.Switched = slices.DeleteFunc(o.Switched, func(n string) bool { return !slices.Contains(t.temp.nodes(), n) })
		p.add(Step{Kind: StepSetTemp}, o)
	}
	if add := minus(t.switched, p.o.Switched); len(add) > 0 {
		o := p.o.Clone()
		o.Switched = union(o.Switched, add)
		p.add(Step{Kind: StepSwitchToTemp, Nodes: add}, o)
	}
	if t.meshNew != p.o.meshNew() {
		o := p.o.Clone()
		o.MeshSince = now
		kind := StepRekeyMesh
		switch {
		case t.meshNew && role == Subject:
			o.MeshGeneration = cmd.NewGeneration
		case t.meshNew:
			o.MeshPeerKey = o.NewKey
		case role == Subject:
			kind, o.MeshGeneration = StepRestoreMesh, 0
		default:
			kind, o.MeshPeerKey = StepRestoreMesh, o.OldKey
		}
		p.add(Step{Kind: kind}, o)
	}
	if back := minus(p.o.Switched, t.switched); len(back) > 0 {
		o := p.o.Clone()
		o.Switched = minus(o.Switched, back)
		p.add(Step{Kind: StepSwitchBack, Nodes: back}, o)
	}
	if !cmd.Stage.terminal() {
		o := p.o.Clone()
		o.Done = true
		p.add(Step{Kind: StepDone}, o)
		return p.steps, nil
	}

	commit := cmd.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_RETIRE
	if commit && role == Subject && cur.Keys.Active != cmd.NewGeneration {
		if cur.Keys.Pending != cmd.NewGeneration {
			return nil, fmt.Errorf("%w: generation %d to activate", ErrNoKey, cmd.NewGeneration)
		}
		p.add(Step{Kind: StepActivateKey, Generation: cmd.NewGeneration}, p.o)
	}
	if p.o.Temp != nil {
		o := p.o.Clone()
		o.Temp, o.Switched = nil, nil
		p.add(Step{Kind: StepDeleteTemp}, o)
	}
	fin := Overlay{Supersede: p.o.Supersede}
	if role == Peer && p.o.NewKey != (wgtypes.Key{}) && p.o.OldKey != (wgtypes.Key{}) {
		s := Supersession{Node: p.o.Subject, Stale: p.o.OldKey, Use: p.o.NewKey}
		if !commit {
			s.Stale, s.Use = s.Use, s.Stale
		}
		fin.Supersede = withSupersession(fin.Supersede, s)
	}
	report := meshpb.KeyState_KEY_STATE_UNSPECIFIED
	if role == Subject {
		report = meshpb.KeyState_KEY_STATE_ACTIVE
	}
	switch {
	case role == Subject && commit:
		p.add(Step{Kind: StepFinish}, fin)
		p.add(Step{Kind: StepRetireKey, Report: report}, fin)
	case role == Subject:
		p.add(Step{Kind: StepFinish}, fin)
		p.add(Step{Kind: StepRollbackKey, Report: report}, fin)
	default:
		p.add(Step{Kind: StepFinish}, fin)
	}
	return p.steps, nil
}

type planner struct {
	o     Overlay
	now   time.Time
	steps []Step
}

func (p *planner) add(s Step, o Overlay) {
	s.Overlay = o.Clone()
	p.steps = append(p.steps, s)
	p.o = o
}

// shape is the state a command names.
type shape struct {
	temp     *Temp
	switched []string
	meshNew  bool
}

func target(o Overlay, cmd Command, role Role, opts PlanOptions) shape {
	iface, mark, table := defaultTemp(opts.Interface, opts.Mark, opts.Table)
	want := &Temp{Interface: iface, Port: cmd.TempPort, Mark: mark, Table: table, Peers: slices.Clone(cmd.Peers)}
	if role == Subject {
		want.KeyGeneration = cmd.NewGeneration
	}
	all := want.nodes()
	cur := o.Temp.nodes()
	s := shape{temp: o.Temp, meshNew: o.meshNew()}
	const (
		activate = meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE
		rollback = meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK
	)
	switch cmd.Stage {
	case Stage{Phase: meshpb.RotationPhase_ROTATION_PHASE_PREPARE}:
		s.switched = o.Switched
	case Stage{Phase: meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE}:
		s.temp, s.meshNew = want, false
	case Stage{Phase: activate, Step: meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP}:
		s.temp, s.switched, s.meshNew = want, all, false
	case Stage{Phase: activate, Step: meshpb.RotationStep_ROTATION_STEP_REKEY}:
		s.temp, s.switched, s.meshNew = want, all, true
	case Stage{Phase: activate, Step: meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK}:
		s.temp, s.meshNew = want, true
	case Stage{Phase: meshpb.RotationPhase_ROTATION_PHASE_RETIRE}:
		s.meshNew = true
	case Stage{Phase: rollback, Step: meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP}:
		s.switched = cur
	case Stage{Phase: rollback, Step: meshpb.RotationStep_ROTATION_STEP_RESTORE}:
		s.switched, s.meshNew = cur, false
	default: // ROLLBACK SWITCH_BACK, TEARDOWN
		s.meshNew = false
	}
	return s
}

// minus returns the elements of a not in b, in a's order.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
