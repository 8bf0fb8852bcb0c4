// Package route sets up the policy routing that carries steered packets
// into WireGuard (SPEC §10, docs/architecture.md "Steering is a fwmark").
//
// For every Path (an interface, a fwmark, a table) it keeps, in v4 and v6:
//
//	ip rule:  priority P fwmark MARK/MASK lookup TABLE proto vpblu
//	table:    <remote CIDR> dev <interface>      (one per CIDR)
//	          blackhole default                  (strict only)
//
// It also sets the interface's MTU (primary MTU − overhead, the primary
// interface being the one that carries the node IP) and loosens its
// rp_filter. Everything it creates carries the routing protocol number
// Options.Protocol, which is how it recognizes its own state: Set adopts
// what already matches without touching it, replaces routes atomically,
// and removes rules and routes of its protocol that are no longer
// desired, also those a previous process created. Set with no paths
// removes everything it ever created.
//
// It does not create interfaces (package wg does) or mark packets (the
// eBPF classify program does). The Kernel interface is the OS boundary;
// Netlink is the real one, routetest the fake.
package route
