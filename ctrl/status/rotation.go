package status

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

// Rotation persists what the key rotation machine (ctrl/rotation) asks
// for: its VpbluNode and RotationPolicy status patches. Unlike the other
// writers it writes at once, from the object as the API server has it
// (not the cache), and retries conflicts: the machine sends a stage's
// commands only once the stage is persisted, which is what a new leader
// resumes from.
type Rotation struct {
	// Client writes status; API reads from the API server, not a cache.
	Client  client.Client
	API     client.Reader
	Metrics *metrics.Metrics
}

// PatchNode applies p to its VpbluNode's status. A VpbluNode that does
// not exist is not an error (its Node was deleted; the machine follows).
func (w Rotation) PatchNode(ctx context.Context, p rotation.NodePatch) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vn := &v1alpha1.VpbluNode{}
		if err := w.API.Get(ctx, client.ObjectKey{Name: p.Node}, vn); err != nil {
			return err
		}
		before := vn.DeepCopy()
		ApplyNodePatch(&vn.Status, p)
		if apiequality.Semantic.DeepEqual(before.Status, vn.Status) {
			return nil
		}
		return w.Client.Status().Patch(ctx, vn, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	return w.done(err, "vpblunode", p.Node)
}

// PatchPolicy applies p to its RotationPolicy's status. A RotationPolicy
// that does not exist is not an error.
func (w Rotation) PatchPolicy(ctx context.Context, p rotation.PolicyPatch) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rp := &v1alpha1.RotationPolicy{}
		if err := w.API.Get(ctx, client.ObjectKey{Name: p.Policy}, rp); err != nil {
			return err
		}
		before := rp.DeepCopy()
		ApplyPolicyPatch(&rp.Status, p)
		if apiequality.Semantic.DeepEqual(before.Status, rp.Status) {
			return nil
		}
		return w.Client.Status().Patch(ctx, rp, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
	return w.done(err, "rotationpolicy", p.Policy)
}

func (w Rotation) done(err error, kind, name string) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		w.Metrics.StatusWrites.WithLabelValues("error").Inc()
		return fmt.Errorf("patch %s %s status: %w", kind, name, err)
	}
	w.Metrics.StatusWrites.WithLabelValues("ok").Inc()
	return nil
}

// ApplyNodePatch sets the fields p carries; the others stay.
func ApplyNodePatch(st *v1alpha1.VpbluNodeStatus, p rotation.NodePatch) {
	if p.PublicKey != nil {
		st.PublicKey = *p.PublicKey
	}
	if p.KeyGeneration != nil {
		st.KeyGeneration = *p.KeyGeneration
	}
	if p.PendingPublicKey != nil {
		st.PendingPublicKey = *p.PendingPublicKey
	}
	if p.RotationPhase != nil {
		st.RotationPhase = *p.RotationPhase
	}
	if p.LastRotateRequest != nil {
		st.LastRotateRequest = *p.LastRotateRequest
	}
	if p.Rotating != nil {
		meta.SetStatusCondition(&st.Conditions, *p.Rotating)
	}
}

// ApplyPolicyPatch sets the fields p carries; the others stay. A node
// entry replaces the node's (status.nodes stays sorted by node).
func ApplyPolicyPatch(st *v1alpha1.RotationPolicyStatus, p rotation.PolicyPatch) {
	if p.ObservedGeneration != nil {
		st.ObservedGeneration = *p.ObservedGeneration
	}
	if p.LastRun != nil {
		t := metav1.NewTime(*p.LastRun)
		st.LastRun = &t
	}
	if p.NextRun != nil {
		t := metav1.NewTime(*p.NextRun)
		st.NextRun = &t
	}
	if p.CurrentNode != nil {
		st.CurrentNode = *p.CurrentNode
	}
	if p.Phase != nil {
		st.Phase = *p.Phase
	}
	if p.Node != nil {
		i := slices.IndexFunc(st.Nodes, func(n v1alpha1.NodeRotation) bool { return n.Node == p.Node.Node })
		if i >= 0 {
			st.Nodes[i] = *p.Node
		} else {
			st.Nodes = append(st.Nodes, *p.Node)
			slices.SortFunc(st.Nodes, func(a, b v1alpha1.NodeRotation) int { return strings.Compare(a.Node, b.Node) })
		}
	}
	for _, c := range p.Conditions {
		meta.SetStatusCondition(&st.Conditions, c)
	}
}
