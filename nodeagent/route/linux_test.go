package route_test

// Privileged tests: the real Kernel (Netlink) in a fresh network
// namespace must end in exactly the state the fake renders for every
// golden state, and re-applying a state — from the same Router or from a
// fresh process — must change nothing, which is checked three ways:
// rtnetlink change notifications, our dump, and `ip` dumps.
//
//	netns rt-XXXXXX
//	┌──────────────────────────────────────────────────────────┐
//	│ eth0 (dummy, 198.18.0.1/24, mtu 1500)                     │
//	│ wg-mesh, wg-rot (dummy stand-ins for the wg interfaces)   │
//	│ foreign: rule fwmark 0x4000 → table 200, routes proto 4   │
//	└──────────────────────────────────────────────────────────┘

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

const helperEnv = "VPBLU_ROUTE_TEST_HELPER"

// TestMain lets the test binary act as a fresh daemon process applying
// one state (run inside the namespace by `ip netns exec`).
func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		cfg, ok := states[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown state %q\n", name)
			os.Exit(2)
		}
		if err := route.New(route.Netlink{}, route.Options{}).Set(cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func setSysctl(path, v string) error { return os.WriteFile(path, []byte(v), 0o644) }

// addStandIn creates link name (up, mtu, rp_filter 1) as one end of a
// veth pair; the kernel here may lack the dummy link type.
func addStandIn(name string, mtu int) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, PeerName: name + "-p"}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("adding %s: %w", name, err)
	}
	for _, n := range []string{name, name + "-p"} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			return err
		}
		// No link-local addresses: they would appear asynchronously and
		// make the before/after dumps differ for reasons not ours.
		if err := netlink.LinkSetIP6AddrGenMode(l, 1); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	return setSysctl("/proc/sys/net/ipv4/conf/"+name+"/rp_filter", "1")
}

// buildNode recreates newKernel's state in the calling thread's netns.
func buildNode() error {
	if err := addStandIn("eth0", 1500); err != nil {
		return err
	}
	eth0, _ := netlink.LinkByName("eth0")
	if err := netlink.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 0, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
		return err
	}
	r := netlink.NewRule()
	r.Family, r.Priority, r.Mark, r.Table, r.Protocol = unix.AF_INET, 90, 0x4000, 200, 4
	mask := uint32(0x4000)
	r.Mask = &mask
	if err := netlink.RuleAdd(r); err != nil {
		return fmt.Errorf("foreign rule: %w", err)
	}
	for _, rt := range []struct {
		table int
		dst   string
	}{{200, "10.0.0.0/8"}, {51820, "192.0.2.0/24"}} {
		_, dst, _ := net.ParseCIDR(rt.dst)
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: dst, Table: rt.table, Protocol: 4, Scope: netlink.SCOPE_LINK}); err != nil {
			return fmt.Errorf("foreign route %s: %w", rt.dst, err)
		}
	}
	return nil
}

// mirrorLinks is set() of the unit tests on real links: the wg stand-ins
// exist exactly when a path of cfg uses them.
func mirrorLinks(cfg route.Config) error {
	for _, name := range []string{"wg-mesh", "wg-rot"} {
		used := slices.ContainsFunc(cfg.Paths, func(p route.Path) bool { return p.Interface == name })
		l, err := netlink.LinkByName(name)
		switch {
		case used && err != nil:
			if err := addStandIn(name, 1420); err != nil {
				return err
			}
		case !used && err == nil:
			if err := netlink.LinkDel(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// renderReal prints the namespace the way routetest.Kernel.Render does.
func renderReal() (string, error) {
	k := route.Netlink{}
	s, err := route.Dump(k, 200, 51820, 51821)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(s)
	for _, name := range []string{"eth0", "wg-mesh", "wg-rot"} {
		l, err := k.Link(name)
		if err != nil {
			continue
		}
		rp, err := k.RPFilter(name)
		if err != nil {
			return "", err
		}
		b.WriteString(route.RenderLink(l, rp) + "\n")
	}
	return b.String(), nil
}

// ipDump is what `ip` shows of rules and every table.
func ipDump(t *testing.T, ns privtest.NS) string {
	t.Helper()
	var out strings.Builder
	for _, args := range [][]string{{"-4", "rule"}, {"-6", "rule"}, {"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}, {"-d", "link"}} {
		b, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, b)
		}
		out.Write(b)
	}
	return out.String()
}

// watch subscribes to every rtnetlink change that a flap would cause:
// links (MTU), v4/v6 routes and rules, IPv4 netconf (rp_filter).
func watch(ns privtest.NS) (*nl.NetlinkSocket, error) {
	var s *nl.NetlinkSocket
	err := ns.Do(func() error {
		var err error
		s, err = nl.Subscribe(unix.NETLINK_ROUTE,
			unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV4_RULE,
			unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_IPV4_NETCONF)
		return err
	})
	return s, err
}

// settle drains the subscription until it has been quiet for 300ms (the
// kernel reports carrier changes of new links up to a second late).
func settle(t *testing.T, s *nl.NetlinkSocket) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if len(events(s, 300*time.Millisecond)) == 0 {
			return
		}
	}
	t.Fatal("rtnetlink did not settle within 5s")
}

// events drains the subscription and returns the message types seen.
func events(s *nl.NetlinkSocket, quiet time.Duration) []uint16 {
	_ = s.SetReceiveTimeout(&unix.Timeval{Usec: quiet.Microseconds()})
	var types []uint16
	for {
		msgs, _, err := s.Receive()
		if err != nil {
			return types
		}
		for _, m := range msgs {
			types = append(types, m.Header.Type)
		}
	}
}

func TestNetlinkMatchesFakeAndAdoptsWithoutFlap(t *testing.T) {
	privtest.Require(t, "create network namespaces, links, policy rules and routes")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 (ip) is needed to cross-check the dumps: %v", err)
	}
	ns := privtest.NewNS(t, "rt")
	if err := ns.Do(buildNode); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	slices.Sort(names)
	// Every state once in random order, then random steps.
	order := slices.Clone(names)
	rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for range 12 {
		order = append(order, names[rnd.IntN(len(names))])
	}
	r := route.New(route.Netlink{}, route.Options{})
	for i, name := range order {
		cfg := states[name]
		var got string
		err := ns.Do(func() error {
			if err := mirrorLinks(cfg); err != nil {
				return err
			}
			if err := r.Set(cfg); err != nil {
				return err
			}
			var err error
			got, err = renderReal()
			return err
		})
		if err != nil {
			t.Fatalf("step %d %s: %v", i, name, err)
		}
		if d := cmp.Diff(golden(t, name, ""), got); d != "" {
			t.Fatalf("step %d %s: kernel differs from the fake's rendering (-golden +kernel):\n%s", i, name, d)
		}

		sub, err := watch(ns)
		if err != nil {
			t.Fatal(err)
		}
		settle(t, sub)
		before := ipDump(t, ns)
		if err := ns.Do(func() error { return r.Set(cfg) }); err != nil {
			t.Fatalf("step %d %s: second Set: %v", i, name, err)
		}
		cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("step %d %s: fresh process Set: %v\n%s", i, name, err, out)
		}
		ev := events(sub, 200*time.Millisecond)
		sub.Close()
		if len(ev) != 0 {
			t.Errorf("step %d %s: re-applying caused %d rtnetlink changes (types %v)", i, name, len(ev), ev)
		}
		if d := cmp.Diff(before, ipDump(t, ns)); d != "" {
			t.Errorf("step %d %s: re-applying changed the ip dump (-before +after):\n%s", i, name, d)
		}
	}
}
