// Package agent assembles the node agent: it turns a desired.NodeState
// into kernel state through the OS-facing packages — WireGuard peers
// (wg), policy routing, MTU and rp_filter (route), the MSS clamp (mss)
// and the eBPF maps (bpf) — and serves the stream: it is the
// stream.Handler, HelloProvider and StatusProvider of the daemon, and the
// health.Source of its metrics.
//
// Reconcile is level-based and idempotent: every part adopts what already
// matches, so a restarted daemon changes nothing on the wire. Until the
// first SyncState arrives nothing is touched: the data plane keeps
// forwarding with what it has. Close leaves everything in place;
// Uninstall removes everything the agent created.
//
// Pod interfaces (matched by a name pattern) get the classify program as
// they appear, from netlink link events; the WireGuard interface gets
// deliver.
//
// It does not parse flags (cmd/vpblu-agent does) and does not log.
package agent
