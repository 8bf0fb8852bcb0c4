package status

import (
	"encoding/base64"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// HandshakeFresh is how recent a peer's last handshake must be for the
// peer to count as up.
const HandshakeFresh = 3 * time.Minute

// Report is what a node's daemon told the controller.
type Report struct {
	Connected bool
	// Hello is the stream's first message (nil before any).
	Hello *meshpb.Hello
	// Key is the last active key reported (Hello's or a KeyReport).
	Key *meshpb.KeyReport
	// Status is the last tunnel status.
	Status *meshpb.TunnelStatus
	// LastSeen is when the daemon last sent anything.
	LastSeen time.Time
	// ConnectedAt is when its current (or last) stream opened.
	ConnectedAt time.Time
	// Sync is where the node stands after its last ack.
	Sync streamserver.NodeSync
	// Failure is the last ack that was not OK, cleared by an OK ack.
	Failure *meshpb.Ack
}

// NodeFacts are the inputs of one VpbluNode's status.
type NodeFacts struct {
	// Old is the current status; fields nobody reports keep their value.
	Old        v1alpha1.VpbluNodeStatus
	Generation int64
	// Report is nil when the daemon never reported to this controller.
	Report *Report
	// Plan is what the desired state says about the node, Planned false
	// if it does not know the node.
	Plan    desired.NodeStatus
	Planned bool
	Now     time.Time
	// Heartbeat is how stale LastSeen may be before it is rewritten.
	Heartbeat time.Duration
}

// Condition reasons of VpbluNode.
const (
	ReasonStreamOpen       = "StreamOpen"
	ReasonStreamClosed     = "StreamClosed"
	ReasonApplied          = "Applied"
	ReasonApplying         = "Applying"
	ReasonApplyFailed      = "ApplyFailed"
	ReasonMapsFull         = "MapsFull"
	ReasonSufficient       = "Sufficient"
	ReasonBlockPolicy      = "BlockPolicy"
	ReasonAwaitingRotation = "AwaitingRotation"
	ReasonNotIsolated      = "NotIsolated"
)

// NodeStatus computes a VpbluNode's status.
func NodeStatus(f NodeFacts) v1alpha1.VpbluNodeStatus {
	st := *f.Old.DeepCopy()
	r := f.Report
	if r == nil {
		r = &Report{}
	}
	// While a key rotation is in progress the rotation owns the key
	// fields: it writes the new key at its point of no return, when the
	// daemon's reports still name the old one.
	if k := r.Key; k != nil && len(k.GetPublicKey()) == desired.KeyLen && !rotationInProgress(f.Old.RotationPhase) {
		st.PublicKey = base64.StdEncoding.EncodeToString(k.GetPublicKey())
		st.KeyGeneration = int64(k.GetGeneration())
		if ns := k.GetCreatedUnixNano(); ns > 0 {
			t := metav1.NewTime(time.Unix(0, ns).UTC().Truncate(time.Second))
			st.KeyCreated = &t
		}
	}
	backend, mtu := r.Hello.GetBackend(), r.Hello.GetMtu()
	if r.Status != nil {
		if r.Status.GetBackend() != "" {
			backend = r.Status.GetBackend()
		}
		if r.Status.GetMtu() != 0 {
			mtu = r.Status.GetMtu()
		}
		st.PeersUp = peersUp(r.Status, f.Now)
	}
	if b := v1alpha1.WireGuardBackend(backend); b == v1alpha1.BackendKernel || b == v1alpha1.BackendUserspace {
		st.Backend = b
	}
	if mtu > 0 && mtu <= 65535 {
		st.MTU = int32(mtu)
	}
	if !r.Sync.Applied.IsZero() {
		st.AppliedGeneration = r.Sync.Applied.String()
	}
	// A new stream is always recorded, so lastSeen tells operators (and
	// tests) that a daemon came back after an outage or a failover.
	reconnected := !r.ConnectedAt.IsZero() && (st.LastSeen == nil || r.ConnectedAt.Truncate(time.Second).After(st.LastSeen.Time))
	if !r.LastSeen.IsZero() && (reconnected || st.LastSeen == nil || r.LastSeen.Sub(st.LastSeen.Time) >= f.Heartbeat) {
		t := metav1.NewTime(r.LastSeen.UTC().Truncate(time.Second))
		st.LastSeen = &t
	}

	if f.Planned {
		st.Endpoint = ""
		if f.Plan.Endpoint.IsValid() {
			st.Endpoint = f.Plan.Endpoint.String()
		}
		st.PodCIDRs = nil
		for _, p := range f.Plan.AllowedIPs {
			st.PodCIDRs = append(st.PodCIDRs, p.String())
		}
		st.PeersTotal = int32(f.Plan.Peers)
		if f.Plan.Isolated && st.QuarantineKeyGeneration < st.KeyGeneration {
			// Lifting the isolation will need a key newer than this one.
			st.QuarantineKeyGeneration = st.KeyGeneration
		}
	}

	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: f.Generation,
			LastTransitionTime: metav1.NewTime(f.Now.UTC().Truncate(time.Second)),
		})
	}
	if r.Connected {
		set(v1alpha1.ConditionConnected, true, ReasonStreamOpen, "the daemon holds a stream to the leading controller")
	} else {
		set(v1alpha1.ConditionConnected, false, ReasonStreamClosed, "no stream from the daemon")
	}
	full, fullMsg := capacity(r)
	if full {
		set(v1alpha1.ConditionCapacity, false, ReasonMapsFull, fullMsg)
	} else {
		set(v1alpha1.ConditionCapacity, true, ReasonSufficient, "the data plane maps hold the desired state")
	}
	switch {
	case f.Planned && f.Plan.Isolated:
		set(v1alpha1.ConditionIsolated, true, ReasonBlockPolicy, "a BlockPolicy isolates the node")
	case f.Planned && f.Plan.QuarantinePending:
		set(v1alpha1.ConditionIsolated, true, ReasonAwaitingRotation, "the isolation was lifted; the node peers again after a key rotation")
	default:
		set(v1alpha1.ConditionIsolated, false, ReasonNotIsolated, "no BlockPolicy isolates the node")
	}
	switch {
	case !r.Connected:
		set(v1alpha1.ConditionReady, false, ReasonStreamClosed, "no stream from the daemon")
	case full:
		set(v1alpha1.ConditionReady, false, ReasonMapsFull, fullMsg)
	case r.Failure != nil:
		set(v1alpha1.ConditionReady, false, ReasonApplyFailed, fmt.Sprintf("%s: %s", r.Failure.GetCode(), r.Failure.GetError()))
	case !r.Sync.UpToDate:
		set(v1alpha1.ConditionReady, false, ReasonApplying, fmt.Sprintf("applied %s, sent %s", r.Sync.Applied, r.Sync.Sent))
	default:
		set(v1alpha1.ConditionReady, true, ReasonApplied, fmt.Sprintf("generation %s applied", r.Sync.Applied))
	}
	return st
}

// rotationInProgress reports whether phase is a key rotation's, not idle.
func rotationInProgress(phase v1alpha1.RotationPhase) bool {
	return phase != "" && phase != v1alpha1.RotationIdle
}

func capacity(r *Report) (full bool, msg string) {
	if r.Failure != nil && r.Failure.GetCode() == meshpb.AckCode_ACK_CAPACITY {
		return true, r.Failure.GetError()
	}
	for _, c := range r.Status.GetConditions() {
		if c.GetType() == v1alpha1.ConditionCapacity && !c.GetStatus() {
			return true, c.GetMessage()
		}
	}
	return false, ""
}

// peersUp counts peers whose last handshake is recent, by the daemon's
// clock when it sent one.
func peersUp(s *meshpb.TunnelStatus, now time.Time) int32 {
	at := now.UnixNano()
	if s.GetUnixNano() > 0 {
		at = s.GetUnixNano()
	}
	var n int32
	for _, p := range s.GetPeers() {
		hs := p.GetLastHandshakeUnixNano()
		if hs > 0 && at-hs < int64(HandshakeFresh) {
			n++
		}
	}
	return n
}
