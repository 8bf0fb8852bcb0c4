package bpf

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/blocks"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   State
		want State
		err  error
	}{
		{
			name: "masks, sorts and removes duplicates",
			in: State{
				Locals:   []netip.Prefix{pfx("2001:db8:1::5/64"), pfx("100.64.1.9/24"), pfx("100.64.1.0/24")},
				Clusters: []netip.Prefix{pfx("100.64.0.0/10")},
				Remotes:  []Remote{{pfx("100.64.3.1/24"), 3, 0x3}, {pfx("100.64.2.0/24"), 2, 0x2}, {pfx("100.64.2.0/24"), 2, 0x2}},
				Nodes:    []Node{{ID: 3}, {ID: 2, Ready: true}},
				Blocks:   []blocks.Rule{{Src: pfx("100.64.1.9/24"), Dst: pfx("100.64.2.0/24")}, {Src: pfx("100.64.1.0/24"), Dst: pfx("100.64.2.0/24")}},
			},
			want: State{
				Locals:   []netip.Prefix{pfx("100.64.1.0/24"), pfx("2001:db8:1::/64")},
				Clusters: []netip.Prefix{pfx("100.64.0.0/10")},
				Remotes:  []Remote{{pfx("100.64.2.0/24"), 2, 0x2}, {pfx("100.64.3.0/24"), 3, 0x3}},
				Nodes:    []Node{{ID: 2, Ready: true}, {ID: 3}},
				Blocks:   []blocks.Rule{{Src: pfx("100.64.1.0/24"), Dst: pfx("100.64.2.0/24")}},
			},
		},
		{name: "a remote with two targets is refused", in: State{Remotes: []Remote{{pfx("100.64.2.0/24"), 2, 0x2}, {pfx("100.64.2.0/24"), 3, 0x3}}}, err: ErrInvalidState},
		{name: "a zero mark is refused", in: State{Remotes: []Remote{{pfx("100.64.2.0/24"), 2, 0}}}, err: ErrInvalidState},
		{name: "a zero node is refused", in: State{Remotes: []Remote{{pfx("100.64.2.0/24"), 0, 1}}}, err: ErrInvalidState},
		{name: "an invalid prefix is refused", in: State{Locals: []netip.Prefix{{}}}, err: ErrInvalidState},
		{name: "an IPv4-mapped prefix is refused", in: State{Clusters: []netip.Prefix{pfx("::ffff:100.64.0.0/106")}}, err: ErrInvalidState},
		{name: "node id 0 is refused", in: State{Nodes: []Node{{ID: 0}}}, err: ErrInvalidState},
		{name: "a node listed twice is refused", in: State{Nodes: []Node{{ID: 4}, {ID: 4, Ready: true}}}, err: ErrInvalidState},
		{name: "a mixed-family rule is refused", in: State{Blocks: []blocks.Rule{{Src: pfx("100.64.1.0/24"), Dst: pfx("2001:db8::/32")}}}, err: ErrInvalidState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Canonical()
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Canonical error %v, want %v", err, tc.err)
			}
			if diff := gocmp.Diff(tc.want, got, cmpState); err == nil && diff != "" {
				t.Errorf("Canonical (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCounterIndexes(t *testing.T) {
	names := map[string]bool{}
	for h := range Hook(hookMax) {
		for v := range Verdict(verdictMax) {
			for r := range Reason(reasonMax) {
				k := counterKey{h, v, r}
				if back, ok := counterKeyOf(k.index()); !ok || back != k {
					t.Errorf("%v: index %d reads back as %v", k, k.index(), back)
				}
				name := CounterName(h, v, r)
				if names[name] {
					t.Errorf("counter name %s used twice", name)
				}
				names[name] = true
			}
		}
	}
	if _, ok := counterKeyOf(hookMax * verdictMax * reasonMax); ok {
		t.Error("an index past the counters reads as a counter")
	}
}

func TestOpenRefusesPinDirOffBPFFS(t *testing.T) {
	_, err := Open(Options{PinDir: t.TempDir()})
	if !errors.Is(err, ErrNotBPFFS) {
		t.Fatalf("Open on a plain directory: %v, want ErrNotBPFFS", err)
	}
}

func TestOptionsRefuseBadValues(t *testing.T) {
	for _, o := range []Options{
		{Capacity: Capacity{Remotes: -1}},
		{DropsBufferBytes: 5000},
		{DropsBufferBytes: 1024},
		{Attach: AttachMode(9)},
	} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	o, err := Options{}.withDefaults()
	if err != nil || o.PinDir != DefaultPinDir || o.Capacity != DefaultCapacity() || o.DropsBufferBytes != 256<<10 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// TestApplyDumpRoundTrip applies random states and reads them back, both
// as the State and as the compiled block table.
func TestApplyDumpRoundTrip(t *testing.T) {
	d := openTest(t, Options{})
	if s, err := d.Dump(); err != nil || !gocmp.Equal(s, State{}, cmpState) {
		t.Fatalf("Dump before any Apply: %+v, %v", s, err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 60 {
		s := podUniverse.policy(r)
		s.Config.DropSample = r.Uint32N(100)
		if err := d.Apply(s); err != nil {
			t.Fatal(err)
		}
		got, err := d.Dump()
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(mustCanonical(t, s), got, cmpState); diff != "" {
			t.Fatalf("state %d: Dump differs (-applied +dump):\n%s", i, diff)
		}
		want, err := blocks.Compile(got.Blocks, blocks.Options{})
		if err != nil {
			t.Fatal(err)
		}
		table, err := d.dumpTable()
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(sortTable(want), sortTable(table), cmpState); diff != "" {
			t.Fatalf("state %d: block maps differ from the compiled table (-compiled +maps):\n%s", i, diff)
		}
	}
}

func sortTable(t blocks.Table) blocks.Table {
	slices.SortFunc(t.Classes, func(a, b blocks.Class) int { return comparePrefix(a.Src, b.Src) })
	slices.SortFunc(t.Drops, func(a, b blocks.Drop) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), comparePrefix(a.Dst, b.Dst))
	})
	return t
}

// TestApplyRefusalKeepsState offers states that cannot be applied and
// checks each leaves the state and the verdicts in force untouched.
func TestApplyRefusalKeepsState(t *testing.T) {
	d := openTest(t, Options{Capacity: Capacity{
		Remotes: 8, Locals: 2, Clusters: 2, Nodes: 16, BlockRules: 8, BlockClasses: 4, BlockEntries: 6,
	}})
	good := tablePolicy()
	good.Blocks = good.Blocks[:4]
	if err := d.Apply(good); err != nil {
		t.Fatal(err)
	}
	want, err := d.Dump()
	if err != nil {
		t.Fatal(err)
	}
	probe := udp4(blocked4, ip("100.64.2.7"))
	wantVerdict := run(t, d, HookClassify, probe)

	hosts := func(n int, src string) []blocks.Rule {
		var rs []blocks.Rule
		for i := range n {
			rs = append(rs, blocks.Rule{Src: pfx(src), Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 70, 0, byte(i)}), 32)})
		}
		return rs
	}
	for _, tc := range []struct {
		name   string
		change func(*State)
		err    error
	}{
		{"too many remotes", func(s *State) { // 5 IPv4 remotes + 4
			for i := range 4 {
				s.Remotes = append(s.Remotes, Remote{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 20 + byte(i), 0}), 24), 2, 9})
			}
		}, ErrCapacity},
		{"too many locals", func(s *State) { s.Locals = append(s.Locals, pfx("100.64.30.0/24"), pfx("100.64.31.0/24")) }, ErrCapacity},
		{"too many clusters", func(s *State) { s.Clusters = append(s.Clusters, pfx("100.65.0.0/16"), pfx("100.66.0.0/16")) }, ErrCapacity},
		{"node id beyond capacity", func(s *State) { s.Nodes = append(s.Nodes, Node{ID: 16}) }, ErrCapacity},
		{"too many block rules", func(s *State) { s.Blocks = hosts(9, "100.64.1.0/24") }, ErrCapacity},
		{"too many block classes", func(s *State) {
			s.Blocks = nil
			for i := range 5 {
				s.Blocks = append(s.Blocks, blocks.Rule{Src: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 1, byte(i)}), 32), Dst: pfx("100.70.0.0/16")})
			}
		}, ErrCapacity},
		{"too many stage-two entries", func(s *State) { s.Blocks = hosts(8, "100.64.1.0/24") }, ErrCapacity},
		{"zero mark", func(s *State) { s.Remotes[0].Mark = 0 }, ErrInvalidState},
		{"mixed-family block", func(s *State) {
			s.Blocks = append(s.Blocks, blocks.Rule{Src: pfx("100.64.1.0/24"), Dst: pfx("2001:db8::/32")})
		}, ErrInvalidState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCanonical(t, good)
			tc.change(&s)
			err := d.Apply(s)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Apply: %v, want %v", err, tc.err)
			}
			got, err := d.Dump()
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(want, got, cmpState); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
			if got := run(t, d, HookClassify, probe); got != wantVerdict {
				t.Errorf("verdict changed from %+v to %+v", wantVerdict, got)
			}
		})
	}
}

