package agent_test

// Privileged end-to-end test of the agent with every real part: two nodes
// (testnet.TwoNodes, with the cleartext CNI path forbidden by a leak
// guard, and strict rp_filter), each running an Agent over userspace
// WireGuard, netlink routing, nftables and the real eBPF data plane.
//
//	pod-a ─ p1 [classify: mark] ─ node-a ─ fwmark rule ─ table ─ vpwa… ══ WireGuard ══ vpwb… [deliver] ─ node-b ─ p2 ─ pod-b
//
// Pod pings only succeed if classify steers them into the tunnel on both
// nodes. The interfaces have per-run names: userspace WireGuard sockets
// are shared by all namespaces of this process.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/nodeagent/agent"
	"github.com/lumbrjx/vpblu/nodeagent/internal/testnet"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

// bpffs mounts a private bpf filesystem for the test.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bpffs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount bpffs: %v", err)
		}
	})
	return dir
}

type liveNode struct {
	*testnet.Node
	a        *agent.Agent
	wgName   string
	rotName  string
	wgb      *wg.UserspaceBackend // outlives agent restarts, as a device process would
	stateDir string
	pub      desired.Key
	pin      string
	rep      *fakeReporter // what the agent reported
	stop     func()        // stops FollowLinks and FollowRotation and closes the agent
}

