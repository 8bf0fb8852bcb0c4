package manager

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
	"github.com/lumbrjx/vpblu/ctrl/status"
)

// maxRotationEvents bounds the reports waiting for the rotation loop. The
// machine resends every command that is not reported done and daemons
// report again, so an event dropped past the bound is not lost for good.
const maxRotationEvents = 4096

// persistBackoff bounds the pause between attempts to persist a rotation's
// status: nothing is sent before it is persisted.
const persistBackoff = 5 * time.Second

// desiredStates is the desired-state engine as the rotation reads it;
// *reconcile.Planner implements it.
type desiredStates interface {
	State(node string) (desired.NodeState, bool)
}

// rotationSender delivers rotation commands; *streamserver.Server
// implements it.
type rotationSender interface {
	SendRotation(node string, cmd *meshpb.RotationCommand) bool
}

// keySink takes a key as if the node's daemon had reported it ACTIVE:
// the desired-state feed and the VpbluNode status writer.
type keySink interface {
	KeyReported(node string, k *meshpb.KeyReport)
}

type rotationOptions struct {
	Machine rotation.Options
	// Reader reads the informer caches.
	Reader client.Reader
	States desiredStates
	// Ready is closed once the desired state is loaded.
	Ready    <-chan struct{}
	Writer   status.Rotation
	Sender   rotationSender
	Keys     []keySink
	Recorder events.EventRecorder
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
}

// rotations runs key rotations (SPEC §11, docs/rotation.md) on the
// leader: one rotation.Machine per leadership term, whose Handle calls
// are serialized on the runnable's goroutine. The informers, the planner
// and the stream observer hand it what happens without blocking (touch,
// and the event queue); it persists the machine's status patches, then
// feeds key commits to the desired state and sends the commands.
type rotations struct {
	opts rotationOptions
	wake chan struct{}

	mu      sync.Mutex
	running bool
	observe bool // the world changed since the last Observe
	events  []rotation.Event
	// capable holds the connected daemons, true when their Hello lists
	// rotation.Capability.
	capable map[string]bool
	subject string // the node rotating, if any
	// pending holds each node's last PENDING key report, whose creation
	// time the committed key's status gets.
	pending map[string]*meshpb.KeyReport
}

func newRotations(opts rotationOptions) *rotations {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &rotations{opts: opts, wake: make(chan struct{}, 1), capable: map[string]bool{}, pending: map[string]*meshpb.KeyReport{}}
}

// NeedLeaderElection makes the rotations run on the leader only.
func (r *rotations) NeedLeaderElection() bool { return true }

func (r *rotations) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// touch asks for a new Observe (coalesced).
func (r *rotations) touch() {
	r.mu.Lock()
	r.observe = true
	r.mu.Unlock()
	r.signal()
}

func (r *rotations) enqueue(evs ...rotation.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return
	}
	for _, ev := range evs {
		if len(r.events) >= maxRotationEvents {
			r.opts.Logger.Warn("rotation event dropped: queue full", "queued", len(r.events))
			continue
		}
		r.events = append(r.events, ev)
	}
	r.signal()
}

// Rotating reports whether node is the subject of the rotation in
// progress: its daemon's ACTIVE key reports then must not reach the
// desired state or the status (only the rotation's commit changes its
// key).
func (r *rotations) Rotating(node string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running && r.subject != "" && r.subject == node
}

// Connected records a daemon's stream and whether it can rotate.
func (r *rotations) Connected(node string, capable bool) {
	r.mu.Lock()
	r.capable[node] = capable
	r.mu.Unlock()
	r.enqueue(rotation.Connected{Node: node, Capable: capable})
}

// Disconnected records the end of a daemon's stream.
func (r *rotations) Disconnected(node string) {
	r.mu.Lock()
	delete(r.capable, node)
	r.mu.Unlock()
	r.enqueue(rotation.Disconnected{Node: node})
}

// KeyReported hands a daemon's key report to the machine (a PENDING key
// ends Prepare).
func (r *rotations) KeyReported(node string, k *meshpb.KeyReport) {
	if k.GetState() == meshpb.KeyState_KEY_STATE_PENDING {
		r.mu.Lock()
		r.pending[node] = k
		r.mu.Unlock()
	}
	r.enqueue(rotation.KeyReported{Node: node, Key: k})
}

// RotationReported hands a daemon's rotation report to the machine.
func (r *rotations) RotationReported(node string, rep *meshpb.RotationReport) {
	r.enqueue(rotation.FromReport(node, rep)...)
}

