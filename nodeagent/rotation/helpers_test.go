package rotation_test

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/rotation/rotationtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The test cluster: three nodes a, b, c in a full mesh; a rotates.
var (
	nodeNames = []string{"a", "b", "c"}
	nodeIP    = map[string]netip.Addr{
		"a": netip.MustParseAddr("198.18.0.1"), "b": netip.MustParseAddr("198.18.0.2"), "c": netip.MustParseAddr("198.18.0.3"),
	}
	podCIDRs = map[string][]netip.Prefix{
		"a": {netip.MustParsePrefix("100.64.1.0/24"), netip.MustParsePrefix("2001:db8:1::/64")},
		"b": {netip.MustParsePrefix("100.64.2.0/24"), netip.MustParsePrefix("2001:db8:2::/64")},
		"c": {netip.MustParsePrefix("100.64.3.0/24"), netip.MustParsePrefix("2001:db8:3::/64")},
	}
	t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

const listenPort = 51820

// privKey is node's deterministic private key of generation gen.
func privKey(node string, gen int) wgtypes.Key {
	k := wgtypes.Key(sha256.Sum256(fmt.Appendf(nil, "%s/%d", node, gen)))
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

func pubKey(node string, gen int) wgtypes.Key { return privKey(node, gen).PublicKey() }

// stateOf is node's desired state when every node runs key generation
// gens[node] (1 when absent); keepalive is the peers' keepalive.
func stateOf(t testing.TB, node string, gens map[string]int, keepalive uint16) desired.NodeState {
	t.Helper()
	var peers []desired.Peer
	for _, n := range nodeNames {
		if n == node {
			continue
		}
		g := gens[n]
		if g == 0 {
			g = 1
		}
		peers = append(peers, desired.Peer{
			Node: n, PublicKey: desired.Key(pubKey(n, g)), Endpoint: netip.AddrPortFrom(nodeIP[n], listenPort),
			AllowedIPs: podCIDRs[n], PersistentKeepalive: keepalive,
		})
	}
	ps, err := desired.NewPeerSet(peers...)
	if err != nil {
		t.Fatal(err)
	}
	return desired.NodeState{
		Config: desired.Config{ListenPort: listenPort, Strict: true, PersistentKeepalive: keepalive, LocalCIDRs: podCIDRs[node]},
		Peers:  ps,
	}
}

// clock is a test clock that moves one second per reading.
type clock struct{ t time.Time }

func (c *clock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

// node is one daemon's rotation machinery on fakes.
type node struct {
	name    string
	store   *keys.Store
	host    *rotationtest.Host
	journal *rotationtest.Journal
	exec    *rotation.Executor
	clock   *clock
}

func newNode(t *testing.T, name string, keepalive uint16) *node {
	t.Helper()
	gen := 0
	store, err := keys.Open(keys.Options{
		Dir: t.TempDir(),
		Now: func() time.Time { return t0 },
		Generate: func() (wgtypes.Key, error) {
			gen++
			return privKey(name, gen), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	n := &node{name: name, store: store, journal: &rotationtest.Journal{}, clock: &clock{t: t0}}
	n.host = rotationtest.NewHost(nodeIP[name], stateOf(t, name, nil, keepalive), store)
	if err := n.host.SetState(stateOf(t, name, nil, keepalive)); err != nil {
		t.Fatal(err)
	}
	n.exec = n.restart(t)
	return n
}

// restart makes a new executor over the same journal, keys and kernel, as
// a restarted daemon would, and starts it.
func (n *node) restart(t *testing.T) *rotation.Executor {
	t.Helper()
	e, err := rotation.New(rotation.Options{Node: n.name, Now: n.clock.now},
		rotation.Deps{Keys: n.store, Host: n.host, Tunnels: n.host, Journal: n.journal})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (n *node) keySlots() string {
	a, _ := n.store.Active()
	s := fmt.Sprintf("active %d", a.Generation)
	if p, ok := n.store.Pending(); ok {
		s += fmt.Sprintf(" pending %d", p.Generation)
	}
	if p, ok := n.store.Previous(); ok {
		s += fmt.Sprintf(" previous %d", p.Generation)
	}
	return s
}

// render prints the node's keys, kernel state and journal.
func (n *node) render() string {
	o := n.exec.Overlay()
	j := "none"
	if o.Active() {
		j = fmt.Sprintf("%s %s done=%t", o.ID, o.Stage, o.Done)
	}
	for _, s := range o.Supersede {
		j += fmt.Sprintf(" supersede %s %s->%s", s.Node, s.Stale.String()[:8], s.Use.String()[:8])
	}
	return fmt.Sprintf("-- keys: %s\n-- journal: %s\n%s", n.keySlots(), j, n.host.Render())
}

// cmdFor builds the command the controller sends node for a's rotation to
// generation 2.
func cmdFor(node string, phase meshpb.RotationPhase, step meshpb.RotationStep) *meshpb.RotationCommand {
	c := &meshpb.RotationCommand{
		Id: "a/2", Phase: phase, Step: step, Subject: "a", NewKeyGeneration: 2,
		SubjectPublicKey: keyBytes(pubKey("a", 1)),
		TempPort:         listenPort + 1,
	}
	if phase != meshpb.RotationPhase_ROTATION_PHASE_PREPARE {
		c.SubjectNewPublicKey = keyBytes(pubKey("a", 2))
	}
	if node == "a" {
		for _, n := range nodeNames[1:] {
			c.Peers = append(c.Peers, &meshpb.Peer{Node: n, PublicKey: keyBytes(pubKey(n, 1)),
				Endpoint: netip.AddrPortFrom(nodeIP[n], listenPort+1).String()})
		}
	} else {
		c.Peers = []*meshpb.Peer{{Node: "a", PublicKey: keyBytes(pubKey("a", 2)),
			Endpoint: netip.AddrPortFrom(nodeIP["a"], listenPort+1).String()}}
	}
	return c
}

func keyBytes(k wgtypes.Key) []byte { return k[:] }

func stepsText(steps []rotation.Step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString("  " + s.String() + "\n")
	}
	return b.String()
}

func reportText(r *meshpb.RotationReport) string {
	if r == nil {
		return "none"
	}
	s := fmt.Sprintf("%s %s done=%t confirmed=[%s]", r.GetId(), rotation.Stage{Phase: r.GetPhase(), Step: r.GetStep()}, r.GetDone(), strings.Join(r.GetConfirmed(), " "))
	if r.GetError() != "" {
		s += " error=" + r.GetError()
	}
	return s
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

var sessionLine = regexp.MustCompile(`(?m)^sessions .*\n`)

// withoutSessions drops the session lines of a render: sessions of
// entries that were removed and added again differ, nothing else may.
func withoutSessions(s string) string { return sessionLine.ReplaceAllString(s, "") }

// rotationPeersWithout is s's peer set without node.
func rotationPeersWithout(s desired.NodeState, node string) (desired.PeerSet, error) {
	var keep []desired.Peer
	for p := range s.Peers.All() {
		if p.Node != node {
			keep = append(keep, p)
		}
	}
	return desired.NewPeerSet(keep...)
}
