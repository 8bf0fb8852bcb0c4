package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Options configure a Router.
type Options struct {
	// Protocol marks the rules and routes the router owns; 0 means
	// DefaultProtocol. Two routers with one protocol fight each other.
	Protocol uint8
}

// Router applies Configs to a Kernel. It is safe for concurrent use;
// Sets are serialized.
type Router struct {
	k     Kernel
	proto uint8

	mu  sync.Mutex
	mtu int
}

// New returns a Router working on k.
func New(k Kernel, opts Options) *Router {
	if opts.Protocol == 0 {
		opts.Protocol = DefaultProtocol
	}
	return &Router{k: k, proto: opts.Protocol}
}

// MTU is the tunnel MTU the last successful Set applied (0 before).
func (r *Router) MTU() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mtu
}

// TunnelMTU is the MTU Set would give the WireGuard interfaces: the MTU
// of the interface carrying nodeIP minus overhead (DefaultMTUOverhead when
// 0). It changes nothing.
func (r *Router) TunnelMTU(nodeIP netip.Addr, overhead int) (int, error) {
	if overhead == 0 {
		overhead = DefaultMTUOverhead
	}
	primary, err := r.k.LinkByAddr(nodeIP)
	if err != nil {
		return 0, fmt.Errorf("finding the interface of node IP %s: %w", nodeIP, err)
	}
	mtu, err := TunnelMTU(primary.MTU, overhead)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", primary.Name, err)
	}
	return mtu, nil
}

// Set makes the routing state match cfg, changing only what differs. An
// invalid cfg is refused before anything changes.
func (r *Router) Set(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	r.mu.Lock()
	defer r.mu.Unlock()

	mtu := 0
	if len(cfg.Paths) > 0 {
		primary, err := r.k.LinkByAddr(cfg.NodeIP)
		if err != nil {
			return fmt.Errorf("finding the interface of node IP %s: %w", cfg.NodeIP, err)
		}
		if mtu, err = TunnelMTU(primary.MTU, cfg.MTUOverhead); err != nil {
			return fmt.Errorf("interface %s: %w", primary.Name, err)
		}
	}
	for _, p := range cfg.Paths {
		if err := r.setLink(p.Interface, p.Address, mtu); err != nil {
			return err
		}
	}

	existing, err := r.k.Rules()
	if err != nil {
		return fmt.Errorf("listing rules: %w", err)
	}
	var ours []Rule
	tables := map[int]bool{}
	for _, ru := range existing {
		if ru.Protocol == r.proto {
			ours = append(ours, ru)
			tables[ru.Table] = true
		}
	}
	wantRoutes := map[int][]Route{}
	var wantRules []Rule
	for _, p := range cfg.Paths {
		tables[p.Table] = true
		wantRoutes[p.Table] = r.routesOf(p)
		for _, f := range []Family{V4, V6} {
			wantRules = append(wantRules, Rule{Family: f, Priority: p.Priority, Mark: p.Mark, Mask: p.Mask, Table: p.Table, Protocol: r.proto})
		}
	}

	// Routes before rules: a new rule only ever points at a table that is
	// already complete, and strict tables never lose their blackhole.
	for _, t := range sortedTables(wantRoutes) {
		if err := r.setTable(t, wantRoutes[t]); err != nil {
			return err
		}
	}
	for _, ru := range wantRules {
		if !slices.Contains(ours, ru) {
			if err := r.k.AddRule(ru); err != nil {
				return fmt.Errorf("adding rule %s: %w", ruleString(ru), err)
			}
		}
	}
	for _, ru := range ours {
		if !slices.Contains(wantRules, ru) {
			if err := r.k.DelRule(ru); err != nil {
				return fmt.Errorf("deleting rule %s: %w", ruleString(ru), err)
			}
		}
	}
	// Tables that lost their path are emptied once no rule points there.
	for _, t := range sortedTables(tables) {
		if _, ok := wantRoutes[t]; !ok {
			if err := r.setTable(t, nil); err != nil {
				return err
			}
		}
	}
	r.mtu = mtu
	return nil
}

