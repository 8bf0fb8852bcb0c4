package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// MeshPolicy is the name of the FullMesh TunnelPolicy the suite applies.
const MeshPolicy = "e2e-fullmesh"

// fullMesh returns the suite's FullMesh TunnelPolicy.
func fullMesh(port int) *v1alpha1.TunnelPolicy {
	return &v1alpha1.TunnelPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: MeshPolicy},
		Spec: v1alpha1.TunnelPolicySpec{
			Mode:                       v1alpha1.FullMesh,
			ListenPort:                 int32(port),
			PersistentKeepaliveSeconds: ptr.To[int32](25),
			Strict:                     ptr.To(true),
		},
	}
}

// ensureMesh applies the FullMesh policy if it is missing and waits until
// every node has a completed handshake with every other node.
func ensureMesh(t testing.TB, c Cluster) {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	err := c.Client().Create(ctx, fullMesh(c.ListenPort()))
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("apply FullMesh TunnelPolicy: %v", err)
	}
	waitMesh(t, c, time.Time{}, 60*time.Second)
}

// waitMesh waits until every node has every other node as a peer with a
// handshake after since, and returns how long that took.
func waitMesh(t testing.TB, c Cluster, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	return eventually(t, timeout, 50*time.Millisecond, "every node has a handshake with every other node", func() (bool, string) {
		return MeshFormed(ctx, c, since)
	})
}

// AwaitMesh polls MeshFormed until it holds, timeout passes or ctx ends,
// for callers outside a test (the simulator's main job, benchmarks).
func AwaitMesh(ctx context.Context, c Cluster, since time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := MeshFormed(ctx, c, since)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mesh not formed after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// MeshFormed reports whether every node has every other node as a peer
// with a handshake after since, and if not, why.
func MeshFormed(ctx context.Context, c Cluster, since time.Time) (bool, string) {
	nodes := c.Nodes()
	for _, n := range nodes {
		peers, err := c.WireGuard(ctx, n.Name)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.Name, err)
		}
		if len(peers) != len(nodes)-1 {
			return false, fmt.Sprintf("%s has %d peers, want %d", n.Name, len(peers), len(nodes)-1)
		}
		for _, p := range peers {
			if p.LastHandshake.IsZero() || p.LastHandshake.Before(since.Truncate(time.Second)) {
				return false, fmt.Sprintf("%s: peer %s has no handshake yet", n.Name, p.Endpoint)
			}
		}
	}
	return true, ""
}

// crossNodePairs returns one pod pair for every ordered pair of distinct
// nodes.
func crossNodePairs(c Cluster) [][2]Pod {
	first := map[string]Pod{}
	var order []string
	for _, p := range c.Pods() {
		if _, ok := first[p.Node]; !ok {
			first[p.Node] = p
			order = append(order, p.Node)
		}
	}
	var pairs [][2]Pod
	for _, a := range order {
		for _, b := range order {
			if a != b {
				pairs = append(pairs, [2]Pod{first[a], first[b]})
			}
		}
	}
	return pairs
}

// podsOn returns the pods of a node.
func podsOn(c Cluster, node string) []Pod {
	var out []Pod
	for _, p := range c.Pods() {
		if p.Node == node {
			out = append(out, p)
		}
	}
	return out
}

var families = []string{"v4", "v6"}

// pingAll pings every cross-node pair in both families and fails the test
// on any failure.
func pingAll(t testing.TB, c Cluster) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	for _, pair := range crossNodePairs(c) {
		for _, fam := range families {
			dst := pair[1].Addr(fam)
			if out, err := c.Ping(ctx, pair[0], dst, "-c", "1", "-W", "2"); err != nil {
				t.Errorf("ping %s (%s) → %s (%s) %s: %v\n%s", pair[0].Name, pair[0].Node, pair[1].Name, pair[1].Node, dst, err, out)
			}
		}
	}
}

// flows starts a flow in both directions between every cross-node pair in
// both families.
type flowSet struct {
	names []string
	flows []Flow

	once       sync.Once
	sent, lost uint64
	detail     string
}

// newFlowSet returns an empty set that is stopped when the test ends, so
// a test that fails half-way leaves no load behind to starve the next.
func newFlowSet(t testing.TB) *flowSet {
	fs := &flowSet{}
	t.Cleanup(func() { fs.stop(0) })
	return fs
}

func startFlows(t testing.TB, c Cluster, rate int) *flowSet {
	t.Helper()
	fs := newFlowSet(t)
	for _, pair := range crossNodePairs(c) {
		for _, fam := range families {
			fs.add(t, c, pair[0], pair[1], fam, flowRate(rate))
		}
	}
	return fs
}

// add starts a flow from → to in family fam at rate datagrams per second;
// if it cannot, the test ends (and with it the set's flows).
func (fs *flowSet) add(t testing.TB, c Cluster, from, to Pod, fam string, rate int) {
	t.Helper()
	f, err := c.StartFlow(from, to, to.Addr(fam), rate)
	if err != nil {
		t.Fatalf("start flow %s → %s %s: %v", from.Name, to.Name, fam, err)
	}
	fs.names = append(fs.names, fmt.Sprintf("%s→%s/%s", from.Name, to.Name, fam))
	fs.flows = append(fs.flows, f)
}

// stop stops every flow at once, waits grace for what is in flight, and
// returns the total lost and a description of the flows that lost
// datagrams. Later calls return what the first one measured.
func (fs *flowSet) stop(grace time.Duration) (sent, lost uint64, detail string) {
	fs.once.Do(func() {
		stats := make([]FlowStats, len(fs.flows))
		var wg sync.WaitGroup
		for i, f := range fs.flows {
			wg.Go(func() { stats[i] = f.Stop(grace) })
		}
		wg.Wait()
		var b strings.Builder
		for i, s := range stats {
			fs.sent += s.Sent
			fs.lost += s.Lost
			if s.Lost > 0 {
				b.WriteString(describeLoss(fs.names[i], s))
			}
		}
		fs.detail = b.String()
	})
	return fs.sent, fs.lost, fs.detail
}

func hostPrefix(a netip.Addr) v1alpha1.CIDR {
	return v1alpha1.CIDR(netip.PrefixFrom(a, a.BitLen()).String())
}

func deleteIfExists(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Delete(ctx, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// describeLoss is one line on a flow that lost datagrams, with what tells
// where they were lost.
func describeLoss(name string, s FlowStats) string {
	return fmt.Sprintf("  %s: sent=%d lost=%d first-lost-seq=%v longest-gap=%s send-errors=%d (%s) receiver-buffer-drops=%d\n",
		name, s.Sent, s.Lost, s.FirstLost, s.LongestGap, s.SendErrors, s.LastSendError, s.ReceiverDrops)
}
