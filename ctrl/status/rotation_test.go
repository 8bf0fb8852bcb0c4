package status

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

func TestRotationPatchesChangeOnlyTheirFields(t *testing.T) {
	connectedCond := metav1.Condition{Type: v1alpha1.ConditionConnected, Status: metav1.ConditionTrue, Reason: ReasonStreamOpen, LastTransitionTime: metav1.NewTime(now)}
	old := v1alpha1.VpbluNodeStatus{PublicKey: "old", KeyGeneration: 1, MTU: 1420, Conditions: []metav1.Condition{connectedCond}}
	phase, key, gen := v1alpha1.RotationRetire, "new", int64(2)
	rotating := metav1.Condition{Type: v1alpha1.ConditionRotating, Status: metav1.ConditionTrue, Reason: string(rotation.StageRetire), LastTransitionTime: metav1.NewTime(now)}
	st := *old.DeepCopy()
	rotation.NodePatch{Node: "a", PublicKey: &key, KeyGeneration: &gen, RotationPhase: &phase, Rotating: &rotating}.Apply(&st)
	want := v1alpha1.VpbluNodeStatus{PublicKey: "new", KeyGeneration: 2, RotationPhase: v1alpha1.RotationRetire, MTU: 1420,
		Conditions: []metav1.Condition{connectedCond, rotating}}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("node status (-want +got):\n%s", d)
	}

	last := now.Add(-time.Hour)
	ps := v1alpha1.RotationPolicyStatus{Nodes: []v1alpha1.NodeRotation{{Node: "c", Phase: v1alpha1.RotationIdle}, {Node: "a", Phase: v1alpha1.RotationPrepare}}}
	rotation.PolicyPatch{Policy: "p", LastRun: &last, Node: &v1alpha1.NodeRotation{Node: "b", Phase: v1alpha1.RotationIdle, Message: "rolled back"}}.Apply(&ps)
	rotation.PolicyPatch{Policy: "p", Node: &v1alpha1.NodeRotation{Node: "a", Phase: v1alpha1.RotationIdle, KeyGeneration: 2}}.Apply(&ps)
	lastRun := metav1.NewTime(last)
	// A node's entry is replaced; a new one is added in node order.
	wantPolicy := v1alpha1.RotationPolicyStatus{LastRun: &lastRun, Nodes: []v1alpha1.NodeRotation{
		{Node: "a", Phase: v1alpha1.RotationIdle, KeyGeneration: 2},
		{Node: "b", Phase: v1alpha1.RotationIdle, Message: "rolled back"}, {Node: "c", Phase: v1alpha1.RotationIdle},
	}}
	if d := cmp.Diff(wantPolicy, ps); d != "" {
		t.Errorf("policy status (-want +got):\n%s", d)
	}
}
