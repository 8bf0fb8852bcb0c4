package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Defaults of a Path and of Options.
const (
	// DefaultMark is the fwmark of wg-mesh. It and the mask stay clear of
	// kube-proxy's bits (0x4000 masquerade, 0x8000 drop): a steered packet
	// carrying 0x4000 would be masqueraded onto the tunnel and fail the
	// peer's allowed-IP check.
	DefaultMark uint32 = 0x1100
	// DefaultMask selects the bits of the mark vpblu owns.
	DefaultMask uint32 = 0x3f00
	// DefaultTable is the routing table of wg-mesh.
	DefaultTable = 51820
	// DefaultPriority is the rule priority; it must sort before the main
	// table's rule (32766).
	DefaultPriority = 100
	// DefaultMTUOverhead is what WireGuard adds over IPv6 (§10).
	DefaultMTUOverhead = 80
	// DefaultProtocol marks vpblu's rules and routes (rtm_protocol); it is
	// unassigned in the kernel's list.
	DefaultProtocol uint8 = 86
)

// DefaultAddress is the IPv4 address a WireGuard interface gets when it
// has none (see LooseRPFilter for why it needs one). It is link-local and
// never appears on the wire: the interface has no ARP and vpblu routes no
// traffic from it.
var DefaultAddress = netip.MustParsePrefix("169.254.51.82/32")

// ErrInvalid marks a configuration that can never be applied.
var ErrInvalid = errors.New("invalid route configuration")

// Path is one (interface, mark, table) triple: wg-mesh, and during a key
// rotation the temporary interface with a second mark and table.
type Path struct {
	// Interface is the WireGuard interface the table routes into.
	Interface string
	// Mark and Mask: packets whose mark&Mask == Mark use Table. Zero
	// means DefaultMark / DefaultMask.
	Mark, Mask uint32
	// Table is the routing table; 0 means DefaultTable.
	Table int
	// Priority of the rule; 0 means DefaultPriority.
	Priority int
	// CIDRs are the remote CIDRs routed into Interface (v4 and v6).
	CIDRs []netip.Prefix
	// Strict ends the table in a v4 and a v6 blackhole, so a marked packet
	// without a route is dropped instead of falling through to the main
	// table in cleartext.
	Strict bool
	// Address is the IPv4 address the interface carries; DefaultAddress
	// when zero. The interface is vpblu's: other IPv4 addresses on it are
	// removed.
	Address netip.Prefix
}

// Config is the complete desired routing state.
type Config struct {
	// NodeIP is the node's address; the interface carrying it gives the
	// primary MTU. Required when there are paths.
	NodeIP netip.Addr
	// MTUOverhead is subtracted from the primary MTU; 0 means
	// DefaultMTUOverhead.
	MTUOverhead int
	// Paths are all the paths that should exist; others of vpblu's are
	// removed.
	Paths []Path
}

func (p Path) withDefaults() Path {
	if p.Mark == 0 {
		p.Mark = DefaultMark
	}
	if p.Mask == 0 {
		p.Mask = DefaultMask
	}
	if p.Table == 0 {
		p.Table = DefaultTable
	}
	if p.Priority == 0 {
		p.Priority = DefaultPriority
	}
	if !p.Address.IsValid() {
		p.Address = DefaultAddress
	}
	return p
}

func (c Config) withDefaults() Config {
	if c.MTUOverhead == 0 {
		c.MTUOverhead = DefaultMTUOverhead
	}
	c.Paths = slices.Clone(c.Paths)
	for i := range c.Paths {
		c.Paths[i] = c.Paths[i].withDefaults()
	}
	return c
}

// Validate reports why the configuration (after defaults) can never be
// applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if len(c.Paths) > 0 && !c.NodeIP.IsValid() {
		return fmt.Errorf("%w: no node IP", ErrInvalid)
	}
	if c.MTUOverhead < 0 {
		return fmt.Errorf("%w: negative MTU overhead %d", ErrInvalid, c.MTUOverhead)
	}
	tables := map[int]bool{}
	for i, p := range c.Paths {
		switch {
		case p.Interface == "" || len(p.Interface) > 15:
			return fmt.Errorf("%w: path %d: interface name %q", ErrInvalid, i, p.Interface)
		case p.Mark&^p.Mask != 0:
			return fmt.Errorf("%w: path %s: mark %#x has bits outside mask %#x", ErrInvalid, p.Interface, p.Mark, p.Mask)
		case p.Table <= 0 || p.Table == 253 || p.Table == 254 || p.Table == 255:
			return fmt.Errorf("%w: path %s: table %d is reserved", ErrInvalid, p.Interface, p.Table)
		case p.Priority < 1 || p.Priority >= 32766:
			return fmt.Errorf("%w: path %s: priority %d must be in [1, 32765]", ErrInvalid, p.Interface, p.Priority)
		case !p.Address.Addr().Is4():
			return fmt.Errorf("%w: path %s: address %s is not IPv4", ErrInvalid, p.Interface, p.Address)
		case tables[p.Table]:
			return fmt.Errorf("%w: table %d used by two paths", ErrInvalid, p.Table)
		}
		tables[p.Table] = true
		for _, q := range c.Paths[:i] {
			q = q.withDefaults()
			if (p.Mark^q.Mark)&p.Mask&q.Mask == 0 {
				return fmt.Errorf("%w: marks %#x/%#x and %#x/%#x overlap", ErrInvalid, q.Mark, q.Mask, p.Mark, p.Mask)
			}
		}
		for _, pf := range p.CIDRs {
			if !pf.IsValid() {
				return fmt.Errorf("%w: path %s: invalid CIDR", ErrInvalid, p.Interface)
			}
			if pf.Bits() == 0 {
				return fmt.Errorf("%w: path %s: CIDR %s would steer everything", ErrInvalid, p.Interface, pf)
			}
		}
	}
	return nil
}
