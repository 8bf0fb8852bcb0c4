package wg

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// KernelBackend drives in-kernel WireGuard: links of type "wireguard"
// created through netlink and configured through wgctrl.
type KernelBackend struct {
	mtu int
}

var _ Backend = (*KernelBackend)(nil)

// NewKernel returns the kernel backend; new interfaces get mtu (DefaultMTU
// when 0) until package route sets theirs. It does not check that the
// kernel has WireGuard: see KernelSupported.
func NewKernel(mtu int) *KernelBackend {
	if mtu == 0 {
		mtu = DefaultMTU
	}
	return &KernelBackend{mtu: mtu}
}

// Kind implements Backend.
func (*KernelBackend) Kind() Kind { return Kernel }

// Ensure implements Backend.
func (k *KernelBackend) Ensure(name string) error {
	l, err := wgLink(name)
	if errors.Is(err, ErrNotFound) {
		err = netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: k.mtu}})
		if err != nil {
			return fmt.Errorf("creating wireguard link %s: %w", name, kernelErr(err))
		}
		l, err = wgLink(name)
	}
	if err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up: %w", name, err)
		}
	}
	return nil
}

// Delete implements Backend.
func (*KernelBackend) Delete(name string) error {
	l, err := wgLink(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("deleting link %s: %w", name, err)
	}
	return nil
}

// Device implements Backend.
func (*KernelBackend) Device(name string) (*wgtypes.Device, error) {
	if _, err := wgLink(name); err != nil {
		return nil, err
	}
	return ctlDevice(name)
}

// Configure implements Backend.
func (*KernelBackend) Configure(name string, cfg wgtypes.Config) error {
	if _, err := wgLink(name); err != nil {
		return err
	}
	return ctlConfigure(name, cfg)
}

// Close implements Backend; kernel interfaces stay.
func (*KernelBackend) Close() error { return nil }

// wgLink finds a kernel WireGuard link by name.
func wgLink(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up link %s: %w", name, err)
	}
	if l.Type() != "wireguard" {
		return nil, fmt.Errorf("%s is a %s link: %w", name, l.Type(), ErrNotOurs)
	}
	return l, nil
}

func kernelErr(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("%w: the kernel has no wireguard link type: %w", ErrUnsupported, err)
	}
	return err
}

// KernelSupported reports whether the calling thread's network namespace
// can create "wireguard" links, by creating and deleting a probe link. A
// nil error means yes; otherwise the error wraps ErrUnsupported when the
// kernel lacks WireGuard.
func KernelSupported() error {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "wgprobe" + hex.EncodeToString(b)
	if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return fmt.Errorf("probing kernel wireguard: %w", kernelErr(err))
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("probing kernel wireguard: %w", err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("removing probe link %s: %w", name, err)
	}
	return nil
}
