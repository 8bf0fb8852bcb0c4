package route

// LooseRPFilter is the rp_filter value Set gives the WireGuard interface.
//
// Why: decrypted packets arrive on the WireGuard interface with a remote
// pod as source, but the route back to that pod in the main table (the
// one the reverse-path check consults, without the steering mark) goes
// through the base CNI, i.e. another interface. Strict reverse-path
// filtering (1) would drop them. Loose mode (2) only asks that the source
// be routable at all. The kernel uses max(conf.all, conf.<if>), so setting
// 2 on the WireGuard interface alone is enough even when conf.all is 1;
// no other interface, and not conf.all, is touched. (IPv6 has no
// rp_filter sysctl.)
//
// Loose mode is not enough on its own: the kernel drops every packet that
// fails the strict check on an interface without any IPv4 address
// (__fib_validate_source: no_addr → last_resort), loose or not. That is
// why Set also gives the interface an address (Path.Address), and why the
// privileged steering test sets conf.all.rp_filter=1.
const LooseRPFilter = 2
