// Package wire converts between the desired state (core/desired) and the
// stream protocol (core/meshpb).
//
// The controller encodes: EncodeState turns a node's desired.NodeState into
// a SyncState, EncodeDelta turns a desired.Delta into a Delta message. The
// daemon decodes: DecodeState and DecodeDelta turn messages into desired
// values and refuse anything malformed with an error wrapping ErrMalformed
// that says what and where (bad CIDR, prefix with host bits, wrong key
// length, mixed-family block rule, duplicate peers, overlapping allowed
// IPs, routes that do not follow the peers, ports out of range, ...).
// Decoding never panics and never returns a partial value.
//
// What a decoded Delta means for the state it applies to (removing a peer
// that is there, routes following the peer changes) is checked by
// desired.Apply, not here.
//
// wire does not send or receive anything; nodeagent/stream and ctrl do.
package wire
