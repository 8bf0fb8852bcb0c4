package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Agent makes a node's desired state true. Its methods are safe for
// concurrent use; reconciles are serialized.
//
// Locks: rmu (rotation commands and their reports) is taken before the
// executor's lock, which is taken before mu (reconciles); never the
// other way round.
type Agent struct {
	opts Options
	d    Deps
	exec *rotation.Executor

	mu          sync.Mutex
	cur         *desired.NodeState // the state last reconciled in full
	lastErr     error              // the last reconcile's error
	lastBPF     *bpf.State         // the data plane state last applied
	written     written            // what the last reconciles wrote outside eBPF
	overlay     rotation.Overlay   // what the rotation lays over the state
	deliver     int                // ifindex deliver is attached to
	tempUp      bool               // the last reconcile composed the temporary interface
	deliverTemp int                // ifindex of the temporary interface deliver is attached to
	tempPin     int                // ifindex of a temporary interface found at Start
	classify    map[int]string     // pod interfaces classify is attached to

	rmu      sync.Mutex
	reporter Reporter
	unsent   []any                  // reports made before a reporter was set
	lastRot  *meshpb.RotationReport // the last rotation report sent
	resumed  bool                   // the executor's Resume ran
}

// New checks the options and returns an agent. It changes nothing.
func New(opts Options, deps Deps) (*Agent, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	if err := deps.check(); err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, d: deps, classify: map[int]string{}}
	a.exec, err = rotation.New(rotation.Options{
		Node: opts.Node, Interface: opts.RotationInterface, Mark: opts.RotationMark, Table: opts.RotationTable,
		MeshInterface: opts.Interface,
	}, rotation.Deps{Keys: deps.Keys, Host: host{a}, Tunnels: tempTunnels{a}, Journal: deps.Journal})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return a, nil
}

// Start prepares the data plane before any state arrives. Maps that hold
// a state (a restarted daemon) are left exactly as they are, and a first
// state with the same content will not rewrite them. Fresh maps get a
// fail-closed state: strict, no tunnel, the cluster CIDRs — cross-node
// pod traffic is dropped until the first state is applied.
//
// It then loads the rotation journal, so the first reconcile runs a
// rotation in progress exactly as before, and removes a temporary
// interface no rotation needs. Its reports go to the Reporter (set it
// first, or they wait for SetReporter). Call it once, before the stream
// connects.
func (a *Agent) Start() error {
	if err := a.startDatapath(); err != nil {
		return err
	}
	a.mu.Lock()
	if idx, err := a.d.Links.Index(a.opts.RotationInterface); err == nil {
		a.tempPin = idx // a previous daemon may have attached deliver to it
	}
	a.mu.Unlock()
	a.rmu.Lock()
	defer a.rmu.Unlock()
	res, err := a.exec.Start()
	a.sendLocked(res)
	if err != nil {
		return fmt.Errorf("loading the rotation journal: %w", err)
	}
	return nil
}

func (a *Agent) startDatapath() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, err := a.d.Datapath.Dump()
	if err != nil {
		return fmt.Errorf("reading the data plane: %w", err)
	}
	if !emptyBPF(cur) {
		a.lastBPF = &cur
		return nil
	}
	boot, err := bpf.State{Config: bpf.Config{Strict: true, DropSample: a.opts.DropSample}, Clusters: a.opts.ClusterCIDRs}.Canonical()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := a.d.Datapath.Apply(boot); err != nil {
		return fmt.Errorf("installing the fail-closed data plane: %w", err)
	}
	a.lastBPF = &boot
	return nil
}

// State returns the state last reconciled in full, if any.
func (a *Agent) State() (desired.NodeState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil {
		return desired.NodeState{}, false
	}
	return *a.cur, true
}

// written is what the agent last wrote to WireGuard, routing and the MSS
// clamp. A Delta skips the parts whose configuration it leaves as they
// were: a BlockPolicy then costs one eBPF map swap, not a pass over every
// WireGuard peer, route and nftables rule (the userspace backend's UAPI
// round trips and the netlink dumps made up most of a block's latency).
// A SyncState (on every connect and periodic tick) writes every part, so
// the agent still corrects what someone else changed on the node.
// Cleared whenever the node may no longer match it.
type written struct {
	mesh, temp *wg.Config
	routes     *route.Config
	clamp      *mss.Config
}

// unchanged reports whether an incremental reconcile may skip writing
// want because last holds it.
func unchanged[T any](incremental bool, last *T, want T) bool {
	return incremental && last != nil && reflect.DeepEqual(*last, want)
}

