// Package streamserver serves the daemons' gRPC streams (core/meshpb
// Mesh.Connect): it refuses streams on a standby, authenticates each daemon
// (bearer token checked by an Authenticator, Hello.node must be the token's
// node), keeps one session per node with its own bounded send queue, turns
// queue overflows and bad acks into one later SyncState, sends a periodic
// SyncState, and tracks which generation each node applied. Key rotation
// commands (SendRotation) are queued per node and stamped with a
// generation when sent, after any pending SyncState, so a daemon sees
// every command's generation grow.
//
// It decides nothing about what a node should run: full states come from a
// StateSource and deltas are pushed by the caller (ctrl/reconcile). It does
// not write status or events; it reports what daemons say to an Observer.
package streamserver
