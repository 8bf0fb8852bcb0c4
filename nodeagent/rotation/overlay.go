package rotation

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Defaults of the temporary path. The mark must differ from wg-mesh's
// under the mask and stay inside it (route.DefaultMark 0x1100,
// route.DefaultMask 0x3f00).
const (
	DefaultMark  = route.DefaultMark + 0x100
	DefaultTable = route.DefaultTable + 1
	// Keepalive is the persistent keepalive of wg-rot's peers, and of the
	// rotation's wg-mesh peers whose desired keepalive is 0. Turning a
	// keepalive on makes WireGuard send one at once, which starts the
	// handshake a confirmation waits for even when no traffic flows.
	Keepalive = 5 * time.Second
)

// Capability is what the daemon's Hello advertises once it carries out
// rotation commands (ctrl/rotation.Capability is the same string).
const Capability = "rotation/v1"

// Role is what a node is in a rotation.
type Role string

const (
	// Subject is the node whose key rotates.
	Subject Role = "subject"
	// Peer is a peer of the subject.
	Peer Role = "peer"
)

// Stage is a command's (phase, step).
type Stage struct {
	Phase meshpb.RotationPhase
	Step  meshpb.RotationStep
}

// String renders the stage as "ACTIVATE/REKEY" (or "RETIRE").
func (s Stage) String() string {
	p := strings.TrimPrefix(s.Phase.String(), "ROTATION_PHASE_")
	if s.Step == meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED {
		return p
	}
	return p + "/" + strings.TrimPrefix(s.Step.String(), "ROTATION_STEP_")
}

// terminal reports whether the stage ends the rotation on the node.
func (s Stage) terminal() bool {
	return s.Phase == meshpb.RotationPhase_ROTATION_PHASE_RETIRE || s.isTeardown()
}

func (s Stage) isTeardown() bool {
	return s.Phase == meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK &&
		(s.Step == meshpb.RotationStep_ROTATION_STEP_TEARDOWN || s.Step == meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED)
}

// TempPeer is a peer of the temporary interface. Its allowed IPs are not
// here: Compose takes them from the desired state, so they follow policy
// changes during the rotation.
type TempPeer struct {
	Node      string
	PublicKey wgtypes.Key
	// Endpoint is the peer's temporary interface; zero when unknown.
	Endpoint netip.AddrPort
}

// Temp is the temporary interface and its policy-routing path.
type Temp struct {
	Interface string
	Port      int
	Mark      uint32
	Table     int
	// KeyGeneration is the generation of its private key: the subject's
	// new key; 0 (on peers) means the active key.
	KeyGeneration uint64
	// Peers are sorted by node.
	Peers []TempPeer
}

func (t *Temp) clone() *Temp {
	if t == nil {
		return nil
	}
	c := *t
	c.Peers = slices.Clone(t.Peers)
	return &c
}

func (t *Temp) equal(o *Temp) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.Interface == o.Interface && t.Port == o.Port && t.Mark == o.Mark && t.Table == o.Table &&
		t.KeyGeneration == o.KeyGeneration && slices.Equal(t.Peers, o.Peers)
}

// nodes returns the names of the temporary interface's peers, sorted.
func (t *Temp) nodes() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.Peers))
	for _, p := range t.Peers {
		out = append(out, p.Node)
	}
	return out
}

// Supersession says that a node's key Stale was replaced by Use in a
// rotation that ended here. Until the desired state stops naming Stale
// for Node (the controller's delta may arrive after the command that
// ended the rotation), Compose gives wg-mesh Use instead. Stale is never
// valid again: the subject zeroized it (or, after a rollback, never ran
// it), so using Use is always right.
type Supersession struct {
	Node  string
	Stale wgtypes.Key
	Use   wgtypes.Key
}

// Overlay is what rotations lay over a node's desired state. The zero
// Overlay changes nothing.
type Overlay struct {
	// ID names the rotation in progress; empty when none.
	ID      string
	Subject string
	Role    Role
	// NewGeneration is the subject's new key generation; NewKey its public
	// key (zero until DISTRIBUTE) and OldKey the subject's key before the
	// rotation (known to peers; may be zero).
	NewGeneration  uint64
	NewKey, OldKey wgtypes.Key
	// Stage is the last command started; Done whether it completed.
	Stage Stage
	Done  bool
	// Temp is the temporary interface; nil when it does not exist.
	Temp *Temp
	// Switched names the peers whose traffic is steered into Temp, sorted.
	Switched []string
	// MeshGeneration (subject) is the key generation wg-mesh runs; 0 means
	// the key store's active key.
	MeshGeneration uint64
	// MeshPeerKey (peer) is the key wg-mesh gives the subject; zero means
	// the desired state's.
	MeshPeerKey wgtypes.Key
	// TempSince and MeshSince are when Temp and wg-mesh last changed in a
	// way a handshake must confirm: a confirmation needs a handshake at or
	// after them.
	TempSince, MeshSince time.Time
	// Supersede lists key replacements of finished rotations, sorted by
	// node, at most one per node.
	Supersede []Supersession
}

// Active reports whether a rotation is in progress.
func (o Overlay) Active() bool { return o.ID != "" }

// Clone returns a deep copy.
func (o Overlay) Clone() Overlay {
	c := o
	c.Temp = o.Temp.clone()
	c.Switched = slices.Clone(o.Switched)
	c.Supersede = slices.Clone(o.Supersede)
	return c
}

// composeEqual reports whether two overlays compose the same
// configuration: only then may a step skip the host.
func composeEqual(a, b Overlay) bool {
	return a.Subject == b.Subject && a.Role == b.Role && a.NewKey == b.NewKey &&
		a.Temp.equal(b.Temp) && slices.Equal(a.Switched, b.Switched) &&
		a.MeshGeneration == b.MeshGeneration && a.MeshPeerKey == b.MeshPeerKey &&
		slices.Equal(a.Supersede, b.Supersede)
}

// meshNew reports whether wg-mesh runs the rotation's new key (subject) or
// gives the subject its new key (peer).
func (o Overlay) meshNew() bool {
	if o.Role == Subject {
		return o.NewGeneration != 0 && o.MeshGeneration == o.NewGeneration
	}
	return o.NewKey != (wgtypes.Key{}) && o.MeshPeerKey == o.NewKey
}

// withSupersession returns the list with s replacing any entry for the
// same node.
func withSupersession(list []Supersession, s Supersession) []Supersession {
	out := slices.DeleteFunc(slices.Clone(list), func(x Supersession) bool { return x.Node == s.Node })
	out = append(out, s)
	slices.SortFunc(out, func(a, b Supersession) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// defaultTemp fills the interface, mark and table of the temporary path.
func defaultTemp(iface string, mark uint32, table int) (string, uint32, int) {
	if iface == "" {
		iface = wg.RotationInterface
	}
	if mark == 0 {
		mark = DefaultMark
	}
	if table == 0 {
		table = DefaultTable
	}
	return iface, mark, table
}
