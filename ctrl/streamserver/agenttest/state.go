package agenttest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// State is what a fake daemon runs.
type State struct {
	// Config is the node config without its cluster CIDRs, which Cluster
	// holds.
	Config  *meshpb.NodeConfig
	Cluster map[string]bool
	Peers   map[string]*meshpb.Peer
	Routes  map[string]string // cidr -> node
	Blocks  map[[2]string]bool
}

func newState() *State {
	return &State{Cluster: map[string]bool{}, Peers: map[string]*meshpb.Peer{}, Routes: map[string]string{}, Blocks: map[[2]string]bool{}}
}

func (s *State) sync(m *meshpb.SyncState) {
	*s = *newState()
	s.Config = proto.CloneOf(m.GetConfig())
	if s.Config != nil {
		for _, c := range s.Config.ClusterCidrs {
			s.Cluster[c] = true
		}
		s.Config.ClusterCidrs = nil
	}
	for _, p := range m.GetPeers() {
		s.Peers[p.GetNode()] = proto.CloneOf(p)
	}
	for _, r := range m.GetRoutes() {
		s.Routes[r.GetCidr()] = r.GetNode()
	}
	for _, b := range m.GetBlocks() {
		s.Blocks[[2]string{b.GetSrc(), b.GetDst()}] = true
	}
}

func (s *State) delta(d *meshpb.Delta) {
	if d.GetConfig() != nil {
		// A delta's config leaves the cluster CIDRs alone.
		s.Config = proto.CloneOf(d.GetConfig())
		s.Config.ClusterCidrs = nil
	}
	for _, c := range d.GetRemoveClusterCidrs() {
		delete(s.Cluster, c)
	}
	for _, c := range d.GetAddClusterCidrs() {
		s.Cluster[c] = true
	}
	for _, n := range d.GetRemovePeers() {
		delete(s.Peers, n)
	}
	for _, p := range d.GetUpsertPeers() {
		s.Peers[p.GetNode()] = proto.CloneOf(p)
	}
	for _, r := range d.GetRemoveRoutes() {
		delete(s.Routes, r.GetCidr())
	}
	for _, r := range d.GetAddRoutes() {
		s.Routes[r.GetCidr()] = r.GetNode()
	}
	for _, b := range d.GetRemoveBlocks() {
		delete(s.Blocks, [2]string{b.GetSrc(), b.GetDst()})
	}
	for _, b := range d.GetAddBlocks() {
		s.Blocks[[2]string{b.GetSrc(), b.GetDst()}] = true
	}
}

// String renders the state one sorted line per item:
//
//	config port=51820 keepalive=25 strict=true isolated=false local=[100.64.1.0/24]
//	cluster [100.64.1.0/24 100.64.2.0/24]
//	peer node-b key=<base64> endpoint=198.18.0.2:51820 allowed=[100.64.2.0/24] keepalive=25
//	route 100.64.9.0/24 via node-b
//	block 100.64.1.0/24 -> 100.64.2.0/24
func (s *State) String() string {
	var lines []string
	if c := s.Config; c != nil {
		lines = append(lines, fmt.Sprintf("config port=%d keepalive=%d strict=%t isolated=%t local=%v",
			c.GetListenPort(), c.GetPersistentKeepaliveSeconds(), c.GetStrict(), c.GetIsolated(), c.GetLocalCidrs()))
	}
	if len(s.Cluster) > 0 {
		cluster := make([]string, 0, len(s.Cluster))
		for c := range s.Cluster {
			cluster = append(cluster, c)
		}
		slices.Sort(cluster)
		lines = append(lines, fmt.Sprintf("cluster %v", cluster))
	}
	var rest []string
	for _, p := range s.Peers {
		rest = append(rest, fmt.Sprintf("peer %s key=%s endpoint=%s allowed=%v keepalive=%d",
			p.GetNode(), base64.StdEncoding.EncodeToString(p.GetPublicKey()), p.GetEndpoint(), p.GetAllowedIps(), p.GetPersistentKeepaliveSeconds()))
	}
	for cidr, node := range s.Routes {
		rest = append(rest, fmt.Sprintf("route %s via %s", cidr, node))
	}
	for b := range s.Blocks {
		rest = append(rest, fmt.Sprintf("block %s -> %s", b[0], b[1]))
	}
	slices.Sort(rest)
	return strings.Join(append(lines, rest...), "\n")
}

// Render renders a SyncState as State.String renders a daemon's state.
func Render(m *meshpb.SyncState) string {
	s := newState()
	s.sync(m)
	return s.String()
}
