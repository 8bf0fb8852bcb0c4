package desired

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// gen draws small random clusters whose pod CIDRs, routes and policies
// collide often, so every precedence rule gets exercised.
type gen struct{ r *rand.Rand }

var (
	genNames = []string{"a", "b", "c", "d", "e", "f"}
	genPods  = []string{
		"100.64.0.0/24", "100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24",
		"100.64.0.0/22", "100.64.1.128/25", "100.64.4.0/23",
		"2001:db8:1::/48", "2001:db8:2::/48", "2001:db8::/32",
	}
	genRoutes = []string{"198.51.100.0/24", "198.51.100.0/26", "100.64.1.0/24", "100.64.0.0/16", "100.64.2.128/25", "2001:db8:1::/48", "2001:db8:1:8000::/49", "not-a-cidr"}
)

func (g gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g gen) node(name string) Node {
	i := slices.Index(genNames, name)
	n := Node{
		Name:        name,
		Labels:      map[string]string{"z": g.pick([]string{"1", "2"})},
		InternalIPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})},
	}
	if g.r.IntN(5) > 0 {
		n.PublicKey = key(i*10 + g.r.IntN(3))
		n.KeyGeneration = int64(1 + g.r.IntN(3))
	}
	if g.r.IntN(4) == 0 {
		n.QuarantineKeyGeneration = int64(1 + g.r.IntN(3))
	}
	if g.r.IntN(6) == 0 {
		n.Endpoint = &EndpointOverride{Addr: netip.MustParseAddr("2001:db8:ff::1"), Port: uint16(g.r.IntN(2) * 40000)}
	}
	switch g.r.IntN(5) {
	case 0:
		n.PodIPs = []netip.Addr{netip.AddrFrom4([4]byte{100, 64, byte(i), byte(1 + g.r.IntN(3))}), netip.MustParseAddr("2001:db8:9::1")}
	default:
		for range 1 + g.r.IntN(2) {
			n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(g.pick(genPods)))
		}
	}
	return n
}

func (g gen) policies() Policies {
	var p Policies
	for i := range g.r.IntN(3) {
		t := mesh(fmt.Sprintf("t%d", i), g.r.IntN(3))
		if g.r.IntN(2) == 0 {
			t = explicit(t.Name, g.r.IntN(3))
			for range 1 + g.r.IntN(3) {
				a, b := g.pick(genNames), g.pick(genNames)
				if a != b {
					pair(a, b)(&t)
				}
			}
			if g.r.IntN(2) == 0 {
				group("g", "z", g.pick([]string{"1", "2"}))(&t)
			}
			if len(t.Spec.Pairs) == 0 && len(t.Spec.Groups) == 0 {
				pair("a", "b")(&t)
			}
		}
		if g.r.IntN(3) == 0 {
			selects("z", g.pick([]string{"1", "2"}))(&t)
		}
		if g.r.IntN(3) == 0 {
			port(int32(51820 + g.r.IntN(2)))(&t)
		}
		if g.r.IntN(3) == 0 {
			keepalive(int32(g.r.IntN(2) * 10))(&t)
		}
		if g.r.IntN(3) == 0 {
			strict(false)(&t)
		}
		p.Tunnel = append(p.Tunnel, t)
	}
	for i := range g.r.IntN(3) {
		var cs, via []string
		for range 1 + g.r.IntN(2) {
			cs = append(cs, g.pick(genRoutes))
		}
		for range 1 + g.r.IntN(3) {
			via = append(via, g.pick(append(genNames, "ghost")))
		}
		p.Route = append(p.Route, route(fmt.Sprintf("r%d", i), g.r.IntN(3), cs, via...))
	}
	if g.r.IntN(2) == 0 {
		b := block("b0", 0)
		if g.r.IntN(2) == 0 {
			isolate(g.pick(genNames))(&b)
		}
		if g.r.IntN(2) == 0 {
			drain(g.pick(genNames))(&b)
		}
		if g.r.IntN(2) == 0 {
			rule([]string{g.pick(genPods)}, []string{g.pick(genPods), g.pick(genRoutes)})(&b)
		}
		p.Block = append(p.Block, b)
	}
	return p
}

