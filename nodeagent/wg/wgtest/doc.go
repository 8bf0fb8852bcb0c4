// Package wgtest is an in-memory wg.Backend for tests. It applies wgctrl
// configurations with the kernel's semantics (an allowed IP belongs to one
// peer; UpdateOnly, Remove, ReplacePeers, ReplaceAllowedIPs), tracks which
// peers kept their sessions, and renders its interfaces as `wg show`-like
// text for golden files.
package wgtest
