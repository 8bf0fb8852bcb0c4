package sim

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/e2e"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

// TestE2E runs the acceptance suite of SPEC §12 against a simulated
// 3-node cluster: real API server, real controllers, real agents, real
// eBPF and WireGuard (the kernel backend when the kernel has WireGuard,
// userspace otherwise).
func TestE2E(t *testing.T) {
	privtest.Require(t, "build a cluster out of network namespaces, eBPF programs and WireGuard interfaces")
	if testing.Short() {
		t.Skip("the acceptance suite takes minutes; not in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// VPBLU_SIM_SLOT lets two suites run side by side (slot 1 by default).
	slot := 1
	if v := os.Getenv("VPBLU_SIM_SLOT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 255 {
			t.Fatalf("VPBLU_SIM_SLOT=%q: want 1-255", v)
		}
		slot = n
	}
	c, err := Start(ctx, Options{Slot: slot, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatalf("start the simulated cluster: %v", err)
	}
	var failed []string
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c)
		}
		if err := c.Close(); err != nil {
			t.Errorf("tear down: %v", err)
		}
		// Last, so that a log cut to its tail still names them.
		if len(failed) > 0 {
			t.Logf("failed criteria (their messages are above the processes' logs): %s", strings.Join(failed, ", "))
		}
	})
	t.Logf("cluster up: %d nodes, backend %s", len(c.Nodes()), c.Backend())
	failed = e2e.Run(t, c)
}

func dumpLogs(t *testing.T, c *Cluster) {
	for _, p := range c.Controllers() {
		if p != nil {
			t.Logf("--- %s\n%s", p.Name, p.Tail(8000))
		}
	}
	for _, n := range c.Nodes() {
		if p := c.Agent(n.Name); p != nil {
			t.Logf("--- %s\n%s", p.Name, p.Tail(8000))
		}
	}
}
