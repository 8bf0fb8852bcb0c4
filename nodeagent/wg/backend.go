package wg

import (
	"errors"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Kind names a backend.
type Kind string

const (
	// Auto picks Kernel when it is available, else Userspace.
	Auto Kind = ""
	// Kernel is the in-kernel WireGuard (a link of type "wireguard").
	Kernel Kind = "kernel"
	// Userspace is wireguard-go embedded in the daemon on a TUN device.
	Userspace Kind = "userspace"
)

var (
	// ErrNotFound: the interface does not exist.
	ErrNotFound = errors.New("wireguard interface not found")
	// ErrNotOurs: a link with that name exists but this backend does not
	// drive it (another link type, or another process's TUN).
	ErrNotOurs = errors.New("link exists and is not a wireguard interface of this backend")
	// ErrUnsupported: the backend cannot run here (e.g. no kernel module).
	ErrUnsupported = errors.New("wireguard backend unsupported")
)

// Backend creates WireGuard interfaces and reads and writes their
// configuration. Kernel, Userspace and wgtest.Backend implement it.
type Backend interface {
	// Kind names the backend.
	Kind() Kind
	// Ensure makes interface name exist and be up. An existing interface
	// of this backend is adopted unchanged, sessions included; a link of
	// that name that the backend does not drive is an error wrapping
	// ErrNotOurs.
	Ensure(name string) error
	// Delete removes interface name; removing a missing one is not an
	// error.
	Delete(name string) error
	// Device reads the interface; a missing one is an error wrapping
	// ErrNotFound.
	Device(name string) (*wgtypes.Device, error)
	// Configure applies cfg with wgctrl's semantics (ReplacePeers,
	// UpdateOnly, Remove, ReplaceAllowedIPs).
	Configure(name string, cfg wgtypes.Config) error
	// Close releases the backend. Kernel interfaces stay up (the data
	// plane outlives the daemon); userspace ones live in this process and
	// end with it.
	Close() error
}
