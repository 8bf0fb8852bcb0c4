// Package keys keeps the node's WireGuard private keys (SPEC §9, §14).
//
// A key is generated on the node, stored 0600 in a 0700 state directory
// (default /var/lib/vpblu), and reused across restarts so a daemon restart
// never churns the key. Keys are numbered by generation (1 for the first);
// a rotation stages a pending key, activates it (the old one is kept as
// previous so a rollback can restore it), and retires the previous key,
// which zeroizes it in memory and on disk.
//
// Private keys never leave this package in printable form: Private redacts
// itself in every fmt verb, in slog and in encoders. The package does not
// configure WireGuard and knows nothing of the stream; the caller hands
// Private.Key to wgctrl and reports only public keys.
package keys
