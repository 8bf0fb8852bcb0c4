package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/nodeagent/agent"
	"github.com/lumbrjx/vpblu/nodeagent/route/routetest"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// fakeDatapath records the applied state and attachments.
type fakeDatapath struct {
	mu       sync.Mutex
	state    *bpf.State
	applies  int
	fail     error
	classify map[int]bool
	deliver  map[int]bool
	removed  bool
	closed   bool
}

var _ agent.Datapath = (*fakeDatapath)(nil)

func newFakeDatapath() *fakeDatapath {
	return &fakeDatapath{classify: map[int]bool{}, deliver: map[int]bool{}}
}

func (d *fakeDatapath) Apply(s bpf.State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	cs, err := s.Canonical()
	if err != nil {
		return err
	}
	d.state = &cs
	d.applies++
	return nil
}

func (d *fakeDatapath) Dump() (bpf.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil {
		return bpf.State{}, nil
	}
	return *d.state, nil
}

func (d *fakeDatapath) AttachClassify(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.classify[i] = true
	return nil
}

func (d *fakeDatapath) DetachClassify(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.classify[i] {
		return bpf.ErrNotFound
	}
	delete(d.classify, i)
	return nil
}

func (d *fakeDatapath) AttachDeliver(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deliver[i] = true
	return nil
}

func (d *fakeDatapath) DetachDeliver(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.deliver, i)
	return nil
}

func (d *fakeDatapath) Counters() (map[string]uint64, error) {
	return map[string]uint64{"classify/steer": 3}, nil
}

func (d *fakeDatapath) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed, d.state, d.deliver, d.classify = true, nil, map[int]bool{}, map[int]bool{}
	return nil
}

func (d *fakeDatapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *fakeDatapath) attached() (classify, deliver []int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.classify {
		classify = append(classify, i)
	}
	for i := range d.deliver {
		deliver = append(deliver, i)
	}
	slices.Sort(classify)
	slices.Sort(deliver)
	return classify, deliver
}

// Render prints the applied state.
func (d *fakeDatapath) Render() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil {
		return "bpf: no state\n"
	}
	s := d.state
	var b strings.Builder
	fmt.Fprintf(&b, "bpf config strict=%v isolated=%v drop-sample=%d\n", s.Config.Strict, s.Config.Isolated, s.Config.DropSample)
	for _, r := range s.Remotes {
		fmt.Fprintf(&b, "bpf remote %s node %d mark %#x\n", r.CIDR, r.Node, r.Mark)
	}
	for _, n := range s.Nodes {
		fmt.Fprintf(&b, "bpf node %d ready=%v isolated=%v\n", n.ID, n.Ready, n.Isolated)
	}
	for _, l := range s.Locals {
		fmt.Fprintf(&b, "bpf local %s\n", l)
	}
	for _, c := range s.Clusters {
		fmt.Fprintf(&b, "bpf cluster %s\n", c)
	}
	for _, r := range s.Blocks {
		fmt.Fprintf(&b, "bpf block %s\n", r)
	}
	return b.String()
}

// fakeLinks is a node's interfaces; the test adds and removes them.
type fakeLinks struct {
	mu     sync.Mutex
	index  map[string]int
	next   int
	events chan agent.LinkEvent
}

func newFakeLinks(names ...string) *fakeLinks {
	l := &fakeLinks{index: map[string]int{}, next: 1, events: make(chan agent.LinkEvent, 64)}
	for _, n := range names {
		l.add(n)
	}
	return l
}

func (l *fakeLinks) add(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i, ok := l.index[name]; ok {
		return i
	}
	i := l.next
	l.next++
	l.index[name] = i
	select {
	case l.events <- agent.LinkEvent{Name: name, Index: i}:
	default:
	}
	return i
}

func (l *fakeLinks) remove(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.index[name]
	if !ok {
		return
	}
	delete(l.index, name)
	l.events <- agent.LinkEvent{Name: name, Index: i, Gone: true}
}

// name is the interface with index i, or "gone:<i>".
func (l *fakeLinks) name(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, x := range l.index {
		if x == i {
			return n
		}
	}
	return fmt.Sprintf("gone:%d", i)
}

func (l *fakeLinks) Index(name string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.index[name]
	if !ok {
		return 0, errors.New("no such link")
	}
	return i, nil
}

func (l *fakeLinks) Watch(ctx context.Context) (<-chan agent.LinkEvent, error) {
	out := make(chan agent.LinkEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-l.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// linkedTunnels keeps the fake kernels consistent, as one kernel is: an
// interface wg creates exists for route and for link events; deleting
// it takes its routes along.
type linkedTunnels struct {
	*wg.Manager
	rk    *routetest.Kernel
	links *fakeLinks
}

func (t linkedTunnels) Set(c wg.Config) error {
	if err := t.Manager.Set(c); err != nil {
		return err
	}
	if !t.rk.HasLink(c.Name) {
		t.rk.AddLink(c.Name, wg.DefaultMTU, 0)
	}
	t.links.add(c.Name)
	return nil
}

func (t linkedTunnels) Delete(name string) error {
	if err := t.Manager.Delete(name); err != nil {
		return err
	}
	t.rk.RemoveLink(name)
	t.links.remove(name)
	return nil
}
