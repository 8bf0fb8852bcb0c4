package wg

import (
	"bytes"
	"net"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// plan computes the wgctrl configuration that turns cur into want without
// touching what already matches: ReplacePeers is never set, peers that
// exist are updated in place (UpdateOnly), and unchanged peers are left
// out, so their sessions survive. ok is false when nothing differs. The
// persistent keepalive of the peers in held is left off (a new peer is
// created without one, an existing one keeps what it has).
func plan(cur *wgtypes.Device, want Config, held map[wgtypes.Key]bool) (cfg wgtypes.Config, ok bool) {
	if k := want.PrivateKey.Key(); cur.PrivateKey != k {
		cfg.PrivateKey = &k
		ok = true
	}
	if cur.ListenPort != want.ListenPort {
		p := want.ListenPort
		cfg.ListenPort = &p
		ok = true
	}
	if cur.FirewallMark != want.FirewallMark {
		m := want.FirewallMark
		cfg.FirewallMark = &m
		ok = true
	}
	have := make(map[wgtypes.Key]*wgtypes.Peer, len(cur.Peers))
	for i := range cur.Peers {
		have[cur.Peers[i].PublicKey] = &cur.Peers[i]
	}
	peers := slices.Clone(want.Peers)
	slices.SortFunc(peers, func(a, b Peer) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	wanted := make(map[wgtypes.Key]bool, len(peers))
	for _, p := range peers {
		wanted[p.PublicKey] = true
		ka := p.PersistentKeepalive
		allowed := normPrefixes(p.AllowedIPs)
		c, exists := have[p.PublicKey]
		if held[p.PublicKey] {
			ka = 0
			if exists {
				ka = c.PersistentKeepaliveInterval
			}
		}
		if !exists {
			cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{
				PublicKey:                   p.PublicKey,
				Endpoint:                    udpAddr(p.Endpoint),
				PersistentKeepaliveInterval: &ka,
				ReplaceAllowedIPs:           true,
				AllowedIPs:                  ipNets(allowed),
			})
			continue
		}
		pc := wgtypes.PeerConfig{PublicKey: p.PublicKey, UpdateOnly: true}
		changed := false
		if ep := unmapAddrPort(p.Endpoint); ep.IsValid() && ep != endpointOf(c.Endpoint) {
			pc.Endpoint = udpAddr(ep)
			changed = true
		}
		if c.PersistentKeepaliveInterval != ka {
			pc.PersistentKeepaliveInterval = &ka
			changed = true
		}
		if !slices.Equal(normPrefixes(prefixes(c.AllowedIPs)), allowed) {
			pc.ReplaceAllowedIPs = true
			pc.AllowedIPs = ipNets(allowed)
			changed = true
		}
		if changed {
			cfg.Peers = append(cfg.Peers, pc)
		}
	}
	var gone []wgtypes.PeerConfig
	for k := range have {
		if !wanted[k] {
			gone = append(gone, wgtypes.PeerConfig{PublicKey: k, Remove: true})
		}
	}
	slices.SortFunc(gone, func(a, b wgtypes.PeerConfig) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	// Removals first: an allowed IP moving from a removed peer to another
	// one is then never owned by two peers within the request.
	cfg.Peers = append(gone, cfg.Peers...)
	return cfg, ok || len(cfg.Peers) > 0
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func endpointOf(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	return unmapAddrPort(a.AddrPort())
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(unmapAddrPort(ap))
}

// prefixes converts wgctrl's allowed IPs; unparsable entries are dropped.
func prefixes(nets []net.IPNet) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(nets))
	for _, n := range nets {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, bits := n.Mask.Size()
		if bits == 0 {
			continue
		}
		a = a.Unmap()
		if a.Is4() && bits == 128 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(a, ones))
	}
	return out
}

func ipNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(ps))
	for _, p := range ps {
		out = append(out, net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		})
	}
	return out
}
