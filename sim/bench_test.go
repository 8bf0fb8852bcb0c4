package sim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/e2e"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

const (
	// benchSlot keeps the benchmark's simulator clear of the e2e suites
	// (slots 1 and 2).
	benchSlot = 3
	// iperfRun is the length of one iperf3 transfer.
	iperfRun = 5 * time.Second
)

// throughputSchedule interleaves five runs of each path as ABBAABBAAB:
// noise from the rest of a shared machine, which comes in bursts, lands
// on both paths alike, and every other run needs no switch.
var throughputSchedule = []string{
	pathVpblu, pathHand, pathHand, pathVpblu, pathVpblu,
	pathHand, pathHand, pathVpblu, pathVpblu, pathHand,
}

const (
	pathVpblu = "vpblu"
	pathHand  = "hand"
)

// throughput holds the one measurement of a test binary: the benchmark
// function runs again for every b.N after the first, and a second
// minute-long measurement would only repeat it.
var throughput struct {
	once          sync.Once
	done          bool
	vpblu, handWG float64 // median bits/s
}

// BenchmarkThroughputRatio (SPEC §16) measures iperf3 TCP throughput from
// a pod to a pod on another node through vpblu, and through a
// WireGuard pair configured by hand (HandWG) on the same backend, nodes
// and pods, in the same run; it reports the ratio of the medians.
//
// vpblu is switched off (UninstallAgents) for the hand-configured runs
// and back on for its own, the runs interleave ABBA (throughputSchedule),
// the first transfer after each switch is not counted, and every counted
// transfer is checked to have gone through the interface it is reported
// for.
func BenchmarkThroughputRatio(b *testing.B) {
	privtest.Require(b, "build a cluster out of network namespaces, eBPF programs and WireGuard interfaces")
	if testing.Short() {
		b.Skip("the throughput ratio takes two minutes; not in -short")
	}
	throughput.once.Do(func() {
		throughput.vpblu, throughput.handWG = measureThroughput(b)
		throughput.done = true
		fmt.Printf("sim: throughput-ratio %.2f\n", throughput.vpblu/throughput.handWG)
		fmt.Printf("sim: throughput-vpblu-mbps %.0f\n", throughput.vpblu/1e6)
		fmt.Printf("sim: throughput-wireguard-mbps %.0f\n", throughput.handWG/1e6)
	})
	if !throughput.done {
		b.Fatal("the throughput measurement failed in an earlier run")
	}
	b.ReportMetric(throughput.vpblu/throughput.handWG, "ratio")
	b.ReportMetric(throughput.vpblu/1e6, "vpblu-Mbps")
	b.ReportMetric(throughput.handWG/1e6, "wireguard-Mbps")
}

// measureThroughput runs throughputSchedule and returns the median
// throughput of each path in bits/s.
func measureThroughput(b *testing.B) (vpblu, handWG float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	c, err := Start(ctx, Options{Slot: benchSlot, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		b.Fatalf("start the simulated cluster: %v", err)
	}
	b.Cleanup(func() {
		if b.Failed() {
			for _, n := range c.Nodes() {
				if p := c.Agent(n.Name); p != nil {
					b.Logf("--- %s\n%s", p.Name, p.Tail(4000))
				}
			}
		}
		if err := c.Close(); err != nil {
			b.Errorf("tear down: %v", err)
		}
	})
	policy := &v1alpha1.TunnelPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-fullmesh"},
		Spec: v1alpha1.TunnelPolicySpec{
			Mode:                       v1alpha1.FullMesh,
			ListenPort:                 int32(c.ListenPort()),
			PersistentKeepaliveSeconds: ptr.To[int32](25),
			Strict:                     ptr.To(true),
		},
	}
	if err := c.Client().Create(ctx, policy); err != nil {
		b.Fatalf("apply the FullMesh TunnelPolicy: %v", err)
	}
	waitMesh(ctx, b, c, time.Time{})

	from, to := crossNodePods(b, c)
	mtu, err := c.LinkMTU(from.Node, TunnelInterface)
	if err != nil {
		b.Fatal(err)
	}
	hand, err := c.NewHandWG(from.Node, to.Node, HandWGOptions{MTU: mtu})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := hand.Down(context.Background()); err != nil {
			b.Errorf("remove the hand-configured pair: %v", err)
		}
	})
	b.Logf("backend %s, %s (%s) → %s (%s) %s, MTU %d, %s per run",
		c.Backend(), from.Name, from.Node, to.Name, to.Node, to.IPv4, mtu, iperfRun)

	current, warm := pathVpblu, false
	runs := map[string][]float64{}
	for i, path := range throughputSchedule {
		if path != current {
			switchPath(ctx, b, c, hand, path)
			current, warm = path, false
		}
		iface := TunnelInterface
		if path == pathHand {
			iface = hand.Interface()
		}
		// The first transfer on a path runs on freshly started device
		// processes (page faults, buffer pools still growing) and is
		// markedly slower on either path: it is run, checked and logged,
		// but not counted, so the medians compare steady states.
		if !warm {
			bps := iperfThrough(ctx, b, c, from, to, iface)
			b.Logf("warm-up: %-5s %7.0f Mbit/s (not counted)", path, bps/1e6)
			warm = true
		}
		bps := iperfThrough(ctx, b, c, from, to, iface)
		b.Logf("run %2d: %-5s %7.0f Mbit/s", i+1, path, bps/1e6)
		runs[path] = append(runs[path], bps)
	}
	if err := hand.Down(ctx); err != nil {
		b.Fatalf("remove the hand-configured pair: %v", err)
	}
	return median(runs[pathVpblu]), median(runs[pathHand])
}

