package wg_test

import (
	"bytes"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/nodeagent/wg/wgtest"
)

// fakeClock runs the Manager's timers when the test says time passed.
type fakeClock struct {
	now    time.Time
	timers []func()
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(_ time.Duration, f func()) {
	c.timers = append(c.timers, f)
}
func (c *fakeClock) Advance(d time.Duration) {
	c.now = c.now.Add(d)
	timers := c.timers
	c.timers = nil
	for _, f := range timers {
		f()
	}
}

// lowerAndHigher returns a peer whose public key sorts below nodeA's and
// one whose key sorts above it.
func lowerAndHigher(t *testing.T) (lower, higher wg.Peer) {
	t.Helper()
	own := nodeA.Public()
	var gotLower, gotHigher bool
	for seed := byte(20); seed < 120 && !(gotLower && gotHigher); seed++ {
		p := with(peerB, func(p *wg.Peer) { p.PublicKey = pub(seed) })
		if bytes.Compare(p.PublicKey[:], own[:]) < 0 && !gotLower {
			p.AllowedIPs = pfx("100.64.20.0/24")
			lower, gotLower = p, true
		} else if bytes.Compare(p.PublicKey[:], own[:]) > 0 && !gotHigher {
			p.AllowedIPs = pfx("100.64.21.0/24")
			higher, gotHigher = p, true
		}
	}
	if !gotLower || !gotHigher {
		t.Fatal("no test keys on both sides of nodeA's")
	}
	return lower, higher
}

func keepalive(t *testing.T, b *wgtest.Backend, k wgtypes.Key) time.Duration {
	t.Helper()
	d, err := b.Device(wg.MeshInterface)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Peers {
		if p.PublicKey == k {
			return p.PersistentKeepaliveInterval
		}
	}
	t.Fatalf("no peer %s", k)
	return 0
}

func TestOnlyTheLowerKeyInitiatesAtOnce(t *testing.T) {
	const delay = 500 * time.Millisecond
	lower, higher := lowerAndHigher(t)
	clock := &fakeClock{now: time.Unix(1000, 0)}
	b := wgtest.New(wg.Userspace)
	m := wg.NewManager(b, wg.WithInitiationDelay(delay), wg.WithClock(clock.Now, clock.After))
	cfg := mesh(nodeA, 51820, lower, higher)

	set(t, m, cfg)
	// nodeA's key is the lower of the pair with `higher`: it initiates.
	if got := keepalive(t, b, higher.PublicKey); got != higher.PersistentKeepalive {
		t.Errorf("peer above our key: keepalive %s, want %s at once", got, higher.PersistentKeepalive)
	}
	// The peer with the lower key initiates; ours waits.
	if got := keepalive(t, b, lower.PublicKey); got != 0 {
		t.Errorf("peer below our key: keepalive %s before the delay, want none", got)
	}
	clock.Advance(delay / 2)
	set(t, m, cfg) // a reconcile within the delay does not end the hold
	if got := keepalive(t, b, lower.PublicKey); got != 0 {
		t.Errorf("peer below our key: keepalive %s after a reconcile within the delay, want none", got)
	}
	clock.Advance(delay)
	if got := keepalive(t, b, lower.PublicKey); got != lower.PersistentKeepalive {
		t.Errorf("peer below our key: keepalive %s after the delay, want %s", got, lower.PersistentKeepalive)
	}
	set(t, m, cfg)
	if got := keepalive(t, b, lower.PublicKey); got != lower.PersistentKeepalive {
		t.Errorf("a reconcile after the delay took the keepalive back: %s", got)
	}
}

func TestAHandshakeEndsTheHold(t *testing.T) {
	lower, _ := lowerAndHigher(t)
	clock := &fakeClock{now: time.Unix(1000, 0)}
	b := wgtest.New(wg.Userspace)
	m := wg.NewManager(b, wg.WithInitiationDelay(time.Second), wg.WithClock(clock.Now, clock.After))
	cfg := mesh(nodeA, 51820, lower)
	set(t, m, cfg)
	if err := b.SetTraffic(wg.MeshInterface, lower.PublicKey, clock.Now(), 148, 92); err != nil {
		t.Fatal(err)
	}
	set(t, m, cfg)
	if got := keepalive(t, b, lower.PublicKey); got != lower.PersistentKeepalive {
		t.Errorf("keepalive %s once the peer's handshake came in, want %s", got, lower.PersistentKeepalive)
	}
}

func TestWithoutTheDelayEveryPeerGetsItsKeepaliveAtOnce(t *testing.T) {
	lower, higher := lowerAndHigher(t)
	b := wgtest.New(wg.Userspace)
	set(t, wg.NewManager(b), mesh(nodeA, 51820, lower, higher))
	for _, p := range []wg.Peer{lower, higher} {
		if got := keepalive(t, b, p.PublicKey); got != p.PersistentKeepalive {
			t.Errorf("keepalive %s, want %s", got, p.PersistentKeepalive)
		}
	}
}
