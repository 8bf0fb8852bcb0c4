package kubectlvpblu

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/ctrl/meshview/meshviewtest"
	"github.com/lumbrjx/vpblu/tools/testenv"
)

func TestMeshtopRedrawsFromAFreshReadEachFrame(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	meshviewtest.Seed(t, ctx, env.Client)

	var out bytes.Buffer
	if err := Watch(ctx, env.Client, &out, 10*time.Millisecond, 2); err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(out.String(), clearScreen)[1:]
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2:\n%s", len(frames), out.String())
	}
	for _, f := range frames {
		for _, want := range []string{"meshtop", "5 nodes, 1 tunnels wanted", "verify: 3 of ", "node/gone: has a Kubernetes Node: the VpbluNode is left over"} {
			if !strings.Contains(f, want) {
				t.Errorf("frame lacks %q:\n%s", want, f)
			}
		}
	}

	// A read that fails is shown, not fatal.
	if f := Frame(ctx, failingReader{}, time.Now(), time.Second); !strings.Contains(f, "cannot read the cluster: list nodes: connection refused") {
		t.Errorf("frame of a failed read:\n%s", f)
	}
}

type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("connection refused")
}

func TestRotateAnnotatesAndAwaitFollowsTheController(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	meshviewtest.Seed(t, ctx, env.Client)
	c := env.Client

	since := time.Now()
	before, err := Rotate(ctx, c, "a", "r1")
	if err != nil {
		t.Fatal(err)
	}
	vn := &v1alpha1.VpbluNode{}
	if err := c.Get(ctx, client.ObjectKey{Name: "a"}, vn); err != nil {
		t.Fatal(err)
	}
	if got := vn.Annotations[v1alpha1.AnnotationRotate]; got != "r1" || before.KeyGeneration != 1 {
		t.Fatalf("annotation %q, generation before %d; want r1 and 1", got, before.KeyGeneration)
	}
	if _, err := Rotate(ctx, c, "a", "r1"); err == nil {
		t.Error("a second request with the same value was accepted: the controller would ignore it")
	}
	if _, err := Rotate(ctx, c, "d", "r1"); err == nil {
		t.Error("rotating a node without a VpbluNode was accepted")
	}

	// Play the controller: the rotation completes at generation 2.
	finish := func(node, reason string, gen int64) {
		vn := &v1alpha1.VpbluNode{}
		if err := c.Get(ctx, client.ObjectKey{Name: node}, vn); err != nil {
			t.Error(err)
			return
		}
		vn.Status.LastRotateRequest, vn.Status.KeyGeneration, vn.Status.RotationPhase = "r1", gen, v1alpha1.RotationIdle
		meta.SetStatusCondition(&vn.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionRotating, Status: metav1.ConditionFalse, Reason: reason, Message: "rotation " + node + " " + reason})
		if err := c.Status().Update(ctx, vn); err != nil {
			t.Error(err)
		}
	}
	go func() { time.Sleep(300 * time.Millisecond); finish("a", "Rotated", 2) }()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := AwaitRotation(wctx, c, "a", "r1", before.KeyGeneration, since, 50*time.Millisecond)
	if err != nil || st.KeyGeneration != 2 {
		t.Errorf("await: generation %d, %v; want 2 and no error", st.KeyGeneration, err)
	}

	if _, err := Rotate(ctx, c, "b", "r1"); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(300 * time.Millisecond); finish("b", "RolledBack", 1) }()
	if _, err := AwaitRotation(wctx, c, "b", "r1", 1, since, 50*time.Millisecond); !errors.Is(err, ErrRolledBack) {
		t.Errorf("await a rolled-back rotation: %v, want ErrRolledBack", err)
	}
}

func TestRotationDoneReadsOnlyThisRequestsOutcome(t *testing.T) {
	now := time.Now()
	rotating := func(s metav1.ConditionStatus, reason string, at time.Time) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionRotating, Status: s, Reason: reason, LastTransitionTime: metav1.NewTime(at)}}
	}
	tests := []struct {
		name     string
		st       v1alpha1.VpbluNodeStatus
		done     bool
		rollback bool
	}{
		{name: "not acted on yet", st: v1alpha1.VpbluNodeStatus{LastRotateRequest: "old", KeyGeneration: 1, Conditions: rotating(metav1.ConditionFalse, "Rotated", now)}},
		{name: "in progress", st: v1alpha1.VpbluNodeStatus{LastRotateRequest: "r", KeyGeneration: 1, RotationPhase: v1alpha1.RotationDistribute, Conditions: rotating(metav1.ConditionTrue, "Distribute", now)}},
		{name: "an earlier rollback", st: v1alpha1.VpbluNodeStatus{LastRotateRequest: "r", KeyGeneration: 1, RotationPhase: v1alpha1.RotationIdle, Conditions: rotating(metav1.ConditionFalse, "RolledBack", now.Add(-time.Hour))}},
		{name: "rotated", st: v1alpha1.VpbluNodeStatus{LastRotateRequest: "r", KeyGeneration: 2, RotationPhase: v1alpha1.RotationIdle, Conditions: rotating(metav1.ConditionFalse, "Rotated", now)}, done: true},
		{name: "rolled back", st: v1alpha1.VpbluNodeStatus{LastRotateRequest: "r", KeyGeneration: 1, RotationPhase: v1alpha1.RotationIdle, Conditions: rotating(metav1.ConditionFalse, "RolledBack", now)}, done: true, rollback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done, err := rotationDone(tt.st, "r", 1, now)
			if done != tt.done || errors.Is(err, ErrRolledBack) != tt.rollback {
				t.Errorf("done %v, err %v; want done %v, rolled back %v", done, err, tt.done, tt.rollback)
			}
		})
	}
}
