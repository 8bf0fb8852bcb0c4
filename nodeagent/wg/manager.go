package wg

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Manager applies desired interface configurations through a Backend.
// It keeps no state of its own: every Set starts from what the interface
// reports, so a restarted daemon adopts what is there without a flap.
type Manager struct {
	b Backend
}

// NewManager returns a Manager driving b.
func NewManager(b Backend) *Manager { return &Manager{b: b} }

// Kind is the backend's kind.
func (m *Manager) Kind() Kind { return m.b.Kind() }

// Set makes interface cfg.Name match cfg: it creates the interface when
// missing and applies only the difference, so peers that do not change
// keep their sessions. An invalid cfg is refused before anything changes.
func (m *Manager) Set(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := m.b.Ensure(cfg.Name); err != nil {
		return fmt.Errorf("ensuring %s: %w", cfg.Name, err)
	}
	cur, err := m.b.Device(cfg.Name)
	if err != nil {
		return fmt.Errorf("reading %s: %w", cfg.Name, err)
	}
	c, ok := plan(cur, cfg)
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
