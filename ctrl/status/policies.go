package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// DefaultPolicyInterval is how often policy status is recomputed.
const DefaultPolicyInterval = 2 * time.Second

// PoliciesOptions configure Policies.
type PoliciesOptions struct {
	Client client.Client
	Reader client.Reader
	Plan   Plan
	// Sync tells where a node stands; *streamserver.Server.NodeSync.
	Sync     func(node string) streamserver.NodeSync
	Limiter  flowcontrol.RateLimiter
	Interval time.Duration
	Recorder events.EventRecorder
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	Now      func() time.Time
}

// Policies writes the status of every TunnelPolicy, RoutePolicy and
// BlockPolicy: the generation computed, the nodes concerned and how many
// of them run the current desired state, and the Conflict, Valid and Ready
// conditions. A new conflict or invalid part is also an Event. It is a
// leader-only runnable.
type Policies struct {
	opts    PoliciesOptions
	trigger chan struct{}

	mu     sync.Mutex
	warned map[string]string // object -> last warning message
}

// NewPolicies returns a Policies writer.
func NewPolicies(opts PoliciesOptions) *Policies {
	if opts.Limiter == nil {
		opts.Limiter = flowcontrol.NewTokenBucketRateLimiter(DefaultQPS, DefaultBurst)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultPolicyInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Policies{opts: opts, trigger: make(chan struct{}, 1), warned: map[string]string{}}
}

// NeedLeaderElection makes Policies run on the leader only.
func (p *Policies) NeedLeaderElection() bool { return true }

// Trigger asks for a round soon (the policies or the problems changed).
func (p *Policies) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Start runs rounds until ctx ends.
func (p *Policies) Start(ctx context.Context) error {
	tick := time.NewTicker(p.opts.Interval)
	defer tick.Stop()
	for {
		if err := p.Round(ctx); err != nil && ctx.Err() == nil {
			p.opts.Logger.Warn("write policy status", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-p.trigger:
		}
	}
}

// policyObject is what Round needs of any policy kind.
type policyObject struct {
	ref    desired.Ref
	obj    client.Object
	status *v1alpha1.PolicyStatus
	// concerned counts the nodes the policy concerns and applied.
	nodes, applied int
}

// Round computes and writes every policy's status once.
func (p *Policies) Round(ctx context.Context) error {
	var nodes corev1.NodeList
	if err := p.opts.Reader.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	type nodeFacts struct {
		labels   labels.Set
		member   bool
		upToDate bool
	}
	facts := make([]nodeFacts, 0, len(nodes.Items))
	all, allApplied := 0, 0
	for i := range nodes.Items {
		n := &nodes.Items[i]
		st, planned := p.opts.Plan.NodeStatus(n.Name)
		if !planned {
			continue
		}
		f := nodeFacts{labels: labels.Set(n.Labels), member: st.Member, upToDate: p.opts.Sync(n.Name).UpToDate}
		facts = append(facts, f)
		all++
		if f.upToDate {
			allApplied++
		}
	}
	problems := map[desired.Ref][]*desired.PolicyError{}
	for _, err := range p.opts.Plan.Problems() {
		var pe *desired.PolicyError
		if errors.As(err, &pe) {
			problems[pe.Object] = append(problems[pe.Object], pe)
		}
	}

	var objs []policyObject
	var tl v1alpha1.TunnelPolicyList
	if err := p.opts.Reader.List(ctx, &tl); err != nil {
		return fmt.Errorf("list tunnel policies: %w", err)
	}
	for i := range tl.Items {
		tp := &tl.Items[i]
		o := policyObject{ref: desired.Ref{Kind: desired.KindTunnelPolicy, Name: tp.Name}, obj: tp, status: &tp.Status}
		sel := labels.Everything()
		if tp.Spec.NodeSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(tp.Spec.NodeSelector)
			if err != nil {
				s = labels.Nothing()
			}
			sel = s
		}
		for _, f := range facts {
			if sel.Matches(f.labels) {
				o.nodes++
				if f.upToDate {
					o.applied++
				}
			}
		}
		objs = append(objs, o)
	}
	var rl v1alpha1.RoutePolicyList
	if err := p.opts.Reader.List(ctx, &rl); err != nil {
		return fmt.Errorf("list route policies: %w", err)
	}
	members, membersApplied := 0, 0
	for _, f := range facts {
		if f.member {
			members++
			if f.upToDate {
				membersApplied++
			}
		}
	}
	routeStatus := map[string]*v1alpha1.RoutePolicy{}
	for i := range rl.Items {
		rp := &rl.Items[i]
		routeStatus[rp.Name] = rp
		objs = append(objs, policyObject{ref: desired.Ref{Kind: desired.KindRoutePolicy, Name: rp.Name}, obj: rp,
			status: &rp.Status.PolicyStatus, nodes: members, applied: membersApplied})
	}
	var bl v1alpha1.BlockPolicyList
	if err := p.opts.Reader.List(ctx, &bl); err != nil {
		return fmt.Errorf("list block policies: %w", err)
	}
	for i := range bl.Items {
		bp := &bl.Items[i]
		objs = append(objs, policyObject{ref: desired.Ref{Kind: desired.KindBlockPolicy, Name: bp.Name}, obj: bp,
			status: &bp.Status, nodes: all, applied: allApplied})
	}

	var errs []error
	for _, o := range objs {
		gen, planned := p.opts.Plan.PolicyGeneration(o.ref)
		st := PolicyStatus(PolicyFacts{
			Old: *o.status, Generation: o.obj.GetGeneration(), Planned: planned && gen == o.obj.GetGeneration(),
			Problems: problems[o.ref], Nodes: o.nodes, Applied: o.applied, Now: p.opts.Now(),
		})
		p.warn(o, st)
		changed := !apiequality.Semantic.DeepEqual(st, *o.status)
		if rp, ok := routeStatus[o.ref.Name]; ok && o.ref.Kind == desired.KindRoutePolicy {
			via := p.opts.Plan.ActiveVia(rp.Name)
			changed = changed || via != rp.Status.ActiveVia
			rp.Status.ActiveVia = via
		}
		if !changed {
			continue
		}
		if err := p.patch(ctx, o, st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *Policies) patch(ctx context.Context, o policyObject, st v1alpha1.PolicyStatus) error {
	before := o.obj.DeepCopyObject().(client.Object)
	*o.status = st
	p.opts.Limiter.Accept()
	err := p.opts.Client.Status().Patch(ctx, o.obj, client.MergeFrom(before))
	if err != nil && !apierrors.IsNotFound(err) {
		p.opts.Metrics.StatusWrites.WithLabelValues("error").Inc()
		return fmt.Errorf("patch %s status: %w", o.ref, err)
	}
	p.opts.Metrics.StatusWrites.WithLabelValues("ok").Inc()
	return nil
}

// Event reasons of policies.
const (
	EventConflict = "Conflict"
	EventInvalid  = "Invalid"
)

// warn records an Event when a policy's Conflict or Valid condition shows
// a problem it did not show at the last round.
func (p *Policies) warn(o policyObject, st v1alpha1.PolicyStatus) {
	for _, w := range []struct {
		cond   string
		bad    metav1.ConditionStatus
		reason string
	}{
		{v1alpha1.ConditionConflict, metav1.ConditionTrue, EventConflict},
		{v1alpha1.ConditionValid, metav1.ConditionFalse, EventInvalid},
	} {
		key := string(o.ref.Kind) + "/" + o.ref.Name + "/" + w.cond
		c := meta.FindStatusCondition(st.Conditions, w.cond)
		msg := ""
		if c != nil && c.Status == w.bad {
			msg = c.Message
		}
		p.mu.Lock()
		last := p.warned[key]
		if msg == "" {
			delete(p.warned, key)
		} else {
			p.warned[key] = msg
		}
		p.mu.Unlock()
		if msg != "" && msg != last {
			p.opts.Recorder.Eventf(o.obj, nil, corev1.EventTypeWarning, w.reason, "Compute", "%s", msg)
		}
	}
}
