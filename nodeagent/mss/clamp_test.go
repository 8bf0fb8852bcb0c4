package mss_test

import (
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/mss/msstest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var states = map[string]mss.Config{
	"off":              {},
	"mtu-1420":         {MTU: 1420},
	"mtu-1440":         {MTU: 1440},
	"jumbo":            {MTU: 8921},
	"one-iface":        {MTU: 1420, Interfaces: "wg-mesh"},
	"explicit-default": {MTU: 1420, Interfaces: "wg-*"},
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

func set(t *testing.T, c *mss.Clamper, cfg mss.Config) {
	t.Helper()
	if err := c.Set(cfg); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func TestSetRendersEachState(t *testing.T) {
	for name, cfg := range states {
		t.Run(name, func(t *testing.T) {
			k := msstest.New()
			set(t, mss.New(k), cfg)
			if d := cmp.Diff(golden(t, name, k.Render()), k.Render()); d != "" {
				t.Errorf("(-golden +got):\n%s", d)
			}
		})
	}
}

func TestEveryTransitionEndsInTarget(t *testing.T) {
	for from, a := range states {
		for to, b := range states {
			t.Run(from+"->"+to, func(t *testing.T) {
				k := msstest.New()
				c := mss.New(k)
				set(t, c, a)
				set(t, c, b)
				if d := cmp.Diff(golden(t, to, ""), k.Render()); d != "" {
					t.Errorf("(-golden +got):\n%s", d)
				}
				n := k.Writes()
				set(t, mss.New(k), b)
				if k.Writes() != n {
					t.Errorf("re-applying %s wrote", to)
				}
			})
		}
	}
}

func TestRandomReplayEndsInEachTarget(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	slices.Sort(names)
	k := msstest.New()
	c := mss.New(k)
	for i := 0; i < 100; i++ {
		n := names[r.IntN(len(names))]
		set(t, c, states[n])
		if d := cmp.Diff(golden(t, n, ""), k.Render()); d != "" {
			t.Fatalf("step %d (%s, seed %d) (-golden +got):\n%s", i, n, seed, d)
		}
	}
}

// A table that differs in any way (another hook, a foreign rule, a stale
// value) is rewritten whole; one that matches is adopted untouched.
func TestSetAdoptsOnlyAnExactTable(t *testing.T) {
	want := mss.State{Hook: "forward", Priority: mss.ChainPriority, Rules: []mss.Rule{
		{Family: mss.IPv4, Interfaces: "wg-*", MSS: 1380}, {Family: mss.IPv6, Interfaces: "wg-*", MSS: 1360}}}
	cases := []struct {
		name   string
		preset mss.State
		writes int
	}{
		{"exact table is adopted", want, 0},
		{"stale mss is rewritten", mss.State{Hook: "forward", Priority: mss.ChainPriority, Rules: []mss.Rule{
			{Family: mss.IPv4, Interfaces: "wg-*", MSS: 1400}, {Family: mss.IPv6, Interfaces: "wg-*", MSS: 1360}}}, 1},
		{"postrouting chain is rewritten", mss.State{Hook: "other", Priority: mss.ChainPriority, Rules: want.Rules}, 1},
		{"foreign rule is rewritten", mss.State{Hook: "forward", Priority: mss.ChainPriority, Rules: append(slices.Clone(want.Rules), mss.Rule{Family: "unknown"})}, 1},
		{"empty table is filled", mss.State{}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := msstest.New()
			k.Preset(tc.preset)
			set(t, mss.New(k), mss.Config{MTU: 1420})
			if k.Writes() != tc.writes {
				t.Errorf("writes = %d, want %d", k.Writes(), tc.writes)
			}
			if d := cmp.Diff(mss.Render(want, true), k.Render()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestSetRefusesBadInputAndChangesNothing(t *testing.T) {
	cases := map[string]mss.Config{
		"mtu too small":       {MTU: 500},
		"mtu too large":       {MTU: 70000},
		"pattern with slash":  {MTU: 1420, Interfaces: "wg/*"},
		"star inside pattern": {MTU: 1420, Interfaces: "w*g"},
		"pattern only star":   {MTU: 1420, Interfaces: "*"},
		"name too long":       {MTU: 1420, Interfaces: "wg-mesh-much-too-long"},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			k := msstest.New()
			c := mss.New(k)
			set(t, c, mss.Config{MTU: 1420})
			before, n := k.Render(), k.Writes()
			if err := c.Set(cfg); !errors.Is(err, mss.ErrInvalid) {
				t.Fatalf("Set: %v, want ErrInvalid", err)
			}
			if k.Render() != before || k.Writes() != n {
				t.Error("refused config changed the table")
			}
		})
	}
}

func TestForMTU(t *testing.T) {
	for _, tc := range []struct{ mtu, v4, v6 int }{{1420, 1380, 1360}, {1440, 1400, 1380}, {1280, 1240, 1220}} {
		v4, v6 := mss.ForMTU(tc.mtu)
		if v4 != tc.v4 || v6 != tc.v6 {
			t.Errorf("ForMTU(%d) = %d, %d; want %d, %d", tc.mtu, v4, v6, tc.v4, tc.v6)
		}
	}
}
