// Package bpf is vpblu's eBPF data plane: the C programs classify (tc
// ingress of each pod's host veth, that is, pod egress) and deliver (tc
// ingress of the WireGuard interface), their maps, the committed bpf2go
// output, and the Go code that loads, pins and attaches them and writes
// policy into their maps.
//
// It is not for deciding what goes in the maps: callers hand Apply a
// complete State (package core/desired computes it); it does not follow
// interfaces appearing and disappearing (the daemon calls Attach and
// Detach); and it does not configure routing: steering sets a fwmark that
// the daemon's ip rules turn into the tunnel interface (SPEC §10).
//
// # Programs
//
// classify decides, first match wins: not IP or IP header unreadable ->
// pass unchanged; a block rule matches -> drop; local pod CIDR -> pass;
// remote CIDR -> drop if this node or the owning node is isolated, steer
// (skb->mark = the CIDR's mark) if that node's tunnel is ready, else "no
// tunnel"; cluster CIDR -> drop if this node is isolated, else "no
// tunnel"; anything else -> pass. "No tunnel" drops when strict and passes
// otherwise. deliver enforces blocks and isolation on decrypted packets;
// its interface is an L3 device, so packets start at the IP header and
// skb->protocol gives the family.
//
// Verdicts use addresses only. IPv6 extension headers are walked (in a
// bounded loop) only to find the ports of a sampled drop, so a broken
// chain cannot carry a packet past a block; every IPv4 or IPv6 fragment
// gets the verdict of its addresses, and only first fragments have ports.
// Pass and steer return TC_ACT_UNSPEC (TCX_NEXT): the rest of the tc chain
// still runs and the packet is accepted when nothing else decides.
//
// # Maps
//
// Policy maps are arrays of two inner maps (slots); vpblu_active names the
// slot in force. Apply fills fresh inner maps for the other slot, installs
// them, and switches vpblu_active last with one write, so a program (which
// reads the slot once per packet) sees the old policy or the new one,
// never a mix. A state that does not fit is refused with ErrCapacity
// before anything is written. Programs cannot write policy maps: they are
// created with BPF_F_RDONLY_PROG. Programs write only vpblu_counters
// (per-CPU packets per hook, verdict and reason; see Counters for the
// names) and vpblu_drops (a ring buffer of sampled drops, see Drops).
//
// Blocks are compiled by core/blocks into two LPM stages. A stage-one
// value (source prefix -> class) also carries the class's destinations
// when there are at most four, so most packets need one block lookup;
// larger classes keep their destinations in the (class, destination)
// trie, and only those count against Capacity.BlockEntries.
//
// # Pins and restarts
//
// Maps are pinned in Options.PinDir (default /sys/fs/bpf/vpblu), tcx links
// in its "links" subdirectory as "<hook>-<ifindex>". Open on an existing
// directory re-opens the maps without touching an entry; Attach on an
// interface that already has the program replaces it in place (tcx link
// update, or cls_bpf filter replace), so a restarted daemon changes
// nothing on the wire. Close keeps everything; Remove uninstalls.
package bpf