// TestSetRemoteMark switches one destination to another mark, as key
// rotation does, with one write.
func TestSetRemoteMark(t *testing.T) {
	d := openTest(t, Options{})
	if err := d.SetRemoteMark(pfx("100.64.2.0/24"), 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("before any Apply: %v, want ErrNotFound", err)
	}
	if err := d.Apply(tablePolicy()); err != nil {
		t.Fatal(err)
	}
	to := func(dst string) outcome { return run(t, d, HookClassify, udp4(src4, ip(dst))) }
	if err := d.SetRemoteMark(pfx("100.64.2.0/24"), 0x9102); err != nil {
		t.Fatal(err)
	}
	if got := to("100.64.2.7"); got != (outcome{VerdictSteer, ReasonTunnel, 0x9102}) {
		t.Errorf("after switching: %+v", got)
	}
	if got := run(t, d, HookClassify, udp6(src6, ip("2001:db8:2::7"))); got.Mark != 0x102 {
		t.Errorf("the IPv6 CIDR of the same node moved too: %+v", got)
	}
	if err := d.SetRemoteMark(pfx("2001:db8:2::/64"), 0x9102); err != nil {
		t.Fatal(err)
	}
	if got := run(t, d, HookClassify, udp6(src6, ip("2001:db8:2::7"))); got.Mark != 0x9102 {
		t.Errorf("IPv6 after switching: %+v", got)
	}
	s, err := d.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Remotes {
		if (r.Mark == 0x9102) != (r.CIDR == pfx("100.64.2.0/24") || r.CIDR == pfx("2001:db8:2::/64")) {
			t.Errorf("Dump: %+v", r)
		}
	}
	for _, tc := range []struct {
		cidr netip.Prefix
		mark uint32
		err  error
	}{
		{pfx("100.64.2.0/25"), 1, ErrNotFound}, // inside a remote, not one
		{pfx("100.99.0.0/16"), 1, ErrNotFound},
		{pfx("2001:db8:9::/64"), 1, ErrNotFound},
		{pfx("100.64.2.0/24"), 0, ErrInvalidState},
	} {
		if err := d.SetRemoteMark(tc.cidr, tc.mark); !errors.Is(err, tc.err) {
			t.Errorf("SetRemoteMark(%s, %d): %v, want %v", tc.cidr, tc.mark, err, tc.err)
		}
	}
	if got := to("100.64.2.7"); got.Mark != 0x9102 {
		t.Errorf("a refused switch changed the mark: %+v", got)
	}
}

