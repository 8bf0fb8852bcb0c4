// Package stream is the daemon's end of the controller stream (SPEC §7,
// core/meshpb): gRPC over TLS to the leading controller, authenticated by
// a projected ServiceAccount token.
//
// The Client tries its controller addresses in turn (a standby answers
// Unavailable "not leader"), reconnects with jittered exponential backoff,
// sends Hello first, applies commands through a Handler behind the
// generation guard (stale commands are acked ACK_STALE, deltas whose base
// is not the applied generation ACK_GAP, neither reaches the Handler),
// acks every command, sends TunnelStatus periodically and after each
// applied command, and KeyReports and RotationReports on demand (the
// rotation in progress again after every reconnect).
//
// It knows nothing of WireGuard, routing or BPF: what a command means is
// the Handler's business. It does not log; State reports what a binary
// may want to log or export.
package stream
