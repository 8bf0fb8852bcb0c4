package privtest

import (
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestNewNSIsFreshAndRemoved(t *testing.T) {
	Require(t, "create network namespaces")
	var name string
	t.Run("inner", func(t *testing.T) {
		ns := NewNS(t, "vpt")
		name = ns.Name
		err := ns.Do(func() error {
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&1 == 0 {
				t.Errorf("want only lo, up; got %d links", len(links))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if h, err := netns.GetFromName(name); err == nil {
		h.Close()
		t.Errorf("namespace %s still exists after the test", name)
	}
}
