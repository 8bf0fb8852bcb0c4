package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
)

// item is one unit of work of the Feed: a node to re-read, or the
// policies.
type item struct {
	policies bool
	node     string
}

// FeedOptions configure a Feed.
type FeedOptions struct {
	// Reader reads the informer caches.
	Reader  client.Reader
	Planner *Planner
	Keys    *Keys
	// Ready is closed once the Planner is loaded; work waits for it.
	Ready <-chan struct{}
}

// Feed keeps the Planner's inputs equal to the caches and to the keys
// daemons report: every Node, VpbluNode, Pod or policy event, and every key
// report, re-reads what it touches and feeds the engine. Events that
// change nothing the engine reads cost a comparison.
type Feed struct {
	opts FeedOptions

	mu      sync.Mutex
	queue   workqueue.TypedRateLimitingInterface[item]
	pending []item // work queued before the controller started
}

// NewFeed returns a Feed.
func NewFeed(opts FeedOptions) *Feed { return &Feed{opts: opts} }

// SetupWithManager registers the Feed as a leader-only controller and the
// pod index it needs.
func (f *Feed) SetupWithManager(mgr manager.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, PodNodeIndex, func(o client.Object) []string {
		if n := o.(*corev1.Pod).Spec.NodeName; n != "" {
			return []string{n}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index pods by node: %w", err)
	}
	c, err := controller.NewTyped[item]("vpblu-desired", mgr, controller.TypedOptions[item]{
		Reconciler:              reconcile.TypedFunc[item](f.reconcile),
		MaxConcurrentReconciles: 2,
		SkipNameValidation:      ptrTo(true),
	})
	if err != nil {
		return fmt.Errorf("desired-state controller: %w", err)
	}
	cache := mgr.GetCache()
	byName := func(_ context.Context, o client.Object) []item { return []item{{node: o.GetName()}} }
	policies := func(context.Context, client.Object) []item { return []item{{policies: true}} }
	specChanged := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.Funcs{
		UpdateFunc: func(event.UpdateEvent) bool { return false },
	})
	watches := []source.TypedSource[item]{
		source.TypedKind(cache, client.Object(&corev1.Node{}), handler.TypedEnqueueRequestsFromMapFunc(byName)),
		source.TypedKind(cache, client.Object(&v1alpha1.VpbluNode{}), handler.TypedEnqueueRequestsFromMapFunc(byName)),
		source.TypedKind(cache, client.Object(&corev1.Pod{}), handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []item {
			if n := o.(*corev1.Pod).Spec.NodeName; n != "" {
				return []item{{node: n}}
			}
			return nil
		})),
		source.TypedKind(cache, client.Object(&v1alpha1.TunnelPolicy{}), handler.TypedEnqueueRequestsFromMapFunc(policies), specChanged),
		source.TypedKind(cache, client.Object(&v1alpha1.RoutePolicy{}), handler.TypedEnqueueRequestsFromMapFunc(policies), specChanged),
		source.TypedKind(cache, client.Object(&v1alpha1.BlockPolicy{}), handler.TypedEnqueueRequestsFromMapFunc(policies), specChanged),
		source.TypedFunc[item](func(_ context.Context, q workqueue.TypedRateLimitingInterface[item]) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.queue = q
			for _, it := range f.pending {
				q.Add(it)
			}
			f.pending = nil
			return nil
		}),
	}
	for _, w := range watches {
		if err := c.Watch(w); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

// NodeChanged asks for node's input to be read again (its daemon reported
// a key).
func (f *Feed) NodeChanged(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queue == nil {
		f.pending = append(f.pending, item{node: node})
		return
	}
	f.queue.Add(item{node: node})
}

// KeyReported records a key a daemon reported (in its Hello or later) and
// feeds it if it changed. Keys of other states than active (a rotation's
// pending key) are not peers' business yet.
func (f *Feed) KeyReported(node string, k *meshpb.KeyReport) {
	if k == nil || (k.GetState() != meshpb.KeyState_KEY_STATE_ACTIVE && k.GetState() != meshpb.KeyState_KEY_STATE_UNSPECIFIED) {
		return
	}
	key, err := desired.KeyFromBytes(k.GetPublicKey())
	if err != nil {
		return
	}
	if f.opts.Keys.Set(node, ReportedKey{Key: key, Generation: int64(k.GetGeneration())}) {
		f.NodeChanged(node)
	}
}

func (f *Feed) reconcile(ctx context.Context, it item) (reconcile.Result, error) {
	select {
	case <-f.opts.Ready:
	case <-ctx.Done():
		return reconcile.Result{}, ctx.Err()
	}
	if it.policies {
		pol, gens, err := ListPolicies(ctx, f.opts.Reader)
		if err != nil {
			return reconcile.Result{}, err
		}
		_, err = f.opts.Planner.SetPolicies(pol, gens)
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, f.syncNode(ctx, it.node)
}

func (f *Feed) syncNode(ctx context.Context, name string) error {
	src, err := readNode(ctx, f.opts.Reader, f.opts.Keys, name)
	if errors.Is(err, errNodeGone) {
		f.opts.Keys.Forget(name)
		_, err = f.opts.Planner.RemoveNode(name)
		return err
	}
	if err != nil {
		return err
	}
	_, err = f.opts.Planner.UpsertNode(NodeInput(src))
	return err
}

var errNodeGone = errors.New("node gone")

// readNode gathers one node's sources from the caches.
func readNode(ctx context.Context, r client.Reader, keys *Keys, name string) (NodeSources, error) {
	var src NodeSources
	node := &corev1.Node{}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			return src, errNodeGone
		}
		return src, fmt.Errorf("get node %s: %w", name, err)
	}
	if node.DeletionTimestamp != nil {
		return src, errNodeGone
	}
	src.Node = node
	vn := &v1alpha1.VpbluNode{}
	switch err := r.Get(ctx, client.ObjectKey{Name: name}, vn); {
	case err == nil:
		src.VpbluNode = vn
	case !apierrors.IsNotFound(err):
		return src, fmt.Errorf("get vpblunode %s: %w", name, err)
	}
	if len(node.Spec.PodCIDRs) == 0 && node.Spec.PodCIDR == "" {
		var pods corev1.PodList
		if err := r.List(ctx, &pods, client.MatchingFields{PodNodeIndex: name}); err != nil {
			return src, fmt.Errorf("list pods of %s: %w", name, err)
		}
		src.Pods = pods.Items
	}
	if k, ok := keys.Get(name); ok {
		src.Key = &k
	}
	return src, nil
}
