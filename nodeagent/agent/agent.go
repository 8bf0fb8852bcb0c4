package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Agent makes a node's desired state true. Its methods are safe for
// concurrent use; reconciles are serialized.
type Agent struct {
	opts Options
	d    Deps

	mu       sync.Mutex
	cur      *desired.NodeState // the state last reconciled in full
	lastErr  error              // the last reconcile's error
	lastBPF  *bpf.State         // the data plane state last applied
	deliver  int                // ifindex deliver is attached to
	classify map[int]string     // pod interfaces classify is attached to
	report   func(*meshpb.KeyReport)
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
	return &Agent{opts: opts, d: deps, classify: map[int]string{}}, nil
}

// Start prepares the data plane before any state arrives. Maps that hold
// a state (a restarted daemon) are left exactly as they are, and a first
// state with the same content will not rewrite them. Fresh maps get a
// fail-closed state: strict, no tunnel, the cluster CIDRs — cross-node
// pod traffic is dropped until the first state is applied.
func (a *Agent) Start() error {
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

// SetKeyReporter sets where key reports go (the stream client's
// ReportKey).
func (a *Agent) SetKeyReporter(f func(*meshpb.KeyReport)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.report = f
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

// Reconcile makes s true: WireGuard peers first, then routing and MTU,
// the MSS clamp, and the eBPF maps last, so steering only ever points at
// tunnels and routes that exist. Every part writes only what differs. On
// error the parts before the failing one run the new state; the caller
// retries (the controller resends a SyncState).
func (a *Agent) Reconcile(ctx context.Context, s desired.NodeState) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.reconcile(ctx, s)
	a.lastErr = err
	if err == nil {
		a.cur = &s
	}
	return err
}

func (a *Agent) reconcile(ctx context.Context, s desired.NodeState) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	key, err := a.d.Keys.Active()
	if err != nil {
		return fmt.Errorf("reading the active key: %w", err)
	}
	if err := a.d.Tunnels.Set(wgConfig(s, key.Private, a.opts.Interface)); err != nil {
		return fmt.Errorf("wireguard: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := a.d.Routes.Set(routeConfig(s, a.opts)); err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	if err := a.d.Clamp.Set(mssConfig(a.d.Routes.MTU(), a.opts)); err != nil {
		return fmt.Errorf("mss clamp: %w", err)
	}
	// The maps are replaced whole; an unchanged state is not rewritten.
	bs, err := bpfState(s, a.opts).Canonical()
	if err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	if a.lastBPF == nil || !sameBPF(*a.lastBPF, bs) {
		if err := a.d.Datapath.Apply(bs); err != nil {
			return fmt.Errorf("data plane: %w", err)
		}
		a.lastBPF = &bs
	}
	return a.attachDeliverLocked()
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

// FollowLinks attaches classify to every pod interface, existing and
// new, and deliver to wg-mesh whenever it is (re)created, until ctx ends;
// it then returns ctx's error. Attaching replaces a program in place, so
// a restarted daemon re-attaches without a gap. Errors for single
// interfaces go to onError (may be nil). Everything runs on the calling
// goroutine (and so in its network namespace).
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
		if ev.Index == a.deliver {
			a.deliver = 0
		}
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
// WireGuard (kernel), routes, nftables and the eBPF programs stay.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return errors.Join(a.d.Datapath.Close(), a.d.Keys.Close())
}

// Uninstall removes everything the agent created: eBPF programs and maps,
// the MSS table, rules, routes and the WireGuard interfaces. Keys are the
// caller's (keys.Remove). It goes on after errors and returns them all.
func (a *Agent) Uninstall() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cur, a.lastBPF, a.deliver, a.classify = nil, nil, 0, map[int]string{}
	return errors.Join(
		a.d.Datapath.Remove(),
		a.d.Clamp.Set(mss.Config{}),
		a.d.Routes.Set(route.Config{}),
		a.d.Tunnels.Delete(wg.RotationInterface),
		a.d.Tunnels.Delete(a.opts.Interface),
	)
}

// activeKey returns the active key for reports.
func (a *Agent) activeKey() (keys.Key, error) { return a.d.Keys.Active() }
