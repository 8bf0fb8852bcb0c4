package wg

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/nodeagent/keys"
)

// Interface names vpblu uses.
const (
	// MeshInterface carries all tunnels.
	MeshInterface = "wg-mesh"
	// RotationInterface is the temporary interface of a key rotation; it
	// listens on the mesh port + 1.
	RotationInterface = "wg-rot"
)

// ErrInvalid marks a configuration that can never be applied.
var ErrInvalid = errors.New("invalid wireguard configuration")

// Config is the desired state of one WireGuard interface.
type Config struct {
	// Name is the interface name, e.g. MeshInterface.
	Name       string
	PrivateKey keys.Private
	ListenPort int
	// FirewallMark is set on the tunnel's own UDP packets; 0 leaves them
	// unmarked.
	FirewallMark int
	Peers        []Peer
}

// Peer is the desired state of one peer.
type Peer struct {
	PublicKey wgtypes.Key
	// Endpoint is where to send; the zero value means unknown, and then
	// whatever the interface has learned from the peer is kept.
	Endpoint            netip.AddrPort
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
}

// Validate reports why the configuration can never be applied.
func (c Config) Validate() error {
	if err := validName(c.Name); err != nil {
		return err
	}
	if c.PrivateKey.IsZero() {
		return fmt.Errorf("%w: %s: no private key", ErrInvalid, c.Name)
	}
	if c.ListenPort < 1 || c.ListenPort > 65535 {
		return fmt.Errorf("%w: %s: listen port %d out of range", ErrInvalid, c.Name, c.ListenPort)
	}
	if c.FirewallMark < 0 || int64(c.FirewallMark) > 0xffffffff {
		return fmt.Errorf("%w: %s: firewall mark %d out of range", ErrInvalid, c.Name, c.FirewallMark)
	}
	self := c.PrivateKey.Public()
	seen := map[wgtypes.Key]bool{}
	owner := map[netip.Prefix]wgtypes.Key{}
	for _, p := range c.Peers {
		switch {
		case p.PublicKey == wgtypes.Key{}:
			return fmt.Errorf("%w: %s: peer without public key", ErrInvalid, c.Name)
		case p.PublicKey == self:
			return fmt.Errorf("%w: %s: peer %s is the interface's own key", ErrInvalid, c.Name, p.PublicKey)
		case seen[p.PublicKey]:
			return fmt.Errorf("%w: %s: peer %s listed twice", ErrInvalid, c.Name, p.PublicKey)
		case p.PersistentKeepalive < 0 || p.PersistentKeepalive > 65535*time.Second:
			return fmt.Errorf("%w: %s: peer %s keepalive %s out of range", ErrInvalid, c.Name, p.PublicKey, p.PersistentKeepalive)
		case p.Endpoint.IsValid() && (p.Endpoint.Port() == 0 || !p.Endpoint.Addr().IsValid()):
			return fmt.Errorf("%w: %s: peer %s endpoint %s has no port", ErrInvalid, c.Name, p.PublicKey, p.Endpoint)
		}
		seen[p.PublicKey] = true
		for _, a := range p.AllowedIPs {
			if !a.IsValid() {
				return fmt.Errorf("%w: %s: peer %s has an invalid allowed IP", ErrInvalid, c.Name, p.PublicKey)
			}
			m := a.Masked()
			if o, ok := owner[m]; ok && o != p.PublicKey {
				return fmt.Errorf("%w: %s: allowed IP %s on peers %s and %s", ErrInvalid, c.Name, m, o, p.PublicKey)
			}
			owner[m] = p.PublicKey
		}
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("%w: interface name %q", ErrInvalid, name)
	}
	return nil
}

// normPrefixes masks, deduplicates and sorts prefixes (v4 before v6).
func normPrefixes(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
