package health

import "time"

// Snapshot is what the daemon reports at one scrape.
type Snapshot struct {
	// Backend is "kernel" or "userspace".
	Backend string
	// MTU of the WireGuard interface.
	MTU    int
	Peers  []Peer
	Stream Stream
	// Verdicts counts data-plane verdicts, e.g. "classify/steer".
	Verdicts map[string]uint64
}

// Peer is one WireGuard peer's status.
type Peer struct {
	Interface string
	// Node is the peer's node name; the public key when unknown.
	Node string
	// LastHandshake is zero when no handshake has completed.
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
}

// Stream is the controller stream's state.
type Stream struct {
	Connected bool
	// Connects counts established streams.
	Connects uint64
	// AppliedEpoch and AppliedSeq are the generation of the running state.
	AppliedEpoch, AppliedSeq uint64
	// Acks counts acks sent, by code name (e.g. "ACK_OK").
	Acks map[string]uint64
}

// Source produces snapshots.
type Source interface {
	Snapshot() Snapshot
}

// SourceFunc adapts a function to Source.
type SourceFunc func() Snapshot

// Snapshot implements Source.
func (f SourceFunc) Snapshot() Snapshot { return f() }

// HandshakeUp is how recent a handshake must be for a peer to count as
// up: WireGuard rejects sessions older than 180 s (REJECT_AFTER_TIME),
// and a live session re-handshakes every 120 s.
const HandshakeUp = 180 * time.Second
