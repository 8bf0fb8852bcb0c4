package status

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// ConflictRetry is how soon a VpbluNode status write that lost a
// conflict is tried again (from the cache, once it caught up).
const ConflictRetry = 200 * time.Millisecond

// Defaults of NodesOptions.
const (
	DefaultMinInterval = 10 * time.Second
	DefaultHeartbeat   = 5 * time.Minute
	DefaultQPS         = 20
	DefaultBurst       = 50
)

// NodesOptions configure Nodes.
type NodesOptions struct {
	// Client writes status; Reader reads the cache.
	Client client.Client
	Reader client.Reader
	Plan   Plan
	// Limiter bounds status writes of nodes and policies together
	// (default DefaultQPS, DefaultBurst).
	Limiter flowcontrol.RateLimiter
	// MinInterval is the least time between two writes of one VpbluNode.
	MinInterval time.Duration
	// Heartbeat is how stale status.lastSeen may get while the daemon
	// reports.
	Heartbeat time.Duration
	Recorder  events.EventRecorder
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	// Workers write in parallel (default 2).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Nodes tracks what daemons report (it is the reporting half of a
// streamserver.Observer) and writes VpbluNode status from it, at most once
// per MinInterval per node and within the Limiter's rate overall. It is a
// leader-only runnable.
type Nodes struct {
	opts  NodesOptions
	queue workqueue.TypedDelayingInterface[string]

	mu        sync.Mutex
	reports   map[string]*Report
	lastWrite map[string]time.Time
}

// NewNodes returns a Nodes writer.
func NewNodes(opts NodesOptions) *Nodes {
	if opts.Limiter == nil {
		opts.Limiter = flowcontrol.NewTokenBucketRateLimiter(DefaultQPS, DefaultBurst)
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = DefaultMinInterval
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Nodes{
		opts:      opts,
		queue:     workqueue.NewTypedDelayingQueue[string](),
		reports:   map[string]*Report{},
		lastWrite: map[string]time.Time{},
	}
}

// NeedLeaderElection makes Nodes run on the leader only.
func (n *Nodes) NeedLeaderElection() bool { return true }

// Mark asks for node's status to be written (soon, within the limits).
func (n *Nodes) Mark(node string) {
	n.mu.Lock()
	last := n.lastWrite[node]
	n.mu.Unlock()
	if wait := last.Add(n.opts.MinInterval).Sub(n.opts.Now()); wait > 0 {
		n.queue.AddAfter(node, wait)
		return
	}
	n.queue.Add(node)
}

func (n *Nodes) update(node string, fn func(r *Report)) {
	n.mu.Lock()
	r := n.reports[node]
	if r == nil {
		r = &Report{}
		n.reports[node] = r
	}
	fn(r)
	r.LastSeen = n.opts.Now()
	n.mu.Unlock()
	n.Mark(node)
}

// Connected records a daemon's hello.
func (n *Nodes) Connected(node string, h *meshpb.Hello) {
	n.update(node, func(r *Report) {
		r.Connected, r.Hello, r.Failure = true, h, nil
		r.ConnectedAt = n.opts.Now()
		if h.GetKey() != nil {
			r.Key = h.GetKey()
		}
		r.Sync = streamserver.NodeSync{Connected: true}
	})
}

// Disconnected records the end of a daemon's stream.
func (n *Nodes) Disconnected(node string, _ error) {
	n.update(node, func(r *Report) {
		r.Connected = false
		r.Sync = streamserver.NodeSync{}
	})
}

// KeyReported records an active key.
func (n *Nodes) KeyReported(node string, k *meshpb.KeyReport) {
	if k.GetState() != meshpb.KeyState_KEY_STATE_ACTIVE && k.GetState() != meshpb.KeyState_KEY_STATE_UNSPECIFIED {
		return
	}
	n.update(node, func(r *Report) { r.Key = k })
}

// StatusReported records a tunnel status.
func (n *Nodes) StatusReported(node string, s *meshpb.TunnelStatus) {
	n.update(node, func(r *Report) { r.Status = s })
}

// Acked records where the node stands after an ack.
func (n *Nodes) Acked(node string, a *meshpb.Ack, s streamserver.NodeSync) {
	n.update(node, func(r *Report) {
		r.Sync = s
		switch a.GetCode() {
		case meshpb.AckCode_ACK_OK:
			r.Failure = nil
		case meshpb.AckCode_ACK_INVALID, meshpb.AckCode_ACK_CAPACITY, meshpb.AckCode_ACK_FAILED:
			r.Failure = a
		}
	})
}

// Refused records an Event on the VpbluNode a refused daemon spoke for (or
// was bound to). Refusals without a node are only counted and logged.
func (n *Nodes) Refused(x streamserver.Refusal) {
	for _, node := range uniq(x.ClaimedNode, x.TokenNode) {
		ref := &corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VpbluNode", Name: node}
		n.opts.Recorder.Eventf(ref, nil, corev1.EventTypeWarning, ReasonStreamRefused, "Connect",
			"refused a daemon stream (%s): token bound to node %q, hello for node %q: %v", x.Reason, x.TokenNode, x.ClaimedNode, x.Err)
	}
}

// ReasonStreamRefused is the Event reason of a refused daemon stream.
const ReasonStreamRefused = "StreamRefused"

func uniq(a, b string) []string {
	switch {
	case a == "" && b == "":
		return nil
	case a == "" || a == b:
		return []string{b}
	case b == "":
		return []string{a}
	}
	return []string{a, b}
}

// Report returns a copy of what node's daemon reported.
func (n *Nodes) Report(node string) (Report, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.reports[node]
	if !ok {
		return Report{}, false
	}
	return *r, true
}

// Start writes until ctx ends; every Heartbeat it marks the connected
// nodes so lastSeen advances.
func (n *Nodes) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range n.opts.Workers {
		wg.Go(func() {
			for n.writeNext(ctx) {
			}
		})
	}
	tick := time.NewTicker(n.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			n.queue.ShutDown()
			wg.Wait()
			return nil
		case <-tick.C:
			n.mu.Lock()
			var connected []string
			for node, r := range n.reports {
				if r.Connected {
					connected = append(connected, node)
				}
			}
			n.mu.Unlock()
			for _, node := range connected {
				n.Mark(node)
			}
		}
	}
}