// runEvents drives an Engine through random node and policy changes and
// checks after each one that: its states equal Compute of the same inputs;
// applying each returned delta to the state the daemon holds gives the
// new state; Diff/Apply round-trip between the old and new states; and
// the invariants hold (symmetric peering, no isolated or non-member peer,
// disjoint allowed IPs, valid states).
func runEvents(t *testing.T, seed1, seed2 uint64, steps int) {
	g := gen{rand.New(rand.NewPCG(seed1, seed2))}
	in := Snapshot{Policies: g.policies(), ClusterCIDRs: []netip.Prefix{pfx("100.64.0.0/10")}}
	nodes := map[string]Node{}
	e, _ := NewEngine(in)
	held := map[string]NodeState{}
	prev := map[string]NodeState{}
	for step := range steps {
		var u Update
		var what string
		switch k := g.r.IntN(10); {
		case k < 6:
			n := g.node(g.pick(genNames))
			nodes[n.Name] = n
			var err error
			if u, err = e.UpsertNode(n); err != nil {
				t.Fatal(err)
			}
			what = "upsert " + n.Name
		case k < 8:
			name := g.pick(genNames)
			delete(nodes, name)
			delete(held, name)
			u = e.RemoveNode(name)
			what = "remove " + name
		default:
			in.Policies = g.policies()
			u = e.SetPolicies(in.Policies)
			what = "policies"
		}
		for _, nd := range u.Deltas {
			got, err := Apply(held[nd.Node], *nd.Delta)
			if err != nil {
				t.Fatalf("step %d (%s): apply delta %v to %s: %v", step, what, nd.Delta, nd.Node, err)
			}
			held[nd.Node] = got
		}
		in.Nodes = in.Nodes[:0]
		for _, name := range genNames {
			if n, ok := nodes[name]; ok {
				in.Nodes = append(in.Nodes, n)
			}
		}
		full := Compute(in)
		for name, want := range full.States {
			got, _ := e.State(name)
			if !Equal(want, got) {
				t.Fatalf("step %d (%s): engine state of %s differs from Compute:\n%s", step, what, name, cmp.Diff(want, got, cmpOpts))
			}
			if !Equal(want, held[name]) {
				t.Fatalf("step %d (%s): state of %s built from deltas differs:\n%s", step, what, name, cmp.Diff(want, held[name], cmpOpts))
			}
			d := Diff(prev[name], want)
			back, err := Apply(prev[name], d)
			if err != nil || !Equal(back, want) {
				t.Fatalf("step %d (%s): Apply(old, Diff(old, new)) for %s: %v\n%s", step, what, name, err, cmp.Diff(want, back, cmpOpts))
			}
			if Equal(prev[name], want) != d.IsEmpty() {
				t.Fatalf("step %d (%s): Diff of %s is empty=%v but states equal=%v", step, what, name, d.IsEmpty(), Equal(prev[name], want))
			}
		}
		if len(full.States) != len(held) {
			t.Fatalf("step %d (%s): daemon-held states for %d nodes, Compute has %d", step, what, len(held), len(full.States))
		}
		if diff := cmp.Diff(errLines(full.Errors), errLines(e.Errors())); diff != "" {
			t.Fatalf("step %d (%s): errors differ (-compute +engine):\n%s", step, what, diff)
		}
		if bad := checkInvariants(full); len(bad) > 0 {
			t.Fatalf("step %d (%s): invariants broken: %v", step, what, bad)
		}
		prev = full.States
	}
}

func TestEngineMatchesCompute(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runEvents(t, seed, 7, 40) })
	}
}

// FuzzEngine runs random event sequences from fuzzed seeds; the checked-in
// corpus under testdata/fuzz runs with every go test.
func FuzzEngine(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) { runEvents(t, a, b, 30) })
}

func TestFullMeshIsSymmetricAndComplete(t *testing.T) {
	var s Snapshot
	for i := range 30 {
		s.Nodes = append(s.Nodes, benchNode(i))
	}
	s.Policies.Tunnel = []v1alpha1.TunnelPolicy{fullMesh("mesh")}
	r := Compute(s)
	for name, st := range r.States {
		if st.Peers.Len() != 29 {
			t.Errorf("%s has %d peers, want 29", name, st.Peers.Len())
		}
	}
	if bad := checkInvariants(r); len(bad) > 0 {
		t.Errorf("invariants broken: %v", bad)
	}
}
