package wire

import (
	"net/netip"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

// EncodeState returns the SyncState of s.
func EncodeState(s desired.NodeState) *meshpb.SyncState {
	m := &meshpb.SyncState{
		Config: encodeConfig(s.Config),
		Peers:  make([]*meshpb.Peer, 0, s.Peers.Len()),
		Blocks: encodeBlocks(s.Blocks),
	}
	m.Config.ClusterCidrs = prefixStrings(s.ClusterCIDRs)
	for p := range s.Peers.All() {
		m.Peers = append(m.Peers, encodePeer(p))
	}
	for _, r := range s.Routes() {
		m.Routes = append(m.Routes, &meshpb.Route{Cidr: r.Prefix.String(), Node: r.Node})
	}
	return m
}

// EncodeDelta returns the Delta message of d, to be applied on top of the
// state of generation base.
func EncodeDelta(d *desired.Delta, base *meshpb.Generation) *meshpb.Delta {
	m := &meshpb.Delta{
		Base:               base,
		AddBlocks:          encodeBlocks(d.AddBlocks),
		RemoveBlocks:       encodeBlocks(d.RemoveBlocks),
		AddClusterCidrs:    prefixStrings(d.AddClusterCIDRs),
		RemoveClusterCidrs: prefixStrings(d.RemoveClusterCIDRs),
		RemovePeers:        d.RemovePeers.Slice(),
	}
	if d.Config != nil {
		m.Config = encodeConfig(*d.Config)
	}
	for p := range d.UpsertPeers.All() {
		m.UpsertPeers = append(m.UpsertPeers, encodePeer(p))
	}
	for r := range d.AddRoutes.All() {
		m.AddRoutes = append(m.AddRoutes, &meshpb.Route{Cidr: r.Prefix.String(), Node: r.Node})
	}
	for r := range d.RemoveRoutes.All() {
		m.RemoveRoutes = append(m.RemoveRoutes, &meshpb.Route{Cidr: r.Prefix.String(), Node: r.Node})
	}
	return m
}

// encodeConfig leaves ClusterCidrs empty: a SyncState fills them in, a
// Delta carries changes to them separately.
func encodeConfig(c desired.Config) *meshpb.NodeConfig {
	return &meshpb.NodeConfig{
		ListenPort:                 uint32(c.ListenPort),
		PersistentKeepaliveSeconds: uint32(c.PersistentKeepalive),
		Strict:                     c.Strict,
		Isolated:                   c.Isolated,
		LocalCidrs:                 prefixStrings(c.LocalCIDRs),
	}
}

func encodePeer(p desired.Peer) *meshpb.Peer {
	m := &meshpb.Peer{
		Node:                       p.Node,
		PublicKey:                  append([]byte(nil), p.PublicKey[:]...),
		AllowedIps:                 prefixStrings(p.AllowedIPs),
		PersistentKeepaliveSeconds: uint32(p.PersistentKeepalive),
	}
	if p.Endpoint.IsValid() {
		m.Endpoint = p.Endpoint.String()
	}
	return m
}

func encodeBlocks(bs []desired.BlockRule) []*meshpb.BlockRule {
	if len(bs) == 0 {
		return nil
	}
	out := make([]*meshpb.BlockRule, len(bs))
	for i, b := range bs {
		out[i] = &meshpb.BlockRule{Src: b.Src.String(), Dst: b.Dst.String()}
	}
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
