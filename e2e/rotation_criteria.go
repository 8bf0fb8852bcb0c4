package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// rotationTimeout bounds one node's rotation, start to completion.
const rotationTimeout = 90 * time.Second

// The load the rotations run under: per ordered pod pair, IPv4 datagrams
// at 1000/s and IPv6 at 200/s (every path both ways, in both families),
// and a TCP transfer paced well below what the tunnels carry, so that a
// loss is the rotation's, not a queue the transfer filled.
const (
	rotationRateV4 = 1000
	rotationRateV6 = 200
	rotationTCPBps = 20_000_000
)

// TestKeyRotation (§11, §12.6, §12.12): rotating every node's key in turn
// under continuous load (sequence-numbered UDP both ways between every
// pair of nodes, a TCP stream) loses no datagram and lets no cleartext
// pod packet onto the underlay; afterwards every node holds only its new
// private key and no node knows an old public key. A BlockPolicy applied
// mid-rotation is enforced and the rotation completes; a peer whose agent
// dies mid-Distribute rolls the rotation back, says why in the status,
// and the old key keeps carrying traffic without a loss.
func TestKeyRotation(t *testing.T, c Cluster) {
	ensureMesh(t, c)
	waitAgentsConnected(t, c, time.Time{}, 60*time.Second)
	t.Run("every-node-under-load", func(t *testing.T) { rotateEveryNode(t, c) })
	t.Run("block-policy-mid-rotation", func(t *testing.T) { blockMidRotation(t, c) })
	t.Run("rollback-when-a-peer-dies", func(t *testing.T) { rollbackWhenAPeerDies(t, c) })
}

