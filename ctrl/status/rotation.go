package status

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
		p.Apply(&vn.Status)
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
		p.Apply(&rp.Status)
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
