package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/manager/clustertest"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

// BenchmarkFanout measures SPEC §16's fan-out latency and controller
// memory: N nodes in a FullMesh, each with a fake daemon connected over
// loopback gRPC and TLS with a real token to the real controller process
// on a real API server. A Node is added (its daemon starts with it); the
// latency of each of the N daemons is the time from the Node's creation to
// that daemon receiving the new peer. It prints the p99 in milliseconds,
// and at 5000 nodes the controller's resident memory.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				p99, rss := fanout(b, n)
				fmt.Printf("ctrl: fanout-p99-%d %.1f\n", n, float64(p99.Microseconds())/1000)
				if n == 5000 {
					fmt.Printf("ctrl: rss-5000-MiB %.0f\n", float64(rss)/(1<<20))
				}
			}
		})
	}
}

func fanout(b *testing.B, n int) (time.Duration, int64) {
	ctx := context.Background()
	bin := buildController(b)
	start := time.Now()
	c := clustertest.Start(b)
	var nodes []*corev1.Node
	var names []string
	for i := 1; i <= n+1; i++ {
		nodes = append(nodes, clustertest.Node(i, nil))
		names = append(names, clustertest.NodeName(i))
	}
	newNode, newName := nodes[n], names[n]
	if err := c.CreateNodes(ctx, nodes[:n], 32); err != nil {
		b.Fatal(err)
	}
	if err := c.SeedVpbluNodes(ctx, names[:n], 32); err != nil {
		b.Fatal(err)
	}
	tokens, err := c.Tokens(ctx, names, 32)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Env.Client.Create(ctx, &v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d nodes, VpbluNodes, pods and tokens in %v", n+1, time.Since(start).Round(time.Second))

	start = time.Now()
	args := []string{"--status-qps", "100", "--status-min-interval", "30s"}
	if addr := os.Getenv("VPBLU_BENCH_PPROF"); addr != "" {
		args = append(args, "--pprof-addr", addr)
	}
	ctl := startProcess(b, bin, c, args...)
	ctl.waitLeading(b, time.Minute)
	pool := ca(b, c)

	var (
		synced  atomic.Int64
		syncedC = make(chan struct{})
		got     = make([]atomic.Int64, n) // receive time of the new peer, unix nanos
		gotN    atomic.Int64
		gotC    = make(chan struct{})
		once    sync.Once
	)
	index := map[string]int{}
	for i, name := range names[:n] {
		index[name] = i
	}
	onMessage := func(node string, msg *meshpb.ControllerMessage, at time.Time) {
		i, ok := index[node]
		if !ok {
			return
		}
		if s := msg.GetSync(); s != nil && len(s.GetPeers()) == n-1 {
			if synced.Add(1) == int64(n) {
				close(syncedC)
			}
		}
		for _, p := range msg.GetDelta().GetUpsertPeers() {
			if p.GetNode() == newName && got[i].CompareAndSwap(0, at.UnixNano()) {
				if gotN.Add(1) == int64(n) {
					once.Do(func() { close(gotC) })
				}
			}
		}
	}
	for _, name := range names[:n] {
		opts := clustertest.DaemonOptions(name, tokens[name], pool, ctl.streamAddr)
		opts.Light, opts.OnMessage, opts.RetryInterval = true, onMessage, 500*time.Millisecond
		a := agenttest.Start(opts)
		b.Cleanup(a.Stop)
	}
	select {
	case <-syncedC:
	case <-ctl.done:
		b.Fatalf("controller exited with %d of %d daemons synced:\n%s", synced.Load(), n, tail(ctl.log.String(), 40))
	case <-time.After(10 * time.Minute):
		b.Fatalf("%d of %d daemons synced", synced.Load(), n)
	}
	b.Logf("%d daemons connected and synced in %v", n, time.Since(start).Round(time.Millisecond))
	// Measure in the steady state: every VpbluNode says Ready, so the
	// status writes of the connect storm are done.
	start = time.Now()
	waitReady(b, c, n, 10*time.Minute)
	b.Logf("%d VpbluNodes Ready after another %v", n, time.Since(start).Round(time.Millisecond))

	profiled := profileCPU(b, 5*time.Second)
	if out := os.Getenv("VPBLU_BENCH_PPROF_OUT"); out != "" {
		f, err := os.Create(out + ".bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	b.ResetTimer()
	t0 := time.Now()
	if err := c.CreateNodes(ctx, []*corev1.Node{newNode}, 1); err != nil {
		b.Fatal(err)
	}
	created := time.Since(t0)
	var joinerFirst atomic.Int64
	jopts := clustertest.DaemonOptions(newName, tokens[newName], pool, ctl.streamAddr)
	jopts.OnMessage = func(_ string, _ *meshpb.ControllerMessage, at time.Time) {
		joinerFirst.CompareAndSwap(0, at.UnixNano())
	}
	joiner := agenttest.Start(jopts)
	b.Cleanup(joiner.Stop)
	select {
	case <-gotC:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d daemons got the new peer", gotN.Load(), n)
	}
	b.StopTimer()
	<-profiled
	if os.Getenv("VPBLU_BENCH_PPROF") != "" {
		fmt.Fprintln(os.Stderr, "pausing 60s for profiling")
		time.Sleep(60 * time.Second)
	}
	lat := make([]time.Duration, n)
	for i := range got {
		lat[i] = time.Duration(got[i].Load() - t0.UnixNano())
	}
	slices.Sort(lat)
	p99 := lat[(len(lat)*99+99)/100-1]
	rss, hwm := memory(b, ctl.cmd.Process.Pid)
	b.Logf("fan-out to %d daemons: node created after %v, joiner's first command after %v; min %v p50 %v p99 %v max %v; controller RSS %d MiB (peak %d MiB)",
		n, created.Round(time.Millisecond), time.Duration(joinerFirst.Load()-t0.UnixNano()).Round(time.Millisecond),
		lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), p99.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), rss>>20, hwm>>20)
	return p99, rss
}

// memory reads a process's resident set size and its peak, in bytes.
func memory(b *testing.B, pid int) (rss, hwm int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		}
	}
	return rss, hwm
}

// waitReady waits until n VpbluNodes have the condition Ready=True.
func waitReady(b *testing.B, c *clustertest.Cluster, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		var list v1alpha1.VpbluNodeList
		if err := c.Env.Client.List(context.Background(), &list); err != nil {
			b.Fatal(err)
		}
		ready := 0
		for i := range list.Items {
			if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, v1alpha1.ConditionReady) {
				ready++
			}
		}
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d VpbluNodes Ready after %v", ready, n, timeout)
		}
		time.Sleep(2 * time.Second)
	}
}

// profileCPU fetches a CPU profile of the controller covering the next d
// into $VPBLU_BENCH_PPROF_OUT when $VPBLU_BENCH_PPROF names its pprof
// address. The returned channel is closed when done.
func profileCPU(b *testing.B, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	addr, out := os.Getenv("VPBLU_BENCH_PPROF"), os.Getenv("VPBLU_BENCH_PPROF_OUT")
	if addr == "" || out == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			b.Errorf("cpu profile: %v", err)
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(out, raw, 0o644)
		}
		if err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	return done
}
