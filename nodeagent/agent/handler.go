package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/core/wire"
	"github.com/lumbrjx/vpblu/nodeagent/health"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/stream"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

var (
	_ stream.Handler          = (*Agent)(nil)
	_ stream.HelloProvider    = (*Agent)(nil)
	_ stream.StatusProvider   = (*Agent)(nil)
	_ stream.RotationProvider = (*Agent)(nil)
	_ Reporter                = (*stream.Client)(nil)
)

// ackCode classifies a reconcile error for the controller.
func ackCode(err error) meshpb.AckCode {
	switch {
	case err == nil:
		return meshpb.AckCode_ACK_OK
	case errors.Is(err, bpf.ErrCapacity):
		return meshpb.AckCode_ACK_CAPACITY
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, ErrInvalid), errors.Is(err, wg.ErrInvalid),
		errors.Is(err, route.ErrInvalid), errors.Is(err, mss.ErrInvalid), errors.Is(err, bpf.ErrInvalidState):
		return meshpb.AckCode_ACK_INVALID
	case errors.Is(err, desired.ErrDelta):
		return meshpb.AckCode_ACK_GAP
	default:
		return meshpb.AckCode_ACK_FAILED
	}
}

// Apply implements stream.Handler: a SyncState is reconciled as given
// (every part), a Delta on top of the state last reconciled (only the
// parts whose configuration it changes), a rotation command is
// carried out by the rotation executor (its reports go to the Reporter;
// ACK_INVALID for a command that can never be carried out, ACK_FAILED
// for any other failure, after which the node stands at the last step
// that succeeded).
func (a *Agent) Apply(ctx context.Context, msg *meshpb.ControllerMessage) (meshpb.AckCode, error) {
	if r, ok := msg.GetCmd().(*meshpb.ControllerMessage_Rotation); ok {
		return a.rotate(r.Rotation)
	}
	err := a.apply(ctx, msg)
	return ackCode(err), err
}

func (a *Agent) apply(ctx context.Context, msg *meshpb.ControllerMessage) error {
	switch cmd := msg.GetCmd().(type) {
	case *meshpb.ControllerMessage_Sync:
		s, err := wire.DecodeState(cmd.Sync)
		if err != nil {
			return err
		}
		return a.Reconcile(ctx, s)
	case *meshpb.ControllerMessage_Delta:
		d, err := wire.DecodeDelta(cmd.Delta)
		if err != nil {
			return err
		}
		cur, ok := a.State()
		if !ok {
			return fmt.Errorf("%w: no state to apply a delta to", desired.ErrDelta)
		}
		next, err := desired.Apply(cur, d)
		if err != nil {
			return err
		}
		return a.reconcile(ctx, next, true)
	default:
		return fmt.Errorf("%w: command %T", ErrInvalid, cmd)
	}
}

func keyReport(k keys.Key, st meshpb.KeyState) *meshpb.KeyReport {
	pub := k.Public()
	return &meshpb.KeyReport{PublicKey: pub[:], Generation: k.Generation, State: st, CreatedUnixNano: k.Created.UnixNano()}
}

// Hello implements stream.HelloProvider.
func (a *Agent) Hello(context.Context) (*meshpb.Hello, error) {
	k, err := a.d.Keys.Active()
	if err != nil {
		return nil, err
	}
	kind := string(a.d.Tunnels.Kind())
	return &meshpb.Hello{
		Node:         a.opts.Node,
		Capabilities: []string{"backend/" + kind, "ipv6", rotation.Capability},
		AgentVersion: a.opts.Version,
		Backend:      kind,
		Mtu:          uint32(a.mtu()),
		Key:          keyReport(k, meshpb.KeyState_KEY_STATE_ACTIVE),
	}, nil
}

// mtu is the applied tunnel MTU, or the one the next reconcile will apply.
func (a *Agent) mtu() int {
	if m := a.d.Routes.MTU(); m > 0 {
		return m
	}
	m, err := a.d.Routes.TunnelMTU(a.opts.NodeIP, a.opts.MTUOverhead)
	if err != nil {
		return 0
	}
	return m
}

// TunnelStatus implements stream.StatusProvider.
func (a *Agent) TunnelStatus(context.Context) (*meshpb.TunnelStatus, error) {
	st := &meshpb.TunnelStatus{Backend: string(a.d.Tunnels.Kind()), Mtu: uint32(a.mtu())}
	o := a.exec.Overlay()
	if o.Active() {
		st.RotationPhase = o.Stage.Phase
	}
	cur, _ := a.State()
	names := nodeOfKey(cur, o)
	for _, ifc := range []string{a.opts.Interface, a.opts.RotationInterface} {
		s, err := a.d.Tunnels.Status(ifc)
		if err != nil {
			continue
		}
		for _, p := range s.Peers {
			ps := &meshpb.PeerStatus{
				PublicKey: p.PublicKey[:], Node: names[p.PublicKey], Endpoint: addrPortString(p.Endpoint),
				RxBytes: uint64(p.RxBytes), TxBytes: uint64(p.TxBytes), Interface: ifc,
			}
			if !p.LastHandshake.IsZero() {
				ps.LastHandshakeUnixNano = p.LastHandshake.UnixNano()
			}
			st.Peers = append(st.Peers, ps)
		}
	}
	if c, err := a.d.Datapath.Counters(); err == nil {
		st.Verdicts = c
	}
	a.mu.Lock()
	lastErr := a.lastErr
	a.mu.Unlock()
	if lastErr != nil {
		cond := &meshpb.Condition{Type: "Applied", Status: false, Reason: ackCode(lastErr).String(), Message: lastErr.Error()}
		st.Conditions = append(st.Conditions, cond)
		if errors.Is(lastErr, bpf.ErrCapacity) {
			st.Conditions = append(st.Conditions, &meshpb.Condition{Type: "MapCapacity", Status: true, Reason: "CapacityExceeded", Message: lastErr.Error()})
		}
	}
	st.UnixNano = time.Now().UnixNano()
	return st, nil
}

// Snapshot implements health.Source, without the stream part (the
// daemon adds it from the stream client).
func (a *Agent) Snapshot() health.Snapshot {
	s := health.Snapshot{Backend: string(a.d.Tunnels.Kind()), MTU: a.mtu()}
	cur, _ := a.State()
	names := nodeOfKey(cur, a.exec.Overlay())
	for _, ifc := range []string{a.opts.Interface, a.opts.RotationInterface} {
		st, err := a.d.Tunnels.Status(ifc)
		if err != nil {
			continue
		}
		for _, p := range st.Peers {
			node := names[p.PublicKey]
			if node == "" {
				node = p.PublicKey.String()
			}
			s.Peers = append(s.Peers, health.Peer{Interface: ifc, Node: node, LastHandshake: p.LastHandshake,
				RxBytes: uint64(p.RxBytes), TxBytes: uint64(p.TxBytes)})
		}
	}
	if c, err := a.d.Datapath.Counters(); err == nil {
		s.Verdicts = c
	}
	return s
}
