package wire

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/lumbrjx/vpblu/core/cidr"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// DecodeState validates a SyncState and returns the NodeState it
// describes.
func DecodeState(m *meshpb.SyncState) (desired.NodeState, error) {
	var s desired.NodeState
	if m == nil {
		return s, malformed("no SyncState")
	}
	if m.Config == nil {
		return s, malformed("SyncState without config")
	}
	var err error
	if s.Config, err = decodeConfig(m.Config); err != nil {
		return desired.NodeState{}, err
	}
	if s.ClusterCIDRs, err = decodePrefixes("config.cluster_cidrs", m.Config.ClusterCidrs); err != nil {
		return desired.NodeState{}, err
	}
	if s.Peers, err = decodePeers("peers", m.Peers); err != nil {
		return desired.NodeState{}, err
	}
	routes, err := decodeRoutes("routes", m.Routes)
	if err != nil {
		return desired.NodeState{}, err
	}
	if want := s.Routes(); !slices.Equal(routes.Slice(), want) {
		return desired.NodeState{}, malformed("routes %v do not match the peers' allowed IPs %v", routes.Slice(), want)
	}
	if s.Blocks, err = decodeBlocks("blocks", m.Blocks); err != nil {
		return desired.NodeState{}, err
	}
	if err := s.Validate(); err != nil {
		return desired.NodeState{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return s, nil
}

// DecodeDelta validates a Delta message on its own and returns the
// desired.Delta it describes. Whether it fits the state it is applied to
// is for desired.Apply to say.
func DecodeDelta(m *meshpb.Delta) (desired.Delta, error) {
	var d desired.Delta
	if m == nil {
		return d, malformed("no Delta")
	}
	if m.Config != nil {
		if len(m.Config.ClusterCidrs) > 0 {
			return desired.Delta{}, malformed("delta config carries cluster_cidrs; use add_cluster_cidrs and remove_cluster_cidrs")
		}
		c, err := decodeConfig(m.Config)
		if err != nil {
			return desired.Delta{}, err
		}
		d.Config = &c
	}
	var err error
	if d.UpsertPeers, err = decodePeers("upsert_peers", m.UpsertPeers); err != nil {
		return desired.Delta{}, err
	}
	for i, n := range m.RemovePeers {
		if n == "" {
			return desired.Delta{}, malformed("remove_peers[%d]: empty node name", i)
		}
		if d.UpsertPeers.Has(n) {
			return desired.Delta{}, malformed("remove_peers[%d]: peer %q is also upserted", i, n)
		}
	}
	d.RemovePeers = desired.NewNameList(m.RemovePeers...)
	if d.RemovePeers.Len() != len(m.RemovePeers) {
		return desired.Delta{}, malformed("remove_peers: duplicate names")
	}
	if d.AddRoutes, err = decodeRoutes("add_routes", m.AddRoutes); err != nil {
		return desired.Delta{}, err
	}
	if d.RemoveRoutes, err = decodeRoutes("remove_routes", m.RemoveRoutes); err != nil {
		return desired.Delta{}, err
	}
	if d.AddBlocks, err = decodeBlocks("add_blocks", m.AddBlocks); err != nil {
		return desired.Delta{}, err
	}
	if d.RemoveBlocks, err = decodeBlocks("remove_blocks", m.RemoveBlocks); err != nil {
		return desired.Delta{}, err
	}
	for _, b := range d.AddBlocks {
		if _, ok := slices.BinarySearchFunc(d.RemoveBlocks, b, compareBlock); ok {
			return desired.Delta{}, malformed("block %s is both added and removed", b)
		}
	}
	if d.AddClusterCIDRs, err = decodePrefixes("add_cluster_cidrs", m.AddClusterCidrs); err != nil {
		return desired.Delta{}, err
	}
	if d.RemoveClusterCIDRs, err = decodePrefixes("remove_cluster_cidrs", m.RemoveClusterCidrs); err != nil {
		return desired.Delta{}, err
	}
	for _, p := range d.AddClusterCIDRs {
		if _, ok := slices.BinarySearchFunc(d.RemoveClusterCIDRs, p, cidr.Compare); ok {
			return desired.Delta{}, malformed("cluster CIDR %s is both added and removed", p)
		}
	}
	return d, nil
}

func decodeConfig(m *meshpb.NodeConfig) (desired.Config, error) {
	if m.ListenPort == 0 || m.ListenPort > math.MaxUint16 {
		return desired.Config{}, malformed("config.listen_port %d: outside 1-65535", m.ListenPort)
	}
	if m.PersistentKeepaliveSeconds > math.MaxUint16 {
		return desired.Config{}, malformed("config.persistent_keepalive_seconds %d: above 65535", m.PersistentKeepaliveSeconds)
	}
	local, err := decodePrefixes("config.local_cidrs", m.LocalCidrs)
	if err != nil {
		return desired.Config{}, err
	}
	return desired.Config{
		ListenPort:          uint16(m.ListenPort),
		PersistentKeepalive: uint16(m.PersistentKeepaliveSeconds),
		Strict:              m.Strict,
		Isolated:            m.Isolated,
		LocalCIDRs:          local,
	}, nil
}

// decodePrefix parses a canonical CIDR: masked, no IPv4-mapped form.
func decodePrefix(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, malformed("%s: %q is not a CIDR", field, s)
	}
	if err := cidr.Check(p); err != nil {
		return netip.Prefix{}, malformed("%s: %v", field, err)
	}
	if p != p.Masked() {
		return netip.Prefix{}, malformed("%s: %s has host bits set (want %s)", field, p, p.Masked())
	}
	return p, nil
}

// decodePrefixes parses a set of CIDRs; the result is sorted and a
// duplicate is an error.
func decodePrefixes(field string, ss []string) ([]netip.Prefix, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(ss))
	for i, s := range ss {
		p, err := decodePrefix(fmt.Sprintf("%s[%d]", field, i), s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.SortFunc(out, cidr.Compare)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, malformed("%s: %s listed twice", field, out[i])
		}
	}
	return out, nil
}

