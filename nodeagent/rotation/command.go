package rotation

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

var (
	// ErrInvalid marks a command that can never be carried out.
	ErrInvalid = errors.New("invalid rotation command")
	// ErrBusy: another rotation is journaled on this node; the controller
	// ends it first.
	ErrBusy = errors.New("another rotation is in progress on this node")
	// ErrOrder: a forward command that would undo a re-key (only rollback
	// may do that).
	ErrOrder = errors.New("rotation command out of order")
	// ErrRetiring: a rollback after the rotation passed its point of no
	// return on this node.
	ErrRetiring = errors.New("rotation is retiring; it cannot be rolled back")
	// ErrNoKey: a key generation the rotation needs is not in the key
	// store.
	ErrNoKey = errors.New("rotation key not in the key store")
)

// Command is a validated RotationCommand.
type Command struct {
	ID      string
	Subject string
	Stage   Stage
	// NewGeneration is the generation of the subject's new key.
	NewGeneration uint64
	// NewKey is the subject's new public key (zero in PREPARE); OldKey its
	// key before the rotation (may be zero).
	NewKey, OldKey wgtypes.Key
	// TempPort is the receiving node's temporary listen port.
	TempPort int
	// Peers are the receiving node's temporary peers, sorted by node.
	Peers []TempPeer
}

var validSteps = map[meshpb.RotationPhase][]meshpb.RotationStep{
	meshpb.RotationPhase_ROTATION_PHASE_PREPARE:    {meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED},
	meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE: {meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED},
	meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE: {
		meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP, meshpb.RotationStep_ROTATION_STEP_REKEY,
		meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK,
	},
	meshpb.RotationPhase_ROTATION_PHASE_RETIRE: {meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED},
	meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK: {
		meshpb.RotationStep_ROTATION_STEP_UNSPECIFIED, meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP,
		meshpb.RotationStep_ROTATION_STEP_RESTORE, meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK,
		meshpb.RotationStep_ROTATION_STEP_TEARDOWN,
	},
}

// needsTemp reports whether the stage brings the temporary interface up.
func (s Stage) needsTemp() bool {
	return s.Phase == meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE || s.Phase == meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE
}

// ParseCommand validates c. Nothing in a command that fails is applied.
func ParseCommand(c *meshpb.RotationCommand) (Command, error) {
	cmd := Command{
		ID: c.GetId(), Subject: c.GetSubject(), NewGeneration: c.GetNewKeyGeneration(),
		Stage: Stage{Phase: c.GetPhase(), Step: c.GetStep()},
	}
	steps, ok := validSteps[cmd.Stage.Phase]
	switch {
	case cmd.ID == "" || len(cmd.ID) > 512:
		return Command{}, fmt.Errorf("%w: id %q", ErrInvalid, cmd.ID)
	case cmd.Subject == "":
		return Command{}, fmt.Errorf("%w: no subject", ErrInvalid)
	case !ok:
		return Command{}, fmt.Errorf("%w: phase %s", ErrInvalid, cmd.Stage.Phase)
	case !slices.Contains(steps, cmd.Stage.Step):
		return Command{}, fmt.Errorf("%w: step %s in phase %s", ErrInvalid, cmd.Stage.Step, cmd.Stage.Phase)
	case cmd.NewGeneration == 0:
		return Command{}, fmt.Errorf("%w: no new key generation", ErrInvalid)
	}
	var err error
	if cmd.NewKey, err = optionalKey(c.GetSubjectNewPublicKey()); err != nil {
		return Command{}, fmt.Errorf("%w: subject new public key: %w", ErrInvalid, err)
	}
	if cmd.OldKey, err = optionalKey(c.GetSubjectPublicKey()); err != nil {
		return Command{}, fmt.Errorf("%w: subject public key: %w", ErrInvalid, err)
	}
	if cmd.NewKey != (wgtypes.Key{}) && cmd.NewKey == cmd.OldKey {
		return Command{}, fmt.Errorf("%w: new key equals the old key", ErrInvalid)
	}
	forward := cmd.Stage.needsTemp() || cmd.Stage.Phase == meshpb.RotationPhase_ROTATION_PHASE_RETIRE
	if forward && cmd.NewKey == (wgtypes.Key{}) {
		return Command{}, fmt.Errorf("%w: %s without the subject's new key", ErrInvalid, cmd.Stage)
	}
	if p := c.GetTempPort(); p > 65535 || (p == 0 && cmd.Stage.needsTemp()) {
		return Command{}, fmt.Errorf("%w: temporary port %d", ErrInvalid, p)
	}
	cmd.TempPort = int(c.GetTempPort())
	seen := map[string]bool{}
	for _, p := range c.GetPeers() {
		tp := TempPeer{Node: p.GetNode()}
		if tp.Node == "" || seen[tp.Node] {
			return Command{}, fmt.Errorf("%w: peer %q missing or listed twice", ErrInvalid, tp.Node)
		}
		seen[tp.Node] = true
		k, err := optionalKey(p.GetPublicKey())
		if err != nil || k == (wgtypes.Key{}) {
			return Command{}, fmt.Errorf("%w: peer %s: public key", ErrInvalid, tp.Node)
		}
		tp.PublicKey = k
		if ep := p.GetEndpoint(); ep != "" {
			a, err := netip.ParseAddrPort(ep)
			if err != nil || a.Port() == 0 {
				return Command{}, fmt.Errorf("%w: peer %s: endpoint %q", ErrInvalid, tp.Node, ep)
			}
			tp.Endpoint = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		}
		cmd.Peers = append(cmd.Peers, tp)
	}
	slices.SortFunc(cmd.Peers, func(a, b TempPeer) int { return strings.Compare(a.Node, b.Node) })
	return cmd, nil
}

// optionalKey parses a public key that may be absent; a present key must
// be 32 bytes and not all zero.
func optionalKey(b []byte) (wgtypes.Key, error) {
	if len(b) == 0 {
		return wgtypes.Key{}, nil
	}
	if len(b) != wgtypes.KeyLen {
		return wgtypes.Key{}, fmt.Errorf("%d bytes, want %d", len(b), wgtypes.KeyLen)
	}
	k := wgtypes.Key(b)
	if k == (wgtypes.Key{}) {
		return wgtypes.Key{}, errors.New("all zero")
	}
	return k, nil
}
