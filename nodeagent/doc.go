// Package nodeagent is the per-node daemon (vpblu-agent): it turns the
// controller's commands into kernel state — the WireGuard interface and its
// peers, policy routing, MTU and MSS clamping, and the eBPF maps — and
// reports back its public key and tunnel status.
//
// It holds no policy of its own and has no Kubernetes RBAC: everything it
// runs arrives over the stream. It never imports ctrl.
package nodeagent
