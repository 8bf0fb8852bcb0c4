package route_test

import (
	"errors"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/route/routetest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var nodeIP = netip.MustParseAddr("198.18.0.1")

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func meshPath(strict bool, cidrs ...string) route.Path {
	return route.Path{Interface: "wg-mesh", CIDRs: pfx(cidrs...), Strict: strict}
}

var rotPath = route.Path{Interface: "wg-rot", Mark: 0x1200, Table: 51821, CIDRs: pfx("100.64.2.0/24", "2001:db8:2::/64"), Strict: true}

// states are the configurations the transition tests move between; each
// renders as testdata/<name>.golden.
var states = map[string]route.Config{
	"none":           {},
	"mesh-strict":    {NodeIP: nodeIP, Paths: []route.Path{meshPath(true, "100.64.2.0/24", "2001:db8:2::/64")}},
	"mesh-loose":     {NodeIP: nodeIP, Paths: []route.Path{meshPath(false, "100.64.2.0/24", "2001:db8:2::/64")}},
	"mesh-grown":     {NodeIP: nodeIP, Paths: []route.Path{meshPath(true, "100.64.2.0/24", "100.64.3.0/24", "10.200.0.0/16", "2001:db8:2::/64", "2001:db8:3::/64")}},
	"mesh-empty":     {NodeIP: nodeIP, Paths: []route.Path{meshPath(true)}},
	"rotation":       {NodeIP: nodeIP, Paths: []route.Path{meshPath(true, "100.64.2.0/24", "2001:db8:2::/64"), rotPath}},
	"overhead-60":    {NodeIP: nodeIP, MTUOverhead: 60, Paths: []route.Path{meshPath(true, "100.64.2.0/24")}},
	"custom-mark":    {NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-mesh", Mark: 0x0100, Mask: 0x0f00, Table: 1000, Priority: 200, CIDRs: pfx("100.64.2.0/24"), Strict: true}}},
	"custom-address": {NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-mesh", CIDRs: pfx("100.64.2.0/24"), Address: netip.MustParsePrefix("169.254.9.9/32")}}},
	"unmasked-ips":   {NodeIP: nodeIP, Paths: []route.Path{meshPath(true, "100.64.2.9/24", "2001:db8:2::9/64")}},
}

// newKernel is a node with a primary interface, the WireGuard interfaces
// (package wg made them) and state of other programs that must survive.
func newKernel() *routetest.Kernel {
	k := routetest.New()
	k.AddLink("eth0", 1500, 1, netip.MustParsePrefix("198.18.0.1/24"))
	k.AddForeign(
		[]route.Rule{{Family: route.V4, Priority: 90, Mark: 0x4000, Mask: 0x4000, Table: 200, Protocol: 4}},
		[]route.Route{
			{Family: route.V4, Table: 200, Dst: netip.MustParsePrefix("10.0.0.0/8"), Dev: "eth0", Protocol: 4},
			{Family: route.V4, Table: 51820, Dst: netip.MustParsePrefix("192.0.2.0/24"), Dev: "eth0", Protocol: 4},
		})
	return k
}

func golden(t *testing.T, name, got string) string {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update && got != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	return string(want)
}

// set mirrors the agent: package wg has created the WireGuard interfaces
// of c's paths and deleted the others (which takes their routes along)
// before routing is set.
func set(t *testing.T, k *routetest.Kernel, r *route.Router, c route.Config) {
	t.Helper()
	for _, name := range []string{"wg-mesh", "wg-rot"} {
		used := slices.ContainsFunc(c.Paths, func(p route.Path) bool { return p.Interface == name })
		switch {
		case used && !k.HasLink(name):
			k.AddLink(name, 1420, 1)
		case !used && k.HasLink(name):
			k.RemoveLink(name)
		}
	}
	if err := r.Set(c); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func TestSetRendersEachState(t *testing.T) {
	for name, c := range states {
		t.Run(name, func(t *testing.T) {
			k := newKernel()
			set(t, k, route.New(k, route.Options{}), c)
			got := k.Render()
			if d := cmp.Diff(golden(t, name, got), got); d != "" {
				t.Errorf("(-golden +got):\n%s", d)
			}
		})
	}
}

// TestEveryTransitionEndsInTarget applies every pair A→B: the result
// renders as B, a second Set(B) writes nothing, and a fresh Router (a
// restarted daemon) adopts B without a write.
func TestEveryTransitionEndsInTarget(t *testing.T) {
	for from, a := range states {
		for to, b := range states {
			t.Run(from+"->"+to, func(t *testing.T) {
				k := newKernel()
				r := route.New(k, route.Options{})
				set(t, k, r, a)
				set(t, k, r, b)
				if d := cmp.Diff(golden(t, to, ""), k.Render()); d != "" {
					t.Errorf("(-golden +got):\n%s", d)
				}
				n := k.Writes()
				set(t, k, r, b)
				set(t, k, route.New(k, route.Options{}), b)
				if k.Writes() != n {
					t.Errorf("re-applying %s wrote: %v", to, k.Ops()[n:])
				}
			})
		}
	}
}

func TestRandomReplayEndsInEachTarget(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	slices.Sort(names)
	k := newKernel()
	r := route.New(k, route.Options{})
	for i := 0; i < 200; i++ {
		n := names[rnd.IntN(len(names))]
		set(t, k, r, states[n])
		if d := cmp.Diff(golden(t, n, ""), k.Render()); d != "" {
			t.Fatalf("step %d (%s, seed %d) (-golden +got):\n%s", i, n, seed, d)
		}
	}
}

// A strict table must never be reachable without its blackhole: routes
// are complete before a rule points at a table, and a rule is gone before
// its table loses the blackhole. The check replays the kernel's change
// log from the state before the transition.
func TestStrictTableNeverReachableWithoutBlackhole(t *testing.T) {
	tables := []string{"-4 51820", "-6 51820", "-4 51821", "-6 51821"}
	for _, tc := range []struct{ from, to string }{{"none", "rotation"}, {"rotation", "mesh-strict"}, {"rotation", "none"}, {"mesh-loose", "mesh-strict"}} {
		t.Run(tc.from+"->"+tc.to, func(t *testing.T) {
			k := newKernel()
			r := route.New(k, route.Options{})
			set(t, k, r, states[tc.from])
			before := k.Render()
			rule, blackhole := map[string]bool{}, map[string]bool{}
			for _, tb := range tables {
				fam, num, _ := strings.Cut(tb, " ")
				rule[tb] = strings.Contains(before, "lookup "+num) && strings.Contains(before, fam+" 100:")
				blackhole[tb] = strings.Contains(before, fam+" table "+num+": blackhole")
			}
			n := len(k.Ops())
			set(t, k, r, states[tc.to])
			for _, op := range k.Ops()[n:] {
				for _, tb := range tables {
					fam, num, _ := strings.Cut(tb, " ")
					switch {
					case strings.HasPrefix(op, "add rule "+fam) && strings.Contains(op, "lookup "+num):
						rule[tb] = true
					case strings.HasPrefix(op, "del rule "+fam) && strings.Contains(op, "lookup "+num):
						rule[tb] = false
					case strings.HasPrefix(op, "replace route "+fam+" table "+num+": blackhole"):
						blackhole[tb] = true
					case strings.HasPrefix(op, "del route "+fam+" table "+num+": blackhole"):
						blackhole[tb] = false
					default:
						continue
					}
					strict := slices.ContainsFunc(states[tc.to].Paths, func(p route.Path) bool { return p.Strict })
					if strict && rule[tb] && !blackhole[tb] {
						t.Errorf("after %q: table %s reachable without its blackhole", op, tb)
					}
				}
			}
		})
	}
}

func TestSetRefusesBadInputAndChangesNothing(t *testing.T) {
	good := meshPath(true, "100.64.2.0/24")
	cases := []struct {
		name    string
		cfg     route.Config
		kernel  func(*routetest.Kernel)
		wantErr error
	}{
		{name: "no node ip", cfg: route.Config{Paths: []route.Path{good}}, wantErr: route.ErrInvalid},
		{name: "mark outside mask", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-mesh", Mark: 0x10000}}}, wantErr: route.ErrInvalid},
		{name: "reserved main table", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-mesh", Table: 254}}}, wantErr: route.ErrInvalid},
		{name: "priority after main", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-mesh", Priority: 32766}}}, wantErr: route.ErrInvalid},
		{name: "two paths one table", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{good, {Interface: "wg-rot", Mark: 0x1200}}}, wantErr: route.ErrInvalid},
		{name: "overlapping marks", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{good, {Interface: "wg-rot", Mark: 0x1100, Mask: 0xf000, Table: 51821}}}, wantErr: route.ErrInvalid},
		{name: "default route cidr", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{meshPath(true, "0.0.0.0/0")}}, wantErr: route.ErrInvalid},
		{name: "no interface name", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{{}}}, wantErr: route.ErrInvalid},
		{name: "missing wireguard interface", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-none"}}}, wantErr: route.ErrNoLink},
		{name: "node ip on no interface", cfg: route.Config{NodeIP: netip.MustParseAddr("198.18.9.9"), Paths: []route.Path{good}}, wantErr: route.ErrNoLink},
		{name: "primary mtu too small", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{good}},
			kernel: func(k *routetest.Kernel) { k.AddLink("eth0", 1300, 1, netip.MustParsePrefix("198.18.0.1/24")) }, wantErr: route.ErrMTU},
		{name: "ipv6 interface address", cfg: route.Config{NodeIP: nodeIP, Paths: []route.Path{{Interface: "wg-mesh", Address: netip.MustParsePrefix("fe80::1/128")}}}, wantErr: route.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := newKernel()
			r := route.New(k, route.Options{})
			set(t, k, r, states["mesh-loose"])
			if tc.kernel != nil {
				tc.kernel(k)
			}
			before, n := k.Render(), k.Writes()
			if err := r.Set(tc.cfg); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Set: %v, want %v", err, tc.wantErr)
			}
			if k.Writes() != n || k.Render() != before {
				t.Errorf("refused config changed state: %v", k.Ops()[n:])
			}
		})
	}
}

func TestMTUIsPrimaryMinusOverhead(t *testing.T) {
	cases := []struct {
		name              string
		primary, overhead int
		want              int
		wantErr           error
	}{
		{"ethernet with default overhead", 1500, 80, 1420, nil},
		{"ipv4-only overhead", 1500, 60, 1440, nil},
		{"jumbo frames", 9001, 80, 8921, nil},
		{"exactly the ipv6 minimum", 1360, 80, 1280, nil},
		{"below the ipv6 minimum", 1359, 80, 0, route.ErrMTU},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := route.TunnelMTU(tc.primary, tc.overhead)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Errorf("TunnelMTU(%d, %d) = %d, %v; want %d, %v", tc.primary, tc.overhead, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
