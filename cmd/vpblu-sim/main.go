// Command vpblu-sim runs a whole vpblu cluster on this machine: network
// namespaces for nodes and pods, a real API server, two controller
// replicas and one agent per node (SPEC §13).
//
//	vpblu-sim up     bring up a 3-node mesh, show it working, stay up until Ctrl-C
//	vpblu-sim down   stop a running simulator and remove everything it made
//
// It needs root (namespaces, eBPF, WireGuard).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/e2e"
	"github.com/lumbrjx/vpblu/sim"
)

func main() {
	fs := flag.NewFlagSet("vpblu-sim", flag.ExitOnError)
	nodes := fs.Int("nodes", 3, "number of simulated nodes")
	pods := fs.Int("pods-per-node", 2, "workload pods per node")
	slot := fs.Int("slot", 0, "simulator slot (0-255): selects 198.18.<slot>.0/24 and the names of namespaces")
	backend := fs.String("backend", "", "WireGuard backend: kernel, userspace, or empty to detect")
	exitAfter := fs.Bool("exit", false, "tear down after showing the mesh instead of staying up")
	verbose := fs.Bool("v", false, "log progress")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vpblu-sim [up|down] [flags]\n\n  up    bring up a simulated mesh and stay up until Ctrl-C (default)\n  down  stop a running simulator and remove everything it made\n\nflags:\n")
		fs.PrintDefaults()
	}
	args := os.Args[1:]
	cmd := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	_ = fs.Parse(args)
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	runDir := fmt.Sprintf("/tmp/vpblu-sim-%d", *slot)

	var err error
	switch cmd {
	case "up":
		err = up(sim.Options{Slot: *slot, Nodes: *nodes, PodsPerNode: *pods, Backend: *backend, RunDir: runDir, Log: log}, *exitAfter)
	case "down":
		err = down(*slot, runDir)
	default:
		fs.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vpblu-sim %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func up(opts sim.Options, exitAfter bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, eBPF programs and WireGuard interfaces")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("vpblu-sim: bringing up %d nodes (API server, 2 controllers, one agent per node)...\n", opts.Nodes)
	start := time.Now()
	c, err := sim.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("vpblu-sim: tearing down")
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "vpblu-sim: teardown: %v\n", err)
		}
	}()
	if err := os.WriteFile(filepath.Join(opts.RunDir, "vpblu-sim.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	fmt.Printf("vpblu-sim: cluster up in %s (backend %s)\n\n", time.Since(start).Round(time.Millisecond), c.Backend())
	if err := show(ctx, c); err != nil {
		return err
	}
	urls, password := c.Dashboards()
	fmt.Printf("\nDashboard: %s (password %s; the other replica serves %s)\n", urls[0], password, strings.Join(urls[1:], ", "))
	if exitAfter {
		return nil
	}
	fmt.Printf("\nThe mesh stays up. Try:\n  export KUBECONFIG=%s PATH=%s:$PATH\n  kubectl get vpblunodes -o wide\n  kubectl vpblu status; kubectl vpblu graph | dot -Tsvg > mesh.svg; kubectl vpblu rotate %s --wait\n  ip netns exec %s ping %s\nCtrl-C or `vpblu-sim down` ends it.\n",
		c.Kubeconfig(), filepath.Dir(c.Binaries().Plugin), c.Net.Nodes[0].Name, c.Net.Nodes[0].Pods[0].NS.Name, c.Net.Nodes[len(c.Net.Nodes)-1].Pods[0].IPv4)
	<-ctx.Done()
	return nil
}

// show applies a FullMesh TunnelPolicy and prints what a user wants to
// see: nodes, peers and handshakes, a cross-node ping, and a capture of the
// underlay proving only WireGuard crossed it.
func show(ctx context.Context, c *sim.Cluster) error {
	policy := &v1alpha1.TunnelPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fullmesh"},
		Spec:       v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh, ListenPort: int32(c.ListenPort()), PersistentKeepaliveSeconds: ptr.To[int32](25), Strict: ptr.To(true)},
	}
	// The mesh is timed from the policy, so first a controller must lead
	// and every agent be connected (the lease takes a few seconds).
	started := time.Now()
	leader, err := waitReady(ctx, c)
	if err != nil {
		return err
	}
	fmt.Printf("controller-%d leads; %d agents connected (%s)\n\n", leader, len(c.Nodes()), time.Since(started).Round(time.Millisecond))
	applied := time.Now()
	if err := c.Client().Create(ctx, policy); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("apply the FullMesh TunnelPolicy: %w", err)
	}
	fmt.Println("$ kubectl apply TunnelPolicy fullmesh {mode: FullMesh, strict: true}")
	if err := e2e.AwaitMesh(ctx, c, time.Time{}, 60*time.Second); err != nil {
		return err
	}
	fmt.Printf("mesh formed in %s\n\n", time.Since(applied).Round(time.Millisecond))

	for _, n := range c.Nodes() {
		peers, err := c.WireGuard(ctx, n.Name)
		if err != nil {
			return err
		}
		fmt.Printf("%s (%s) %s:\n", n.Name, n.IPv4, c.TunnelInterface())
		for _, p := range peers {
			fmt.Printf("  peer %s  endpoint %-22s  allowed %-40s  handshake %s ago\n", p.PublicKey[:10]+"…", p.Endpoint, strings.Join(p.AllowedIPs, ","), time.Since(p.LastHandshake).Round(time.Second))
		}
	}

	capture, err := c.StartCapture(ctx)
	if err != nil {
		return err
	}
	pods := c.Pods()
	from, to := pods[0], pods[len(pods)-1]
	fmt.Println()
	for _, dst := range []netip.Addr{to.IPv4, to.IPv6} {
		fmt.Printf("$ ip netns exec %s ping -c 3 %s   (%s on %s → %s on %s)\n", c.PodNamespace(from.Name), dst, from.Name, from.Node, to.Name, to.Node)
		out, err := c.Ping(ctx, from, dst, "-c", "3", "-i", "0.2")
		fmt.Print(indent(lastLines(out, 3)))
		if err != nil {
			return fmt.Errorf("cross-node ping failed: %w", err)
		}
	}
	got := capture.Stop()
	fmt.Printf("\nunderlay capture during the pings: %d WireGuard UDP packets, %d cleartext pod packets\n", got.WireGuard, got.Cleartext)
	if got.Cleartext != 0 || got.WireGuard == 0 {
		return fmt.Errorf("the underlay carried cleartext pod traffic: %v", got.Samples)
	}
	fmt.Println("only WireGuard crossed the underlay: pod traffic is encrypted")

	// The plugin reads the status the controller writes, which trails
	// the handshakes by a report interval: wait for verify to pass first.
	deadline := time.Now().Add(30 * time.Second)
	var verify string
	for {
		verify, err = c.KubectlVpblu(ctx, "verify")
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	status, serr := c.KubectlVpblu(ctx, "status")
	if serr != nil {
		return serr
	}
	fmt.Printf("\n$ kubectl vpblu status\n%s\n$ kubectl vpblu verify\n%s", status, verify)
	return err
}

// waitReady waits until a controller leads and every node's agent is
// connected, and returns the leader's index.
func waitReady(ctx context.Context, c *sim.Cluster) (int, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, why := false, ""
		leader, err := c.Leader(ctx)
		if err != nil {
			why = err.Error()
		} else {
			ok, why = e2e.AgentsConnected(ctx, c, time.Time{})
		}
		if ok {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("cluster not ready in 2m: %s", why)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func down(slot int, runDir string) error {
	if raw, err := os.ReadFile(filepath.Join(runDir, "vpblu-sim.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid > 1 {
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmdline), "vpblu-sim") {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
	}
	if err := sim.Sweep(slot, runDir); err != nil {
		return err
	}
	fmt.Println("vpblu-sim: nothing left behind")
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n") + "\n"
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
