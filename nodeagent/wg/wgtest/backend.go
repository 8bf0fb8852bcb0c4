package wgtest

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Backend is a fake wg.Backend. It is safe for concurrent use.
type Backend struct {
	kind wg.Kind

	mu       sync.Mutex
	devs     map[string]*device
	foreign  map[string]bool
	sessions int
	// Configures counts Configure calls; Ensures counts interfaces created.
	configures int
	creates    int
}

var _ wg.Backend = (*Backend)(nil)

type device struct {
	priv  wgtypes.Key
	port  int
	mark  int
	peers map[wgtypes.Key]*peer
}

type peer struct {
	endpoint  *net.UDPAddr
	keepalive time.Duration
	allowed   []netip.Prefix
	// session identifies the peer's session state: it changes only when
	// the peer is removed and added again.
	session   int
	handshake time.Time
	rx, tx    int64
}

// New returns an empty fake reporting kind.
func New(kind wg.Kind) *Backend {
	return &Backend{kind: kind, devs: map[string]*device{}, foreign: map[string]bool{}}
}

// AddForeignLink makes a link of name exist that the backend does not
// drive, as another program's interface would.
func (b *Backend) AddForeignLink(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.foreign[name] = true
}

// Kind implements wg.Backend.
func (b *Backend) Kind() wg.Kind { return b.kind }

// Ensure implements wg.Backend.
func (b *Backend) Ensure(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.foreign[name] {
		return fmt.Errorf("%s: %w", name, wg.ErrNotOurs)
	}
	if b.devs[name] == nil {
		b.devs[name] = &device{peers: map[wgtypes.Key]*peer{}}
		b.creates++
	}
	return nil
}

// Delete implements wg.Backend.
func (b *Backend) Delete(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.foreign[name] {
		return fmt.Errorf("%s: %w", name, wg.ErrNotOurs)
	}
	delete(b.devs, name)
	return nil
}

// Device implements wg.Backend.
func (b *Backend) Device(name string) (*wgtypes.Device, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.devs[name]
	if d == nil {
		return nil, fmt.Errorf("%s: %w", name, wg.ErrNotFound)
	}
	out := &wgtypes.Device{
		Name:         name,
		Type:         wgtypes.LinuxKernel,
		PrivateKey:   d.priv,
		ListenPort:   d.port,
		FirewallMark: d.mark,
	}
	if d.priv != (wgtypes.Key{}) {
		out.PublicKey = d.priv.PublicKey()
	}
	for _, k := range sortedKeys(d.peers) {
		p := d.peers[k]
		wp := wgtypes.Peer{
			PublicKey:                   k,
			PersistentKeepaliveInterval: p.keepalive,
			LastHandshakeTime:           p.handshake,
			ReceiveBytes:                p.rx,
			TransmitBytes:               p.tx,
		}
		if p.endpoint != nil {
			e := *p.endpoint
			wp.Endpoint = &e
		}
		for _, a := range p.allowed {
			wp.AllowedIPs = append(wp.AllowedIPs, net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
		}
		out.Peers = append(out.Peers, wp)
	}
	return out, nil
}

// Configure implements wg.Backend with the kernel's semantics.
func (b *Backend) Configure(name string, cfg wgtypes.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.devs[name]
	if d == nil {
		return fmt.Errorf("%s: %w", name, wg.ErrNotFound)
	}
	b.configures++
	if cfg.PrivateKey != nil {
		d.priv = *cfg.PrivateKey
	}
	if cfg.ListenPort != nil {
		d.port = *cfg.ListenPort
	}
	if cfg.FirewallMark != nil {
		d.mark = *cfg.FirewallMark
	}
	if cfg.ReplacePeers {
		d.peers = map[wgtypes.Key]*peer{}
	}
	for _, pc := range cfg.Peers {
		p := d.peers[pc.PublicKey]
		if pc.Remove {
			delete(d.peers, pc.PublicKey)
			continue
		}
		if p == nil {
			if pc.UpdateOnly {
				continue
			}
			b.sessions++
			p = &peer{session: b.sessions}
			d.peers[pc.PublicKey] = p
		}
		if pc.Endpoint != nil {
			e := *pc.Endpoint
			p.endpoint = &e
		}
		if pc.PersistentKeepaliveInterval != nil {
			p.keepalive = *pc.PersistentKeepaliveInterval
		}
		if pc.ReplaceAllowedIPs {
			p.allowed = nil
		}
		for _, n := range pc.AllowedIPs {
			a, _ := netip.AddrFromSlice(n.IP)
			ones, _ := n.Mask.Size()
			pfx := netip.PrefixFrom(a.Unmap(), ones).Masked()
			// Like the kernel's trie: a prefix belongs to one peer.
			for _, other := range d.peers {
				other.allowed = slices.DeleteFunc(other.allowed, func(x netip.Prefix) bool { return x == pfx })
			}
			p.allowed = append(p.allowed, pfx)
		}
	}
	return nil
}

// Close implements wg.Backend.
func (b *Backend) Close() error { return nil }

// Configures is the number of Configure calls so far.
func (b *Backend) Configures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.configures
}

