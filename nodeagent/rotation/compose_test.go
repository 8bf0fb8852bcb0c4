package rotation_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/rotation/rotationtest"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// composed renders what Compose gives the agent, briefly.
func composed(t *testing.T, c rotation.Composed) string {
	t.Helper()
	var b strings.Builder
	pub := c.Mesh.PrivateKey.Public()
	fmt.Fprintf(&b, "wg-mesh key %s\n", pub.String()[:8])
	var lines []string
	for _, p := range c.Mesh.Peers {
		lines = append(lines, fmt.Sprintf("  peer %s keepalive %s\n", p.PublicKey.String()[:8], p.PersistentKeepalive))
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, ""))
	if c.Temp != nil {
		tp := c.Temp.PrivateKey.Public()
		fmt.Fprintf(&b, "%s key %s port %d\n", c.Temp.Name, tp.String()[:8], c.Temp.ListenPort)
		for _, p := range c.Temp.Peers {
			fmt.Fprintf(&b, "  peer %s %s %v keepalive %s\n", p.PublicKey.String()[:8], p.Endpoint, p.AllowedIPs, p.PersistentKeepalive)
		}
	}
	for _, p := range c.Routes.Paths {
		fmt.Fprintf(&b, "path %s mark %#x table %d strict %t %v\n", p.Interface, p.Mark, p.Table, p.Strict, p.CIDRs)
	}
	for _, r := range c.BPF.Remotes {
		fmt.Fprintf(&b, "remote %s mark %#x\n", r.CIDR, r.Mark)
	}
	return b.String()
}

