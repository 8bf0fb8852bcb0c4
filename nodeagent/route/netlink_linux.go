package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the real Kernel: rtnetlink through vishvananda/netlink and
// /proc/sys for rp_filter, in the network namespace of the calling thread.
type Netlink struct{}

var _ Kernel = Netlink{}

// Rules implements Kernel.
func (Netlink) Rules() ([]Rule, error) {
	var out []Rule
	for _, f := range []Family{V4, V6} {
		rs, err := netlink.RuleList(int(f))
		if err != nil {
			return nil, fmt.Errorf("listing %s rules: %w", f, err)
		}
		for _, r := range rs {
			if r.Mark == 0 && r.Mask == nil {
				continue
			}
			ru := Rule{Family: f, Priority: r.Priority, Mark: r.Mark, Mask: 0xffffffff, Table: r.Table, Protocol: r.Protocol}
			if r.Mask != nil {
				ru.Mask = *r.Mask
			}
			out = append(out, ru)
		}
	}
	return out, nil
}

func nlRule(r Rule) *netlink.Rule {
	n := netlink.NewRule()
	n.Family = int(r.Family)
	n.Priority = r.Priority
	n.Mark = r.Mark
	mask := r.Mask
	n.Mask = &mask
	n.Table = r.Table
	n.Protocol = r.Protocol
	return n
}

// AddRule implements Kernel.
func (Netlink) AddRule(r Rule) error { return netlink.RuleAdd(nlRule(r)) }

// DelRule implements Kernel.
func (Netlink) DelRule(r Rule) error { return netlink.RuleDel(nlRule(r)) }

// Routes implements Kernel.
func (Netlink) Routes(table int) ([]Route, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing table %d: %w", table, err)
	}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		f := Family(r.Family)
		rt := Route{Family: f, Table: r.Table, Protocol: uint8(r.Protocol), Blackhole: r.Type == unix.RTN_BLACKHOLE}
		if r.Dst == nil {
			rt.Dst = zeroPrefix(f)
		} else {
			a, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			rt.Dst = netip.PrefixFrom(a.Unmap(), ones)
		}
		if !rt.Blackhole && r.LinkIndex > 0 {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("route %s: link %d: %w", rt.Dst, r.LinkIndex, err)
			}
			rt.Dev = l.Attrs().Name
		}
		out = append(out, rt)
	}
	return out, nil
}

func zeroPrefix(f Family) netip.Prefix {
	if f == V6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

func nlRoute(r Route) (*netlink.Route, error) {
	n := &netlink.Route{
		Family:   int(r.Family),
		Table:    r.Table,
		Protocol: netlink.RouteProtocol(r.Protocol),
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
	}
	if r.Blackhole {
		n.Type = unix.RTN_BLACKHOLE
		return n, nil
	}
	l, err := netlink.LinkByName(r.Dev)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", r.Dev, ErrNoLink)
	}
	n.LinkIndex = l.Attrs().Index
	n.Scope = netlink.SCOPE_LINK
	return n, nil
}

// ReplaceRoute implements Kernel.
func (Netlink) ReplaceRoute(r Route) error {
	n, err := nlRoute(r)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(n)
}

// DelRoute implements Kernel.
func (Netlink) DelRoute(r Route) error {
	n := &netlink.Route{
		Family:   int(r.Family),
		Table:    r.Table,
		Protocol: netlink.RouteProtocol(r.Protocol),
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		// The library sends the scope as given; "nowhere" is the kernel's
		// wildcard, so the route is matched whatever its scope.
		Scope: netlink.SCOPE_NOWHERE,
	}
	if r.Blackhole {
		n.Type = unix.RTN_BLACKHOLE
	}
	err := netlink.RouteDel(n)
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %w", ErrNoRoute, err)
	}
	return err
}

// Link implements Kernel.
func (Netlink) Link(name string) (Link, error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return Link{}, fmt.Errorf("%s: %w", name, ErrNoLink)
	}
	if err != nil {
		return Link{}, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return Link{}, fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	out := Link{Name: name, MTU: l.Attrs().MTU}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out.Addrs = append(out.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// AddAddr implements Kernel.
func (Netlink) AddAddr(name string, p netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, ErrNoLink)
	}
	return netlink.AddrAdd(l, &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Scope: int(netlink.SCOPE_LINK),
	})
}

// DelAddr implements Kernel.
func (Netlink) DelAddr(name string, p netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, ErrNoLink)
	}
	return netlink.AddrDel(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}})
}

// LinkByAddr implements Kernel.
func (Netlink) LinkByAddr(a netip.Addr) (Link, error) {
	a = a.Unmap()
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(nil, family)
	if err != nil {
		return Link{}, fmt.Errorf("listing addresses: %w", err)
	}
	for _, ad := range addrs {
		if x, ok := netip.AddrFromSlice(ad.IP); ok && x.Unmap() == a {
			l, err := netlink.LinkByIndex(ad.LinkIndex)
			if err != nil {
				return Link{}, fmt.Errorf("link %d: %w", ad.LinkIndex, err)
			}
			return Netlink{}.Link(l.Attrs().Name)
		}
	}
	return Link{}, fmt.Errorf("no interface has address %s: %w", a, ErrNoLink)
}

// SetMTU implements Kernel.
func (Netlink) SetMTU(name string, mtu int) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, ErrNoLink)
	}
	return netlink.LinkSetMTU(l, mtu)
}

func rpFilterPath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/") || name == "." || name == ".." {
		return "", fmt.Errorf("interface name %q: %w", name, ErrInvalid)
	}
	return filepath.Join("/proc/sys/net/ipv4/conf", name, "rp_filter"), nil
}

// RPFilter implements Kernel. /proc/sys/net is opened in the calling
// thread's network namespace.
func (Netlink) RPFilter(name string) (int, error) {
	p, err := rpFilterPath(name)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// SetRPFilter implements Kernel.
func (Netlink) SetRPFilter(name string, v int) error {
	p, err := rpFilterPath(name)
	if err != nil {
		return err
	}
	return os.WriteFile(p, []byte(strconv.Itoa(v)), 0o644)
}
