// Package mss clamps the TCP MSS of connections that go through the
// WireGuard tunnels (SPEC §10), so TCP never sends segments the tunnel MTU
// cannot carry and path-MTU black holes cannot stall a transfer.
//
// It keeps one nftables table, `inet vpblu`, with one chain hooked at
// forward (priority mangle) that rewrites the MSS option of SYN and
// SYN-ACK packets leaving through a WireGuard interface down to MTU − 40
// (IPv4) or MTU − 60 (IPv6):
//
//	oifname "wg-*" meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > 1380 tcp option maxseg size set 1380
//	oifname "wg-*" meta nfproto ipv6 tcp flags syn / syn,rst tcp option maxseg size > 1360 tcp option maxseg size set 1360
//
// Pod traffic is forwarded, so forward sees both directions of every
// tunnelled connection (each node clamps what it sends into its tunnel).
// The rules are built with github.com/google/nftables, never by running
// nft. Set reads the table back, decodes its rules, and rewrites it (in
// one atomic nftables transaction) only when they differ, so an existing
// table is adopted without a gap. The Kernel interface is the OS
// boundary; NFTables is the real one, msstest the fake.
package mss
