package main_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/ctrl/generation"
	"github.com/lumbrjx/vpblu/ctrl/manager/clustertest"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

const (
	leaseDuration = 4 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// Two controller processes share one API server; killing the leader hands
// every daemon to the other within the lease duration, with a SyncState
// later than anything the old leader sent.
func TestFailover(t *testing.T) {
	bin := buildController(t)
	c := clustertest.Start(t)
	ctx := context.Background()

	const nodes = 5
	var objs []*corev1.Node
	var names []string
	for i := 1; i <= nodes; i++ {
		objs = append(objs, clustertest.Node(i, nil))
		names = append(names, clustertest.NodeName(i))
	}
	if err := c.CreateNodes(ctx, objs, nodes); err != nil {
		t.Fatal(err)
	}
	tokens, err := c.Tokens(ctx, names, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Env.Client.Create(ctx, &v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}); err != nil {
		t.Fatal(err)
	}

	first := startProcess(t, bin, c, "--lease-duration", leaseDuration.String(), "--renew-deadline", "3s", "--retry-period", retryPeriod.String())
	// The first process leads before the second starts.
	first.waitLeading(t, 30*time.Second)
	second := startProcess(t, bin, c, "--lease-duration", leaseDuration.String(), "--renew-deadline", "3s", "--retry-period", retryPeriod.String())
	second.waitReady(t, 30*time.Second)

	pool := ca(t, c)
	var daemons []*agenttest.Agent
	for _, n := range names {
		// Each daemon knows both replicas, the standby first: it is told
		// "not leader" and moves on.
		a := agenttest.Start(clustertest.DaemonOptions(n, tokens[n], pool, second.streamAddr, first.streamAddr))
		t.Cleanup(a.Stop)
		daemons = append(daemons, a)
	}
	meshed := func(s agenttest.Snapshot) bool { return peers(s.State) == nodes-1 }
	var oldMax generation.Gen
	for _, a := range daemons {
		snap := waitAgent(t, a, 30*time.Second, "the mesh on the first leader", meshed)
		if snap.Addr != first.streamAddr {
			t.Fatalf("%s is served by %s, want the leader %s", snap.Node, snap.Addr, first.streamAddr)
		}
		for _, r := range snap.Log {
			oldMax = generation.Max(oldMax, r.Gen)
		}
	}

	killed := time.Now()
	first.kill(t)
	var slowest time.Duration
	for _, a := range daemons {
		snap := waitAgent(t, a, 3*leaseDuration, "a SyncState from the new leader", func(s agenttest.Snapshot) bool {
			return s.Addr == second.streamAddr && oldMax.Less(s.Applied) && meshed(s)
		})
		var sync *agenttest.Received
		for i := range snap.Log {
			if r := &snap.Log[i]; r.Kind == "sync" && oldMax.Less(r.Gen) {
				sync = r
				break
			}
		}
		if sync == nil || sync.Ack.String() != "ACK_OK" {
			t.Errorf("%s: no applied SyncState later than %v from the new leader", snap.Node, oldMax)
			continue
		}
		if sync.Gen.Epoch <= oldMax.Epoch {
			t.Errorf("%s: new leader's epoch %d, old leader's %d: want a later epoch", snap.Node, sync.Gen.Epoch, oldMax.Epoch)
		}
		slowest = max(slowest, time.Since(killed))
	}
	t.Logf("every daemon on the new leader %v after the kill (lease %v, retry %v)", slowest.Round(time.Millisecond), leaseDuration, retryPeriod)
	// The standby can only take the lease once it expired: lease duration
	// after the last renewal it saw, plus up to one retry period.
	if limit := leaseDuration + retryPeriod + time.Second; slowest > limit {
		t.Errorf("failover took %v, want within the lease duration (%v + retry %v + 1s for the daemons)", slowest, leaseDuration, retryPeriod)
	}
}
