// Package agent assembles the node agent: it turns a desired.NodeState
// into kernel state through the OS-facing packages — WireGuard peers
// (wg), policy routing, MTU and rp_filter (route), the MSS clamp (mss)
// and the eBPF maps (bpf) — and serves the stream: it is the
// stream.Handler, HelloProvider, StatusProvider and RotationProvider of
// the daemon, and the health.Source of its metrics.
//
// Reconcile is level-based and idempotent: every part adopts what already
// matches, so a restarted daemon changes nothing on the wire. Until the
// first SyncState arrives nothing is touched: the data plane keeps
// forwarding with what it has. Close leaves everything in place;
// Uninstall removes everything the agent created.
//
// Key rotation (docs/rotation.md): the agent owns a rotation.Executor
// and is its Host. RotationCommands go to the executor, which journals
// an Overlay and hands it back; every reconcile lays the overlay over
// the desired state with rotation.Compose (the temporary interface, its
// path, the fwmarks that move a peer's traffic onto it, the key wg-mesh
// runs), so a SyncState never undoes a rotation in progress. The agent
// never deletes the temporary interface itself: the executor does, after
// a reconcile took its path and marks away. Reports go to a Reporter
// (the stream client); FollowRotation reports new handshake
// confirmations.
//
// Pod interfaces (matched by a name pattern) get the classify program as
// they appear, from netlink link events; the WireGuard interfaces get
// deliver.
//
// It does not parse flags (cmd/vpblu-agent does), does not decide when
// to rotate (the controller does) and does not log.
package agent
