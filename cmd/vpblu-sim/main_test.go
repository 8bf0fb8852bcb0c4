package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/sim"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

// The README's main job (make sim) runs `vpblu-sim up`. This runs it the
// way a user does, with --exit so it ends, and checks it shows the mesh
// working and leaves nothing behind.
func TestUpShowsAWorkingMeshAndLeavesNothingBehind(t *testing.T) {
	privtest.Require(t, "build a simulated cluster out of network namespaces")
	if testing.Short() {
		t.Skip("brings up a whole simulated cluster; not in -short")
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through make test, or set it from hack/test-assets.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "../vpblu-controller", "../vpblu-agent", "../kubectl-vpblu", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const slot = "4" // TestE2E uses 1, the benchmarks 3: they may run side by side.
	up := exec.CommandContext(ctx, filepath.Join(bin, "vpblu-sim"), "up", "--exit", "--slot", slot)
	up.Env = append(os.Environ(), "VPBLU_BIN_DIR="+bin)
	out, err := up.CombinedOutput()
	t.Logf("vpblu-sim up --exit:\n%s", out)
	if err != nil {
		t.Fatalf("vpblu-sim up: %v", err)
	}
	for _, want := range []string{
		"agents connected",
		"mesh formed in",
		"kubectl vpblu status",
		"3 nodes, 3 tunnels wanted",
		"handshake",
		"0 cleartext pod packets",
		"only WireGuard crossed the underlay",
		"kubectl vpblu verify",
		"checks passed: 3 nodes, 3 tunnels",
		"Dashboard: http://",
		"tearing down",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if _, err := os.Stat("/tmp/vpblu-sim-" + slot); err == nil {
		t.Errorf("/tmp/vpblu-sim-%s left behind", slot)
	}
	ns, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(ns), "\n") {
		if strings.HasPrefix(l, sim.Plan{Slot: 4}.Prefix()+"-") {
			t.Errorf("namespace left behind: %s", l)
		}
	}
}
