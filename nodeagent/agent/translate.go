package agent

import (
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/blocks"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// The translations below are pure: one desired state, one configuration
// per part.

func wgConfig(s desired.NodeState, key keys.Private, name string) wg.Config {
	c := wg.Config{Name: name, PrivateKey: key, ListenPort: int(s.Config.ListenPort)}
	for p := range s.Peers.All() {
		c.Peers = append(c.Peers, wg.Peer{
			PublicKey:           wgtypes.Key(p.PublicKey),
			Endpoint:            p.Endpoint,
			AllowedIPs:          slices.Clone(p.AllowedIPs),
			PersistentKeepalive: time.Duration(p.PersistentKeepalive) * time.Second,
		})
	}
	return c
}

func (o Options) meshPath(s desired.NodeState) route.Path {
	p := route.Path{Interface: o.Interface, Mark: o.Mark, Mask: o.Mask, Table: o.Table, Priority: o.RulePriority, Strict: s.Config.Strict}
	for _, r := range s.Routes() {
		p.CIDRs = append(p.CIDRs, r.Prefix)
	}
	return p
}

func routeConfig(s desired.NodeState, o Options) route.Config {
	return route.Config{NodeIP: o.NodeIP, MTUOverhead: o.MTUOverhead, Paths: []route.Path{o.meshPath(s)}}
}

func mssConfig(mtu int, o Options) mss.Config {
	return mss.Config{MTU: mtu, Interfaces: o.ClampInterfaces}
}

// nodeIDs numbers the peers 1..N in name order. Apply replaces the whole
// state, so the numbering only has to hold within one state.
func nodeIDs(s desired.NodeState) map[string]uint32 {
	ids := map[string]uint32{}
	for n := range s.Peers.Names() {
		ids[n] = uint32(len(ids) + 1)
	}
	return ids
}

func bpfState(s desired.NodeState, o Options) bpf.State {
	mark := o.Mark
	if mark == 0 {
		mark = route.DefaultMark
	}
	ids := nodeIDs(s)
	st := bpf.State{
		Config:   bpf.Config{Strict: s.Config.Strict, Isolated: s.Config.Isolated, DropSample: o.DropSample},
		Locals:   slices.Clone(s.Config.LocalCIDRs),
		Clusters: slices.Clone(s.ClusterCIDRs),
	}
	for _, r := range s.Routes() {
		st.Remotes = append(st.Remotes, bpf.Remote{CIDR: r.Prefix, Node: ids[r.Node], Mark: mark})
	}
	for n := range s.Peers.Names() {
		// A peer configured on wg-mesh is ready: WireGuard queues what is
		// steered to it until the handshake completes.
		st.Nodes = append(st.Nodes, bpf.Node{ID: ids[n], Ready: true})
	}
	for _, b := range s.Blocks {
		st.Blocks = append(st.Blocks, blocks.Rule(b))
	}
	return st
}

// nodeOfKey maps public keys to node names: the desired state's, and the
// keys a rotation gives the interfaces (the temporary peers, the
// subject's old and new keys, supersessions).
func nodeOfKey(s desired.NodeState, o rotation.Overlay) map[wgtypes.Key]string {
	m := map[wgtypes.Key]string{}
	for _, sp := range o.Supersede {
		m[sp.Use] = sp.Node
	}
	if o.Active() {
		for _, k := range []wgtypes.Key{o.OldKey, o.NewKey} {
			if k != (wgtypes.Key{}) {
				m[k] = o.Subject
			}
		}
		if o.Temp != nil {
			for _, p := range o.Temp.Peers {
				m[p.PublicKey] = p.Node
			}
		}
	}
	for p := range s.Peers.All() {
		m[wgtypes.Key(p.PublicKey)] = p.Node
	}
	return m
}

func addrPortString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func emptyBPF(s bpf.State) bool { return sameBPF(s, bpf.State{}) }

// sameBPF compares canonical states.
func sameBPF(a, b bpf.State) bool {
	return a.Config == b.Config && slices.Equal(a.Remotes, b.Remotes) && slices.Equal(a.Locals, b.Locals) &&
		slices.Equal(a.Clusters, b.Clusters) && slices.Equal(a.Nodes, b.Nodes) && slices.Equal(a.Blocks, b.Blocks)
}
