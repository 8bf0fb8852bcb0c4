package rotationtest

import (
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Base derives the configurations an agent derives from a desired state
// (as nodeagent/agent does): wg-mesh with key, one path with the default
// mark and table, one BPF remote per allowed IP with peers numbered 1..N
// in name order.
func Base(s desired.NodeState, key keys.Private, nodeIP netip.Addr) rotation.Base {
	b := rotation.Base{State: s}
	b.Mesh = wg.Config{Name: wg.MeshInterface, PrivateKey: key, ListenPort: int(s.Config.ListenPort)}
	path := route.Path{Interface: wg.MeshInterface, Strict: s.Config.Strict}
	ids := map[string]uint32{}
	for p := range s.Peers.All() {
		ids[p.Node] = uint32(len(ids) + 1)
		b.Mesh.Peers = append(b.Mesh.Peers, wg.Peer{
			PublicKey:           wgtypes.Key(p.PublicKey),
			Endpoint:            p.Endpoint,
			AllowedIPs:          slices.Clone(p.AllowedIPs),
			PersistentKeepalive: time.Duration(p.PersistentKeepalive) * time.Second,
		})
	}
	for _, r := range s.Routes() {
		path.CIDRs = append(path.CIDRs, r.Prefix)
		b.BPF.Remotes = append(b.BPF.Remotes, bpf.Remote{CIDR: r.Prefix, Node: ids[r.Node], Mark: route.DefaultMark})
	}
	b.Routes = route.Config{NodeIP: nodeIP, Paths: []route.Path{path}}
	return b
}