func (r *Router) setLink(name string, addr netip.Prefix, mtu int) error {
	l, err := r.k.Link(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if !slices.Contains(l.Addrs, addr) {
		if err := r.k.AddAddr(name, addr); err != nil {
			return fmt.Errorf("adding %s to %s: %w", addr, name, err)
		}
	}
	for _, a := range l.Addrs {
		if a != addr {
			if err := r.k.DelAddr(name, a); err != nil {
				return fmt.Errorf("removing %s from %s: %w", a, name, err)
			}
		}
	}
	if l.MTU != mtu {
		if err := r.k.SetMTU(name, mtu); err != nil {
			return fmt.Errorf("setting MTU of %s to %d: %w", name, mtu, err)
		}
	}
	v, err := r.k.RPFilter(name)
	if err != nil {
		return fmt.Errorf("reading rp_filter of %s: %w", name, err)
	}
	if v != LooseRPFilter {
		if err := r.k.SetRPFilter(name, LooseRPFilter); err != nil {
			return fmt.Errorf("loosening rp_filter of %s: %w", name, err)
		}
	}
	return nil
}

func (r *Router) routesOf(p Path) []Route {
	var out []Route
	for _, c := range p.CIDRs {
		c = netip.PrefixFrom(c.Addr().Unmap(), c.Bits()).Masked()
		if c.Addr().Is4() && c.Bits() > 32 {
			continue
		}
		out = append(out, Route{Family: familyOf(c.Addr()), Table: p.Table, Dst: c, Dev: p.Interface, Protocol: r.proto})
	}
	if p.Strict {
		out = append(out,
			Route{Family: V4, Table: p.Table, Dst: netip.MustParsePrefix("0.0.0.0/0"), Blackhole: true, Protocol: r.proto},
			Route{Family: V6, Table: p.Table, Dst: netip.MustParsePrefix("::/0"), Blackhole: true, Protocol: r.proto})
	}
	return out
}

type routeKey struct {
	f   Family
	dst netip.Prefix
}

// setTable makes vpblu's routes in table t be want: changed and missing
// routes are replaced in place (never deleted and re-added), then routes
// no longer wanted are deleted. Routes of other protocols are left alone.
func (r *Router) setTable(t int, want []Route) error {
	have, err := r.k.Routes(t)
	if err != nil {
		return fmt.Errorf("listing table %d: %w", t, err)
	}
	cur := map[routeKey]Route{}
	for _, rt := range have {
		if rt.Protocol == r.proto {
			cur[routeKey{rt.Family, rt.Dst}] = rt
		}
	}
	wanted := map[routeKey]bool{}
	for _, rt := range want {
		k := routeKey{rt.Family, rt.Dst}
		wanted[k] = true
		if c, ok := cur[k]; ok && c == rt {
			continue
		}
		if err := r.k.ReplaceRoute(rt); err != nil {
			return fmt.Errorf("setting route %s: %w", routeString(rt), err)
		}
	}
	var gone []Route
	for k, rt := range cur {
		if !wanted[k] {
			gone = append(gone, rt)
		}
	}
	slices.SortFunc(gone, compareRoutes)
	for _, rt := range gone {
		if err := r.k.DelRoute(rt); err != nil && !errors.Is(err, ErrNoRoute) {
			return fmt.Errorf("deleting route %s: %w", routeString(rt), err)
		}
	}
	return nil
}

// ErrNoRoute: a route to delete is already gone.
var ErrNoRoute = errors.New("no such route")

func sortedTables[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func compareRoutes(a, b Route) int {
	if a.Table != b.Table {
		return a.Table - b.Table
	}
	if a.Family != b.Family {
		return int(a.Family) - int(b.Family)
	}
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c
	}
	return a.Dst.Bits() - b.Dst.Bits()
}