// Start runs the machine until leadership ends.
func (r *rotations) Start(ctx context.Context) error {
	select {
	case <-r.opts.Ready:
	case <-ctx.Done():
		return nil
	}
	m := rotation.New(r.opts.Machine)
	r.mu.Lock()
	r.running, r.observe, r.events, r.subject = true, true, nil, ""
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running, r.events, r.subject = false, nil, ""
		r.mu.Unlock()
		r.opts.Metrics.RotationStage.Reset()
	}()
	log := r.opts.Logger
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var wakeAt time.Time
	observed := false
	for {
		r.mu.Lock()
		observe, evs := r.observe, r.events
		r.observe, r.events = false, nil
		r.mu.Unlock()
		if observe {
			w, err := r.world(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				log.Warn("read the world for key rotations", "err", err)
				r.mu.Lock()
				r.observe, r.events = true, append(evs, r.events...)
				r.mu.Unlock()
				if !sleep(ctx, time.Second) {
					return nil
				}
				continue
			}
			if !r.handle(ctx, m, rotation.Observe{World: w}, &wakeAt) {
				return nil
			}
			observed = true
		}
		// Nothing is handled before the first Observe: it adopts the
		// rotation the API shows, and a report of it taken before would
		// look stray and be torn down.
		if observed {
			for _, ev := range evs {
				if !r.handle(ctx, m, ev, &wakeAt) {
					return nil
				}
			}
			if !wakeAt.IsZero() && !time.Now().Before(wakeAt) {
				if !r.handle(ctx, m, rotation.Tick{}, &wakeAt) {
					return nil
				}
			}
		}
		wait := time.Hour
		if !wakeAt.IsZero() {
			wait = max(time.Until(wakeAt), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// handle runs one event through the machine and carries out its output
// in the documented order. It returns false when ctx ended.
func (r *rotations) handle(ctx context.Context, m *rotation.Machine, ev rotation.Event, wakeAt *time.Time) bool {
	out := m.Handle(time.Now(), ev)
	subject, _ := m.Rotating()
	r.mu.Lock()
	r.subject = subject
	r.mu.Unlock()
	*wakeAt = out.WakeAt
	if !r.persist(ctx, out) {
		return false
	}
	for _, k := range out.Keys {
		r.commit(k)
	}
	for _, c := range out.Commands {
		r.opts.Sender.SendRotation(c.Node, c.Cmd)
	}
	r.record(ctx, out.Events)
	r.measure(out)
	return true
}

// persist writes the output's status patches, retrying until they are
// written (or ctx ends): the stage's commands must not be sent before.
func (r *rotations) persist(ctx context.Context, out rotation.Output) bool {
	try := func(what, name string, write func() error) bool {
		wait := 100 * time.Millisecond
		for {
			err := write()
			if err == nil {
				return true
			}
			if ctx.Err() != nil {
				return false
			}
			r.opts.Logger.Warn("persist rotation status", "kind", what, "name", name, "err", err)
			if !sleep(ctx, wait) {
				return false
			}
			wait = min(2*wait, persistBackoff)
		}
	}
	for _, p := range out.Nodes {
		if !try("VpbluNode", p.Node, func() error { return r.opts.Writer.PatchNode(ctx, p) }) {
			return false
		}
	}
	for _, p := range out.Policies {
		if !try("RotationPolicy", p.Policy, func() error { return r.opts.Writer.PatchPolicy(ctx, p) }) {
			return false
		}
	}
	return true
}

// commit makes a committed key the node's key, as an ACTIVE report of its
// daemon would: in the desired state (its peers get it) and in the status.
func (r *rotations) commit(k rotation.KeyCommit) {
	rep := &meshpb.KeyReport{PublicKey: k.Key[:], Generation: uint64(k.Generation), State: meshpb.KeyState_KEY_STATE_ACTIVE}
	r.mu.Lock()
	if p := r.pending[k.Node]; p != nil && p.GetGeneration() == rep.Generation && string(p.GetPublicKey()) == string(rep.PublicKey) {
		rep.CreatedUnixNano = p.GetCreatedUnixNano()
	}
	r.mu.Unlock()
	for _, s := range r.opts.Keys {
		s.KeyReported(k.Node, rep)
	}
}

func (r *rotations) record(ctx context.Context, evs []rotation.EventRecord) {
	for _, e := range evs {
		ref := &corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: e.Kind, Name: e.Name}
		var obj client.Object = &v1alpha1.VpbluNode{}
		if e.Kind == "RotationPolicy" {
			obj = &v1alpha1.RotationPolicy{}
		}
		if err := r.opts.Reader.Get(ctx, client.ObjectKey{Name: e.Name}, obj); err == nil {
			ref.UID, ref.ResourceVersion = obj.GetUID(), obj.GetResourceVersion()
		}
		r.opts.Recorder.Eventf(ref, nil, e.Type, e.Reason, "Rotate", "%s", e.Message)
	}
}

func (r *rotations) measure(out rotation.Output) {
	m, log := r.opts.Metrics, r.opts.Logger
	for _, t := range out.Transitions {
		if t.From != "" && t.From != rotation.StageIdle {
			m.RotationStage.DeleteLabelValues(t.Node, string(t.From))
		}
		if t.To != rotation.StageIdle {
			m.RotationStage.WithLabelValues(t.Node, string(t.To)).Set(1)
		}
		log.Info("rotation stage", "node", t.Node, "id", t.ID, "from", string(t.From), "to", string(t.To), "reason", t.Reason)
	}
	for _, f := range out.Finished {
		m.Rotations.WithLabelValues(string(f.Outcome)).Inc()
		m.RotationDuration.WithLabelValues(string(f.Outcome)).Observe(f.Duration.Seconds())
		log.Info("rotation finished", "node", f.Node, "id", f.ID, "outcome", string(f.Outcome), "duration", f.Duration, "reason", f.Reason)
	}
}

// world reads what the machine observes: Nodes with their VpbluNodes, the
// RotationPolicies, the daemons' streams and the desired state.
func (r *rotations) world(ctx context.Context) (rotation.World, error) {
	var nodes corev1.NodeList
	if err := r.opts.Reader.List(ctx, &nodes); err != nil {
		return rotation.World{}, err
	}
	var vns v1alpha1.VpbluNodeList
	if err := r.opts.Reader.List(ctx, &vns); err != nil {
		return rotation.World{}, err
	}
	var pols v1alpha1.RotationPolicyList
	if err := r.opts.Reader.List(ctx, &pols); err != nil {
		return rotation.World{}, err
	}
	byName := make(map[string]*v1alpha1.VpbluNode, len(vns.Items))
	for i := range vns.Items {
		byName[vns.Items[i].Name] = &vns.Items[i]
	}
	r.mu.Lock()
	capable := make(map[string]bool, len(r.capable))
	for n, c := range r.capable {
		capable[n] = c
	}
	r.mu.Unlock()
	w := rotation.World{Policies: pols.Items, Mesh: desiredMesh{r.opts.States}}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.DeletionTimestamp != nil {
			continue
		}
		rn := rotation.Node{Name: n.Name, Labels: n.Labels}
		if vn := byName[n.Name]; vn != nil {
			rn.RotateRequest = vn.Annotations[v1alpha1.AnnotationRotate]
			rn.Status = vn.Status
		}
		rn.Capable, rn.Connected = capable[n.Name]
		if st, ok := r.opts.States.State(n.Name); ok {
			rn.ListenPort = st.Config.ListenPort
		}
		w.Nodes = append(w.Nodes, rn)
	}
	return w, nil
}

// desiredMesh answers the machine's questions from the desired state.
type desiredMesh struct{ states desiredStates }

var _ rotation.Mesh = desiredMesh{}

func (d desiredMesh) Peers(node string) []rotation.Peer {
	st, ok := d.states.State(node)
	if !ok || st.Peers.Len() == 0 {
		return nil
	}
	out := make([]rotation.Peer, 0, st.Peers.Len())
	for p := range st.Peers.All() {
		out = append(out, rotation.Peer{Node: p.Node, PublicKey: p.PublicKey, Endpoint: p.Endpoint})
	}
	return out
}

// watch returns the informer handler that asks for a new Observe when an
// object of obj's kind changes in a way the machine reads (nil for kinds
// it does not read): Nodes come, go or change labels; VpbluNodes come, go,
// get a rotate request or change their key or rotation status;
// RotationPolicies change at all.
func (r *rotations) watch(obj client.Object) toolscache.ResourceEventHandler {
	var relevant func(old, cur any) bool
	switch obj.(type) {
	case *corev1.Node:
		relevant = func(old, cur any) bool {
			o, ok1 := old.(*corev1.Node)
			c, ok2 := cur.(*corev1.Node)
			return !ok1 || !ok2 || !maps.Equal(o.Labels, c.Labels) || (o.DeletionTimestamp == nil) != (c.DeletionTimestamp == nil)
		}
	case *v1alpha1.VpbluNode:
		relevant = func(old, cur any) bool {
			o, ok1 := old.(*v1alpha1.VpbluNode)
			c, ok2 := cur.(*v1alpha1.VpbluNode)
			return !ok1 || !ok2 || o.Annotations[v1alpha1.AnnotationRotate] != c.Annotations[v1alpha1.AnnotationRotate] ||
				rotationView(&o.Status) != rotationView(&c.Status)
		}
	case *v1alpha1.RotationPolicy:
		relevant = func(any, any) bool { return true }
	default:
		return nil
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.touch() },
		DeleteFunc: func(any) { r.touch() },
		UpdateFunc: func(old, cur any) {
			if relevant(old, cur) {
				r.touch()
			}
		},
	}
}

// nodeRotationView is what the machine reads of a VpbluNode status.
type nodeRotationView struct {
	key, pending, request string
	gen                   int64
	phase                 v1alpha1.RotationPhase
	reason                string
}

func rotationView(st *v1alpha1.VpbluNodeStatus) nodeRotationView {
	v := nodeRotationView{key: st.PublicKey, pending: st.PendingPublicKey, request: st.LastRotateRequest, gen: st.KeyGeneration, phase: st.RotationPhase}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionRotating); c != nil {
		v.reason = string(c.Status) + "/" + c.Reason
	}
	return v
}