func rotateEveryNode(t *testing.T, c Cluster) {
	ctx := ctxFor(t, 10*time.Minute)
	before := map[string]v1alpha1.VpbluNodeStatus{}
	old := map[string]string{} // old public key -> node
	for _, n := range c.Nodes() {
		st := vpbluNodeStatus(t, ctx, c, n.Name)
		before[n.Name] = st
		old[st.PublicKey] = n.Name
	}
	// The same load without a rotation first: a loss then is the
	// machine's (too little CPU for the flows), and would make the
	// measurement below meaningless.
	fs := startPairFlows(t, c, crossNodePairs(c))
	tcp := startTCP(t, ctx, c, crossNodePairs(c)[0])
	time.Sleep(5 * time.Second)
	tcp.stop()
	sent, lost, detail := fs.stop(flowGrace)
	figure(t, "rotation-baseline-lost-packets", lost)
	if lost != 0 {
		t.Errorf("without any rotation the flows lost %d of %d datagrams: the machine cannot carry this load, so a loss during the rotations would prove nothing:\n%s", lost, sent, detail)
	}

	capture, err := c.StartCapture(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fs = startPairFlows(t, c, crossNodePairs(c))
	tcp = startTCP(t, ctx, c, crossNodePairs(c)[0])

	var took []time.Duration
	for i, n := range c.Nodes() {
		request := fmt.Sprintf("e2e-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		requestRotation(t, ctx, c, n.Name, request)
		st := waitRotated(t, ctx, c, n.Name, request, before[n.Name].KeyGeneration+1)
		took = append(took, time.Since(start))
		t.Logf("%s rotated to key generation %d in %s", n.Name, st.KeyGeneration, time.Since(start).Round(time.Millisecond))
	}
	// Datagrams still in flight after the last rotation are given time
	// to arrive before the flows stop.
	time.Sleep(time.Second)
	tcpRuns, tcpErrs := tcp.stop()
	sent, lost, detail = fs.stop(flowGrace)
	got := capture.Stop()
	figure(t, "rotation-lost-packets", lost)
	figure(t, "rotation-cleartext-packets", got.Cleartext)
	figure(t, "rotation-max-ms", ms(percentile(took, 100)))
	figure(t, "rotation-tcp-transfers", tcpRuns)
	if lost != 0 {
		t.Errorf("flows lost %d of %d datagrams while every node rotated its key:\n%s", lost, sent, detail)
	}
	if got.Cleartext != 0 {
		t.Errorf("%d cleartext pod packets on the underlay during the rotations, e.g.\n%v", got.Cleartext, got.Samples)
	}
	if got.WireGuard == 0 {
		t.Errorf("the capture saw no WireGuard packet: it cannot have seen a leak either")
	}
	if tcpRuns == 0 {
		t.Errorf("no TCP transfer completed during the rotations")
	}
	for _, err := range tcpErrs {
		t.Errorf("a TCP transfer across the rotations failed: %v", err)
	}

	for _, n := range c.Nodes() {
		st := vpbluNodeStatus(t, ctx, c, n.Name)
		if st.KeyGeneration != before[n.Name].KeyGeneration+1 || st.PublicKey == before[n.Name].PublicKey {
			t.Errorf("%s: key generation %d (%s), want %d with a new key", n.Name, st.KeyGeneration, st.PublicKey, before[n.Name].KeyGeneration+1)
		}
		checkOnlyKey(t, ctx, c, n.Name, st)
		checkNoRotationLeft(t, ctx, c, n.Name)
	}
	// No node may still know an old key: not as a peer, not anywhere.
	eventually(t, 10*time.Second, 100*time.Millisecond, "no old public key in any wg show", func() (bool, string) {
		for _, n := range c.Nodes() {
			peers, err := c.WireGuard(ctx, n.Name)
			if err != nil {
				return false, err.Error()
			}
			for _, p := range peers {
				if owner, ok := old[p.PublicKey]; ok {
					return false, fmt.Sprintf("%s still has %s's old key %s as a peer", n.Name, owner, p.PublicKey)
				}
			}
		}
		return true, ""
	})
	waitMesh(t, c, time.Time{}, 30*time.Second)
	pingAll(t, c)
}

// blockMidRotation applies a BlockPolicy while a node rotates: the block
// holds on whichever path the traffic takes, and the rotation completes.
func blockMidRotation(t *testing.T, c Cluster) {
	ctx := ctxFor(t, 5*time.Minute)
	waitNoRotation(t, ctx, c)
	pairs := crossNodePairs(c)
	from, to := pairs[0][0], pairs[0][1]
	subject := from.Node
	blocked, err := c.StartFlow(from, to, to.IPv4, flowRate(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer blocked.Stop(0)
	// The reverse direction is not blocked: while it still arrives, the
	// blocked flow's silence is the block, not a stalled machine.
	control, err := c.StartFlow(to, from, from.IPv4, flowRate(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer control.Stop(0)
	// Every other pair must not notice the block or the rotation.
	var others [][2]Pod
	for _, p := range pairs {
		if p != pairs[0] {
			others = append(others, p)
		}
	}
	fs := startPairFlows(t, c, others)
	policy := &v1alpha1.BlockPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-block-mid-rotation"},
		Spec: v1alpha1.BlockPolicySpec{Rules: []v1alpha1.BlockRule{{
			From: []v1alpha1.CIDR{hostPrefix(from.IPv4)},
			To:   []v1alpha1.CIDR{hostPrefix(to.IPv4)},
		}}},
	}
	defer func() {
		if err := deleteIfExists(context.Background(), c.Client(), policy); err != nil {
			t.Errorf("delete the BlockPolicy: %v", err)
		}
	}()

	gen := vpbluNodeStatus(t, ctx, c, subject).KeyGeneration
	request := fmt.Sprintf("e2e-block-%d", time.Now().UnixNano())
	requestRotation(t, ctx, c, subject, request)
	phase := waitPhase(t, ctx, c, subject, v1alpha1.RotationDistribute, v1alpha1.RotationActivate)
	// The block is seen as the blocked flow's silence, so both directions
	// must be arriving when it is applied (a flow not yet started, or
	// stalled, would look blocked at once).
	// Under emulation a datagram every 10 ms arrives in bursts: the
	// windows stretch with the slowdown.
	arriving, silent := scaled(50*time.Millisecond), scaled(150*time.Millisecond)
	eventually(t, 5*time.Second, 5*time.Millisecond, "both directions of the pair arriving before the policy", func() (bool, string) {
		b, c := blocked.Stats().LastReceived, control.Stats().LastReceived
		return time.Since(b) < arriving && time.Since(c) < arriving,
			fmt.Sprintf("last datagrams %s and %s ago", time.Since(b).Round(time.Millisecond), time.Since(c).Round(time.Millisecond))
	})
	applied := time.Now()
	if err := c.Client().Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Logf("BlockPolicy applied while %s's rotation was in %s", subject, phase)
	// An agent applies commands in stream order: the block waits for the
	// rotation step under way (creating wg-rot starts a device process
	// with the userspace backend), so it may take longer than §12.4's
	// second here.
	eventually(t, blockMidRotationBound, 10*time.Millisecond, "block enforced mid-rotation", func() (bool, string) {
		b, c := blocked.Stats().LastReceived, control.Stats().LastReceived
		return time.Since(b) > silent && c.Sub(b) > silent,
			fmt.Sprintf("datagrams still arriving %s after the policy", time.Since(applied).Round(time.Millisecond))
	})
	figure(t, "rotation-block-apply-ms", ms(max(blocked.Stats().LastReceived.Sub(applied), 0)))
	t.Logf("block enforced while %s's rotation was in %q", subject, vpbluNodeStatus(t, ctx, c, subject).RotationPhase)
	if out, err := c.Ping(ctx, from, to.IPv4, "-c", "2", "-i", "0.2", "-W", "1"); err == nil {
		t.Errorf("ping %s → %s passed mid-rotation although a BlockPolicy drops it:\n%s", from.Name, to.Name, out)
	}
	waitRotated(t, ctx, c, subject, request, gen+1)
	// The block still holds on the re-keyed tunnel.
	stopped := blocked.Stats().LastReceived
	time.Sleep(500 * time.Millisecond)
	if last := blocked.Stats().LastReceived; last.After(stopped) {
		t.Errorf("blocked datagrams arrived again after the rotation completed (last at %s)", last.Format(time.StampMilli))
	}
	if out, err := c.Ping(ctx, from, to.IPv4, "-c", "2", "-i", "0.2", "-W", "1"); err == nil {
		t.Errorf("ping %s → %s passed after the rotation although a BlockPolicy drops it:\n%s", from.Name, to.Name, out)
	}
	if err := c.Client().Delete(ctx, policy); err != nil {
		t.Fatal(err)
	}
	lifted := time.Now()
	eventually(t, 2*time.Second, 20*time.Millisecond, "traffic restored after the block is lifted", func() (bool, string) {
		return blocked.Stats().LastReceived.After(lifted), "no datagram since the policy was deleted"
	})
	sent, lost, detail := fs.stop(flowGrace)
	figure(t, "rotation-block-bystander-lost-packets", lost)
	if lost != 0 {
		t.Errorf("flows the block does not match lost %d of %d datagrams:\n%s", lost, sent, detail)
	}
}

// rollbackWhenAPeerDies kills a peer's agent while the subject is in
// Distribute: the rotation rolls back, says why, and the old key keeps
// carrying the traffic between the nodes that stayed up, losslessly.
func rollbackWhenAPeerDies(t *testing.T, c Cluster) {
	ctx := ctxFor(t, 5*time.Minute)
	waitNoRotation(t, ctx, c)
	nodes := c.Nodes()
	if len(nodes) < 3 {
		t.Fatalf("the rollback needs 3 nodes, the cluster has %d", len(nodes))
	}
	subject, stays, dies := nodes[0].Name, nodes[1].Name, nodes[2].Name
	// A policy selecting every node makes the overlap window, and so the
	// time to notice the dead peer, short.
	const overlap = 10 * time.Second
	policy := &v1alpha1.RotationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-rotation-overlap"},
		Spec:       v1alpha1.RotationPolicySpec{Schedule: "0 0 1 1 *", OverlapWindow: metav1.Duration{Duration: overlap}},
	}
	if err := c.Client().Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := deleteIfExists(context.Background(), c.Client(), policy); err != nil {
			t.Errorf("delete the RotationPolicy: %v", err)
		}
	}()
	beforeSt := vpbluNodeStatus(t, ctx, c, subject)
	var pairs [][2]Pod
	for _, p := range crossNodePairs(c) {
		if (p[0].Node == subject && p[1].Node == stays) || (p[0].Node == stays && p[1].Node == subject) {
			pairs = append(pairs, p)
		}
	}
	fs := startPairFlows(t, c, pairs)
	request := fmt.Sprintf("e2e-rollback-%d", time.Now().UnixNano())
	requestRotation(t, ctx, c, subject, request)
	waitPhase(t, ctx, c, subject, v1alpha1.RotationDistribute)
	if err := c.KillAgent(ctx, dies); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var reason string
	eventually(t, 6*overlap, 50*time.Millisecond, subject+"'s rotation rolled back", func() (bool, string) {
		vn, err := vpbluNode(ctx, c, subject)
		if err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(vn.Status.Conditions, v1alpha1.ConditionRotating)
		if cond == nil || vn.Status.LastRotateRequest != request || cond.Status != metav1.ConditionFalse || vn.Status.RotationPhase != v1alpha1.RotationIdle {
			return false, fmt.Sprintf("phase %q, Rotating %+v", vn.Status.RotationPhase, cond)
		}
		reason = cond.Reason + ": " + cond.Message
		return true, ""
	})
	figure(t, "rotation-rollback-ms", ms(time.Since(killed)))
	t.Logf("%s: %s", subject, reason)
	if !strings.HasPrefix(reason, "RolledBack: ") || !strings.Contains(reason, "Distribute") || !strings.Contains(reason, dies) {
		t.Errorf("Rotating condition %q, want RolledBack naming Distribute and %s", reason, dies)
	}
	after := vpbluNodeStatus(t, ctx, c, subject)
	if after.PublicKey != beforeSt.PublicKey || after.KeyGeneration != beforeSt.KeyGeneration || after.PendingPublicKey != "" {
		t.Errorf("after the rollback key %s generation %d pending %q, want the old key %s generation %d",
			after.PublicKey, after.KeyGeneration, after.PendingPublicKey, beforeSt.PublicKey, beforeSt.KeyGeneration)
	}
	eventually(t, 10*time.Second, 100*time.Millisecond, "the RotationPolicy records the rollback", func() (bool, string) {
		rp := &v1alpha1.RotationPolicy{}
		if err := c.Client().Get(ctx, client.ObjectKey{Name: policy.Name}, rp); err != nil {
			return false, err.Error()
		}
		for _, nr := range rp.Status.Nodes {
			if nr.Node == subject && strings.Contains(nr.Message, "rolled back") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("status.nodes %+v", rp.Status.Nodes)
	})
	// The old key still carries the traffic between the nodes that stayed.
	time.Sleep(time.Second)
	sent, lost, detail := fs.stop(flowGrace)
	figure(t, "rotation-rollback-lost-packets", lost)
	if lost != 0 {
		t.Errorf("flows between %s and %s lost %d of %d datagrams across the rollback:\n%s", subject, stays, lost, sent, detail)
	}
	peers, err := c.WireGuard(ctx, stays)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range peers {
		found = found || p.PublicKey == beforeSt.PublicKey
	}
	if !found {
		t.Errorf("%s no longer has %s's old key %s as a peer after the rollback", stays, subject, beforeSt.PublicKey)
	}
	checkOnlyKey(t, ctx, c, subject, after)
	checkNoRotationLeft(t, ctx, c, subject)

	// The dead agent comes back, ends its part of the rotation and the
	// mesh forms again.
	restarted := time.Now()
	if err := c.StartAgent(ctx, dies); err != nil {
		t.Fatal(err)
	}
	waitAgentsConnected(t, c, restarted, 60*time.Second, dies)
	waitMesh(t, c, time.Time{}, 60*time.Second)
	eventually(t, 30*time.Second, 200*time.Millisecond, dies+" ends its part of the rolled back rotation", func() (bool, string) {
		dp, err := c.DataPlane(ctx, dies)
		if err != nil {
			return false, err.Error()
		}
		if line := rotationLeftover(dp); line != "" {
			return false, line
		}
		return true, ""
	})
	pingAll(t, c)
}

// vpbluNode reads a node's VpbluNode.
func vpbluNode(ctx context.Context, c Cluster, node string) (*v1alpha1.VpbluNode, error) {
	vn := &v1alpha1.VpbluNode{}
	if err := c.Client().Get(ctx, client.ObjectKey{Name: node}, vn); err != nil {
		return nil, fmt.Errorf("get vpblunode %s: %w", node, err)
	}
	return vn, nil
}

func vpbluNodeStatus(t testing.TB, ctx context.Context, c Cluster, node string) v1alpha1.VpbluNodeStatus {
	t.Helper()
	vn, err := vpbluNode(ctx, c, node)
	if err != nil {
		t.Fatal(err)
	}
	return vn.Status
}

// requestRotation sets the vpblu.io/rotate annotation of a node's
// VpbluNode to a new value, which asks for a rotation.
func requestRotation(t testing.TB, ctx context.Context, c Cluster, node, value string) {
	t.Helper()
	vn, err := vpbluNode(ctx, c, node)
	if err != nil {
		t.Fatal(err)
	}
	before := vn.DeepCopy()
	metav1.SetMetaDataAnnotation(&vn.ObjectMeta, v1alpha1.AnnotationRotate, value)
	if err := c.Client().Patch(ctx, vn, client.MergeFrom(before)); err != nil {
		t.Fatalf("request a rotation of %s: %v", node, err)
	}
}

// waitNoRotation waits until no node shows a rotation in progress (one
// an earlier part left behind must not be taken for this part's).
func waitNoRotation(t testing.TB, ctx context.Context, c Cluster) {
	t.Helper()
	eventually(t, rotationTimeout, 100*time.Millisecond, "no rotation in progress", func() (bool, string) {
		for _, n := range c.Nodes() {
			vn, err := vpbluNode(ctx, c, n.Name)
			if err != nil {
				return false, err.Error()
			}
			if p := vn.Status.RotationPhase; p != "" && p != v1alpha1.RotationIdle {
				return false, fmt.Sprintf("%s in %s", n.Name, p)
			}
		}
		return true, ""
	})
}

// waitPhase waits until a node's status shows one of phases and returns
// it.
func waitPhase(t testing.TB, ctx context.Context, c Cluster, node string, phases ...v1alpha1.RotationPhase) v1alpha1.RotationPhase {
	t.Helper()
	var got v1alpha1.RotationPhase
	eventually(t, rotationTimeout, 10*time.Millisecond, fmt.Sprintf("%s in rotation phase %v", node, phases), func() (bool, string) {
		vn, err := vpbluNode(ctx, c, node)
		if err != nil {
			return false, err.Error()
		}
		got = vn.Status.RotationPhase
		for _, p := range phases {
			if got == p {
				return true, ""
			}
		}
		return false, fmt.Sprintf("phase %q, Rotating %+v", got, meta.FindStatusCondition(vn.Status.Conditions, v1alpha1.ConditionRotating))
	})
	return got
}

// waitRotated waits until the rotation of node asked for by request
// completed at key generation gen, and fails at once if it rolled back.
func waitRotated(t testing.TB, ctx context.Context, c Cluster, node, request string, gen int64) v1alpha1.VpbluNodeStatus {
	t.Helper()
	var st v1alpha1.VpbluNodeStatus
	eventually(t, rotationTimeout, 50*time.Millisecond, fmt.Sprintf("%s rotated to key generation %d", node, gen), func() (bool, string) {
		vn, err := vpbluNode(ctx, c, node)
		if err != nil {
			return false, err.Error()
		}
		st = vn.Status
		cond := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionRotating)
		if st.LastRotateRequest == request && cond != nil && cond.Reason == "RolledBack" {
			t.Fatalf("%s's rotation rolled back: %s", node, cond.Message)
		}
		done := st.LastRotateRequest == request && st.KeyGeneration == gen && st.PendingPublicKey == "" &&
			st.RotationPhase == v1alpha1.RotationIdle && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "Rotated"
		return done, fmt.Sprintf("request %q, generation %d, phase %q, Rotating %+v", st.LastRotateRequest, st.KeyGeneration, st.RotationPhase, cond)
	})
	return st
}

// checkOnlyKey checks that a node's agent keeps exactly one private key,
// the one whose public key and generation its status shows.
func checkOnlyKey(t testing.TB, ctx context.Context, c Cluster, node string, st v1alpha1.VpbluNodeStatus) {
	t.Helper()
	files, err := c.KeyFiles(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("key-%d.key", st.KeyGeneration)
	if len(files) != 1 || files[want] == nil {
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		t.Errorf("%s keeps key files %v, want only %s", node, names, want)
		return
	}
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(files[want])))
	if err != nil {
		t.Errorf("%s: %s does not hold a key: %v", node, want, err)
		return
	}
	if pub := k.PublicKey().String(); pub != st.PublicKey {
		t.Errorf("%s: %s holds the private key of %s, the status says %s", node, want, pub, st.PublicKey)
	}
}

// checkNoRotationLeft checks that a node runs no temporary interface,
// rule or table of a rotation.
func checkNoRotationLeft(t testing.TB, ctx context.Context, c Cluster, node string) {
	t.Helper()
	dp, err := c.DataPlane(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if line := rotationLeftover(dp); line != "" {
		t.Errorf("%s: a rotation left %q behind", node, line)
	}
}

// rotationLeftover returns a line of a data-plane rendering that belongs
// to a rotation's temporary path (wg-rot, its rule and table), "" if none.
func rotationLeftover(dataPlane string) string {
	for _, l := range strings.Split(dataPlane, "\n") {
		if strings.Contains(l, "wg-rot") || strings.Contains(l, "51821") {
			return l
		}
	}
	return ""
}

// startPairFlows starts a flow for every ordered pair in both families,
// at rotationRateV4 and rotationRateV6 datagrams per second (less under
// emulation, see flowRate).
func startPairFlows(t testing.TB, c Cluster, pairs [][2]Pod) *flowSet {
	t.Helper()
	fs := newFlowSet(t)
	for _, pair := range pairs {
		for _, fam := range families {
			rate := flowRate(rotationRateV4)
			if fam == "v6" {
				rate = flowRate(rotationRateV6)
			}
			fs.add(t, c, pair[0], pair[1], fam, rate)
		}
	}
	return fs
}

// blockMidRotationBound bounds how long a BlockPolicy applied during a
// rotation's Distribute takes to be enforced.
const blockMidRotationBound = 3 * time.Second

// flowGrace is how long datagrams already sent get to arrive: a busy
// machine delays them in the tunnels' queues rather than dropping them.
const flowGrace = 2 * time.Second

// tcpLoad runs paced iperf3 TCP transfers back to back between one pair
// until stopped.
type tcpLoad struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	runs   int
	errs   []error
}

// startTCP starts the transfers; they stop by the end of the test at the
// latest. Under emulation the pace drops with the slowdown.
func startTCP(t testing.TB, ctx context.Context, c Cluster, pair [2]Pod) *tcpLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &tcpLoad{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { l.stop() })
	pace := int(float64(rotationTCPBps) / slowdown)
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			bps, err := c.IperfPaced(ctx, pair[0], pair[1], pair[1].IPv4, 3*time.Second, pace)
			l.mu.Lock()
			switch {
			case ctx.Err() != nil:
			case err != nil:
				l.errs = append(l.errs, err)
			case bps <= 0:
				l.errs = append(l.errs, fmt.Errorf("%s → %s moved nothing", pair[0].Name, pair[1].Name))
			default:
				l.runs++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// stop ends the transfers (the one under way is cut, not counted) and
// returns how many completed and the errors of those that failed.
func (l *tcpLoad) stop() (int, []error) {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs, l.errs
}
