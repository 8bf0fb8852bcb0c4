// Package cidr holds the address and prefix helpers that core/desired and
// core/wire share: parsing into canonical (masked) netip.Prefix values, a
// total order in which every prefix sorts before the prefixes it contains,
// containment tests, and subtraction of prefixes from a prefix.
//
// It is pure: no I/O, no state. It is not an IPAM and it does not know what
// a pod or a node is.
package cidr
