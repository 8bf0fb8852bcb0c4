// Package sim builds a whole vpblu cluster on one machine out of network
// namespaces, and implements the e2e Cluster interface on it.
//
// Simulator slot k (0..255) uses 198.18.k.0/24 and 2001:db8:k::/64 for the
// underlay, so two simulators on one machine never share an address. Node i
// (1..N) gets pod CIDRs 100.64.i.0/24 and 2001:db8:100:i::/64 inside its own
// namespace.
//
//	host netns: kube-apiserver + etcd (127.0.0.1), vpblu-controller x2
//	     │ vs<k>h 198.18.k.1, 2001:db8:k::1  (controllers' stream address)
//	     │
//	┌────┴──────────── vs<k>-ul (underlay netns) ────────────────────┐
//	│                         bridge br0                             │
//	└────┬──────────────────────┬───────────────────────┬────────────┘
//	     │ eth0 198.18.k.11     │ eth0 198.18.k.12      │ eth0 198.18.k.13
//	┌────┴─── vs<k>-n1 ───┐ ┌───┴─── vs<k>-n2 ───┐  ┌────┴─── vs<k>-n3 ───┐
//	│ vpblu-agent         │ │ vpblu-agent        │  │ vpblu-agent         │
//	│ wg-mesh :51820      │ │ wg-mesh            │  │ wg-mesh             │
//	│ cni0 100.64.1.1/24  │ │ cni0 100.64.2.1/24 │  │ cni0 100.64.3.1/24  │
//	│  ├ vethp1 ─ pod p1  │ │  ├ vethp1 ─ pod    │  │  ├ vethp1 ─ pod     │
//	│  └ vethp2 ─ pod p2  │ │  └ vethp2 ─ pod    │  │  └ vethp2 ─ pod     │
//	│ routes: 100.64.2/24 │ │ (base CNI: plain   │  │                     │
//	│  via 198.18.k.12 …  │ │  routes, cleartext)│  │                     │
//	└─────────────────────┘ └────────────────────┘  └─────────────────────┘
//
// The base CNI is Flannel-like: a bridge per node, host-side veths for
// pods, and plain routes between nodes, so cross-node pod traffic is
// cleartext on the underlay until vpblu steers it into WireGuard.
//
// Every namespace, link and file the simulator makes carries the slot's
// prefix ("vs<k>"), and Teardown (or `vpblu-sim down`, or the next Build of
// the same slot) removes them all, also after a crash.
package sim
