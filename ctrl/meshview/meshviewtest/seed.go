// Package meshviewtest seeds an API server with what a controller and its
// daemons would have written, for tests of what operators see.
package meshviewtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

func key(i int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 32)) }

func cond(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: reason, LastTransitionTime: metav1.Now()}
}

// Seed writes what a controller and its daemons would have written:
// four Nodes a-d, VpbluNodes with reported keys for a, b and c (d's
// daemon has not reported yet) and one left over from a deleted Node, a
// FullMesh TunnelPolicy and a BlockPolicy isolating c.
func Seed(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []string{"a", "b", "c", "d"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("100.64.%d.0/24", i), PodCIDRs: []string{fmt.Sprintf("100.64.%d.0/24", i)}}}
		must(c.Create(ctx, n))
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("198.18.0.%d", i+1)}}
		must(c.Status().Update(ctx, n))
	}
	for i, name := range []string{"a", "b", "c", "gone"} {
		vn := &v1alpha1.VpbluNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
		must(c.Create(ctx, vn))
		vn.Status = v1alpha1.VpbluNodeStatus{
			PublicKey: key(i + 1), KeyGeneration: 1, Backend: v1alpha1.BackendKernel, Endpoint: fmt.Sprintf("198.18.0.%d:51820", i+1),
			PeersUp: 1, PeersTotal: 1, RotationPhase: v1alpha1.RotationIdle, LastSeen: &metav1.Time{Time: time.Now()},
			Conditions: []metav1.Condition{cond(v1alpha1.ConditionConnected, metav1.ConditionTrue, "StreamOpen"), cond(v1alpha1.ConditionReady, metav1.ConditionTrue, "Applied")},
		}
		if name == "c" {
			vn.Status.PeersUp, vn.Status.PeersTotal = 0, 0
		}
		must(c.Status().Update(ctx, vn))
	}
	tp := &v1alpha1.TunnelPolicy{ObjectMeta: metav1.ObjectMeta{Name: "fullmesh"}, Spec: v1alpha1.TunnelPolicySpec{Mode: v1alpha1.FullMesh}}
	must(c.Create(ctx, tp))
	tp.Status = v1alpha1.PolicyStatus{ObservedGeneration: tp.Generation, Nodes: 4, NodesApplied: 4, Conditions: []metav1.Condition{cond(v1alpha1.ConditionReady, metav1.ConditionTrue, "Applied")}}
	must(c.Status().Update(ctx, tp))
	bp := &v1alpha1.BlockPolicy{ObjectMeta: metav1.ObjectMeta{Name: "quarantine"}, Spec: v1alpha1.BlockPolicySpec{Isolate: []v1alpha1.NodeName{"c"}}}
	must(c.Create(ctx, bp))
	bp.Status = v1alpha1.PolicyStatus{ObservedGeneration: bp.Generation, Nodes: 4, NodesApplied: 3, Conditions: []metav1.Condition{cond(v1alpha1.ConditionReady, metav1.ConditionFalse, "Applying")}}
	must(c.Status().Update(ctx, bp))
}
