package e2e

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestAgentRestart (§12.10, §12.12): restarting an agent changes no rule,
// route, peer, map entry or nftables rule, leaks nothing in cleartext, and
// loses no datagram. WireGuard lives outside the agent process with both
// backends (the kernel module, or the wireguard-go daemon the agent
// spawns), so the tunnel does not notice the restart.
func TestAgentRestart(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)
	node := c.Nodes()[0].Name
	before, err := c.DataPlane(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	capture, err := c.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs := startFlows(t, c, 500)
	restarted := time.Now()
	if err := c.RestartAgent(ctx, node); err != nil {
		capture.Stop()
		t.Fatal(err)
	}
	took := waitAgentsConnected(t, c, restarted, 30*time.Second, node)
	figure(t, "agent-restart-reconnect-ms", ms(took))
	time.Sleep(time.Second)
	sent, lost, detail := fs.stop(300 * time.Millisecond)
	got := capture.Stop()
	figure(t, "agent-restart-lost-packets", lost)
	figure(t, "agent-restart-cleartext-packets", got.Cleartext)
	if lost != 0 {
		t.Errorf("flows lost %d of %d datagrams across an agent restart (%s backend):\n%s", lost, sent, c.Backend(), detail)
	}
	if got.Cleartext != 0 {
		t.Errorf("%d cleartext pod packets during the restart, e.g.\n%v", got.Cleartext, got.Samples)
	}
	after, err := c.DataPlane(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the agent restart changed the data plane (-before +after):\n%s", diff)
	}
}

// TestStrictStartup (§12.12): agents starting on a cluster that already
// has a strict mesh policy never let a cross-node pod packet out in
// cleartext: from the moment an agent is up, traffic is encrypted or
// dropped.
func TestStrictStartup(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)
	if err := c.UninstallAgents(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.StartAgents(ctx); err != nil {
		t.Fatal(err)
	}
	// StartAgents returns once every agent's data plane is installed
	// (fail-closed), not once the mesh is up: traffic starts now.
	capture, err := c.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs := startFlows(t, c, 200)
	took := waitMesh(t, c, time.Time{}, 60*time.Second)
	figure(t, "startup-mesh-ms", ms(took))
	time.Sleep(500 * time.Millisecond)
	fs.stop(300 * time.Millisecond)
	got := capture.Stop()
	figure(t, "startup-cleartext-packets", got.Cleartext)
	if got.Cleartext != 0 {
		t.Errorf("%d cleartext pod packets while agents started, e.g.\n%v", got.Cleartext, got.Samples)
	}
	pingAll(t, c)
}
