// Package bpf is vpblu's eBPF data plane: the C programs classify (tc
// ingress of each pod's host veth) and deliver (tc ingress of the WireGuard
// interface), their maps, the committed bpf2go output, and the Go code that
// loads, pins and attaches them and writes policy into their maps.
//
// Programs only read policy maps; this package's writers are the only
// thing that changes them. Deciding what goes in the maps is not this
// package's job: it applies a complete state it is handed.
package bpf
