package manager_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/manager"
	"github.com/lumbrjx/vpblu/ctrl/manager/clustertest"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

// rotationKey is the key a fake daemon stages for generation gen.
func rotationKey(node string, gen uint64) []byte {
	k := sha256.Sum256(fmt.Appendf(nil, "vpblu test key %s generation %d", node, gen))
	return k[:]
}

// fakeRotator answers rotation commands as a daemon that carries out
// every step at once and confirms every handshake: a PREPARE stages a
// PENDING key, a RETIRE activates it, every command is reported done.
// Commands whose stage is in hold get no answer at all.
type fakeRotator struct {
	node string

	mu   sync.Mutex
	hold map[rotation.Stage]chan<- struct{}
}

func (f *fakeRotator) holdAt(s rotation.Stage) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{}, 1)
	if f.hold == nil {
		f.hold = map[rotation.Stage]chan<- struct{}{}
	}
	f.hold[s] = ch
	return ch
}

func (f *fakeRotator) reply(msg *meshpb.ControllerMessage) []*meshpb.AgentMessage {
	c := msg.GetRotation()
	if c == nil {
		return nil
	}
	st, ok := rotation.StageOf(c.GetPhase(), c.GetStep())
	if !ok {
		return nil
	}
	f.mu.Lock()
	held := f.hold[st]
	f.mu.Unlock()
	if held != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		return nil
	}
	var out []*meshpb.AgentMessage
	key := func(state meshpb.KeyState) {
		out = append(out, &meshpb.AgentMessage{Msg: &meshpb.AgentMessage_KeyReport{KeyReport: &meshpb.KeyReport{
			PublicKey: rotationKey(f.node, c.GetNewKeyGeneration()), Generation: c.GetNewKeyGeneration(), State: state}}})
	}
	if f.node == c.GetSubject() {
		switch st {
		case rotation.StagePrepare:
			key(meshpb.KeyState_KEY_STATE_PENDING)
		case rotation.StageRetire:
			key(meshpb.KeyState_KEY_STATE_ACTIVE)
		}
	}
	rep := &meshpb.RotationReport{Id: c.GetId(), Subject: c.GetSubject(), Phase: c.GetPhase(), Step: c.GetStep(),
		NewKeyGeneration: c.GetNewKeyGeneration(), Done: true}
	if st == rotation.StageDistribute || st == rotation.StageRekey || st == rotation.StageRollbackRestore {
		if f.node == c.GetSubject() {
			for _, p := range c.GetPeers() {
				rep.Confirmed = append(rep.Confirmed, p.GetNode())
			}
		} else {
			rep.Confirmed = []string{c.GetSubject()}
		}
	}
	return append(out, &meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Rotation{Rotation: rep}})
}

// stagesSent lists the rotation stages a daemon received for rotation
// id, in order, a resent stage once.
func stagesSent(log []agenttest.Received, id string) []rotation.Stage {
	var out []rotation.Stage
	for _, r := range log {
		c := r.Msg.GetRotation()
		if c == nil || c.GetId() != id {
			continue
		}
		st, _ := rotation.StageOf(c.GetPhase(), c.GetStep())
		if len(out) == 0 || out[len(out)-1] != st {
			out = append(out, st)
		}
	}
	return out
}