// Creates is the number of interfaces created so far.
func (b *Backend) Creates() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.creates
}

// Sessions maps each peer of interface name to its session identity,
// which changes only when the peer is removed and re-added.
func (b *Backend) Sessions(name string) map[wgtypes.Key]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[wgtypes.Key]int{}
	if d := b.devs[name]; d != nil {
		for k, p := range d.peers {
			out[k] = p.session
		}
	}
	return out
}

// SetTraffic records a handshake time and byte counters for a peer, as
// traffic would.
func (b *Backend) SetTraffic(name string, pub wgtypes.Key, handshake time.Time, rx, tx int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.devs[name]
	if d == nil || d.peers[pub] == nil {
		return fmt.Errorf("%s peer %s: %w", name, pub, wg.ErrNotFound)
	}
	p := d.peers[pub]
	p.handshake, p.rx, p.tx = handshake, rx, tx
	return nil
}

// Render prints every interface like `wg show` (private key hidden, peers
// sorted by public key), interfaces sorted by name.
func (b *Backend) Render() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.devs))
	for n := range b.devs {
		names = append(names, n)
	}
	sort.Strings(names)
	var s strings.Builder
	for i, n := range names {
		if i > 0 {
			s.WriteString("\n")
		}
		d := b.devs[n]
		fmt.Fprintf(&s, "interface: %s\n", n)
		if d.priv != (wgtypes.Key{}) {
			fmt.Fprintf(&s, "  public key: %s\n  private key: (hidden)\n", d.priv.PublicKey())
		}
		fmt.Fprintf(&s, "  listening port: %d\n", d.port)
		if d.mark != 0 {
			fmt.Fprintf(&s, "  fwmark: %#x\n", d.mark)
		}
		for _, k := range sortedKeys(d.peers) {
			p := d.peers[k]
			fmt.Fprintf(&s, "\npeer: %s\n", k)
			if p.endpoint != nil {
				fmt.Fprintf(&s, "  endpoint: %s\n", p.endpoint.AddrPort())
			}
			allowed := slices.Clone(p.allowed)
			slices.SortFunc(allowed, func(a, b netip.Prefix) int {
				if c := a.Addr().Compare(b.Addr()); c != 0 {
					return c
				}
				return a.Bits() - b.Bits()
			})
			strs := make([]string, len(allowed))
			for i, a := range allowed {
				strs[i] = a.String()
			}
			if len(strs) == 0 {
				strs = []string{"(none)"}
			}
			fmt.Fprintf(&s, "  allowed ips: %s\n", strings.Join(strs, ", "))
			if p.keepalive > 0 {
				fmt.Fprintf(&s, "  persistent keepalive: every %d seconds\n", int(p.keepalive/time.Second))
			}
		}
	}
	return s.String()
}

func sortedKeys(m map[wgtypes.Key]*peer) []wgtypes.Key {
	out := make([]wgtypes.Key, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b wgtypes.Key) int { return bytes.Compare(a[:], b[:]) })
	return out
}