func TestCompose(t *testing.T) {
	c := newCluster(t, 0)
	base := func(node string, gens map[string]int) rotation.Base {
		a, err := c[node].store.Active()
		if err != nil {
			t.Fatal(err)
		}
		return rotationtest.Base(stateOf(t, node, gens, 0), a.Private, nodeIP[node])
	}
	var tr strings.Builder
	c.forward(t, &tr, rotation.Stage{Phase: activate, Step: rekey})
	subject, peer := c["a"].exec.Overlay(), c["b"].exec.Overlay()

	cases := []struct {
		name string
		node string
		o    rotation.Overlay
		gens map[string]int
		want string
	}{
		{name: "no overlay changes nothing", node: "b", want: `wg-mesh key t1LINzbr
  peer f3FTPSAx keepalive 0s
  peer snme78Lq keepalive 0s
path wg-mesh mark 0x0 table 0 strict true [100.64.1.0/24 2001:db8:1::/64 100.64.3.0/24 2001:db8:3::/64]
remote 100.64.1.0/24 mark 0x1100
remote 2001:db8:1::/64 mark 0x1100
remote 100.64.3.0/24 mark 0x1100
remote 2001:db8:3::/64 mark 0x1100
`},
		{name: "a supersession replaces the stale key the desired state still names", node: "b",
			o: rotation.Overlay{Supersede: []rotation.Supersession{{Node: "a", Stale: pubKey("a", 1), Use: pubKey("a", 2)}}}, want: `wg-mesh key t1LINzbr
  peer CfaX/wWE keepalive 0s
  peer f3FTPSAx keepalive 0s
path wg-mesh mark 0x0 table 0 strict true [100.64.1.0/24 2001:db8:1::/64 100.64.3.0/24 2001:db8:3::/64]
remote 100.64.1.0/24 mark 0x1100
remote 2001:db8:1::/64 mark 0x1100
remote 100.64.3.0/24 mark 0x1100
remote 2001:db8:3::/64 mark 0x1100
`},
		{name: "a supersession does nothing once the desired state names another key", node: "b", gens: map[string]int{"a": 3},
			o: rotation.Overlay{Supersede: []rotation.Supersession{{Node: "a", Stale: pubKey("a", 1), Use: pubKey("a", 2)}}}, want: `wg-mesh key t1LINzbr
  peer N5WseR38 keepalive 0s
  peer f3FTPSAx keepalive 0s
path wg-mesh mark 0x0 table 0 strict true [100.64.1.0/24 2001:db8:1::/64 100.64.3.0/24 2001:db8:3::/64]
remote 100.64.1.0/24 mark 0x1100
remote 2001:db8:1::/64 mark 0x1100
remote 100.64.3.0/24 mark 0x1100
remote 2001:db8:3::/64 mark 0x1100
`},
		{name: "the subject runs its new key on both interfaces and steers every peer into wg-rot", node: "a", o: subject, want: `wg-mesh key CfaX/wWE
  peer f3FTPSAx keepalive 5s
  peer t1LINzbr keepalive 5s
wg-rot key CfaX/wWE port 51821
  peer t1LINzbr 198.18.0.2:51821 [100.64.2.0/24 2001:db8:2::/64] keepalive 5s
  peer f3FTPSAx 198.18.0.3:51821 [100.64.3.0/24 2001:db8:3::/64] keepalive 5s
path wg-mesh mark 0x0 table 0 strict true [100.64.2.0/24 2001:db8:2::/64 100.64.3.0/24 2001:db8:3::/64]
path wg-rot mark 0x1200 table 51821 strict true [100.64.2.0/24 2001:db8:2::/64 100.64.3.0/24 2001:db8:3::/64]
remote 100.64.2.0/24 mark 0x1200
remote 2001:db8:2::/64 mark 0x1200
remote 100.64.3.0/24 mark 0x1200
remote 2001:db8:3::/64 mark 0x1200
`},
		{name: "a peer gives the subject its new key and steers only the subject", node: "b", o: peer, want: `wg-mesh key t1LINzbr
  peer CfaX/wWE keepalive 5s
  peer f3FTPSAx keepalive 0s
wg-rot key t1LINzbr port 51821
  peer CfaX/wWE 198.18.0.1:51821 [100.64.1.0/24 2001:db8:1::/64] keepalive 5s
path wg-mesh mark 0x0 table 0 strict true [100.64.1.0/24 2001:db8:1::/64 100.64.3.0/24 2001:db8:3::/64]
path wg-rot mark 0x1200 table 51821 strict true [100.64.1.0/24 2001:db8:1::/64]
remote 100.64.1.0/24 mark 0x1200
remote 2001:db8:1::/64 mark 0x1200
remote 100.64.3.0/24 mark 0x1100
remote 2001:db8:3::/64 mark 0x1100
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rotation.Compose(tc.o, base(tc.node, tc.gens), c[tc.node].store)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, composed(t, got)); diff != "" {
				t.Errorf("composed (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a temporary peer that left the desired state gets no peer, route or mark", func(t *testing.T) {
		st := stateOf(t, "a", nil, 0)
		b := base("a", nil)
		var err error
		if b.State.Peers, err = rotationPeersWithout(st, "c"); err != nil {
			t.Fatal(err)
		}
		got, err := rotation.Compose(subject, b, c["a"].store)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Temp.Peers) != 1 || slices.ContainsFunc(got.Routes.Paths[1].CIDRs, func(p netip.Prefix) bool { return p == podCIDRs["c"][0] }) {
			t.Errorf("node c still on wg-rot:\n%s", composed(t, got))
		}
	})
	t.Run("a key generation missing from the store is an error", func(t *testing.T) {
		o := subject.Clone()
		o.MeshGeneration = 7
		if _, err := rotation.Compose(o, base("a", nil), c["a"].store); !errors.Is(err, rotation.ErrNoKey) {
			t.Errorf("error %v, want ErrNoKey", err)
		}
	})
	t.Run("compose leaves its input alone", func(t *testing.T) {
		b := base("a", nil)
		before := fmt.Sprint(b.Mesh.Peers, b.Routes.Paths, b.BPF.Remotes)
		if _, err := rotation.Compose(subject, b, c["a"].store); err != nil {
			t.Fatal(err)
		}
		if after := fmt.Sprint(b.Mesh.Peers, b.Routes.Paths, b.BPF.Remotes); after != before {
			t.Errorf("base changed:\n%s\n%s", before, after)
		}
	})
}

func TestConfirmedNeedsAFreshHandshakeWithTheExpectedKey(t *testing.T) {
	since := t0.Add(time.Minute)
	o := rotation.Overlay{ID: "a/2", Subject: "a", Role: rotation.Peer, NewGeneration: 2, NewKey: pubKey("a", 2), OldKey: pubKey("a", 1),
		Temp:      &rotation.Temp{Interface: wg.RotationInterface, Peers: []rotation.TempPeer{{Node: "a", PublicKey: pubKey("a", 2)}}},
		TempSince: since, MeshSince: since}
	status := func(key wgtypes.Key, at time.Time) *wg.Status {
		return &wg.Status{Peers: []wg.PeerStatus{{PublicKey: key, LastHandshake: at}}}
	}
	cases := []struct {
		name       string
		stage      rotation.Stage
		meshPeer   wgtypes.Key
		temp, mesh *wg.Status
		want       []string
	}{
		{"distribute: a handshake on wg-rot after it came up", rotation.Stage{Phase: distribute}, wgtypes.Key{},
			status(pubKey("a", 2), since), nil, []string{"a"}},
		{"distribute: a handshake before it came up does not count", rotation.Stage{Phase: distribute}, wgtypes.Key{},
			status(pubKey("a", 2), since.Add(-time.Second)), nil, nil},
		{"distribute: no handshake yet", rotation.Stage{Phase: distribute}, wgtypes.Key{},
			status(pubKey("a", 2), time.Time{}), nil, nil},
		{"rekey: wg-mesh with the new key", rotation.Stage{Phase: activate, Step: rekey}, pubKey("a", 2),
			nil, status(pubKey("a", 2), since.Add(time.Second)), []string{"a"}},
		{"rekey: a handshake on wg-rot does not confirm wg-mesh", rotation.Stage{Phase: activate, Step: rekey}, pubKey("a", 2),
			status(pubKey("a", 2), since.Add(time.Second)), nil, nil},
		{"restore: wg-mesh with the old key", rotation.Stage{Phase: rollback, Step: restore}, pubKey("a", 1),
			nil, status(pubKey("a", 1), since), []string{"a"}},
		{"restore: the new key's handshake does not count", rotation.Stage{Phase: rollback, Step: restore}, pubKey("a", 1),
			nil, status(pubKey("a", 2), since), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := o.Clone()
			o.Stage, o.MeshPeerKey = tc.stage, tc.meshPeer
			if diff := cmp.Diff(tc.want, rotation.Confirmed(o, tc.temp, tc.mesh)); diff != "" {
				t.Errorf("confirmed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJournalRoundTripsAndIsPrivate(t *testing.T) {
	c := newCluster(t, 0)
	var b strings.Builder
	c.forward(t, &b, rotation.Stage{Phase: activate, Step: rekey})
	for _, n := range nodeNames {
		o := c[n].exec.Overlay()
		o.Supersede = []rotation.Supersession{{Node: "z", Stale: pubKey("z", 1), Use: pubKey("z", 2)}}
		j := rotation.FileJournal{Path: filepath.Join(t.TempDir(), rotation.JournalFile)}
		if got, err := j.Load(); err != nil || got.Active() {
			t.Fatalf("empty journal: %+v, %v", got, err)
		}
		if err := j.Save(o); err != nil {
			t.Fatal(err)
		}
		got, err := j.Load()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(o, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("%s: journal round trip (-saved +loaded):\n%s", n, diff)
		}
		st, err := os.Stat(j.Path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("journal mode %v, want 0600", st.Mode().Perm())
		}
		data, _ := os.ReadFile(j.Path)
		priv := privKey(n, 1)
		if strings.Contains(string(data), priv.String()) {
			t.Errorf("%s: the journal holds a private key", n)
		}
	}
	j := rotation.FileJournal{Path: filepath.Join(t.TempDir(), rotation.JournalFile)}
	if err := j.Save(c["a"].exec.Overlay()); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(filepath.Dir(j.Path), "."+rotation.JournalFile+".12345")
	if err := os.WriteFile(stray, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // removing twice is fine
		if err := j.Remove(); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if left, _ := os.ReadDir(filepath.Dir(j.Path)); len(left) != 0 {
		t.Errorf("Remove left %v", left)
	}
	if _, err := rotation.DecodeJournal([]byte(`{"version":1,"id":"x","role":"peer","subject":"a","phase":"NOPE"}`)); !errors.Is(err, rotation.ErrCorrupt) {
		t.Errorf("bad phase: error %v, want ErrCorrupt", err)
	}
	if _, err := rotation.DecodeJournal([]byte(`{"version":2}`)); !errors.Is(err, rotation.ErrCorrupt) {
		t.Errorf("unknown version: error %v, want ErrCorrupt", err)
	}
}

var _ rotation.KeyReader = (*keys.Store)(nil)
