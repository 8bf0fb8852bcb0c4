package streamserver

import (
	"context"
	"errors"
	"slices"

	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/generation"
)

// Leader tells the server whether this replica may serve streams.
type Leader interface {
	// Leading reports whether this replica is the elected leader. A
	// standby ends every stream at once with Unavailable "not leader".
	Leading() bool
	// Ready is closed once the leader's desired state is computed; streams
	// that arrive earlier wait for it.
	Ready() <-chan struct{}
}

// Authenticator checks a daemon's bearer token; *auth.Reviewer is one.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (auth.Identity, error)
}

var _ Authenticator = (*auth.Reviewer)(nil)

// ErrUnknownNode is returned by a StateSource for a node it has no state
// for (yet); the session retries later.
var ErrUnknownNode = errors.New("node has no desired state")

// StateSource provides complete node states.
type StateSource interface {
	// SyncState builds node's complete state under a fresh generation
	// (later than every generation handed out before) and calls fn with
	// both. No Server.Push may run while fn runs: the caller of Push holds
	// the same lock SyncState holds.
	SyncState(node string, fn func(gen generation.Gen, state *meshpb.SyncState)) error
	// Observe is told of a generation a daemon runs, so that later
	// generations order after it (after a Lease reset, for example).
	Observe(seen generation.Gen)
	// Stamp calls fn with a fresh generation under the lock the caller
	// of Server.Push holds, so no delta is pushed while fn runs and every
	// delta pushed before carries an earlier generation.
	Stamp(fn func(gen generation.Gen))
}

// Observer receives what daemons report. Calls come from the sessions'
// goroutines and must not block.
type Observer interface {
	// Connected: a daemon authenticated and said hello; its session
	// replaces any earlier one of the node. The hello lists the daemon's
	// capabilities (see HasCapability).
	Connected(node string, hello *meshpb.Hello)
	// Disconnected: the node's session ended.
	Disconnected(node string, cause error)
	// KeyReported: the daemon reported a public key.
	KeyReported(node string, key *meshpb.KeyReport)
	// StatusReported: the daemon's periodic tunnel status.
	StatusReported(node string, status *meshpb.TunnelStatus)
	// RotationReported: the daemon reported where a key rotation stands
	// on its node (a step done or failed, handshakes confirmed).
	RotationReported(node string, report *meshpb.RotationReport)
	// Acked: the daemon acked a command; sync tells where the node stands
	// after it.
	Acked(node string, ack *meshpb.Ack, sync NodeSync)
	// Refused: a stream was refused.
	Refused(r Refusal)
}

// Refusal describes a refused stream.
type Refusal struct {
	// Reason is the metric label (auth.Reason, or bad_hello).
	Reason string
	// TokenNode is the node the token is bound to, when the token was
	// valid.
	TokenNode string
	// ClaimedNode is the node the Hello named, when one arrived.
	ClaimedNode string
	// Peer is the remote address.
	Peer string
	Err  error
}

// NodeSync is where a connected node stands.
type NodeSync struct {
	Connected bool
	// Sent is the generation of the last command queued or sent.
	Sent generation.Gen
	// Applied is the generation the daemon last acked as applied.
	Applied generation.Gen
	// UpToDate: nothing is queued or pending and Applied == Sent.
	UpToDate bool
}

// HasCapability reports whether a daemon's hello advertises capability
// (such as the rotation protocol's).
func HasCapability(h *meshpb.Hello, capability string) bool {
	return slices.Contains(h.GetCapabilities(), capability)
}
