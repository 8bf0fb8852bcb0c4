package route

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Family is an address family.
type Family int

const (
	V4 Family = unix.AF_INET
	V6 Family = unix.AF_INET6
)

func (f Family) String() string {
	if f == V6 {
		return "v6"
	}
	return "v4"
}

func familyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return V4
	}
	return V6
}

// ErrNoLink: an interface the configuration names does not exist.
var ErrNoLink = errors.New("no such link")

// Rule is a fwmark policy rule.
type Rule struct {
	Family   Family
	Priority int
	Mark     uint32
	Mask     uint32
	Table    int
	Protocol uint8
}

// Route is a route in a policy table: a unicast route into Dev, or a
// blackhole.
type Route struct {
	Family    Family
	Table     int
	Dst       netip.Prefix
	Dev       string
	Blackhole bool
	Protocol  uint8
}

// Link is what Set needs to know of an interface.
type Link struct {
	Name string
	MTU  int
	// Addrs are the interface's IPv4 addresses.
	Addrs []netip.Prefix
}

// Kernel is the OS state Router works on. Netlink is the real one.
type Kernel interface {
	// Rules lists every policy rule of both families that has a fwmark.
	Rules() ([]Rule, error)
	AddRule(Rule) error
	// DelRule deletes the rule matching every field.
	DelRule(Rule) error
	// Routes lists the routes of table in both families.
	Routes(table int) ([]Route, error)
	// ReplaceRoute adds the route or atomically replaces the one with
	// the same table, family and destination.
	ReplaceRoute(Route) error
	DelRoute(Route) error
	// Link finds an interface; a missing one is an error wrapping
	// ErrNoLink.
	Link(name string) (Link, error)
	// LinkByAddr finds the interface that carries address a.
	LinkByAddr(a netip.Addr) (Link, error)
	SetMTU(name string, mtu int) error
	// AddAddr adds an IPv4 address (scope link) to the interface.
	AddAddr(name string, p netip.Prefix) error
	// DelAddr removes an IPv4 address from the interface.
	DelAddr(name string, p netip.Prefix) error
	// RPFilter reads net.ipv4.conf.<name>.rp_filter.
	RPFilter(name string) (int, error)
	SetRPFilter(name string, value int) error
}
