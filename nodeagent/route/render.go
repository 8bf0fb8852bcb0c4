package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ruleString prints a rule the way `ip rule` does.
func ruleString(r Rule) string {
	return fmt.Sprintf("-%d %d: from all fwmark %#x/%#x lookup %d proto %d",
		familyNum(r.Family), r.Priority, r.Mark, r.Mask, r.Table, r.Protocol)
}

// routeString prints a route the way `ip route show table` does.
func routeString(r Route) string {
	dst := r.Dst.String()
	if r.Dst.Bits() == 0 {
		dst = "default"
	}
	if r.Blackhole {
		return fmt.Sprintf("-%d table %d: blackhole %s proto %d", familyNum(r.Family), r.Table, dst, r.Protocol)
	}
	return fmt.Sprintf("-%d table %d: %s dev %s proto %d", familyNum(r.Family), r.Table, dst, r.Dev, r.Protocol)
}

func familyNum(f Family) int {
	if f == V6 {
		return 6
	}
	return 4
}

// Render prints rules and routes as sorted `ip rule` / `ip route` lines.
// Tests of the real and the fake Kernel compare these dumps.
func Render(rules []Rule, routes []Route) string {
	rules = slices.Clone(rules)
	slices.SortFunc(rules, func(a, b Rule) int {
		if a.Family != b.Family {
			return int(a.Family) - int(b.Family)
		}
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return a.Table - b.Table
	})
	routes = slices.Clone(routes)
	slices.SortFunc(routes, compareRoutes)
	var s strings.Builder
	for _, r := range rules {
		s.WriteString(ruleString(r) + "\n")
	}
	for _, r := range routes {
		s.WriteString(routeString(r) + "\n")
	}
	return s.String()
}

// RenderLink prints what Set manages of a link.
func RenderLink(l Link, rpFilter int) string {
	addrs := slices.Clone(l.Addrs)
	slices.SortFunc(addrs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	strs := make([]string, len(addrs))
	for i, a := range addrs {
		strs[i] = a.String()
	}
	return fmt.Sprintf("link %s mtu %d rp_filter %d addrs [%s]", l.Name, l.MTU, rpFilter, strings.Join(strs, " "))
}

// Dump reads every fwmark rule, and the routes of every table those rules
// point to and of tables, and renders them.
func Dump(k Kernel, tables ...int) (string, error) {
	rules, err := k.Rules()
	if err != nil {
		return "", err
	}
	var routes []Route
	seen := map[int]bool{}
	for _, t := range tables {
		rules = append(rules, Rule{Table: t})
	}
	for _, r := range rules {
		if seen[r.Table] {
			continue
		}
		seen[r.Table] = true
		rs, err := k.Routes(r.Table)
		if err != nil {
			return "", err
		}
		routes = append(routes, rs...)
	}
	return Render(rules[:len(rules)-len(tables)], routes), nil
}