// startAgent starts (or restarts) node n's agent: keys, maps, Start and
// FollowLinks in n's namespace.
func startAgent(t *testing.T, n *liveNode) {
	t.Helper()
	ks, err := keys.Open(keys.Options{Dir: n.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ks.Active()
	n.pub = desired.Key(k.Public())
	dp, err := bpf.Open(bpf.Options{PinDir: n.pin})
	if err != nil {
		t.Fatalf("bpf.Open: %v", err)
	}
	n.a, err = agent.New(agent.Options{
		Node: fmt.Sprintf("node-%d", n.Index), Interface: n.wgName, RotationInterface: n.rotName, ClampInterfaces: "vpw*",
		NodeIP: n.Underlay, PodInterfaces: []string{"p[0-9]"},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/16"), netip.MustParsePrefix("2001:db8::/32")},
	}, agent.Deps{
		Tunnels: wg.NewManager(n.wgb), Routes: route.New(route.Netlink{}, route.Options{}),
		Clamp: mss.New(mss.NFTables{}), Datapath: agent.BPF{Datapath: dp}, Keys: ks, Links: agent.NetlinkLinks{},
		Journal: rotation.FileJournal{Path: filepath.Join(n.stateDir, rotation.JournalFile)},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.rep = &fakeReporter{}
	n.a.SetReporter(n.rep)
	if err := n.NS.Do(n.a.Start); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan error, 2)
	a := n.a
	go func() { followed <- n.NS.Do(func() error { return a.FollowLinks(ctx, nil) }) }()
	go func() { followed <- n.NS.Do(func() error { return a.FollowRotation(ctx, nil) }) }()
	n.stop = func() {
		cancel()
		<-followed
		<-followed
		_ = a.Close()
	}
}

// stateFor is what the controller would send node n with peer p.
func stateFor(n, p *liveNode) desired.NodeState {
	peers, err := desired.NewPeerSet(desired.Peer{
		Node: fmt.Sprintf("node-%d", p.Index), PublicKey: p.pub,
		Endpoint: netip.AddrPortFrom(p.Underlay, 51820), AllowedIPs: p.PodCIDRs, PersistentKeepalive: 25,
	})
	if err != nil {
		panic(err)
	}
	return desired.NodeState{
		Config:       desired.Config{ListenPort: 51820, PersistentKeepalive: 25, Strict: true, LocalCIDRs: n.PodCIDRs},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/16"), netip.MustParsePrefix("2001:db8::/32")},
		Peers:        peers,
	}
}

func TestAgentsSteerPodTrafficThroughTheTunnel(t *testing.T) {
	privtest.Require(t, "create network namespaces, TUN devices, routes, nftables rules and eBPF programs")
	base := bpffs(t)
	na, nb := testnet.TwoNodes(t)
	suffix := testnet.RandHex(3)
	nodes := []*liveNode{{Node: na, wgName: "vpwa" + suffix, rotName: "vpwra" + suffix}, {Node: nb, wgName: "vpwb" + suffix, rotName: "vpwrb" + suffix}}
	for _, n := range nodes {
		if err := n.AddCleartextPath(nodes[2-n.Index].Node); err != nil {
			t.Fatal(err)
		}
		n.stateDir = filepath.Join(t.TempDir(), "state")
		n.pin = filepath.Join(base, fmt.Sprintf("node%d", n.Index))
		n.wgb = wg.NewUserspace(0)
		startAgent(t, n)
		t.Cleanup(func() {
			n.stop()
			if err := n.NS.Do(n.a.Uninstall); err != nil {
				t.Errorf("Uninstall: %v", err)
			}
			_ = n.wgb.Close()
			if _, err := os.Stat(n.pin); err == nil {
				t.Errorf("pin dir %s survived Uninstall", n.pin)
			}
		})
	}

	// Before any state: fail closed. The ping cannot get through (the
	// cleartext path is forbidden, and classify drops it anyway).
	if err := na.Pod.Do(func() error { return testnet.Ping(nb.PodIPs[0], 500*time.Millisecond) }); err == nil {
		t.Fatal("a pod reached the other node before any tunnel existed")
	}

	for _, n := range nodes {
		s := stateFor(n, nodes[2-n.Index])
		if err := n.NS.Do(func() error { return n.a.Reconcile(context.Background(), s) }); err != nil {
			t.Fatalf("node %d: Reconcile: %v", n.Index, err)
		}
	}
	for _, n := range nodes {
		peer := nodes[2-n.Index]
		n.PingFrom(t, peer.PodIPs[0])
		n.PingFrom(t, peer.PodIPs[1])
	}
	a := nodes[0]
	snap := a.a.Snapshot()
	if snap.Verdicts["classify/steer"] == 0 || snap.Verdicts["deliver/pass"] == 0 {
		t.Errorf("counters after pings: steer %d deliver %d", snap.Verdicts["classify/steer"], snap.Verdicts["deliver/pass"])
	}
	if len(snap.Peers) != 1 || snap.Peers[0].Node != "node-2" || snap.Peers[0].LastHandshake.IsZero() || snap.MTU != 1420 {
		t.Errorf("snapshot %+v", snap)
	}

	// A restarted agent on node A (new Agent, same kernel, maps and key
	// directory; the WireGuard device lives on) changes nothing: same
	// rules, same maps, same session, and traffic still flows.
	rules := func() string {
		var out string
		_ = a.NS.Do(func() error {
			rs, err := route.Dump(route.Netlink{}, route.DefaultTable)
			out = rs
			return err
		})
		return out
	}
	dump := func() bpf.State {
		var s bpf.State
		if err := a.NS.Do(func() error {
			dp, err := bpf.Open(bpf.Options{PinDir: a.pin})
			if err != nil {
				return err
			}
			defer dp.Close()
			s, err = dp.Dump()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	rulesBefore, mapsBefore := rules(), dump()
	if !slices.ContainsFunc(mapsBefore.Remotes, func(r bpf.Remote) bool { return r.CIDR == nb.PodCIDRs[0] && r.Mark == route.DefaultMark }) {
		t.Errorf("maps do not steer %s: %+v", nb.PodCIDRs[0], mapsBefore.Remotes)
	}
	hs := snap.Peers[0].LastHandshake
	a.stop()
	startAgent(t, a)
	if err := a.NS.Do(func() error { return a.a.Reconcile(context.Background(), stateFor(a, nodes[1])) }); err != nil {
		t.Fatal(err)
	}
	a.PingFrom(t, nb.PodIPs[0])
	if d := cmp.Diff(rulesBefore, rules()); d != "" {
		t.Errorf("restart changed rules and routes (-before +after):\n%s", d)
	}
	if d := cmp.Diff(mapsBefore, dump(), cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); d != "" {
		t.Errorf("restart changed the maps (-before +after):\n%s", d)
	}
	if s := a.a.Snapshot(); len(s.Peers) != 1 || !s.Peers[0].LastHandshake.Equal(hs) {
		t.Errorf("restart reset the session: %v → %+v", hs, s.Peers)
	}

	// Blocking pod-b → pod-a on node A (deliver) stops the ping; lifting
	// it restores it.
	blocked := stateFor(a, nodes[1])
	blocked.Blocks = []desired.BlockRule{{Src: nb.PodCIDRs[0], Dst: a.PodCIDRs[0]}}
	if err := a.NS.Do(func() error { return a.a.Reconcile(context.Background(), blocked) }); err != nil {
		t.Fatal(err)
	}
	if err := nb.Pod.Do(func() error { return testnet.Ping(na.PodIPs[0], time.Second) }); err == nil {
		t.Error("a blocked ping got through")
	}
	if err := a.NS.Do(func() error { return a.a.Reconcile(context.Background(), stateFor(a, nodes[1])) }); err != nil {
		t.Fatal(err)
	}
	nb.PingFrom(t, na.PodIPs[0])
	if d := cmp.Diff(rulesBefore, rules()); d != "" {
		t.Errorf("block and unblock left rules changed (-before +after):\n%s", d)
	}
}
