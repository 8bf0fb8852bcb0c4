package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lumbrjx/vpblu/core/desired"
)

// LoaderOptions configure a Loader.
type LoaderOptions struct {
	// Reader reads the informer caches; Synced waits for them.
	Reader client.Reader
	Synced func(ctx context.Context) bool
	// Epoch returns this leadership's generation epoch (from the Lease).
	Epoch   func(ctx context.Context) (uint64, error)
	Planner *Planner
	Keys    *Keys
	// ClusterCIDRs are the configured cluster pod CIDRs.
	ClusterCIDRs []netip.Prefix
	// OnLoaded is called after the Planner is loaded (may be nil), with the
	// problems core/desired found.
	OnLoaded func(epoch uint64, problems []error)
}

// Loader loads the Planner from the caches once leadership is won, then
// closes Ready. It is a leader-only runnable.
type Loader struct {
	opts  LoaderOptions
	ready chan struct{}
}

// NewLoader returns a Loader.
func NewLoader(opts LoaderOptions) *Loader {
	return &Loader{opts: opts, ready: make(chan struct{})}
}

// Ready is closed once the Planner is loaded.
func (l *Loader) Ready() <-chan struct{} { return l.ready }

// NeedLeaderElection makes the Loader run on the leader only.
func (l *Loader) NeedLeaderElection() bool { return true }

// Start loads the Planner and returns; it fails (ending the manager) when
// the epoch or the caches cannot be read.
func (l *Loader) Start(ctx context.Context) error {
	if !l.opts.Synced(ctx) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("informer caches did not sync")
	}
	epoch, err := l.opts.Epoch(ctx)
	if err != nil {
		return fmt.Errorf("leader epoch: %w", err)
	}
	snap, gens, err := Snapshot(ctx, l.opts.Reader, l.opts.Keys)
	if err != nil {
		return err
	}
	snap.ClusterCIDRs = l.opts.ClusterCIDRs
	problems := l.opts.Planner.Load(epoch, snap, gens)
	close(l.ready)
	if l.opts.OnLoaded != nil {
		l.opts.OnLoaded(epoch, problems)
	}
	return nil
}

// Snapshot reads the whole desired-state input from the caches.
func Snapshot(ctx context.Context, r client.Reader, keys *Keys) (desired.Snapshot, map[desired.Ref]PolicyVersion, error) {
	var snap desired.Snapshot
	var nodes corev1.NodeList
	if err := r.List(ctx, &nodes); err != nil {
		return snap, nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		src, err := readNode(ctx, r, keys, nodes.Items[i].Name)
		if errors.Is(err, errNodeGone) {
			continue
		}
		if err != nil {
			return snap, nil, err
		}
		snap.Nodes = append(snap.Nodes, NodeInput(src))
	}
	pol, gens, err := ListPolicies(ctx, r)
	if err != nil {
		return snap, nil, err
	}
	snap.Policies = pol
	return snap, gens, nil
}
