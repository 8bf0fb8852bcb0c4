// Package nodeagent is the per-node daemon (vpblu-agent): it turns the
// controller's commands into kernel state — the WireGuard interface and its
// peers, policy routing, MTU and MSS clamping, and the eBPF maps — and
// reports back its public key and tunnel status.
//
// It holds no policy of its own and has no Kubernetes RBAC: everything it
// runs arrives over the stream. It never imports ctrl.
//
// Its parts, each behind an idempotent Set with a fake in a sibling
// package:
//
//	keys     the node's private keys on disk (0600 in a 0700 directory)
//	wg       WireGuard interfaces: kernel or embedded userspace backend
//	route    fwmark rules, the tunnel table, MTU, rp_filter
//	mss      the nftables TCP MSS clamp
//	stream   the gRPC stream client (hello, generation guard, acks, status)
//	health   /healthz, /readyz, /metrics
//	agent    the assembly: desired state → all of the above and bpf
//
// cmd/vpblu-agent wires them up. The root package holds only the
// privileged end-to-end test of the steering design (wg + route + mss on
// two network namespaces, classify played by nftables).
package nodeagent
