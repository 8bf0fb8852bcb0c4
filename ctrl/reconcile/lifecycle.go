package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// Event reasons of the node lifecycle.
const (
	ReasonJoined  = "Joined"
	ReasonRemoved = "Removed"
)

// Lifecycle keeps one VpbluNode per Node, with the same name and an owner
// reference to it, and deletes VpbluNodes whose Node is gone (the garbage
// collector would too, but not every cluster runs it promptly, and the
// mesh must drop the node at once).
type Lifecycle struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// SetupWithManager registers the leader-only controller.
func (l *Lifecycle) SetupWithManager(mgr manager.Manager) error {
	existence := predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }}
	return builder.ControllerManagedBy(mgr).
		Named("vpblu-nodes").
		WithOptions(controller.Options{SkipNameValidation: ptrTo(true), MaxConcurrentReconciles: 4}).
		For(&corev1.Node{}, builder.WithPredicates(existence)).
		Watches(&v1alpha1.VpbluNode{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(existence)).
		Complete(l)
}

// Reconcile makes the VpbluNode of req.Name exist exactly when its Node
// does.
func (l *Lifecycle) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	node := &corev1.Node{}
	err := l.Client.Get(ctx, req.NamespacedName, node)
	switch {
	case apierrors.IsNotFound(err):
		node = nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("get node: %w", err)
	case node.DeletionTimestamp != nil:
		node = nil
	}
	vn := &v1alpha1.VpbluNode{}
	err = l.Client.Get(ctx, req.NamespacedName, vn)
	switch {
	case apierrors.IsNotFound(err):
		vn = nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("get vpblunode: %w", err)
	}

	switch {
	case node != nil && vn == nil:
		vn = &v1alpha1.VpbluNode{ObjectMeta: metav1.ObjectMeta{
			Name:            node.Name,
			Labels:          map[string]string{"app.kubernetes.io/managed-by": "vpblu-controller"},
			OwnerReferences: []metav1.OwnerReference{ownerRef(node)},
		}}
		if err := l.Client.Create(ctx, vn); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// The cache is behind; its event brings us back.
				return reconcile.Result{}, nil
			}
			return reconcile.Result{}, fmt.Errorf("create vpblunode: %w", err)
		}
		l.Recorder.Eventf(vn, node, corev1.EventTypeNormal, ReasonJoined, "Create", "node %s joined the mesh inventory", node.Name)
	case node != nil && !ownedBy(vn, node):
		// The Node was deleted and created again under the same name.
		vn.OwnerReferences = []metav1.OwnerReference{ownerRef(node)}
		if err := l.Client.Update(ctx, vn); err != nil {
			return reconcile.Result{}, fmt.Errorf("adopt vpblunode: %w", err)
		}
	case node == nil && vn != nil && vn.DeletionTimestamp == nil:
		if err := l.Client.Delete(ctx, vn, client.Preconditions{UID: &vn.UID}); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("delete vpblunode: %w", err)
		}
		l.Recorder.Eventf(vn, nil, corev1.EventTypeNormal, ReasonRemoved, "Delete", "node %s left: its VpbluNode is deleted and every peer drops it", vn.Name)
	}
	return reconcile.Result{}, nil
}

func ownerRef(node *corev1.Node) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
	}
}

func ownedBy(vn *v1alpha1.VpbluNode, node *corev1.Node) bool {
	for _, o := range vn.OwnerReferences {
		if o.Kind == "Node" && o.UID == node.UID {
			return true
		}
	}
	return false
}
