// Package blocks compiles CIDR×CIDR block rules into the two LPM stages the
// data plane looks up (SPEC §8.2), and holds the naive reference matcher
// that the compiled form and the BPF programs are checked against.
//
// Stage one is a longest-prefix match on the packet's source address that
// yields a class; stage two is a longest-prefix match on (class,
// destination address). A class stands for a source prefix and carries the
// destinations of every rule whose source contains that prefix, so one
// lookup per stage is exact: any rule source containing the packet's source
// either contains the longest matching class prefix or is longer than it,
// and then it would have been the longest match.
//
// Cost. Every class repeats the destinations it inherits, so the number of
// stage-two entries is at most the sum, over classes, of the rules whose
// source contains the class prefix. Nested sources are bounded by the
// address length (33 levels for IPv4, 129 for IPv6), but a wide source
// shared by many rules is inherited by every narrower class: with a rules
// from 0.0.0.0/0 to distinct destinations and b rules from distinct /32
// sources, stage two holds about a×b entries, so n rules can need n²/4
// entries (25 million at n = 10,000). Compile removes what it can without
// changing any verdict (destinations covered by a wider one of the same
// class, classes equal to their parent, duplicate classes) and stops with
// ErrTooLarge at the caller's limit instead of exhausting memory. The
// measured counts are in compile_test.go (TestCompileCountsAt10k).
//
// This package is pure: no I/O, no clock, no map writes. Writing the
// compiled table into BPF maps is package bpf's job.
package blocks
