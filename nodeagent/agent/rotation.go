package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// RotationPollInterval is how often FollowRotation reads the handshakes
// a rotation waits on.
const RotationPollInterval = 250 * time.Millisecond

// host is the agent as the rotation executor drives it.
type host struct{ a *Agent }

var _ rotation.Host = host{}

// Apply implements rotation.Host: the overlay is kept for every later
// reconcile and the last state is reconciled with it.
func (h host) Apply(o rotation.Overlay) error {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	a.overlay = o
	if a.cur == nil {
		return rotation.ErrNoDesiredState
	}
	err := a.reconcileLocked(context.Background(), *a.cur, false)
	a.lastErr = err
	return err
}

// tempTunnels is what the executor reads and deletes: the agent's
// tunnels, and when the temporary interface goes, deliver's link on it.
type tempTunnels struct{ a *Agent }

var _ rotation.Tunnels = tempTunnels{}

// Status implements rotation.Tunnels.
func (t tempTunnels) Status(name string) (wg.Status, error) { return t.a.d.Tunnels.Status(name) }

// Delete implements rotation.Tunnels. Deliver stays attached until the
// interface is gone, then its pinned link is removed.
func (t tempTunnels) Delete(name string) error {
	a := t.a
	if err := a.d.Tunnels.Delete(name); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch name {
	case a.opts.Interface:
		a.written = written{}
	case a.opts.RotationInterface:
		a.written.temp = nil
		return a.tempGoneLocked(0)
	}
	return nil
}

// SetReporter sets where key and rotation reports go (the stream
// client); reports made before are sent now, in order.
func (a *Agent) SetReporter(r Reporter) {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	a.reporter = r
	unsent := a.unsent
	a.unsent = nil
	for _, m := range unsent {
		a.reportLocked(m)
	}
}

// reportLocked sends one report, or keeps it until a reporter is set.
func (a *Agent) reportLocked(m any) {
	if a.reporter == nil {
		a.unsent = append(a.unsent, m)
		return
	}
	switch m := m.(type) {
	case *meshpb.KeyReport:
		a.reporter.ReportKey(m)
	case *meshpb.RotationReport:
		a.reporter.ReportRotation(m)
	}
}

// sendLocked sends what an executor call produced: key reports first
// (the controller learns a PENDING key before the PREPARE that staged it
// is done), then the rotation report.
func (a *Agent) sendLocked(res rotation.Result) {
	for _, k := range res.Keys {
		a.reportLocked(k)
	}
	if res.Report != nil {
		a.reportLocked(res.Report)
		a.lastRot = res.Report
	}
}

// rotate carries out a rotation command and sends its reports.
func (a *Agent) rotate(c *meshpb.RotationCommand) (meshpb.AckCode, error) {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	res, err := a.exec.Handle(c)
	a.sendLocked(res)
	switch {
	case err == nil:
		return meshpb.AckCode_ACK_OK, nil
	case errors.Is(err, rotation.ErrInvalid):
		return meshpb.AckCode_ACK_INVALID, fmt.Errorf("rotation %s: %w", c.GetId(), err)
	default:
		return meshpb.AckCode_ACK_FAILED, fmt.Errorf("rotation %s: %w", c.GetId(), err)
	}
}

// afterReconcile completes a command a restart interrupted (once) and
// drops supersessions the state no longer needs. The executor calls back
// into the agent, so no agent lock is held.
func (a *Agent) afterReconcile(s desired.NodeState) error {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	if !a.resumed {
		res, err := a.exec.Resume()
		a.sendLocked(res)
		if err != nil {
			return fmt.Errorf("completing the journaled rotation: %w", err)
		}
		a.resumed = true
	}
	if err := a.exec.Prune(s); err != nil {
		return fmt.Errorf("dropping key supersessions: %w", err)
	}
	return nil
}

// FollowRotation sends the rotation report whenever it changes, e.g.
// when a handshake the controller waits on completes, reading it every
// RotationPollInterval until ctx ends; it then returns ctx's error. It
// polls throughout a rotation, not only while the executor is Awaiting:
// a handshake that completes between two polls ends the wait, and its
// confirmation must still be sent. Read errors go to onError (may be
// nil). It reads WireGuard from the calling goroutine's network
// namespace.
func (a *Agent) FollowRotation(ctx context.Context, onError func(error)) error {
	t := time.NewTicker(RotationPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := a.pollRotation(); err != nil && onError != nil {
			onError(err)
		}
	}
}

func (a *Agent) pollRotation() error {
	a.rmu.Lock()
	defer a.rmu.Unlock()
	r, err := a.exec.Report()
	if err != nil {
		return fmt.Errorf("reading the rotation's handshakes: %w", err)
	}
	if r == nil || proto.Equal(r, a.lastRot) {
		return nil
	}
	a.reportLocked(r)
	a.lastRot = r
	return nil
}

// RotationReport implements stream.RotationProvider: where the rotation
// in progress stands, nil when none.
func (a *Agent) RotationReport(context.Context) (*meshpb.RotationReport, error) {
	return a.exec.Report()
}

// Rotation returns the rotation overlay in force (the zero Overlay when
// no rotation ran).
func (a *Agent) Rotation() rotation.Overlay { return a.exec.Overlay() }
