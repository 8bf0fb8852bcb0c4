package manager_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/lumbrjx/vpblu/ctrl/manager"
	"github.com/lumbrjx/vpblu/ctrl/manager/clustertest"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

// controller is one in-process controller on a real API server.
type controller struct {
	addr string
	reg  *prometheus.Registry
}

// startController runs manager.Run as the binary would, with short
// intervals (mods may change them), until the test ends.
func startController(t *testing.T, c *clustertest.Cluster, mods ...func(*manager.Options)) *controller {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = io.Discard
	if os.Getenv("VPBLU_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	reg := prometheus.NewRegistry()
	opts := manager.Options{
		Config:               c.Env.Config,
		Namespace:            clustertest.Namespace,
		LeaderElection:       true,
		LeaseDuration:        4 * time.Second,
		Listener:             lis,
		TLSIPs:               []net.IP{net.IPv4(127, 0, 0, 1)},
		AgentServiceAccounts: []string{clustertest.Namespace + ":" + clustertest.AgentServiceAccount},
		StatusMinInterval:    100 * time.Millisecond,
		StatusHeartbeat:      time.Second,
		StatusQPS:            200,
		StatusBurst:          200,
		PolicyInterval:       200 * time.Millisecond,
		MetricsAddr:          "0",
		HealthAddr:           "0",
		Registry:             reg,
		Logger:               slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mods {
		m(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- manager.Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	return &controller{addr: lis.Addr().String(), reg: reg}
}

// metric returns the value of a counter or gauge series.
func (c *controller) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitAgent(t *testing.T, a *agenttest.Agent, what string, cond func(agenttest.Snapshot) bool) agenttest.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	snap, err := a.WaitFor(ctx, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v\nstate:\n%s", what, err, snap.State)
	}
	return snap
}

// events lists the Events regarding an object with a reason.
func events(t *testing.T, c *clustertest.Cluster, name, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := c.Env.Client.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func condition(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func ca(t *testing.T, c *clustertest.Cluster) *x509.CertPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := c.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func lines(s ...string) string { return strings.Join(s, "\n") }

// state renders a daemon state as agenttest does: config, cluster, then
// the other lines sorted.
func state(config, cluster string, rest ...string) string {
	rest = slices.Clone(rest)
	slices.Sort(rest)
	return lines(append([]string{config, cluster}, rest...)...)
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

var _ client.Object = (*eventsv1.Event)(nil)
