package agent

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkLinks is the real Links, in the network namespace of the thread
// that calls it.
type NetlinkLinks struct{}

var _ Links = NetlinkLinks{}

// Index implements Links.
func (NetlinkLinks) Index(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// Watch implements Links.
func (NetlinkLinks) Watch(ctx context.Context) (<-chan LinkEvent, error) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	failed := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(error) {
			select {
			case <-failed:
			default:
				close(failed)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	events := make(chan LinkEvent, 64)
	go func() {
		defer close(events)
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-failed:
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				ev := LinkEvent{Name: u.Attrs().Name, Index: u.Attrs().Index, Gone: u.Header.Type == unix.RTM_DELLINK}
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return events, nil
}
