package manager

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/lumbrjx/vpblu/ctrl/metrics"
	"github.com/lumbrjx/vpblu/ctrl/streamserver"
)

// leadership is the stream server's view of leader election: it leads
// while its leader-only runnable runs, and is ready once the desired state
// is loaded.
type leadership struct {
	leading atomic.Bool
	ready   <-chan struct{}
	metrics *metrics.Metrics
}

var _ streamserver.Leader = (*leadership)(nil)

func (l *leadership) Leading() bool          { return l.leading.Load() }
func (l *leadership) Ready() <-chan struct{} { return l.ready }

// NeedLeaderElection makes Start run once leadership is won.
func (l *leadership) NeedLeaderElection() bool { return true }

// Start marks this replica leading until ctx ends (the manager then exits:
// a lost lease ends the process).
func (l *leadership) Start(ctx context.Context) error {
	l.leading.Store(true)
	l.metrics.Leader.Set(1)
	<-ctx.Done()
	l.leading.Store(false)
	l.metrics.Leader.Set(0)
	return nil
}

// leaseEpoch returns the generation epoch of the leadership lock records:
// the Lease's transition count plus one, read after winning, so every new
// leader's epoch is later than every earlier leader's. Without a lock the
// process leads alone and uses the start time in seconds.
func leaseEpoch(lock resourcelock.Interface) func(context.Context) (uint64, error) {
	if lock == nil {
		start := uint64(time.Now().Unix())
		return func(context.Context) (uint64, error) { return start, nil }
	}
	return func(ctx context.Context) (uint64, error) {
		rec, err := leaderRecord(ctx, lock)
		if err != nil {
			return 0, fmt.Errorf("read lease: %w", err)
		}
		if rec.HolderIdentity != lock.Identity() {
			return 0, fmt.Errorf("lease is held by %q, not by us (%q)", rec.HolderIdentity, lock.Identity())
		}
		return uint64(rec.LeaderTransitions) + 1, nil
	}
}

// leaderRecord reads the lock's record. A LeaseLock is read with a Get of
// its own: LeaseLock.Get stores the Lease in the lock, which the leader
// elector's renewals write concurrently.
func leaderRecord(ctx context.Context, lock resourcelock.Interface) (*resourcelock.LeaderElectionRecord, error) {
	ll, ok := lock.(*resourcelock.LeaseLock)
	if !ok {
		rec, _, err := lock.Get(ctx)
		return rec, err
	}
	lease, err := ll.Client.Leases(ll.LeaseMeta.Namespace).Get(ctx, ll.LeaseMeta.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec), nil
}
