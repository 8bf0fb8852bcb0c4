package wg

import (
	"errors"
	"fmt"
	"os"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Both backends read and write configuration through wgctrl: genetlink
// for the kernel, the UAPI socket for userspace. A client is opened per
// call so it always speaks to the calling thread's network namespace.

func ctlDevice(name string) (*wgtypes.Device, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("opening wgctrl: %w", err)
	}
	defer c.Close()
	d, err := c.Device(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("wgctrl device %s: %w", name, err)
	}
	return d, nil
}

func ctlConfigure(name string, cfg wgtypes.Config) error {
	c, err := wgctrl.New()
	if err != nil {
		return fmt.Errorf("opening wgctrl: %w", err)
	}
	defer c.Close()
	err = c.ConfigureDevice(name, cfg)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("wgctrl configure %s: %w", name, err)
	}
	return nil
}
