package sim

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/tools/privtest"
)

func TestNetworkCarriesCleartextPodTrafficUntilVpbluSteersIt(t *testing.T) {
	privtest.Require(t, "create network namespaces, veths and bridges")
	n, err := BuildNetwork(NetworkOptions{Slot: 250, Nodes: 3, PodsPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Teardown(); err != nil {
			t.Error(err)
		}
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "vs250-") {
				t.Errorf("namespace %s left behind", e.Name())
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	from, to := n.Nodes[0].Pods[0], n.Nodes[2].Pods[1]
	for _, dst := range []string{to.IPv4.String(), to.IPv6.String()} {
		if out, err := InNS(ctx, from.NS.Name, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst); err != nil {
			t.Errorf("pod to pod across nodes over the base CNI: %v\n%s", err, out)
		}
	}
}

func TestCaptureSeesCleartextPodTrafficOnTheBaseCNI(t *testing.T) {
	privtest.Require(t, "create network namespaces and capture on a bridge")
	n, err := BuildNetwork(NetworkOptions{Slot: 251, Nodes: 2, PodsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Teardown() })
	ctx := context.Background()
	capture, err := StartCapture(ctx, n.Plan.UnderlayNS(), []netip.Prefix{n.Plan.ClusterV4(), n.Plan.ClusterV6()}, 51820)
	if err != nil {
		t.Fatal(err)
	}
	a, b := n.Nodes[0].Pods[0], n.Nodes[1].Pods[0]
	v4, err := StartFlow(a.NS, a.IPv4, b.NS, b.IPv4, 200)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := StartFlow(b.NS, b.IPv6, a.NS, a.IPv6, 200)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	s4, s6 := v4.Stop(200*time.Millisecond), v6.Stop(200*time.Millisecond)
	got := capture.Stop()
	t.Logf("v4 %s; v6 %s; capture cleartext=%d wireguard=%d other=%d", s4, s6, got.Cleartext, got.WireGuard, got.Other)
	for name, s := range map[string]FlowStats{"v4": s4, "v6": s6} {
		if s.Sent < 150 || s.Lost != 0 {
			t.Errorf("%s flow over the base CNI: %s, want ~200 sent and none lost", name, s)
		}
	}
	if want := int(s4.Received + s6.Received); got.Cleartext < want {
		t.Errorf("capture saw %d cleartext pod packets, want at least the %d the flows delivered", got.Cleartext, want)
	}
}
