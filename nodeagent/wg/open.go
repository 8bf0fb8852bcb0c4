package wg

import (
	"errors"
	"fmt"
)

// DefaultMTU is the MTU of a new interface until package route sets the
// one derived from the primary interface.
const DefaultMTU = 1420

// Options choose and configure a backend.
type Options struct {
	// Kind is Auto (kernel when available), Kernel or Userspace.
	Kind Kind
	// MTU of newly created interfaces; DefaultMTU when 0.
	MTU int
	// Daemon is the command that runs one userspace device process
	// (RunDevice) so userspace interfaces outlive the daemon; empty runs
	// them inside this process. See UserspaceBackend.
	Daemon []string
}

// Open returns the backend opts ask for. With Auto it probes the calling
// thread's network namespace and picks Kernel when a "wireguard" link can
// be created, Userspace when the kernel lacks WireGuard; any other probe
// failure is returned.
func Open(opts Options) (Backend, error) {
	switch opts.Kind {
	case Kernel:
		return NewKernel(opts.MTU), nil
	case Userspace:
		return NewUserspace(opts.MTU, opts.Daemon...), nil
	case Auto:
		err := KernelSupported()
		if err == nil {
			return NewKernel(opts.MTU), nil
		}
		if errors.Is(err, ErrUnsupported) {
			return NewUserspace(opts.MTU, opts.Daemon...), nil
		}
		return nil, err
	default:
		return nil, fmt.Errorf("%w: backend %q (want kernel, userspace or empty for auto)", ErrInvalid, opts.Kind)
	}
}
