package rotation_test

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

var t0 = time.Date(2026, 3, 1, 2, 59, 0, 0, time.UTC)

func key(node string, gen int64) desired.Key {
	return desired.Key(sha256.Sum256(fmt.Appendf(nil, "%s/%d", node, gen)))
}

func short(k desired.Key) string { return k.String()[:6] }

// mesh is a full mesh of the world's nodes, keys from their status.
type mesh struct{ w *rotation.World }

func (m mesh) Peers(node string) []rotation.Peer {
	var out []rotation.Peer
	found := false
	for i, n := range m.w.Nodes {
		if n.Name == node {
			found = true
			continue
		}
		k, err := desired.ParseKey(n.Status.PublicKey)
		if err != nil {
			continue
		}
		out = append(out, rotation.Peer{Node: n.Name, PublicKey: k,
			Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), 51820)})
	}
	if !found {
		return nil
	}
	slices.SortFunc(out, func(a, b rotation.Peer) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// env is a controller under test: a machine, the API state it persists
// into, and a clock.
type env struct {
	t     testing.TB
	m     *rotation.Machine
	now   time.Time
	world *rotation.World
	trace []string
	// sent are all commands ever sent, per node, in order.
	sent map[string][]*meshpb.RotationCommand
}

func newEnv(t testing.TB, names ...string) *env {
	w := &rotation.World{}
	for _, n := range names {
		w.Nodes = append(w.Nodes, rotation.Node{
			Name: n, Labels: map[string]string{"pool": "default"}, Connected: true, Capable: true, ListenPort: 51820,
			Status: v1alpha1.VpbluNodeStatus{PublicKey: key(n, 1).String(), KeyGeneration: 1, RotationPhase: v1alpha1.RotationIdle},
		})
	}
	w.Mesh = mesh{w}
	return &env{t: t, m: rotation.New(rotation.Options{}), now: t0, world: w, sent: map[string][]*meshpb.RotationCommand{}}
}

func (e *env) node(name string) *rotation.Node {
	for i := range e.world.Nodes {
		if e.world.Nodes[i].Name == name {
			return &e.world.Nodes[i]
		}
	}
	e.t.Fatalf("no node %s", name)
	return nil
}

// observe hands the machine a copy of the world.
func (e *env) observe() rotation.Output {
	w := *e.world
	w.Nodes = slices.Clone(e.world.Nodes)
	w.Policies = slices.Clone(e.world.Policies)
	return e.handle(rotation.Observe{World: w})
}

func (e *env) handle(ev rotation.Event) rotation.Output {
	out := e.m.Handle(e.now, ev)
	e.apply(out)
	e.trace = append(e.trace, render(out)...)
	return out
}

func (e *env) tick(d time.Duration) rotation.Output {
	e.now = e.now.Add(d)
	return e.handle(rotation.Tick{})
}

// leaderChange replaces the machine by a new one that starts from the
// API, as the standby does when it wins the lease.
func (e *env) leaderChange() rotation.Output {
	e.m = rotation.New(rotation.Options{})
	return e.observe()
}

// apply persists patches into the world, as the API server would.
func (e *env) apply(out rotation.Output) {
	for _, p := range out.Nodes {
		p.Apply(&e.node(p.Node).Status)
	}
	for _, p := range out.Policies {
		for i := range e.world.Policies {
			if e.world.Policies[i].Name == p.Policy {
				p.Apply(&e.world.Policies[i].Status)
			}
		}
	}
	for _, c := range out.Commands {
		e.sent[c.Node] = append(e.sent[c.Node], c.Cmd)
	}
}

func stageOf(c *meshpb.RotationCommand) rotation.Stage {
	s, _ := rotation.StageOf(c.GetPhase(), c.GetStep())
	return s
}

// render condenses an output into trace lines.
func render(out rotation.Output) []string {
	var lines []string
	for _, p := range out.Nodes {
		var parts []string
		if p.RotationPhase != nil {
			parts = append(parts, "phase="+string(*p.RotationPhase))
		}
		if p.Rotating != nil {
			parts = append(parts, fmt.Sprintf("rotating=%s/%s", p.Rotating.Status, p.Rotating.Reason))
		}
		if p.PendingPublicKey != nil {
			parts = append(parts, "pending="+shortText(*p.PendingPublicKey))
		}
		if p.PublicKey != nil {
			parts = append(parts, "key="+shortText(*p.PublicKey))
		}
		if p.KeyGeneration != nil {
			parts = append(parts, fmt.Sprintf("gen=%d", *p.KeyGeneration))
		}
		if p.LastRotateRequest != nil {
			parts = append(parts, "request="+*p.LastRotateRequest)
		}
		lines = append(lines, "status "+p.Node+" "+strings.Join(parts, " "))
	}
	for _, p := range out.Policies {
		var parts []string
		if p.ObservedGeneration != nil {
			parts = append(parts, fmt.Sprintf("observed=%d", *p.ObservedGeneration))
		}
		if p.LastRun != nil {
			parts = append(parts, "lastRun="+p.LastRun.Format(time.DateTime))
		}
		if p.NextRun != nil {
			parts = append(parts, "nextRun="+p.NextRun.Format(time.DateTime))
		}
		if p.CurrentNode != nil {
			parts = append(parts, "current="+*p.CurrentNode)
		}
		if p.Phase != nil {
			parts = append(parts, "phase="+string(*p.Phase))
		}
		if n := p.Node; n != nil {
			s := fmt.Sprintf("node=%s:%s:%d", n.Node, n.Phase, n.KeyGeneration)
			if n.LastRotated != nil {
				s += ":rotated"
			}
			parts = append(parts, s)
		}
		for _, c := range p.Conditions {
			parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
		}
		lines = append(lines, "policy "+p.Policy+" "+strings.Join(parts, " "))
	}
	for _, k := range out.Keys {
		lines = append(lines, fmt.Sprintf("commit %s %s gen %d", k.Node, short(k.Key), k.Generation))
	}
	for _, c := range out.Commands {
		lines = append(lines, fmt.Sprintf("send %s %s %s", c.Node, c.Cmd.GetId(), stageOf(c.Cmd)))
	}
	for _, ev := range out.Events {
		lines = append(lines, fmt.Sprintf("event %s/%s %s %s", ev.Kind, ev.Name, ev.Type, ev.Reason))
	}
	for _, f := range out.Finished {
		lines = append(lines, fmt.Sprintf("finished %s %s %s", f.Node, f.Outcome, f.Reason))
	}
	return lines
}

func shortText(k string) string {
	if len(k) < 6 {
		return k
	}
	return k[:6]
}

// takeTrace returns the trace since the last call.
func (e *env) takeTrace() []string {
	t := e.trace
	e.trace = nil
	return t
}

// ack reports stage done (or failed with err) from nodes.
func (e *env) ack(stage rotation.Stage, err string, nodes ...string) {
	id, _ := e.m.Stage()
	for _, n := range nodes {
		e.handle(rotation.Acked{Node: n, ID: id, Stage: stage, Err: err})
	}
}

// confirmAll reports every pair of the rotation confirmed at stage.
func (e *env) confirmAll(stage rotation.Stage) {
	id, _ := e.m.Stage()
	subject, _ := e.m.Rotating()
	peers := e.world.Mesh.Peers(subject)
	var names []string
	for _, p := range peers {
		names = append(names, p.Node)
		e.handle(rotation.Confirmed{Node: p.Node, ID: id, Stage: stage, Peers: []string{subject}})
	}
	e.handle(rotation.Confirmed{Node: subject, ID: id, Stage: stage, Peers: names})
}

// pending reports the subject's staged key.
func (e *env) pending(node string, gen int64) {
	k := key(node, gen)
	e.handle(rotation.KeyReported{Node: node, Key: &meshpb.KeyReport{PublicKey: k[:], Generation: uint64(gen), State: meshpb.KeyState_KEY_STATE_PENDING}})
}

// all is the subject and its peers.
func (e *env) all(subject string) []string {
	out := []string{subject}
	for _, p := range e.world.Mesh.Peers(subject) {
		out = append(out, p.Node)
	}
	return out
}

// drive answers every stage of the current rotation until it reaches
// stop (or ends); each stage's settle time passes.
func (e *env) drive(stop rotation.Stage) {
	for range 20 {
		_, st := e.m.Stage()
		subject, ok := e.m.Rotating()
		if !ok || st == stop {
			return
		}
		switch st {
		case rotation.StagePrepare:
			e.pending(subject, e.node(subject).Status.KeyGeneration+1)
			e.ack(st, "", subject)
		default:
			e.ack(st, "", e.all(subject)...)
			if st == rotation.StageDistribute || st == rotation.StageRekey || st == rotation.StageRollbackRestore {
				e.confirmAll(st)
			}
			e.tick(rotation.DefaultSettle)
		}
	}
}

func (e *env) request(node, value string) {
	for i := range e.world.Nodes {
		if e.world.Nodes[i].Name == node {
			e.world.Nodes[i].RotateRequest = value
		}
	}
	e.observe()
}

func pendingKey(node string, gen int64) *meshpb.KeyReport {
	k := key(node, gen)
	return &meshpb.KeyReport{PublicKey: k[:], Generation: uint64(gen), State: meshpb.KeyState_KEY_STATE_PENDING}
}
