package routetest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/lumbrjx/vpblu/nodeagent/route"
)

// ErrExists: adding a rule that exists, as the kernel's EEXIST.
var ErrExists = errors.New("exists")

// Kernel is a fake route.Kernel. It is safe for concurrent use.
type Kernel struct {
	mu     sync.Mutex
	rules  []route.Rule
	routes []route.Route
	links  map[string]*link
	addrs  map[netip.Addr]string
	writes int
	ops    []string
}

type link struct {
	mtu, rp int
	addrs   []netip.Prefix
}

var _ route.Kernel = (*Kernel)(nil)

// New returns a fake with no links.
func New() *Kernel {
	return &Kernel{links: map[string]*link{}, addrs: map[netip.Addr]string{}}
}

// AddLink makes an interface exist with mtu, rp_filter rp and IPv4
// addresses.
func (k *Kernel) AddLink(name string, mtu, rp int, addrs ...netip.Prefix) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.links[name] = &link{mtu: mtu, rp: rp, addrs: addrs}
	for _, a := range addrs {
		k.addrs[a.Addr()] = name
	}
}

// RemoveLink deletes an interface and, as the kernel does, every route
// through it.
func (k *Kernel) RemoveLink(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.links, name)
	for a, n := range k.addrs {
		if n == name {
			delete(k.addrs, a)
		}
	}
	k.routes = slices.DeleteFunc(k.routes, func(r route.Route) bool { return !r.Blackhole && r.Dev == name })
}

// HasLink reports whether an interface exists.
func (k *Kernel) HasLink(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.links[name] != nil
}

// AddForeign adds rules and routes another program owns.
func (k *Kernel) AddForeign(rules []route.Rule, routes []route.Route) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rules = append(k.rules, rules...)
	k.routes = append(k.routes, routes...)
}

// Writes counts the changes made through the Kernel interface.
func (k *Kernel) Writes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.writes
}

// Ops lists the changes made so far, one line each ("add rule ...",
// "del route ...").
func (k *Kernel) Ops() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

func (k *Kernel) record(op string, rules []route.Rule, routes []route.Route) {
	k.writes++
	k.ops = append(k.ops, op+" "+strings.TrimSpace(route.Render(rules, routes)))
}

// Rules implements route.Kernel.
func (k *Kernel) Rules() ([]route.Rule, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.rules), nil
}

// AddRule implements route.Kernel.
func (k *Kernel) AddRule(r route.Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if slices.Contains(k.rules, r) {
		return fmt.Errorf("rule: %w", ErrExists)
	}
	k.record("add rule", []route.Rule{r}, nil)
	k.rules = append(k.rules, r)
	return nil
}

// DelRule implements route.Kernel.
func (k *Kernel) DelRule(r route.Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := slices.Index(k.rules, r)
	if i < 0 {
		return errors.New("rule: no such file or directory")
	}
	k.record("del rule", []route.Rule{r}, nil)
	k.rules = slices.Delete(k.rules, i, i+1)
	return nil
}

// Routes implements route.Kernel.
func (k *Kernel) Routes(table int) ([]route.Route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []route.Route
	for _, r := range k.routes {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out, nil
}

func sameSlot(a, b route.Route) bool {
	return a.Table == b.Table && a.Family == b.Family && a.Dst == b.Dst
}

// ReplaceRoute implements route.Kernel.
func (k *Kernel) ReplaceRoute(r route.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !r.Blackhole && k.links[r.Dev] == nil {
		return fmt.Errorf("%s: %w", r.Dev, route.ErrNoLink)
	}
	k.record("replace route", nil, []route.Route{r})
	for i, x := range k.routes {
		if sameSlot(x, r) {
			k.routes[i] = r
			return nil
		}
	}
	k.routes = append(k.routes, r)
	return nil
}

// DelRoute implements route.Kernel.
func (k *Kernel) DelRoute(r route.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, x := range k.routes {
		if sameSlot(x, r) && x.Protocol == r.Protocol {
			k.record("del route", nil, []route.Route{r})
			k.routes = slices.Delete(k.routes, i, i+1)
			return nil
		}
	}
	return route.ErrNoRoute
}

// Link implements route.Kernel.
func (k *Kernel) Link(name string) (route.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return route.Link{}, fmt.Errorf("%s: %w", name, route.ErrNoLink)
	}
	return route.Link{Name: name, MTU: l.mtu, Addrs: slices.Clone(l.addrs)}, nil
}

// LinkByAddr implements route.Kernel.
func (k *Kernel) LinkByAddr(a netip.Addr) (route.Link, error) {
	k.mu.Lock()
	name, ok := k.addrs[a]
	k.mu.Unlock()
	if !ok {
		return route.Link{}, fmt.Errorf("no interface has %s: %w", a, route.ErrNoLink)
	}
	return k.Link(name)
}

// SetMTU implements route.Kernel.
func (k *Kernel) SetMTU(name string, mtu int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return fmt.Errorf("%s: %w", name, route.ErrNoLink)
	}
	k.writes++
	k.ops = append(k.ops, fmt.Sprintf("set %s mtu %d", name, mtu))
	l.mtu = mtu
	return nil
}

// AddAddr implements route.Kernel.
func (k *Kernel) AddAddr(name string, p netip.Prefix) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return fmt.Errorf("%s: %w", name, route.ErrNoLink)
	}
	if slices.Contains(l.addrs, p) {
		return fmt.Errorf("address: %w", ErrExists)
	}
	k.writes++
	k.ops = append(k.ops, fmt.Sprintf("add %s addr %s", name, p))
	l.addrs = append(l.addrs, p)
	k.addrs[p.Addr()] = name
	return nil
}

// DelAddr implements route.Kernel.
func (k *Kernel) DelAddr(name string, p netip.Prefix) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return fmt.Errorf("%s: %w", name, route.ErrNoLink)
	}
	i := slices.Index(l.addrs, p)
	if i < 0 {
		return errors.New("address: cannot assign requested address")
	}
	k.writes++
	k.ops = append(k.ops, fmt.Sprintf("del %s addr %s", name, p))
	l.addrs = slices.Delete(l.addrs, i, i+1)
	delete(k.addrs, p.Addr())
	return nil
}

// RPFilter implements route.Kernel.
func (k *Kernel) RPFilter(name string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return 0, fmt.Errorf("%s: %w", name, route.ErrNoLink)
	}
	return l.rp, nil
}

// SetRPFilter implements route.Kernel.
func (k *Kernel) SetRPFilter(name string, v int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.links[name]
	if l == nil {
		return fmt.Errorf("%s: %w", name, route.ErrNoLink)
	}
	k.writes++
	k.ops = append(k.ops, fmt.Sprintf("set %s rp_filter %d", name, v))
	l.rp = v
	return nil
}

// Render prints all rules and routes (route.Render) followed by every
// link's MTU and rp_filter.
func (k *Kernel) Render() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s strings.Builder
	s.WriteString(route.Render(k.rules, k.routes))
	names := make([]string, 0, len(k.links))
	for n := range k.links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&s, "%s\n", route.RenderLink(route.Link{Name: n, MTU: k.links[n].mtu, Addrs: k.links[n].addrs}, k.links[n].rp))
	}
	return s.String()
}