func (n *Nodes) writeNext(ctx context.Context) bool {
	node, shutdown := n.queue.Get()
	if shutdown {
		return false
	}
	defer n.queue.Done(node)
	err := n.write(ctx, node)
	if err != nil && ctx.Err() == nil {
		n.opts.Logger.Warn("write vpblunode status", "node", node, "err", err)
		n.queue.AddAfter(node, n.opts.MinInterval)
	}
	return true
}

func (n *Nodes) write(ctx context.Context, node string) error {
	vn := &v1alpha1.VpbluNode{}
	if err := n.opts.Reader.Get(ctx, client.ObjectKey{Name: node}, vn); err != nil {
		if apierrors.IsNotFound(err) {
			if _, planned := n.opts.Plan.NodeStatus(node); planned {
				// The VpbluNode is being created: try again soon.
				n.queue.AddAfter(node, time.Second)
				return nil
			}
			n.mu.Lock()
			if r := n.reports[node]; r != nil && !r.Connected {
				// The node is gone and so is its daemon.
				delete(n.reports, node)
				delete(n.lastWrite, node)
			}
			n.mu.Unlock()
			return nil
		}
		return fmt.Errorf("get vpblunode: %w", err)
	}
	facts := NodeFacts{Old: vn.Status, Generation: vn.Generation, Now: n.opts.Now(), Heartbeat: n.opts.Heartbeat}
	if r, ok := n.Report(node); ok {
		facts.Report = &r
	}
	facts.Plan, facts.Planned = n.opts.Plan.NodeStatus(node)
	st := NodeStatus(facts)
	if apiequality.Semantic.DeepEqual(st, vn.Status) {
		return nil
	}
	n.opts.Limiter.Accept()
	updated := vn.DeepCopy()
	updated.Status = st
	// The patch is computed from the cached object; the optimistic lock
	// makes it fail rather than write back what the cache has not seen
	// yet (a rotation's status written since: its condition sits in the
	// same list as ours).
	err := n.opts.Client.Status().Patch(ctx, updated, client.MergeFromWithOptions(vn, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(err) {
		n.opts.Metrics.StatusWrites.WithLabelValues("conflict").Inc()
		n.queue.AddAfter(node, ConflictRetry)
		return nil
	}
	n.mu.Lock()
	n.lastWrite[node] = n.opts.Now()
	n.mu.Unlock()
	if err != nil {
		n.opts.Metrics.StatusWrites.WithLabelValues("error").Inc()
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patch vpblunode status: %w", err)
	}
	n.opts.Metrics.StatusWrites.WithLabelValues("ok").Inc()
	return nil
}
