package e2e

import (
	"testing"
	"time"
)

// TestUnderlayOnlyWireGuard (§12.3, §12.14): with vpblu on, cross-node pod
// traffic (IPv4 and IPv6) crosses the underlay only as WireGuard UDP; with
// vpblu off, the same traffic is seen in cleartext, which proves the
// capture would catch a leak.
func TestUnderlayOnlyWireGuard(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	on := captureFlows(t, c)
	figure(t, "cleartext-packets", on.Cleartext)
	figure(t, "wireguard-packets", on.WireGuard)
	if on.Cleartext != 0 {
		t.Errorf("vpblu on: %d cleartext pod packets on the underlay, e.g.\n%v", on.Cleartext, on.Samples)
	}
	if on.WireGuard == 0 {
		t.Errorf("vpblu on: no WireGuard packets on the underlay: the capture saw nothing")
	}

	ctx := ctxFor(t, 3*time.Minute)
	if err := c.UninstallAgents(ctx); err != nil {
		t.Fatalf("turn vpblu off: %v", err)
	}
	off := captureFlows(t, c)
	figure(t, "cleartext-packets-vpblu-off", off.Cleartext)
	if off.Cleartext == 0 {
		t.Errorf("vpblu off: the capture saw no cleartext pod packets, so it cannot detect a leak")
	}
	if err := c.StartAgents(ctx); err != nil {
		t.Fatalf("turn vpblu back on: %v", err)
	}
	waitMesh(t, c, time.Time{}, 60*time.Second)
}

// captureFlows runs a second of flows between every cross-node pair in
// both families under an underlay capture.
func captureFlows(t *testing.T, c Cluster) CaptureStats {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	capture, err := c.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs := startFlows(t, c, 100)
	time.Sleep(time.Second)
	fs.stop(300 * time.Millisecond)
	for _, pair := range crossNodePairs(c)[:1] {
		for _, fam := range families {
			_, _ = c.Ping(ctx, pair[0], pair[1].Addr(fam), "-c", "1", "-W", "1")
		}
	}
	return capture.Stop()
}
