package wg

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Manager applies desired interface configurations through a Backend.
// Every Set starts from what the interface reports, so a restarted daemon
// adopts what is there without a flap. The only state it keeps is the
// short-lived keepalive hold of WithInitiationDelay.
type Manager struct {
	b     Backend
	delay time.Duration
	now   func() time.Time
	after func(time.Duration, func())

	mu sync.Mutex
	// held: per interface, peers whose keepalive (and so their first
	// handshake initiation) waits until the time, and the keepalive then.
	held map[string]map[wgtypes.Key]heldKeepalive
}

type heldKeepalive struct {
	until     time.Time
	keepalive time.Duration
}

// DefaultInitiationDelay is the daemon's WithInitiationDelay: well past
// the milliseconds between the two ends of a pair being configured, well
// within the 2 s a mesh has to form in.
const DefaultInitiationDelay = 500 * time.Millisecond

// ManagerOption configures a Manager.
type ManagerOption func(*Manager)

// WithInitiationDelay makes a new peer whose public key sorts below the
// interface's own wait d before its persistent keepalive is set. Setting
// the keepalive of a peer without a session sends a handshake initiation
// at once; the controller configures both ends of a pair within
// milliseconds, so both would initiate together, and WireGuard keeps one
// handshake per peer: crossing initiations cost a 5 s retry, and in some
// orders leave one side on a key pair the other has dropped (one
// direction silent until the next rekey). With the delay only the end
// with the lower key initiates at once; the other initiates d later, and
// only if no handshake came in meanwhile (its first initiation may have
// reached a peer not yet configured).
func WithInitiationDelay(d time.Duration) ManagerOption {
	return func(m *Manager) { m.delay = d }
}

// NewManager returns a Manager driving b.
func NewManager(b Backend, opts ...ManagerOption) *Manager {
	m := &Manager{b: b, now: time.Now, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }, held: map[string]map[wgtypes.Key]heldKeepalive{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Kind is the backend's kind.
func (m *Manager) Kind() Kind { return m.b.Kind() }

// Set makes interface cfg.Name match cfg: it creates the interface when
// missing and applies only the difference, so peers that do not change
// keep their sessions. An invalid cfg is refused before anything changes.
func (m *Manager) Set(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.b.Ensure(cfg.Name); err != nil {
		return fmt.Errorf("ensuring %s: %w", cfg.Name, err)
	}
	cur, err := m.b.Device(cfg.Name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", cfg.Name, err)
	}
	held := m.holdLocked(cur, cfg)
	c, ok := plan(cur, cfg, held)
	clear(cur.PrivateKey[:])
	if !ok {
		return nil
	}
	defer zeroConfigKey(&c)
	if err := m.b.Configure(cfg.Name, c); err != nil {
		return fmt.Errorf("configuring %s: %w", cfg.Name, err)
	}
	return nil
}

// holdLocked returns the peers of want whose keepalive waits now: new ones
// the delay applies to (their hold starts, and a release is scheduled),
// and those held before whose time has not come and that have no
// handshake yet. Holds of peers no longer wanted are dropped.
func (m *Manager) holdLocked(cur *wgtypes.Device, want Config) map[wgtypes.Key]bool {
	if m.delay <= 0 {
		return nil
	}
	now, own := m.now(), want.PrivateKey.Public()
	have := make(map[wgtypes.Key]*wgtypes.Peer, len(cur.Peers))
	for i := range cur.Peers {
		have[cur.Peers[i].PublicKey] = &cur.Peers[i]
	}
	prev := m.held[want.Name]
	next := map[wgtypes.Key]heldKeepalive{}
	out := map[wgtypes.Key]bool{}
	for _, p := range want.Peers {
		c, exists := have[p.PublicKey]
		h, wasHeld := prev[p.PublicKey]
		switch {
		case p.PersistentKeepalive <= 0:
			continue
		case !exists && bytes.Compare(p.PublicKey[:], own[:]) < 0:
			h = heldKeepalive{until: now.Add(m.delay)}
		case exists && wasHeld && now.Before(h.until) && c.LastHandshakeTime.IsZero():
		default:
			continue
		}
		h.keepalive = p.PersistentKeepalive
		next[p.PublicKey], out[p.PublicKey] = h, true
	}
	if len(next) == 0 {
		delete(m.held, want.Name)
		return nil
	}
	m.held[want.Name] = next
	name := want.Name
	m.after(m.delay, func() { m.release(name) })
	return out
}

// release sets the keepalive of the peers of name whose hold is over. An
// error is left to the next Set, which no longer holds them.
func (m *Manager) release(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	held := m.held[name]
	if len(held) == 0 {
		return
	}
	cur, err := m.b.Device(name)
	if err != nil {
		return
	}
	clear(cur.PrivateKey[:])
	now := m.now()
	var c wgtypes.Config
	for _, p := range cur.Peers {
		h, ok := held[p.PublicKey]
		if !ok || now.Before(h.until) {
			continue
		}
		delete(held, p.PublicKey)
		if p.PersistentKeepaliveInterval != h.keepalive {
			ka := h.keepalive
			c.Peers = append(c.Peers, wgtypes.PeerConfig{PublicKey: p.PublicKey, UpdateOnly: true, PersistentKeepaliveInterval: &ka})
		}
	}
	if len(held) == 0 {
		delete(m.held, name)
	}
	if len(c.Peers) > 0 {
		_ = m.b.Configure(name, c)
	}
}

func zeroConfigKey(c *wgtypes.Config) {
	if c.PrivateKey != nil {
		clear(c.PrivateKey[:])
	}
}

// Delete removes interface name; a missing one is not an error.
func (m *Manager) Delete(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.held, name)
	m.mu.Unlock()
	if err := m.b.Delete(name); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// Status is what an interface reports.
type Status struct {
	Name       string
	Kind       Kind
	PublicKey  wgtypes.Key
	ListenPort int
	// Peers are sorted by public key.
	Peers []PeerStatus
}

// PeerStatus is what an interface reports about one peer.
type PeerStatus struct {
	PublicKey           wgtypes.Key
	Endpoint            netip.AddrPort
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
	// LastHandshake is zero when no handshake has completed.
	LastHandshake time.Time
	RxBytes       int64
	TxBytes       int64
}

// Status reads interface name; a missing one is an error wrapping
// ErrNotFound.
func (m *Manager) Status(name string) (Status, error) {
	d, err := m.b.Device(name)
	if err != nil {
		return Status{}, fmt.Errorf("reading %s: %w", name, err)
	}
	clear(d.PrivateKey[:])
	s := Status{Name: name, Kind: m.b.Kind(), PublicKey: d.PublicKey, ListenPort: d.ListenPort}
	for _, p := range d.Peers {
		ps := PeerStatus{
			PublicKey:           p.PublicKey,
			Endpoint:            endpointOf(p.Endpoint),
			AllowedIPs:          normPrefixes(prefixes(p.AllowedIPs)),
			PersistentKeepalive: p.PersistentKeepaliveInterval,
			RxBytes:             p.ReceiveBytes,
			TxBytes:             p.TransmitBytes,
		}
		if !p.LastHandshakeTime.IsZero() && p.LastHandshakeTime.Unix() > 0 {
			ps.LastHandshake = p.LastHandshakeTime
		}
		s.Peers = append(s.Peers, ps)
	}
	slices.SortFunc(s.Peers, func(a, b PeerStatus) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	return s, nil
}