func decodePeers(field string, ms []*meshpb.Peer) (desired.PeerSet, error) {
	peers := make([]desired.Peer, 0, len(ms))
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m == nil {
			return desired.PeerSet{}, malformed("%s: missing", f)
		}
		if m.Node == "" {
			return desired.PeerSet{}, malformed("%s: empty node name", f)
		}
		f = fmt.Sprintf("%s (%q)", f, m.Node)
		k, err := desired.KeyFromBytes(m.PublicKey)
		if err != nil {
			return desired.PeerSet{}, malformed("%s: public_key: %v", f, err)
		}
		p := desired.Peer{Node: m.Node, PublicKey: k}
		if m.Endpoint != "" {
			ep, err := netip.ParseAddrPort(m.Endpoint)
			if err != nil {
				return desired.PeerSet{}, malformed("%s: endpoint %q: not ip:port", f, m.Endpoint)
			}
			p.Endpoint = ep
		}
		if m.PersistentKeepaliveSeconds > math.MaxUint16 {
			return desired.PeerSet{}, malformed("%s: persistent_keepalive_seconds %d: above 65535", f, m.PersistentKeepaliveSeconds)
		}
		p.PersistentKeepalive = uint16(m.PersistentKeepaliveSeconds)
		if p.AllowedIPs, err = decodePrefixes(f+": allowed_ips", m.AllowedIps); err != nil {
			return desired.PeerSet{}, err
		}
		if err := p.Validate(); err != nil {
			return desired.PeerSet{}, fmt.Errorf("%w: %s: %w", ErrMalformed, f, err)
		}
		peers = append(peers, p)
	}
	s, err := desired.NewPeerSet(peers...)
	if err != nil {
		return desired.PeerSet{}, malformed("%s: %v", field, err)
	}
	if err := allowedDisjoint(s); err != nil {
		return desired.PeerSet{}, malformed("%s: %v", field, err)
	}
	return s, nil
}

// allowedDisjoint checks that no two allowed IPs of s overlap.
func allowedDisjoint(s desired.PeerSet) error {
	st := desired.NodeState{Config: desired.Config{ListenPort: 1}, Peers: s}
	routes := st.Routes()
	slices.SortFunc(routes, func(a, b desired.Route) int { return cidr.Compare(a.Prefix, b.Prefix) })
	for i := 1; i < len(routes); i++ {
		if routes[i-1].Prefix.Overlaps(routes[i].Prefix) {
			return fmt.Errorf("allowed IPs overlap: %s of %q and %s of %q", routes[i-1].Prefix, routes[i-1].Node, routes[i].Prefix, routes[i].Node)
		}
	}
	return nil
}

func decodeRoutes(field string, ms []*meshpb.Route) (desired.RouteList, error) {
	rs := make([]desired.Route, 0, len(ms))
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m == nil {
			return desired.RouteList{}, malformed("%s: missing", f)
		}
		if m.Node == "" {
			return desired.RouteList{}, malformed("%s: empty node name", f)
		}
		p, err := decodePrefix(f+".cidr", m.Cidr)
		if err != nil {
			return desired.RouteList{}, err
		}
		rs = append(rs, desired.Route{Prefix: p, Node: m.Node})
	}
	l := desired.NewRouteList(rs...)
	if l.Len() != len(rs) {
		return desired.RouteList{}, malformed("%s: duplicate routes", field)
	}
	return l, nil
}

func decodeBlocks(field string, ms []*meshpb.BlockRule) ([]desired.BlockRule, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	out := make([]desired.BlockRule, 0, len(ms))
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m == nil {
			return nil, malformed("%s: missing", f)
		}
		src, err := decodePrefix(f+".src", m.Src)
		if err != nil {
			return nil, err
		}
		dst, err := decodePrefix(f+".dst", m.Dst)
		if err != nil {
			return nil, err
		}
		if src.Addr().Is4() != dst.Addr().Is4() {
			return nil, malformed("%s: %s -> %s mixes IPv4 and IPv6", f, src, dst)
		}
		out = append(out, desired.BlockRule{Src: src, Dst: dst})
	}
	slices.SortFunc(out, compareBlock)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, malformed("%s: %s listed twice", field, out[i])
		}
	}
	return out, nil
}

func compareBlock(a, b desired.BlockRule) int {
	if c := cidr.Compare(a.Src, b.Src); c != 0 {
		return c
	}
	return cidr.Compare(a.Dst, b.Dst)
}
