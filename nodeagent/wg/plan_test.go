package wg

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/keys"
)

func TestPlanWritesOnlyDifferences(t *testing.T) {
	var raw [32]byte
	raw[0] = 1
	priv := keys.NewPrivate(raw)
	b, c := wgtypes.Key{2}, wgtypes.Key{3}
	ka := 25 * time.Second
	zero := time.Duration(0)
	net24 := func(s string) net.IPNet {
		_, n, _ := net.ParseCIDR(s)
		n.IP = n.IP.To4()
		return *n
	}
	cur := func(peers ...wgtypes.Peer) *wgtypes.Device {
		return &wgtypes.Device{PrivateKey: priv.Key(), ListenPort: 51820, Peers: peers}
	}
	want := func(peers ...Peer) Config {
		return Config{Name: "wg-mesh", PrivateKey: priv, ListenPort: 51820, Peers: peers}
	}
	peerB := wgtypes.Peer{PublicKey: b, Endpoint: &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2).To4(), Port: 51820},
		PersistentKeepaliveInterval: ka, AllowedIPs: []net.IPNet{net24("100.64.2.0/24")}}
	wantB := Peer{PublicKey: b, Endpoint: netip.MustParseAddrPort("198.18.0.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.2.0/24")}, PersistentKeepalive: ka}
	cases := []struct {
		name   string
		cur    *wgtypes.Device
		want   Config
		cfg    wgtypes.Config
		writes bool
	}{
		{name: "identical is no write", cur: cur(peerB), want: want(wantB)},
		{name: "unmasked and reordered allowed ips are identical", cur: cur(peerB),
			want: want(func() Peer {
				p := wantB
				p.AllowedIPs = []netip.Prefix{netip.MustParsePrefix("100.64.2.9/24")}
				return p
			}())},
		{name: "new peer is added with its full config", cur: cur(), want: want(wantB), writes: true,
			cfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: b, Endpoint: peerB.Endpoint,
				PersistentKeepaliveInterval: &ka, ReplaceAllowedIPs: true, AllowedIPs: peerB.AllowedIPs}}}},
		{name: "vanished peer is removed alone", cur: cur(peerB, wgtypes.Peer{PublicKey: c}), want: want(wantB), writes: true,
			cfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: c, Remove: true}}}},
		{name: "keepalive change updates only that", cur: cur(peerB),
			want: want(func() Peer { p := wantB; p.PersistentKeepalive = 0; return p }()), writes: true,
			cfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: b, UpdateOnly: true, PersistentKeepaliveInterval: &zero}}}},
		{name: "allowed ip change replaces only that peer's list", cur: cur(peerB),
			want: want(func() Peer {
				p := wantB
				p.AllowedIPs = append(p.AllowedIPs, netip.MustParsePrefix("100.64.3.0/24"))
				return p
			}()), writes: true,
			cfg: wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: b, UpdateOnly: true, ReplaceAllowedIPs: true,
				AllowedIPs: []net.IPNet{net24("100.64.2.0/24"), net24("100.64.3.0/24")}}}}},
		{name: "port change touches no peer", cur: cur(peerB), want: func() Config { w := want(wantB); w.ListenPort = 51821; return w }(), writes: true,
			cfg: wgtypes.Config{ListenPort: ptr(51821)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, writes := plan(tc.cur, tc.want, nil)
			if writes != tc.writes {
				t.Errorf("writes = %v, want %v", writes, tc.writes)
			}
			if cfg.ReplacePeers {
				t.Errorf("plan replaces all peers")
			}
			if d := cmp.Diff(tc.cfg, cfg); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