// TestApplyIsAtomic runs classify while two states replace each other.
// In one the packet is blocked; in the other it is steered with mark 2.
// A program that saw half of each would steer with mark 1 (the remote of
// the first, without its block).
func TestApplyIsAtomic(t *testing.T) {
	d := openTest(t, Options{})
	a := State{
		Remotes: []Remote{{pfx("100.64.2.0/24"), 2, 1}},
		Nodes:   []Node{{ID: 2, Ready: true}},
		Blocks:  []blocks.Rule{{Src: pfx("100.64.1.0/24"), Dst: pfx("100.64.2.0/24")}},
	}
	b := State{
		Remotes: []Remote{{pfx("100.64.2.0/24"), 2, 2}},
		Nodes:   []Node{{ID: 2, Ready: true}},
	}
	if err := d.Apply(a); err != nil {
		t.Fatal(err)
	}
	pkt := udp4(src4, ip("100.64.2.7"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	seen := map[outcome]int{}
	var runErr error
	wg.Go(func() {
		for ctx.Err() == nil {
			var c skbContext
			ret, err := d.classify.VpbluClassify.Run(&ebpf.RunOptions{Data: pkt, Context: c, ContextOut: &c})
			if err != nil {
				runErr = err
				return
			}
			o := outcome{VerdictSteer, ReasonTunnel, c.Mark}
			if int32(ret) == 2 {
				o = outcome{VerdictDrop, ReasonBlock, 0}
			}
			seen[o]++
		}
	})
	for i := range 200 {
		s := a
		if i%2 == 0 {
			s = b
		}
		if err := d.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
	t.Logf("outcomes while switching: %v", seen)
	for o := range seen {
		if o != (outcome{VerdictDrop, ReasonBlock, 0}) && o != (outcome{VerdictSteer, ReasonTunnel, 2}) {
			t.Errorf("a packet saw a mix of two states: %+v", o)
		}
	}
	if len(seen) != 2 {
		t.Errorf("the test did not see both states: %v", seen)
	}
}

// TestDropsReader reads sampled drops through the public reader.
func TestDropsReader(t *testing.T) {
	d := openTest(t, Options{})
	s := tablePolicy()
	if err := d.Apply(s); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Drop, 1)
	done := make(chan error, 1)
	go func() { done <- d.Drops(ctx, func(dr Drop) { got <- dr }) }()
	run(t, d, HookClassify, udp4(blocked4, ip("100.64.2.7")))
	select {
	case dr := <-got:
		if dr.Reason != ReasonBlock || dr.Src != blocked4 || dr.DstPort != 53 || dr.Monotonic == 0 {
			t.Errorf("drop %+v", dr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no drop read")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Drops after cancel: %v", err)
	}
}

// TestCapacityChangesAcrossOpens re-opens a pin directory with other
// capacities: the next Apply installs inner maps of the new sizes.
func TestCapacityChangesAcrossOpens(t *testing.T) {
	pinDir := testPinDir(t)
	for i, c := range []Capacity{{}, {Remotes: 20, Nodes: 8, BlockEntries: 64}, {Remotes: 50000, Nodes: 70000}} {
		d, err := Open(Options{PinDir: pinDir, Capacity: c})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		err = d.Apply(tablePolicy())
		if err == nil {
			if got := run(t, d, HookClassify, udp4(src4, ip("100.64.2.7"))); got != (outcome{VerdictSteer, ReasonTunnel, 0x102}) {
				t.Errorf("open %d: %+v", i, got)
			}
		}
		if err := errors.Join(err, d.Close()); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
}
