package rotation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
)

// ErrSchedule is wrapped by errors about schedules that do not parse.
var ErrSchedule = errors.New("invalid rotation schedule")

// parser reads the five standard fields (minute hour day-of-month month
// day-of-week) and the @descriptors, in UTC.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a RotationPolicy schedule. Time zones ("TZ=...")
// are refused: schedules are in UTC.
func ParseSchedule(s string) (cron.Schedule, error) {
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, fmt.Errorf("%w: %q: time zones are not supported, schedules are UTC", ErrSchedule, s)
	}
	if strings.HasPrefix(s, "@every") {
		return nil, fmt.Errorf("%w: %q: use five fields or @hourly, @daily, @weekly, @monthly, @yearly", ErrSchedule, s)
	}
	sch, err := parser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrSchedule, s, err)
	}
	return sch, nil
}

// NextRun is the first run of schedule s strictly after t, in UTC.
func NextRun(s cron.Schedule, t time.Time) time.Time { return s.Next(t.UTC()) }

type schedule struct {
	s   cron.Schedule
	err error
}

func (m *Machine) scheduleOf(p *v1alpha1.RotationPolicy) (cron.Schedule, error) {
	spec := string(p.Spec.Schedule)
	c, ok := m.sched[spec]
	if !ok {
		c.s, c.err = ParseSchedule(spec)
		m.sched[spec] = c
	}
	return c.s, c.err
}

// runOf is the policy's last and next run: what this leader decided, or
// what the status says when that is newer.
func (m *Machine) runOf(p *v1alpha1.RotationPolicy) run {
	var st run
	if p.Status.LastRun != nil {
		st.last = p.Status.LastRun.Time
	}
	if p.Status.NextRun != nil {
		st.next = p.Status.NextRun.Time
	}
	own, ok := m.runs[p.Name]
	if !ok || st.last.After(own.last) || (st.last.Equal(own.last) && !st.next.IsZero() && own.next.IsZero()) {
		return st
	}
	return own
}

type selector struct {
	sel labels.Selector
	err error
}

// selects reports whether p's node selector matches n. Parsed selectors
// are cached by their text.
func (m *Machine) selects(p *v1alpha1.RotationPolicy, n *Node) (bool, error) {
	if p.Spec.NodeSelector == nil {
		return true, nil
	}
	k := p.Spec.NodeSelector.String()
	c, ok := m.selectors[k]
	if !ok {
		c.sel, c.err = metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
		m.selectors[k] = c
	}
	if c.err != nil {
		return false, c.err
	}
	return c.sel.Matches(labels.Set(n.Labels)), nil
}

// selecting returns the valid policies that select node.
func (m *Machine) selecting(node string) []*v1alpha1.RotationPolicy {
	n := m.nodes[node]
	if n == nil {
		return nil
	}
	var out []*v1alpha1.RotationPolicy
	for i := range m.world.Policies {
		p := &m.world.Policies[i]
		if ok, err := m.selects(p, n); err == nil && ok {
			out = append(out, p)
		}
	}
	return out
}

func overlapOf(p *v1alpha1.RotationPolicy) time.Duration {
	if d := p.Spec.OverlapWindow.Duration; d > 0 {
		return d
	}
	return DefaultOverlap
}

// schedule updates the policies' runs and starts the next due rotation:
// on-demand requests first (by node name), then the nodes of each
// policy's current round (policies by name, nodes by name). A node whose
// rotation cannot start yet (its daemon or a peer's is not connected or
// too old) is skipped and tried again later.
func (m *Machine) schedule(now time.Time, out *Output) {
	policies := m.sortedPolicies()
	names := make([]string, 0, len(m.nodes))
	for n := range m.nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		n := m.nodes[name]
		if n.RotateRequest == "" || n.RotateRequest == n.Status.LastRotateRequest {
			continue
		}
		key := "request " + name + " " + n.RotateRequest
		if m.attempted[key] {
			continue
		}
		overlap := m.opts.Overlap
		if sel := m.selecting(name); len(sel) > 0 {
			overlap = overlapOf(sel[0])
			for _, p := range sel[1:] {
				overlap = min(overlap, overlapOf(p))
			}
		}
		if m.start(now, n, "", n.RotateRequest, overlap, out) {
			m.attempted[key] = true
			return
		}
	}
	for i := range policies {
		p := &policies[i]
		r := m.runOf(p)
		if p.Spec.Suspend || r.last.IsZero() {
			continue
		}
		if _, err := m.scheduleOf(p); err != nil {
			continue
		}
		for _, name := range names {
			n := m.nodes[name]
			if ok, err := m.selects(p, n); err != nil || !ok {
				continue
			}
			key := fmt.Sprintf("round %s %d %s", p.Name, r.last.Unix(), name)
			if m.attempted[key] || !m.lastRotated(p, name).Before(r.last) {
				continue
			}
			if m.start(now, n, p.Name, "", overlapOf(p), out) {
				m.attempted[key] = true
				return
			}
		}
	}
}

func (m *Machine) sortedPolicies() []v1alpha1.RotationPolicy {
	policies := slices.Clone(m.world.Policies)
	slices.SortFunc(policies, func(a, b v1alpha1.RotationPolicy) int { return strings.Compare(a.Name, b.Name) })
	return policies
}

// tickPolicies validates every policy and moves the runs that are due;
// rounds start even while a rotation is in progress (their nodes wait).
func (m *Machine) tickPolicies(now time.Time, out *Output) {
	policies := m.sortedPolicies()
	for i := range policies {
		m.tickPolicy(now, &policies[i], out)
	}
}