// switchPath turns vpblu off and the hand-configured pair on, or back.
func switchPath(ctx context.Context, b *testing.B, c *Cluster, hand *HandWG, path string) {
	b.Helper()
	switch path {
	case pathHand:
		if err := c.UninstallAgents(ctx); err != nil {
			b.Fatalf("turn vpblu off: %v", err)
		}
		for _, n := range hand.ends {
			if _, err := c.LinkMTU(n.Name, TunnelInterface); err == nil {
				b.Fatalf("vpblu uninstalled, yet %s is still on %s", TunnelInterface, n.Name)
			}
		}
		if err := hand.Up(ctx); err != nil {
			b.Fatalf("set up the hand-configured pair: %v", err)
		}
	case pathVpblu:
		if err := hand.Down(ctx); err != nil {
			b.Fatalf("remove the hand-configured pair: %v", err)
		}
		since := time.Now()
		if err := c.StartAgents(ctx); err != nil {
			b.Fatalf("turn vpblu back on: %v", err)
		}
		waitMesh(ctx, b, c, since)
	}
}

// iperfThrough runs one transfer and fails unless the receiving node's
// iface decrypted at least 90% of the bytes iperf3 says arrived: the
// figure must belong to the path it is reported for.
func iperfThrough(ctx context.Context, b *testing.B, c *Cluster, from, to e2e.Pod, iface string) float64 {
	b.Helper()
	// A ping first completes the handshake and proves the path is there.
	if out, err := c.Ping(ctx, from, to.IPv4, "-c", "2", "-i", "0.2", "-W", "2"); err != nil {
		b.Fatalf("ping %s → %s through %s: %v\n%s", from.Name, to.Name, iface, err, out)
	}
	before, _, err := c.WGTransfer(ctx, to.Node, iface)
	if err != nil {
		b.Fatal(err)
	}
	bps, err := c.Iperf(ctx, from, to, to.IPv4, iperfRun)
	if err != nil {
		b.Fatalf("iperf3 %s → %s through %s: %v", from.Name, to.Name, iface, err)
	}
	after, _, err := c.WGTransfer(ctx, to.Node, iface)
	if err != nil {
		b.Fatal(err)
	}
	payload := bps / 8 * iperfRun.Seconds()
	if got := float64(after - before); got < 0.9*payload {
		b.Fatalf("%s on %s received %.0f bytes during a transfer of %.0f: the traffic did not go through it", iface, to.Node, got, payload)
	}
	return bps
}

// waitMesh waits until every node has a handshake with every other node
// after since.
func waitMesh(ctx context.Context, b *testing.B, c *Cluster, since time.Time) {
	b.Helper()
	if err := e2e.AwaitMesh(ctx, c, since, 60*time.Second); err != nil {
		b.Fatal(err)
	}
}

// crossNodePods returns the first IPv4 pods of two different nodes.
func crossNodePods(b *testing.B, c *Cluster) (from, to e2e.Pod) {
	b.Helper()
	byNode := map[string]e2e.Pod{}
	var nodes []string
	for _, p := range c.Pods() {
		if _, ok := byNode[p.Node]; !ok && p.IPv4.Is4() {
			byNode[p.Node] = p
			nodes = append(nodes, p.Node)
		}
	}
	if len(nodes) < 2 {
		b.Fatalf("need IPv4 pods on two nodes, have them on %s", strings.Join(nodes, ", "))
	}
	return byNode[nodes[0]], byNode[nodes[1]]
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
