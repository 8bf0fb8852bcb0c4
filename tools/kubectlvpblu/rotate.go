package kubectlvpblu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// ErrRolledBack is returned by AwaitRotation when the controller rolled
// the rotation back (the node keeps its old key).
var ErrRolledBack = errors.New("rotation rolled back")

// Rotate asks the controller to rotate node's key now by setting the
// vpblu.io/rotate annotation of its VpbluNode to request (any value not
// used before). It returns the node's status as it was, so AwaitRotation
// can tell the new key from the old.
func Rotate(ctx context.Context, c client.Client, node, request string) (v1alpha1.VpbluNodeStatus, error) {
	vn := &v1alpha1.VpbluNode{}
	if err := c.Get(ctx, client.ObjectKey{Name: node}, vn); err != nil {
		return v1alpha1.VpbluNodeStatus{}, fmt.Errorf("get vpblunode %s: %w", node, err)
	}
	if vn.Status.PublicKey == "" {
		return vn.Status, fmt.Errorf("node %s has no key yet: its daemon has not reported", node)
	}
	if vn.Annotations[v1alpha1.AnnotationRotate] == request {
		return vn.Status, fmt.Errorf("node %s already carries %s=%s: a rotation needs a new value", node, v1alpha1.AnnotationRotate, request)
	}
	before := vn.DeepCopy()
	metav1.SetMetaDataAnnotation(&vn.ObjectMeta, v1alpha1.AnnotationRotate, request)
	if err := c.Patch(ctx, vn, client.MergeFrom(before)); err != nil {
		return before.Status, fmt.Errorf("annotate vpblunode %s: %w", node, err)
	}
	return before.Status, nil
}

// AwaitRotation polls node's status until the controller finished the
// rotation asked for by request: the key generation moved past fromGen
// and the Rotating condition says Rotated. It returns ErrRolledBack (with
// the controller's reason) when the rotation was rolled back. since is
// when the rotation was asked for: an older Rotating condition belongs to
// an earlier rotation.
func AwaitRotation(ctx context.Context, r client.Reader, node, request string, fromGen int64, since time.Time, every time.Duration) (v1alpha1.VpbluNodeStatus, error) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		vn := &v1alpha1.VpbluNode{}
		if err := r.Get(ctx, client.ObjectKey{Name: node}, vn); err != nil {
			return v1alpha1.VpbluNodeStatus{}, fmt.Errorf("get vpblunode %s: %w", node, err)
		}
		st := vn.Status
		if done, err := rotationDone(st, request, fromGen, since); done || err != nil {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("node %s: waiting for rotation %q (phase %q, key generation %d): %w", node, request, st.RotationPhase, st.KeyGeneration, ctx.Err())
		case <-tick.C:
		}
	}
}

// rotationDone reads one status: done when the request was acted on and
// ended; an error when it ended in a rollback.
func rotationDone(st v1alpha1.VpbluNodeStatus, request string, fromGen int64, since time.Time) (bool, error) {
	if st.LastRotateRequest != request || (st.RotationPhase != "" && st.RotationPhase != v1alpha1.RotationIdle) {
		return false, nil
	}
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionRotating)
	// Condition times have whole seconds.
	if c == nil || c.Status != metav1.ConditionFalse || c.LastTransitionTime.Time.Before(since.Truncate(time.Second)) {
		return false, nil
	}
	switch {
	case c.Reason == "RolledBack":
		return true, fmt.Errorf("%w: %s", ErrRolledBack, c.Message)
	case c.Reason == "Rotated" && st.KeyGeneration > fromGen:
		return true, nil
	}
	return false, nil
}
