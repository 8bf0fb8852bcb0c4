package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// TestControllerDown (§12.7): with every controller replica down the data
// plane keeps forwarding; when they return, every agent reconnects and
// resyncs without losing a datagram.
func TestControllerDown(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)
	fs := startFlows(t, c, 200)
	if err := c.StopControllers(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	returned := time.Now()
	if err := c.StartControllers(ctx); err != nil {
		t.Fatal(err)
	}
	took := waitAgentsConnected(t, c, returned, 60*time.Second)
	figure(t, "controller-return-resync-ms", ms(took))
	time.Sleep(time.Second)
	sent, lost, detail := fs.stop(300 * time.Millisecond)
	figure(t, "controller-down-lost-packets", lost)
	if lost != 0 {
		t.Errorf("flows lost %d of %d datagrams across the controller outage:\n%s", lost, sent, detail)
	}
}

// TestLeaderFailover (§12.11): killing the leading controller hands every
// agent to the standby within the lease duration, without losing a
// datagram.
func TestLeaderFailover(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	ctx := ctxFor(t, 3*time.Minute)
	waitAgentsConnected(t, c, time.Time{}, 60*time.Second)
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs := startFlows(t, c, 200)
	killed := time.Now()
	if err := c.KillController(ctx, leader); err != nil {
		t.Fatal(err)
	}
	eventually(t, c.LeaseDuration()+10*time.Second, 50*time.Millisecond, "a new leader", func() (bool, string) {
		l, err := c.Leader(ctx)
		return err == nil && l != leader, fmt.Sprintf("leader %d, %v", l, err)
	})
	waitAgentsConnected(t, c, killed, c.LeaseDuration()+20*time.Second)
	took := time.Since(killed)
	figure(t, "failover-ms", ms(took))
	// Within the lease duration, plus the standby's retry period (it
	// sees the expiry at its next attempt, an eighth of the lease in the
	// simulator), plus the agents' retry: while a standby answers "not
	// leader" they poll at most 2.4 s apart (stream.Backoff.StandbyMax
	// with jitter); 5 s leaves room for a loaded machine.
	checkTiming(t, "serving every agent from the new leader after the kill", took, c.LeaseDuration()*9/8+5*time.Second)
	time.Sleep(time.Second)
	sent, lost, detail := fs.stop(300 * time.Millisecond)
	figure(t, "failover-lost-packets", lost)
	if lost != 0 {
		t.Errorf("flows lost %d of %d datagrams across the failover:\n%s", lost, sent, detail)
	}
	if err := c.StartControllers(ctx); err != nil {
		t.Fatalf("restart the killed replica: %v", err)
	}
}

// waitAgentsConnected waits until AgentsConnected holds, and returns how
// long it took.
func waitAgentsConnected(t testing.TB, c Cluster, since time.Time, timeout time.Duration, nodes ...string) time.Duration {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	start := time.Now()
	eventually(t, timeout, 50*time.Millisecond, "every agent connected to the leader", func() (bool, string) {
		return AgentsConnected(ctx, c, since, nodes...)
	})
	return time.Since(start)
}

// AgentsConnected reports whether the VpbluNodes of nodes (every node when
// none is named) say their agents are connected and were seen after
// since, and if not, why.
func AgentsConnected(ctx context.Context, c Cluster, since time.Time, nodes ...string) (bool, string) {
	list := &v1alpha1.VpbluNodeList{}
	if err := c.Client().List(ctx, list); err != nil {
		return false, err.Error()
	}
	connected := map[string]bool{}
	for _, vn := range list.Items {
		// lastSeen is written whenever a stream opens; the Connected
		// condition alone does not change when an agent moves from one
		// leader to the next.
		cond := meta.FindStatusCondition(vn.Status.Conditions, v1alpha1.ConditionConnected)
		seen := vn.Status.LastSeen
		if cond != nil && cond.Status == "True" && seen != nil && !seen.Time.Before(since.Truncate(time.Second)) {
			connected[vn.Name] = true
		}
	}
	if len(nodes) == 0 {
		for _, n := range c.Nodes() {
			nodes = append(nodes, n.Name)
		}
	}
	for _, n := range nodes {
		if !connected[n] {
			return false, fmt.Sprintf("%s not (re)connected since %s", n, since.Format(time.TimeOnly))
		}
	}
	return true, ""
}
