package rotation

import (
	"fmt"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Base is what the agent derives from its desired state, before any
// rotation.
type Base struct {
	// State is the desired state the configurations below come from.
	State desired.NodeState
	// Mesh is wg-mesh's configuration (private key: the active key).
	Mesh wg.Config
	// Routes holds wg-mesh's path.
	Routes route.Config
	// BPF is the data plane state; every remote carries wg-mesh's mark.
	BPF bpf.State
}

// Composed is what the agent applies, in this order: Mesh and Temp
// (WireGuard), Routes, the MSS clamp, BPF, then deliver on Temp's
// interface. Temp nil means no temporary interface: the agent does not
// create one and leaves an existing one alone (the Executor deletes it,
// after a reconcile has taken its path and marks away).
type Composed struct {
	Mesh   wg.Config
	Temp   *wg.Config
	Routes route.Config
	BPF    bpf.State
}

// KeyReader finds private keys; *keys.Store implements it.
type KeyReader interface {
	Active() (keys.Key, error)
	Pending() (keys.Key, bool)
	Previous() (keys.Key, bool)
}

var _ KeyReader = (*keys.Store)(nil)

// keyOf returns the private key of generation gen (0: the active key)
// from whichever slot holds it.
func keyOf(k KeyReader, gen uint64) (keys.Private, error) {
	a, err := k.Active()
	if err != nil {
		return keys.Private{}, fmt.Errorf("reading the active key: %w", err)
	}
	if gen == 0 || a.Generation == gen {
		return a.Private, nil
	}
	if p, ok := k.Pending(); ok && p.Generation == gen {
		return p.Private, nil
	}
	if p, ok := k.Previous(); ok && p.Generation == gen {
		return p.Private, nil
	}
	return keys.Private{}, fmt.Errorf("%w: generation %d", ErrNoKey, gen)
}

// Compose lays o over the base configuration. It is pure apart from
// reading keys, and leaves base untouched:
//
//   - Supersessions: a wg-mesh peer whose desired key is a superseded key
//     of its node gets the superseding key.
//   - Subject: wg-mesh runs key generation MeshGeneration when set.
//     Peer: wg-mesh gives the subject MeshPeerKey when set.
//   - With a temporary interface: wg-rot runs the subject's new key
//     (subject) or the active key (peer) on Temp.Port, with every TempPeer
//     that is a peer in the desired state (its allowed IPs from there,
//     keepalive Keepalive); a second path routes those peers' CIDRs into
//     wg-rot under Temp.Mark and Temp.Table and always ends in a blackhole
//     (whatever strict says: a packet marked for wg-rot never reaches the
//     main table); the rotation's wg-mesh peers whose keepalive is 0 get
//     Keepalive, so a re-keyed pair handshakes without traffic.
//   - The remotes of Switched peers carry Temp.Mark: one map write moves a
//     destination. Nothing is marked for a path that is not composed.
func Compose(o Overlay, b Base, k KeyReader) (Composed, error) {
	c := Composed{
		Mesh:   b.Mesh,
		Routes: b.Routes,
		BPF:    b.BPF,
	}
	c.Mesh.Peers = slices.Clone(b.Mesh.Peers)
	c.Routes.Paths = slices.Clone(b.Routes.Paths)
	c.BPF.Remotes = slices.Clone(b.BPF.Remotes)

	// index finds a node's wg-mesh entry by its desired key, before any
	// replacement.
	index := func(node string) int {
		p, ok := b.State.Peers.Get(node)
		if !ok {
			return -1
		}
		return slices.IndexFunc(b.Mesh.Peers, func(mp wg.Peer) bool { return mp.PublicKey == wgtypes.Key(p.PublicKey) })
	}
	replace := func(node string, key wgtypes.Key) {
		if i := index(node); i >= 0 {
			c.Mesh.Peers[i].PublicKey = key
		}
	}
	for _, s := range o.Supersede {
		if p, ok := b.State.Peers.Get(s.Node); ok && wgtypes.Key(p.PublicKey) == s.Stale {
			replace(s.Node, s.Use)
		}
	}
	if !o.Active() {
		return c, nil
	}
	switch o.Role {
	case Subject:
		if o.MeshGeneration != 0 {
			priv, err := keyOf(k, o.MeshGeneration)
			if err != nil {
				return Composed{}, fmt.Errorf("wg-mesh key: %w", err)
			}
			c.Mesh.PrivateKey = priv
		}
	case Peer:
		if o.MeshPeerKey != (wgtypes.Key{}) {
			replace(o.Subject, o.MeshPeerKey)
		}
	}
	t := o.Temp
	if t == nil {
		return c, nil
	}

	priv, err := keyOf(k, t.KeyGeneration)
	if err != nil {
		return Composed{}, fmt.Errorf("%s key: %w", t.Interface, err)
	}
	temp := &wg.Config{Name: t.Interface, PrivateKey: priv, ListenPort: t.Port}
	path := route.Path{Interface: t.Interface, Mark: t.Mark, Table: t.Table, Strict: true}
	if mp, ok := meshPath(b.Routes, b.Mesh.Name); ok {
		path.Mask, path.Priority = mp.Mask, mp.Priority
	}
	owner := map[netip.Prefix]string{}
	for _, r := range b.State.Routes() {
		owner[r.Prefix.Masked()] = r.Node
	}
	inTemp := map[string]bool{}
	for _, tp := range t.Peers {
		dp, ok := b.State.Peers.Get(tp.Node)
		if !ok {
			continue
		}
		inTemp[tp.Node] = true
		temp.Peers = append(temp.Peers, wg.Peer{
			PublicKey:           tp.PublicKey,
			Endpoint:            tp.Endpoint,
			AllowedIPs:          slices.Clone(dp.AllowedIPs),
			PersistentKeepalive: Keepalive,
		})
		path.CIDRs = append(path.CIDRs, dp.AllowedIPs...)
		if i := index(tp.Node); i >= 0 && c.Mesh.Peers[i].PersistentKeepalive == 0 {
			c.Mesh.Peers[i].PersistentKeepalive = Keepalive
		}
	}
	c.Temp = temp
	c.Routes.Paths = append(c.Routes.Paths, path)
	for i := range c.BPF.Remotes {
		r := &c.BPF.Remotes[i]
		if n := owner[r.CIDR.Masked()]; inTemp[n] && slices.Contains(o.Switched, n) {
			r.Mark = t.Mark
		}
	}
	return c, nil
}

// meshPath is wg-mesh's path (named mesh), or the first one.
func meshPath(c route.Config, mesh string) (route.Path, bool) {
	for _, p := range c.Paths {
		if p.Interface == mesh {
			return p, true
		}
	}
	if len(c.Paths) > 0 {
		return c.Paths[0], true
	}
	return route.Path{}, false
}
