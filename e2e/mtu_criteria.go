package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestLargePackets (§12.8): a full-size ping with DF set either passes or
// fails cleanly with "message too long" (never silently disappears), a
// ping that fits the tunnel passes, and a large TCP transfer completes at
// speed (the MSS clamp prevents a black hole).
func TestLargePackets(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)
	pair := crossNodePairs(c)[0]
	a, b := pair[0], pair[1]
	cases := []struct {
		fam       string
		full, fit string // payload sizes: a 1500-byte packet, and one that fits a 1420-byte tunnel MTU
	}{
		{"v4", "1472", "1392"},
		{"v6", "1452", "1372"},
	}
	for _, tc := range cases {
		out, err := c.Ping(ctx, a, b.Addr(tc.fam), "-c", "3", "-i", "0.3", "-W", "2", "-M", "do", "-s", tc.full)
		switch {
		case err == nil:
			t.Logf("%s: %s-byte ping with DF passed (path MTU allows it)", tc.fam, tc.full)
		case strings.Contains(strings.ToLower(out), "message too long") || strings.Contains(strings.ToLower(out), "frag needed") || strings.Contains(out, "mtu"):
			t.Logf("%s: %s-byte ping with DF fails cleanly: %s", tc.fam, tc.full, firstLine(out, "mtu"))
		default:
			t.Errorf("%s: %s-byte ping with DF vanished without an error (a black hole):\n%s", tc.fam, tc.full, out)
		}
		if out, err := c.Ping(ctx, a, b.Addr(tc.fam), "-c", "3", "-i", "0.3", "-W", "2", "-M", "do", "-s", tc.fit); err != nil {
			t.Errorf("%s: a %s-byte ping that fits the tunnel failed: %v\n%s", tc.fam, tc.fit, err, out)
		}
	}
	for _, fam := range families {
		bps, err := c.Iperf(ctx, a, b, b.Addr(fam), 5*time.Second)
		if err != nil {
			t.Errorf("%s: iperf3 TCP transfer across the mesh did not complete: %v", fam, err)
			continue
		}
		figure(t, "iperf-mbps-"+fam, int(bps/1e6))
		if bps < 10e6/slowdown {
			t.Errorf("%s: iperf3 TCP across the mesh ran at %.1f Mbit/s: large segments are being lost", fam, bps/1e6)
		}
	}
}

func firstLine(out, containing string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(strings.ToLower(l), containing) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(out)
}