// lastRotated is when node last completed a rotation, as the policy's
// status or this leader knows.
func (m *Machine) lastRotated(p *v1alpha1.RotationPolicy, node string) time.Time {
	t := m.rotated[node]
	for _, nr := range p.Status.Nodes {
		if nr.Node == node && nr.LastRotated != nil && nr.LastRotated.After(t) {
			t = nr.LastRotated.Time
		}
	}
	return t
}

// tickPolicy validates the policy and moves its runs when one is due.
func (m *Machine) tickPolicy(now time.Time, p *v1alpha1.RotationPolicy, out *Output) {
	patch := PolicyPatch{Policy: p.Name}
	changed := false
	if g := p.Generation; g != 0 && p.Status.ObservedGeneration != g && m.observed[p.Name] != g {
		m.observed[p.Name] = g
		patch.ObservedGeneration, changed = &g, true
	}
	sch, err := m.scheduleOf(p)
	if err == nil && p.Spec.NodeSelector != nil {
		if _, serr := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector); serr != nil {
			err = fmt.Errorf("node selector: %w", serr)
		}
	}
	valid := "True"
	if err != nil {
		valid = "False: " + err.Error()
	}
	if m.valid[p.Name] != valid {
		m.valid[p.Name] = valid
		c := metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid",
			Message: "schedule and selector parse", LastTransitionTime: metav1.NewTime(now), ObservedGeneration: p.Generation}
		if err != nil {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, "InvalidSpec", err.Error()
			out.Events = append(out.Events, EventRecord{Kind: "RotationPolicy", Name: p.Name, Type: corev1.EventTypeWarning, Reason: "InvalidSpec", Message: err.Error()})
		}
		patch.Conditions, changed = append(patch.Conditions, c), true
	}
	if err != nil {
		if changed {
			out.Policies = append(out.Policies, patch)
		}
		return
	}
	r := m.runOf(p)
	switch {
	case r.next.IsZero():
		r.next = NextRun(sch, now)
		m.runs[p.Name] = r
		t := r.next
		patch.NextRun, changed = &t, true
	case !now.Before(r.next):
		// Due (a run missed while no leader ran counts once).
		r.next = NextRun(sch, now)
		t := r.next
		patch.NextRun, changed = &t, true
		if !p.Spec.Suspend {
			r.last = now
			l := now
			patch.LastRun = &l
			out.Events = append(out.Events, EventRecord{Kind: "RotationPolicy", Name: p.Name, Type: corev1.EventTypeNormal,
				Reason: "RoundStarted", Message: "rotating the keys of every selected node, one at a time"})
		}
		m.runs[p.Name] = r
	}
	if changed {
		out.Policies = append(out.Policies, patch)
	}
}

// start begins a rotation of n when it can; it reports whether it did.
func (m *Machine) start(now time.Time, n *Node, policy, request string, overlap time.Duration, out *Output) bool {
	oldKey, err := desired.ParseKey(n.Status.PublicKey)
	if err != nil || n.Status.KeyGeneration < 1 {
		return m.block(n.Name, "the node has not reported a key", out)
	}
	peers := peerNames(m.peersOf(n.Name))
	var missing []string
	for _, name := range append([]string{n.Name}, peers...) {
		x := m.nodes[name]
		switch {
		case x == nil:
			missing = append(missing, name+" (unknown)")
		case !x.Connected:
			missing = append(missing, name+" (not connected)")
		case !x.Capable:
			missing = append(missing, name+" (daemon lacks "+Capability+")")
		case tempPort(x.ListenPort) > 65535:
			missing = append(missing, name+" (listen port 65535 leaves no temporary port)")
		}
	}
	if len(missing) > 0 {
		return m.block(n.Name, "waiting for "+strings.Join(missing, ", "), out)
	}
	delete(m.blocked, n.Name)
	gen := uint64(n.Status.KeyGeneration) + 1
	r := &rot{
		id: ID(n.Name, gen), subject: n.Name, newGen: gen, oldGen: n.Status.KeyGeneration, oldKey: oldKey,
		stage: StageIdle, since: now, started: now, overlap: overlap, peers: peers, policy: policy, request: request,
		keyAcked: map[string]bool{},
	}
	m.cur = r
	msg := "scheduled by RotationPolicy " + policy
	if policy == "" {
		msg = "requested by annotation " + v1alpha1.AnnotationRotate + "=" + request
	}
	out.Events = append(out.Events, EventRecord{Kind: "VpbluNode", Name: n.Name, Type: corev1.EventTypeNormal,
		Reason: "RotationStarted", Message: fmt.Sprintf("rotation %s started (%s) with %d peers", r.id, msg, len(peers))})
	if request != "" {
		req := request
		out.Nodes = append(out.Nodes, NodePatch{Node: n.Name, LastRotateRequest: &req})
	}
	m.enter(now, StagePrepare, msg, out)
	return true
}

// block records why a node cannot rotate now, with an Event when the
// reason changes.
func (m *Machine) block(node, why string, out *Output) bool {
	if m.blocked[node] != why {
		m.blocked[node] = why
		out.Events = append(out.Events, EventRecord{Kind: "VpbluNode", Name: node, Type: corev1.EventTypeWarning, Reason: "RotationWaiting", Message: why})
	}
	return false
}
