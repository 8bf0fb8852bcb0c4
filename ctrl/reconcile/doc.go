// Package reconcile turns the cluster into daemon commands. It keeps one
// VpbluNode per Node (Lifecycle), feeds core/desired's Engine from the
// informer caches and from the keys daemons report (Desired, Loader), and
// pushes each change as per-node deltas under a generation that only grows
// (Planner). The Planner is also the stream server's source of complete
// SyncStates.
//
// It decides nothing about what a node runs (core/desired does), does not
// speak gRPC (ctrl/streamserver does) and writes no status (ctrl/status
// does).
package reconcile
