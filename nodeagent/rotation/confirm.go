package rotation

import (
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// What a handshake confirms, per stage: the temporary interface after
// DISTRIBUTE and SWITCH_TO_TEMP, wg-mesh under the new keys after REKEY
// and SWITCH_BACK, wg-mesh under the old keys after RESTORE and a
// rollback's SWITCH_BACK.
type watch int

const (
	watchNone watch = iota
	watchTemp
	watchMesh
)

func watchOf(s Stage) watch {
	switch {
	case s.Phase == meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE,
		s.Step == meshpb.RotationStep_ROTATION_STEP_SWITCH_TO_TEMP:
		return watchTemp
	case s.Phase == meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE,
		s.Step == meshpb.RotationStep_ROTATION_STEP_RESTORE,
		s.Phase == meshpb.RotationPhase_ROTATION_PHASE_ROLLBACK && s.Step == meshpb.RotationStep_ROTATION_STEP_SWITCH_BACK:
		return watchMesh
	}
	return watchNone
}

// awaits reports whether the controller waits on confirmations after s.
func awaits(s Stage) bool {
	return s.Phase == meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE ||
		s.Step == meshpb.RotationStep_ROTATION_STEP_REKEY || s.Step == meshpb.RotationStep_ROTATION_STEP_RESTORE
}

// Confirmed returns the nodes (sorted) with which the handshake the
// overlay's stage waits on has completed: the peer entry with the
// expected public key on the watched interface reports a last handshake
// at or after the change (TempSince or MeshSince). A handshake completes
// on a side only when that side can both send and receive under the new
// session: the initiator when the response arrives, the responder when
// the first packet under the session arrives (the initiator sends a
// keepalive at once). Kernel WireGuard and wireguard-go behave alike;
// both report the time as wall-clock time, which is what the stamps are.
func Confirmed(o Overlay, temp, mesh *wg.Status) []string {
	if !o.Active() || o.Temp == nil {
		return nil
	}
	var st *wg.Status
	since := o.TempSince
	switch watchOf(o.Stage) {
	case watchTemp:
		st = temp
	case watchMesh:
		st, since = mesh, o.MeshSince
	}
	if st == nil {
		return nil
	}
	var out []string
	for _, tp := range o.Temp.Peers {
		key := tp.PublicKey
		if st == mesh && o.Role == Peer {
			key = o.NewKey
			if !o.meshNew() {
				key = o.OldKey
			}
		}
		if handshakeSince(st, key, since) {
			out = append(out, tp.Node)
		}
	}
	return out
}

func handshakeSince(st *wg.Status, key wgtypes.Key, since time.Time) bool {
	if key == (wgtypes.Key{}) {
		return false
	}
	for _, p := range st.Peers {
		if p.PublicKey == key {
			return !p.LastHandshake.IsZero() && !p.LastHandshake.Before(since)
		}
	}
	return false
}
