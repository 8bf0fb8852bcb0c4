// Package netns creates, enters and deletes named network namespaces for
// vpblu's tests and simulator. It exists so that test helpers (privtest)
// and the simulator (sim) share one careful implementation of "run this on
// a thread inside that namespace": a goroutine that switches namespace must
// never give its thread back to the Go scheduler.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// NS is a named network namespace (bind-mounted under /run/netns, so
// `ip netns exec NAME` works too).
type NS struct {
	Name   string
	Handle vnetns.NsHandle
}

// Path is the namespace's bind-mount path.
func (n NS) Path() string { return "/run/netns/" + n.Name }

// Create makes a new named network namespace with loopback up.
func Create(name string) (NS, error) {
	var h vnetns.NsHandle
	err := OnFreshThread(func() error {
		var err error
		h, err = vnetns.NewNamed(name)
		if err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		if h.IsOpen() {
			h.Close()
			_ = vnetns.DeleteNamed(name)
		}
		return NS{}, fmt.Errorf("create netns %s: %w", name, err)
	}
	return NS{Name: name, Handle: h}, nil
}

// Open opens an existing named namespace.
func Open(name string) (NS, error) {
	h, err := vnetns.GetFromName(name)
	if err != nil {
		return NS{}, fmt.Errorf("open netns %s: %w", name, err)
	}
	return NS{Name: name, Handle: h}, nil
}

// Delete closes the handle and removes the namespace's bind mount. The
// namespace itself goes away when no process or socket holds it any more.
// Deleting a namespace that does not exist is not an error.
func (n NS) Delete() error {
	if n.Handle.IsOpen() {
		n.Handle.Close()
	}
	return DeleteNamed(n.Name)
}

// DeleteNamed removes a named namespace's bind mount, if it exists.
func DeleteNamed(name string) error {
	err := vnetns.DeleteNamed(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// Do runs f on a fresh OS thread inside n. Sockets and netlink handles f
// creates stay in n after it returns, and may be used from any goroutine.
func (n NS) Do(f func() error) error {
	return OnFreshThread(func() error {
		if err := vnetns.Set(n.Handle); err != nil {
			return fmt.Errorf("enter netns %s: %w", n.Name, err)
		}
		return f()
	})
}

// Netlink returns a netlink handle bound to n, usable from any thread.
func (n NS) Netlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(n.Handle)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", n.Name, err)
	}
	return h, nil
}

// OnFreshThread runs f on a new locked OS thread that is discarded when f
// returns (the goroutine exits still locked, so the runtime ends the
// thread), so a namespace switch inside f can never leak to other
// goroutines.
func OnFreshThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- f()
	}()
	return <-errc
}
