package desired

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/lumbrjx/vpblu/core/cidr"
)

// NodeState is everything one node's daemon must make true. Values share
// storage with other nodes' states (peer tables, cluster CIDRs, block
// rules): treat every slice in it as read-only.
type NodeState struct {
	// Config is the node-wide part.
	Config Config
	// ClusterCIDRs contain every pod CIDR of the cluster (and the
	// configured cluster CIDRs): traffic to them that no route covers is
	// dropped when Config.Strict. Sorted by cidr.Compare, no duplicates.
	ClusterCIDRs []netip.Prefix
	// Peers are the nodes this node has a tunnel to.
	Peers PeerSet
	// Blocks are the CIDR→CIDR drops, sorted by source then destination.
	Blocks []BlockRule
}

// Config is the node-wide part of a NodeState.
type Config struct {
	// ListenPort is the UDP port of wg-mesh.
	ListenPort uint16
	// PersistentKeepalive is the keepalive interval in seconds (0: off).
	PersistentKeepalive uint16
	// Strict drops cross-node pod traffic that has no ready tunnel.
	Strict bool
	// Isolated is true while the node is quarantined: a BlockPolicy
	// isolates it, or the isolation was lifted but the node has not rotated
	// its key since.
	Isolated bool
	// LocalCIDRs are the node's own pod CIDRs, sorted.
	LocalCIDRs []netip.Prefix
}

// Peer is one WireGuard peer as the local node configures it.
type Peer struct {
	// Node names the peer.
	Node string
	// PublicKey is the peer's public key; never zero.
	PublicKey Key
	// Endpoint is where the peer listens; the zero value when unknown.
	Endpoint netip.AddrPort
	// AllowedIPs are the prefixes routed to and accepted from the peer,
	// sorted by cidr.Compare. Across the peers of one node they never
	// overlap.
	AllowedIPs []netip.Prefix
	// PersistentKeepalive is the keepalive interval in seconds (0: off).
	PersistentKeepalive uint16
}

// Route steers a remote prefix into the tunnel of one peer.
type Route struct {
	Prefix netip.Prefix
	// Node is the peer that carries Prefix.
	Node string
}

// BlockRule drops packets from Src to Dst; both are of one family. It has
// the layout of core/blocks.Rule, so blocks.Rule(r) converts it.
type BlockRule struct {
	Src netip.Prefix
	Dst netip.Prefix
}

// String renders the rule as "src -> dst".
func (r BlockRule) String() string { return r.Src.String() + " -> " + r.Dst.String() }

// Routes returns every remote prefix this node steers into the mesh and
// the peer that carries it: one route per allowed IP of every peer, sorted
// by node, then prefix. Routes are derived from Peers, never stored
// separately.
func (s NodeState) Routes() []Route {
	var rs []Route
	for p := range s.Peers.All() {
		rs = appendRoutes(rs, p.Node, p.AllowedIPs)
	}
	return rs
}

// Equal reports whether two states are the same, element by element.
// Storage sharing plays no part.
func Equal(a, b NodeState) bool {
	return configEqual(a.Config, b.Config) &&
		slices.Equal(a.ClusterCIDRs, b.ClusterCIDRs) &&
		a.Peers.Equal(b.Peers) &&
		slices.Equal(a.Blocks, b.Blocks)
}

func configEqual(a, b Config) bool {
	return a.ListenPort == b.ListenPort &&
		a.PersistentKeepalive == b.PersistentKeepalive &&
		a.Strict == b.Strict &&
		a.Isolated == b.Isolated &&
		slices.Equal(a.LocalCIDRs, b.LocalCIDRs)
}

// peerEqual compares two peers field by field.
func peerEqual(a, b *Peer) bool {
	return a == b || (a.Node == b.Node &&
		a.PublicKey == b.PublicKey &&
		a.Endpoint == b.Endpoint &&
		a.PersistentKeepalive == b.PersistentKeepalive &&
		prefixesEqual(a.AllowedIPs, b.AllowedIPs))
}

// prefixesEqual is slices.Equal with a fast path for shared storage.
func prefixesEqual(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

// compareRoute orders routes by node, then prefix: the order in which
// walking a peer table yields them.
func compareRoute(a, b Route) int {
	return cmp.Or(cmp.Compare(a.Node, b.Node), cidr.Compare(a.Prefix, b.Prefix))
}

func compareBlock(a, b BlockRule) int {
	return cmp.Or(cidr.Compare(a.Src, b.Src), cidr.Compare(a.Dst, b.Dst))
}
