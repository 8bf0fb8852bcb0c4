package reconcile

import (
	"net/netip"
	"sync"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/core/wire"
)

// encoder turns node states into SyncStates, encoding what many states
// share only once: in a full mesh every node's state holds the same peers
// (the table minus itself), the same cluster CIDRs and the same block
// rules, so encoding each state from scratch would cost O(N) allocations
// per node and O(N²) for a reconnect storm. The messages it hands out share
// these parts and must not be modified. Encoding itself is core/wire's: a
// miss encodes through it. It is safe for concurrent use.
type encoder struct {
	mu      sync.Mutex
	peers   map[peerKey]*encodedPeer
	cluster sliceCache[netip.Prefix, []string]
	blocks  sliceCache[desired.BlockRule, []*meshpb.BlockRule]
}

// encodedPeer is one peer's message and the routes that follow it.
type encodedPeer struct {
	peer   *meshpb.Peer
	routes []*meshpb.Route
}

// peerKey identifies a peer entry by value. Peers with more than two
// allowed IPs (RoutePolicy vias) are not cached.
type peerKey struct {
	node      string
	key       desired.Key
	endpoint  netip.AddrPort
	keepalive uint16
	n         int
	ips       [2]netip.Prefix
}

// sliceCache remembers the encoding of the last slice it saw, by identity:
// core/desired replaces shared slices when they change and never modifies
// them, and holding the slice keeps its array from being reused.
type sliceCache[T, E any] struct {
	first *T
	n     int
	enc   E
}

func (c *sliceCache[T, E]) get(s []T, encode func([]T) E) E {
	if len(s) == 0 {
		var zero E
		return zero
	}
	if c.first != &s[0] || c.n != len(s) {
		c.first, c.n, c.enc = &s[0], len(s), encode(s)
	}
	return c.enc
}

// maxCachedPeers bounds the peer cache; past it the cache starts over.
const maxCachedPeers = 1 << 16

// syncState returns the SyncState of s, equal to wire.EncodeState(s).
func (e *encoder) syncState(s desired.NodeState) *meshpb.SyncState {
	m := wire.EncodeState(desired.NodeState{Config: s.Config})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.peers == nil || len(e.peers) > maxCachedPeers {
		e.peers = map[peerKey]*encodedPeer{}
	}
	m.Config.ClusterCidrs = e.cluster.get(s.ClusterCIDRs, func(ps []netip.Prefix) []string {
		return wire.EncodeState(desired.NodeState{ClusterCIDRs: ps}).GetConfig().GetClusterCidrs()
	})
	m.Blocks = e.blocks.get(s.Blocks, func(bs []desired.BlockRule) []*meshpb.BlockRule {
		return wire.EncodeState(desired.NodeState{Blocks: bs}).GetBlocks()
	})
	m.Peers = make([]*meshpb.Peer, 0, s.Peers.Len())
	for p := range s.Peers.All() {
		ep := e.peer(p)
		m.Peers = append(m.Peers, ep.peer)
		m.Routes = append(m.Routes, ep.routes...)
	}
	return m
}

func (e *encoder) peer(p desired.Peer) *encodedPeer {
	k := peerKey{node: p.Node, key: p.PublicKey, endpoint: p.Endpoint, keepalive: p.PersistentKeepalive, n: len(p.AllowedIPs)}
	cacheable := len(p.AllowedIPs) <= len(k.ips)
	if cacheable {
		copy(k.ips[:], p.AllowedIPs)
		if ep := e.peers[k]; ep != nil {
			return ep
		}
	}
	one, err := desired.NewPeerSet(p)
	if err != nil {
		// A single peer cannot be a duplicate.
		return &encodedPeer{}
	}
	m := wire.EncodeState(desired.NodeState{Peers: one})
	ep := &encodedPeer{peer: m.GetPeers()[0], routes: m.GetRoutes()}
	if cacheable {
		e.peers[k] = ep
	}
	return ep
}