// Reconcile makes s true, with the rotation in progress laid over it:
// WireGuard first (wg-mesh, then the temporary interface), then routing
// and MTU, the MSS clamp, and the eBPF maps last, so steering only ever
// points at tunnels and routes that exist; then deliver on the tunnel
// interfaces. Every part writes only what differs. On error the parts
// before the failing one run the new state; the caller retries (the
// controller resends a SyncState).
//
// After the first successful reconcile a rotation command a restart
// interrupted is completed, and after every one the key supersessions
// the state no longer needs are dropped.
func (a *Agent) Reconcile(ctx context.Context, s desired.NodeState) error {
	return a.reconcile(ctx, s, false)
}

// reconcile is Reconcile; incremental skips the WireGuard, routing and
// clamp configurations written last (see written).
func (a *Agent) reconcile(ctx context.Context, s desired.NodeState, incremental bool) error {
	a.mu.Lock()
	err := a.reconcileLocked(ctx, s, incremental)
	a.lastErr = err
	if err == nil {
		a.cur = &s
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	return a.afterReconcile(s)
}

func (a *Agent) reconcileLocked(ctx context.Context, s desired.NodeState, incremental bool) (err error) {
	defer func() {
		if err != nil {
			// The parts before the failing one run the new state: the
			// next reconcile writes every part again.
			a.written = written{}
		}
	}()
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	key, err := a.d.Keys.Active()
	if err != nil {
		return fmt.Errorf("reading the active key: %w", err)
	}
	base := rotation.Base{State: s, Mesh: wgConfig(s, key.Private, a.opts.Interface), Routes: routeConfig(s, a.opts), BPF: bpfState(s, a.opts)}
	c, err := rotation.Compose(a.overlay, base, a.d.Keys)
	if err != nil {
		return fmt.Errorf("rotation: %w", err)
	}
	if !unchanged(incremental, a.written.mesh, c.Mesh) {
		if err := a.d.Tunnels.Set(c.Mesh); err != nil {
			return fmt.Errorf("wireguard: %w", err)
		}
		a.written.mesh = &c.Mesh
	}
	if c.Temp == nil {
		// The executor deletes the interface once its path is gone.
		a.written.temp = nil
	} else if !unchanged(incremental, a.written.temp, *c.Temp) {
		if err := a.d.Tunnels.Set(*c.Temp); err != nil {
			return fmt.Errorf("wireguard: %w", err)
		}
		a.written.temp = c.Temp
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !unchanged(incremental, a.written.routes, c.Routes) {
		if err := a.d.Routes.Set(c.Routes); err != nil {
			return fmt.Errorf("routing: %w", err)
		}
		a.written.routes = &c.Routes
	}
	if clamp := mssConfig(a.d.Routes.MTU(), a.opts); !unchanged(incremental, a.written.clamp, clamp) {
		if err := a.d.Clamp.Set(clamp); err != nil {
			return fmt.Errorf("mss clamp: %w", err)
		}
		a.written.clamp = &clamp
	}
	// The maps are replaced whole; an unchanged state is not rewritten.
	bs, err := c.BPF.Canonical()
	if err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	if a.lastBPF == nil || !sameBPF(*a.lastBPF, bs) {
		if err := a.d.Datapath.Apply(bs); err != nil {
			return fmt.Errorf("data plane: %w", err)
		}
		a.lastBPF = &bs
	}
	if err := a.attachDeliverLocked(); err != nil {
		return err
	}
	a.tempUp = c.Temp != nil
	return a.attachTempDeliverLocked()
}

// attachDeliverLocked attaches deliver to wg-mesh when it is not attached
// to the interface's current index.
func (a *Agent) attachDeliverLocked() error {
	idx, err := a.d.Links.Index(a.opts.Interface)
	if err != nil {
		return fmt.Errorf("finding %s: %w", a.opts.Interface, err)
	}
	if idx == a.deliver {
		return nil
	}
	if err := a.d.Datapath.AttachDeliver(idx); err != nil {
		return fmt.Errorf("attaching deliver to %s: %w", a.opts.Interface, err)
	}
	a.deliver = idx
	return nil
}

// attachTempDeliverLocked attaches deliver to the temporary interface
// while the rotation has one. When it has none, deliver stays until the
// executor deletes the interface (tempTunnels), so blocks hold on every
// packet it still receives.
func (a *Agent) attachTempDeliverLocked() error {
	if !a.tempUp {
		return nil
	}
	idx, err := a.d.Links.Index(a.opts.RotationInterface)
	if err != nil {
		return fmt.Errorf("finding %s: %w", a.opts.RotationInterface, err)
	}
	return a.setTempDeliverLocked(idx)
}

func (a *Agent) setTempDeliverLocked(idx int) error {
	if idx == a.deliverTemp {
		return nil
	}
	if err := a.d.Datapath.AttachDeliver(idx); err != nil {
		return fmt.Errorf("attaching deliver to %s: %w", a.opts.RotationInterface, err)
	}
	old := a.deliverTemp
	a.deliverTemp = idx
	if a.tempPin == idx {
		a.tempPin = 0
	}
	if old != 0 {
		// The interface was recreated: the old link's pin goes.
		if err := a.d.Datapath.DetachDeliver(old); err != nil {
			return fmt.Errorf("detaching deliver from the old %s: %w", a.opts.RotationInterface, err)
		}
	}
	return nil
}

// tempGoneLocked forgets deliver on a temporary interface that is gone,
// removing the pin of its link.
func (a *Agent) tempGoneLocked(idx int) error {
	var errs []error
	for _, p := range []*int{&a.deliverTemp, &a.tempPin} {
		if *p != 0 && (idx == 0 || *p == idx) {
			errs = append(errs, a.d.Datapath.DetachDeliver(*p))
			*p = 0
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detaching deliver from %s: %w", a.opts.RotationInterface, err)
	}
	return nil
}

// FollowLinks attaches classify to every pod interface, existing and
// new, and deliver to wg-mesh (and the temporary interface during a
// rotation) whenever it is (re)created, until ctx ends; it then returns
// ctx's error. Attaching replaces a program in place, so a restarted
// daemon re-attaches without a gap. Errors for single interfaces go to
// onError (may be nil). Everything runs on the calling goroutine (and so
// in its network namespace).
func (a *Agent) FollowLinks(ctx context.Context, onError func(LinkEvent, error)) error {
	events, err := a.d.Links.Watch(ctx)
	if err != nil {
		return err
	}
	for ev := range events {
		if err := a.onLink(ev); err != nil && onError != nil {
			onError(ev, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("link events: subscription ended")
}

func (a *Agent) onLink(ev LinkEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case ev.Name == a.opts.Interface && !ev.Gone:
		if a.cur == nil || ev.Index == a.deliver {
			return nil
		}
		if err := a.d.Datapath.AttachDeliver(ev.Index); err != nil {
			return err
		}
		a.deliver = ev.Index
	case ev.Name == a.opts.Interface && ev.Gone:
		// The next reconcile creates it again, whatever it changes.
		a.written = written{}
		if ev.Index == a.deliver {
			a.deliver = 0
		}
	case ev.Name == a.opts.RotationInterface && !ev.Gone:
		if a.cur == nil || !a.tempUp {
			return nil
		}
		return a.setTempDeliverLocked(ev.Index)
	case ev.Name == a.opts.RotationInterface && ev.Gone:
		a.written.temp = nil
		return a.tempGoneLocked(ev.Index)
	case !a.opts.podInterface(ev.Name):
		return nil
	case ev.Gone:
		if _, ok := a.classify[ev.Index]; !ok {
			return nil
		}
		delete(a.classify, ev.Index)
		// The program went with the interface; this removes its pin.
		if err := a.d.Datapath.DetachClassify(ev.Index); err != nil {
			return err
		}
	default:
		if a.classify[ev.Index] == ev.Name {
			return nil
		}
		if err := a.d.Datapath.AttachClassify(ev.Index); err != nil {
			return err
		}
		a.classify[ev.Index] = ev.Name
	}
	return nil
}

// Close releases the agent's handles and leaves the data plane running:
// WireGuard (kernel), routes, nftables, the eBPF programs and the
// rotation journal stay.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return errors.Join(a.d.Datapath.Close(), a.d.Keys.Close())
}

// Uninstall removes everything the agent created: eBPF programs and maps,
// the MSS table, rules, routes, the WireGuard interfaces (wg-mesh and the
// temporary one) and the rotation journal. Keys are the caller's
// (keys.Remove). It goes on after errors and returns them all.
func (a *Agent) Uninstall() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cur, a.lastBPF, a.written, a.deliver, a.classify = nil, nil, written{}, 0, map[int]string{}
	a.overlay, a.tempUp, a.deliverTemp, a.tempPin = rotation.Overlay{}, false, 0, 0
	return errors.Join(
		a.d.Datapath.Remove(),
		a.d.Clamp.Set(mss.Config{}),
		a.d.Routes.Set(route.Config{}),
		a.d.Tunnels.Delete(a.opts.RotationInterface),
		a.d.Tunnels.Delete(a.opts.Interface),
		a.d.Journal.Remove(),
	)
}
