// Package routetest is an in-memory route.Kernel for tests: rules,
// tables, links with MTU and rp_filter, with the kernel's rules for
// duplicates and missing entries, rendered as `ip rule` / `ip route`
// text for golden files.
package routetest