// TestKeyRotation runs key rotations against a real API server with fake
// daemons over real gRPC: the vpblu.io/rotate annotation starts one, the
// stages reach the daemons in order and the new key becomes the node's;
// a peer whose daemon goes away mid-Distribute rolls it back, and the
// status says why.
func TestKeyRotation(t *testing.T) {
	c := clustertest.Start(t)
	ctx := context.Background()
	const overlap = 3 * time.Second
	ctl := startController(t, c, func(o *manager.Options) {
		o.Rotation = rotation.Options{Overlap: overlap, Settle: 100 * time.Millisecond, Resend: time.Second}
	})
	pool := ca(t, c)
	names := []string{clustertest.NodeName(1), clustertest.NodeName(2), clustertest.NodeName(3)}
	if err := c.CreateNodes(ctx, []*corev1.Node{clustertest.Node(1, nil), clustertest.Node(2, nil), clustertest.Node(3, nil)}, 3); err != nil {
		t.Fatal(err)
	}
	tokens, err := c.Tokens(ctx, names, 3)
	if err != nil {
		t.Fatal(err)
	}
	daemons, rotators := map[string]*agenttest.Agent{}, map[string]*fakeRotator{}
	startDaemon := func(node string) {
		f := &fakeRotator{node: node}
		opts := clustertest.DaemonOptions(node, tokens[node], pool, ctl.addr)
		opts.Capabilities = []string{rotation.Capability}
		opts.Reply = f.reply
		a := agenttest.Start(opts)
		t.Cleanup(a.Stop)
		daemons[node], rotators[node] = a, f
	}
	for _, n := range names {
		startDaemon(n)
	}
	if err := c.Env.Client.Create(ctx, &v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}); err != nil {
		t.Fatal(err)
	}
	peerKey := func(a *agenttest.Agent, peer string, key []byte) bool {
		return strings.Contains(a.Snapshot().State, "peer "+peer+" key="+b64(key)+" ")
	}
	eventually(t, "the mesh and every key in the status", 20*time.Second, func() (bool, string) {
		for _, n := range names {
			vn := &v1alpha1.VpbluNode{}
			if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil || vn.Status.KeyGeneration != 1 {
				return false, fmt.Sprintf("%s: %v %+v", n, err, vn.Status)
			}
			for _, p := range names {
				if p != n && !peerKey(daemons[n], p, clustertest.PublicKey(p)) {
					return false, n + " has no peer " + p
				}
			}
		}
		return true, ""
	})
	vpbluNode := func(n string) *v1alpha1.VpbluNode {
		t.Helper()
		vn := &v1alpha1.VpbluNode{}
		if err := c.Env.Client.Get(ctx, client.ObjectKey{Name: n}, vn); err != nil {
			t.Fatal(err)
		}
		return vn
	}
	request := func(n, value string) {
		t.Helper()
		vn := vpbluNode(n)
		before := vn.DeepCopy()
		metav1.SetMetaDataAnnotation(&vn.ObjectMeta, v1alpha1.AnnotationRotate, value)
		if err := c.Env.Client.Patch(ctx, vn, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}
	rotatingCondition := func(vn *v1alpha1.VpbluNode) string {
		return condition(vn.Status.Conditions, v1alpha1.ConditionRotating)
	}

	t.Run("an annotation rotates a node through every stage in order", func(t *testing.T) {
		subject, peers := names[0], names[1:]
		request(subject, "request-1")
		newKey := rotationKey(subject, 2)
		eventually(t, "the rotation completed", 20*time.Second, func() (bool, string) {
			vn := vpbluNode(subject)
			st := vn.Status
			cond := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionRotating)
			done := st.KeyGeneration == 2 && st.PublicKey == b64(newKey) && st.RotationPhase == v1alpha1.RotationIdle &&
				st.PendingPublicKey == "" && st.LastRotateRequest == "request-1" && cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "Rotated"
			return done, fmt.Sprintf("generation %d phase %q pending %q request %q, Rotating %s", st.KeyGeneration, st.RotationPhase, st.PendingPublicKey, st.LastRotateRequest, rotatingCondition(vn))
		})
		id := rotation.ID(subject, 2)
		forward := []rotation.Stage{rotation.StageDistribute, rotation.StageSwitchToTemp, rotation.StageRekey, rotation.StageSwitchBack, rotation.StageRetire}
		if d := cmp.Diff(append([]rotation.Stage{rotation.StagePrepare}, forward...), stagesSent(daemons[subject].Snapshot().Log, id)); d != "" {
			t.Errorf("stages the subject received (-want +got):\n%s", d)
		}
		for _, p := range peers {
			if d := cmp.Diff(forward, stagesSent(daemons[p].Snapshot().Log, id)); d != "" {
				t.Errorf("stages %s received (-want +got):\n%s", p, d)
			}
			// The committed key reaches the peers' desired state.
			eventually(t, p+" gets the new key", 10*time.Second, func() (bool, string) {
				return peerKey(daemons[p], subject, newKey), daemons[p].Snapshot().State
			})
		}
		for _, n := range names {
			for i, r := range daemons[n].Snapshot().Log {
				if r.Ack != meshpb.AckCode_ACK_OK {
					t.Errorf("%s: command %d (%s %v) acked %v: generations must only grow", n, i, r.Kind, r.Gen, r.Ack)
				}
			}
		}
		if got := ctl.metric(t, "vpblu_controller_rotations_total", "outcome", "completed"); got != 1 {
			t.Errorf("rotations_total{completed} = %v, want 1", got)
		}
		if got := ctl.metric(t, "vpblu_controller_rotation_duration_seconds", "outcome", "completed"); got != 1 {
			t.Errorf("rotation_duration_seconds{completed} has %v samples, want 1", got)
		}
		if got := ctl.metric(t, "vpblu_controller_rotation_stage", "node", subject); got != 0 {
			t.Errorf("rotation_stage{node=%s} = %v after the rotation ended, want no series", subject, got)
		}
		eventually(t, "the rotation's Events", 10*time.Second, func() (bool, string) {
			started, rotated := events(t, c, subject, "RotationStarted"), events(t, c, subject, "Rotated")
			return len(started) == 1 && len(rotated) == 1, fmt.Sprintf("%d RotationStarted, %d Rotated", len(started), len(rotated))
		})
	})

	t.Run("a peer whose daemon leaves mid-Distribute rolls the rotation back", func(t *testing.T) {
		subject, gone := names[1], names[2]
		oldKey := b64(clustertest.PublicKey(subject))
		distributed := rotators[gone].holdAt(rotation.StageDistribute)
		request(subject, "request-2")
		select {
		case <-distributed:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never got DISTRIBUTE; %s: %s", gone, subject, rotatingCondition(vpbluNode(subject)))
		}
		daemons[gone].Stop()
		var why string
		eventually(t, "the rollback", overlap*6, func() (bool, string) {
			vn := vpbluNode(subject)
			cond := meta.FindStatusCondition(vn.Status.Conditions, v1alpha1.ConditionRotating)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "RolledBack" || vn.Status.RotationPhase != v1alpha1.RotationIdle {
				return false, fmt.Sprintf("phase %q, Rotating %s", vn.Status.RotationPhase, rotatingCondition(vn))
			}
			why = cond.Message
			return true, ""
		})
		if !strings.Contains(why, "Distribute timed out") || !strings.Contains(why, gone) {
			t.Errorf("Rotating condition says %q, want the Distribute timeout waiting for %s", why, gone)
		}
		st := vpbluNode(subject).Status
		if st.PublicKey != oldKey || st.KeyGeneration != 1 || st.PendingPublicKey != "" {
			t.Errorf("after the rollback key %s generation %d pending %q, want the old key %s, generation 1", st.PublicKey, st.KeyGeneration, st.PendingPublicKey, oldKey)
		}
		id := rotation.ID(subject, 2)
		want := []rotation.Stage{rotation.StagePrepare, rotation.StageDistribute, rotation.StageRollbackTeardown}
		if d := cmp.Diff(want, stagesSent(daemons[subject].Snapshot().Log, id)); d != "" {
			t.Errorf("stages the subject received (-want +got):\n%s", d)
		}
		if !peerKey(daemons[names[0]], subject, clustertest.PublicKey(subject)) {
			t.Errorf("%s lost %s's old key:\n%s", names[0], subject, daemons[names[0]].Snapshot().State)
		}
		if got := ctl.metric(t, "vpblu_controller_rotations_total", "outcome", "rolled_back"); got != 1 {
			t.Errorf("rotations_total{rolled_back} = %v, want 1", got)
		}
		eventually(t, "the RotationRolledBack Event", 10*time.Second, func() (bool, string) {
			return len(events(t, c, subject, "RotationRolledBack")) == 1, "none yet"
		})
		// The same request is not tried again; the node comes back.
		startDaemon(gone)
		time.Sleep(overlap / 2)
		if got := stagesSent(daemons[subject].Snapshot().Log, id); !slices.Equal(got, want) {
			t.Errorf("after the rollback the subject received %v, want nothing more", got)
		}
	})
}
