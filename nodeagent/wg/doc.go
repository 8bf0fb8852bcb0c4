// Package wg runs the node's WireGuard interfaces (SPEC §9): wg-mesh, and
// during a key rotation the temporary wg-rot. Every interface is a
// parameter, never a global.
//
// Two backends sit behind Backend: Kernel (a netlink link of type
// "wireguard") and Userspace (wireguard-go embedded on a TUN device, with
// its UAPI socket in /var/run/wireguard/<name>.sock so `wg show` and
// wgctrl see it exactly like a kernel interface). Open picks the kernel
// backend when a "wireguard" link can be created, unless told otherwise.
// Both are configured through wgctrl, so they share all configuration
// code: Manager.Set reads the interface and applies only the difference
// (ReplacePeers=false; per-peer UpdateOnly, Remove, ReplaceAllowedIPs), so
// unchanged peers keep their sessions.
//
// Backends act on the network namespace of the calling thread. A
// userspace interface stays in the namespace it was created in: its UDP
// sockets and MTU reads are made there whatever thread later runs them.
//
// Routing, MTU and rp_filter belong to package route, not here. The fake
// backend for tests lives in wgtest.
package wg
