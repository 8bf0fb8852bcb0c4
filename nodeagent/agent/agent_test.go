package agent_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"google.golang.org/protobuf/proto"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/core/wire"
	"github.com/lumbrjx/vpblu/nodeagent/agent"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/mss"
	"github.com/lumbrjx/vpblu/nodeagent/mss/msstest"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/route/routetest"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/nodeagent/wg/wgtest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func pubKey(seed byte) desired.Key {
	var b [32]byte
	for i := range b {
		b[i] = seed * byte(i+1)
	}
	k, _ := wgtypes.NewKey(b[:])
	return desired.Key(k.PublicKey())
}

func peer(name string, seed byte, cidrs ...string) desired.Peer {
	return desired.Peer{Node: name, PublicKey: pubKey(seed), AllowedIPs: pfx(cidrs...),
		Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, seed}), 51820), PersistentKeepalive: 25}
}

func nodeState(strict bool, blocks []desired.BlockRule, peers ...desired.Peer) desired.NodeState {
	ps, err := desired.NewPeerSet(peers...)
	if err != nil {
		panic(err)
	}
	return desired.NodeState{
		Config:       desired.Config{ListenPort: 51820, PersistentKeepalive: 25, Strict: strict, LocalCIDRs: pfx("100.64.1.0/24", "2001:db8:1::/64")},
		ClusterCIDRs: pfx("100.64.0.0/16", "2001:db8::/32"),
		Peers:        ps,
		Blocks:       blocks,
	}
}

var (
	peerB = peer("node-b", 2, "100.64.2.0/24", "2001:db8:2::/64")
	peerC = peer("node-c", 3, "100.64.3.0/24")
)

// states the transition tests move between; each renders as
// testdata/<name>.golden.
var states = map[string]desired.NodeState{
	"no-peers":         nodeState(true, nil),
	"two-peers-strict": nodeState(true, nil, peerB, peerC),
	"one-peer-loose":   nodeState(false, nil, peerB),
	"failed-over": nodeState(true, nil,
		peer("node-b", 2, "100.64.2.0/24", "100.64.3.0/24", "2001:db8:2::/64"), peer("node-c", 3)),
	"with-blocks": nodeState(true, []desired.BlockRule{
		{Src: netip.MustParsePrefix("100.64.2.0/24"), Dst: netip.MustParsePrefix("100.64.1.0/25")},
		{Src: netip.MustParsePrefix("2001:db8:2::/64"), Dst: netip.MustParsePrefix("2001:db8:1::/64")},
	}, peerB, peerC),
	"isolated": func() desired.NodeState { s := nodeState(true, nil); s.Config.Isolated = true; return s }(),
}

type rig struct {
	a     *agent.Agent
	wgb   *wgtest.Backend
	rk    *routetest.Kernel
	mk    *msstest.Kernel
	dp    *fakeDatapath
	links *fakeLinks
	keys  *keys.Store
	dir   string
	pub   string
}

func newRig(t *testing.T, dir string) *rig {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "state")
	}
	r := &rig{wgb: wgtest.New(wg.Userspace), rk: routetest.New(), mk: msstest.New(), dp: newFakeDatapath(),
		links: newFakeLinks("lo", "eth0", "veth1a2b", "cali77", "flannel.1"), dir: dir}
	r.rk.AddLink("eth0", 1500, 1, netip.MustParsePrefix("198.18.0.1/24"))
	ks, err := keys.Open(keys.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r.keys = ks
	if k, err := ks.Active(); err == nil {
		r.pub = k.Public().String()
	}
	t.Cleanup(func() { _ = ks.Close() })
	r.a, err = agent.New(agent.Options{Node: "node-a", NodeIP: netip.MustParseAddr("198.18.0.1"), Version: "test"}, agent.Deps{
		Tunnels:  linkedTunnels{Manager: wg.NewManager(r.wgb), rk: r.rk, links: r.links},
		Routes:   route.New(r.rk, route.Options{}),
		Clamp:    mss.New(r.mk),
		Datapath: r.dp,
		Keys:     ks,
		Links:    r.links,
		Journal:  rotation.FileJournal{Path: filepath.Join(dir, rotation.JournalFile)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// render is the whole node: WireGuard, routing, nftables, eBPF maps. The
// interface's public key differs per run, so WireGuard is rendered
// without it.
func (r *rig) render() string {
	wgText := replaceAll(r.wgb.Render(), r.pub, "<node-a key>")
	return "# wireguard\n" + wgText + "\n# routing\n" + r.rk.Render() + "# nftables\n" + r.mk.Render() + "# ebpf\n" + r.dp.Render()
}

func replaceAll(s, old, new string) string {
	if old == "" {
		return s
	}
	return strings.ReplaceAll(s, old, new)
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

func reconcile(t *testing.T, r *rig, s desired.NodeState) {
	t.Helper()
	if err := r.a.Reconcile(context.Background(), s); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
}

func TestReconcileRendersEachState(t *testing.T) {
	for name, s := range states {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, "")
			reconcile(t, r, s)
			got := r.render()
			if d := cmp.Diff(golden(t, name, got), got); d != "" {
				t.Errorf("(-golden +got):\n%s", d)
			}
		})
	}
}

// writes counts what the parts changed.
func (r *rig) writes() [4]int {
	return [4]int{r.wgb.Configures() + r.wgb.Creates(), r.rk.Writes(), r.mk.Writes(), r.dp.applies}
}

// TestEveryTransitionEndsInTarget applies every pair A→B: the node renders
// as B, peers in both kept their sessions, and re-applying B — also from a
// restarted agent on the same kernel — writes nothing.
func TestEveryTransitionEndsInTarget(t *testing.T) {
	for from, a := range states {
		for to, b := range states {
			t.Run(from+"->"+to, func(t *testing.T) {
				r := newRig(t, "")
				reconcile(t, r, a)
				before := r.wgb.Sessions(wg.MeshInterface)
				reconcile(t, r, b)
				if d := cmp.Diff(golden(t, to, ""), r.render()); d != "" {
					t.Errorf("(-golden +got):\n%s", d)
				}
				for k, s := range r.wgb.Sessions(wg.MeshInterface) {
					if old, ok := before[k]; ok && old != s {
						t.Errorf("peer %s lost its session", k)
					}
				}
				w := r.writes()
				reconcile(t, r, b)
				if r.writes() != w {
					t.Errorf("re-applying %s wrote: %v -> %v", to, w, r.writes())
				}
			})
		}
	}
}

// A restarted daemon (new agent, same kernel and key directory) adopts
// the state: Start leaves the maps as they are, and the first state —
// the same as before — writes nothing anywhere.
func TestRestartAdoptsWithoutFlap(t *testing.T) {
	r := newRig(t, "")
	reconcile(t, r, states["two-peers-strict"])
	before := r.render()
	sessions := r.wgb.Sessions(wg.MeshInterface)
	w := r.writes()
	_ = r.keys.Close()
	r2 := newRig(t, r.dir)
	r2.wgb, r2.rk, r2.mk, r2.dp, r2.links = r.wgb, r.rk, r.mk, r.dp, r.links
	ks, err := keys.Open(keys.Options{Dir: r.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Close() })
	r2.keys = ks
	r2.a, err = agent.New(agent.Options{Node: "node-a", NodeIP: netip.MustParseAddr("198.18.0.1")}, agent.Deps{
		Tunnels: linkedTunnels{Manager: wg.NewManager(r.wgb), rk: r.rk, links: r.links}, Routes: route.New(r.rk, route.Options{}),
		Clamp: mss.New(r.mk), Datapath: r.dp, Keys: ks, Links: r.links, Journal: rotation.FileJournal{Path: filepath.Join(r.dir, rotation.JournalFile)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.a.Start(); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r2, states["two-peers-strict"])
	if d := cmp.Diff(before, r2.render()); d != "" {
		t.Errorf("restart changed the node (-before +after):\n%s", d)
	}
	got := r2.writes()
	if got != w {
		t.Errorf("writes after restart %v, before %v: want none", got, w)
	}
	if d := cmp.Diff(sessions, r.wgb.Sessions(wg.MeshInterface)); d != "" {
		t.Errorf("sessions changed: %s", d)
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
	r := newRig(t, "")
	for i := 0; i < 60; i++ {
		n := names[rnd.IntN(len(names))]
		reconcile(t, r, states[n])
		if d := cmp.Diff(golden(t, n, ""), r.render()); d != "" {
			t.Fatalf("step %d (%s, seed %d) (-golden +got):\n%s", i, n, seed, d)
		}
	}
}

func syncMsg(s desired.NodeState, seq uint64) *meshpb.ControllerMessage {
	return &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: seq},
		Cmd: &meshpb.ControllerMessage_Sync{Sync: wire.EncodeState(s)}}
}

func deltaMsg(from, to desired.NodeState, seq uint64) *meshpb.ControllerMessage {
	d := desired.Diff(from, to)
	return &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: seq},
		Cmd: &meshpb.ControllerMessage_Delta{Delta: wire.EncodeDelta(&d, &meshpb.Generation{Epoch: 1, Seq: seq - 1})}}
}

// TestApplyAcksByOutcome runs stream commands through the agent: the ack
// code says what happened, and a refused command changes nothing.
func TestApplyAcksByOutcome(t *testing.T) {
	two, one := states["two-peers-strict"], states["one-peer-loose"]
	malformed := syncMsg(two, 2)
	malformed.GetSync().Peers[0].AllowedIps = []string{"100.64.2.7/24"}
	badDelta := deltaMsg(one, two, 2)
	badDelta.GetDelta().RemovePeers = []string{"node-z"}
	cases := []struct {
		name     string
		start    *desired.NodeState
		msg      *meshpb.ControllerMessage
		dpFail   error
		want     meshpb.AckCode
		wantNode string // golden state after; "" = unchanged
	}{
		{name: "sync is reconciled", msg: syncMsg(two, 1), want: meshpb.AckCode_ACK_OK, wantNode: "two-peers-strict"},
		{name: "delta on top of the state", start: &one, msg: deltaMsg(one, two, 2), want: meshpb.AckCode_ACK_OK, wantNode: "two-peers-strict"},
		{name: "malformed sync is invalid", start: &one, msg: malformed, want: meshpb.AckCode_ACK_INVALID},
		{name: "delta without a state is a gap", msg: deltaMsg(one, two, 2), want: meshpb.AckCode_ACK_GAP},
		{name: "delta that does not fit is a gap", start: &one, msg: badDelta, want: meshpb.AckCode_ACK_GAP},
		{name: "full maps are a capacity problem", start: &one, msg: syncMsg(two, 2),
			dpFail: fmt.Errorf("block map: %w", bpf.ErrCapacity), want: meshpb.AckCode_ACK_CAPACITY},
		{name: "a rotation command that can never be carried out is invalid", start: &one, want: meshpb.AckCode_ACK_INVALID,
			msg: &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: 2}, Cmd: &meshpb.ControllerMessage_Rotation{
				Rotation: &meshpb.RotationCommand{Id: "r", Phase: meshpb.RotationPhase_ROTATION_PHASE_ACTIVATE, Subject: "node-a"}}}},
		{name: "a rotation command the node cannot carry out fails", start: &one, want: meshpb.AckCode_ACK_FAILED,
			msg: &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: 2}, Cmd: &meshpb.ControllerMessage_Rotation{
				Rotation: &meshpb.RotationCommand{Id: "node-a/2", Phase: meshpb.RotationPhase_ROTATION_PHASE_DISTRIBUTE, Subject: "node-a",
					NewKeyGeneration: 2, SubjectNewPublicKey: keyBytes(pubKey(9)), TempPort: 51821}}}}, // no PREPARE: no staged key
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "")
			if tc.start != nil {
				reconcile(t, r, *tc.start)
			}
			before := r.render()
			r.dp.fail = tc.dpFail
			code, err := r.a.Apply(context.Background(), tc.msg)
			if code != tc.want {
				t.Fatalf("Apply = %s (%v), want %s", code, err, tc.want)
			}
			if (code == meshpb.AckCode_ACK_OK) != (err == nil) {
				t.Errorf("code %s with error %v", code, err)
			}
			if tc.wantNode != "" {
				if d := cmp.Diff(golden(t, tc.wantNode, ""), r.render()); d != "" {
					t.Errorf("(-golden +got):\n%s", d)
				}
			} else if tc.dpFail == nil && r.render() != before {
				t.Errorf("refused command changed the node")
			}
			if tc.dpFail != nil {
				st, _ := r.a.TunnelStatus(context.Background())
				found := false
				for _, c := range st.Conditions {
					found = found || c.Type == "MapCapacity"
				}
				if !found {
					t.Errorf("status lacks a MapCapacity condition: %v", st.Conditions)
				}
				if r.dp.Render() != "bpf: no state\n" && tc.start == nil {
					t.Error("failed apply left a data plane state")
				}
			}
		})
	}
}

// A Delta that leaves peers and routes as they were (a BlockPolicy) swaps
// the eBPF maps and does not go over WireGuard, routing and the clamp
// again; a SyncState does, and so puts back what someone else changed.
func TestBlockDeltaWritesOnlyTheMapsAndSyncStateRepairsTheRest(t *testing.T) {
	ctx := context.Background()
	two, blocked := states["two-peers-strict"], states["with-blocks"]
	r := newRig(t, "")
	apply := func(msg *meshpb.ControllerMessage) {
		t.Helper()
		if code, err := r.a.Apply(ctx, msg); code != meshpb.AckCode_ACK_OK {
			t.Fatalf("Apply = %s (%v), want ACK_OK", code, err)
		}
	}
	apply(syncMsg(two, 1))

	// Someone else removes a peer and a route behind the agent's back.
	if err := r.wgb.Configure(wg.MeshInterface, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: wgtypes.Key(peerC.PublicKey), Remove: true}}}); err != nil {
		t.Fatal(err)
	}
	routes, err := r.rk.Routes(route.DefaultTable)
	if err != nil || len(routes) == 0 {
		t.Fatalf("routes of table %d: %v, %v", route.DefaultTable, routes, err)
	}
	if err := r.rk.DelRoute(routes[0]); err != nil {
		t.Fatal(err)
	}
	drifted := r.render()

	applies := r.dp.applies
	apply(deltaMsg(two, blocked, 2))
	if r.dp.applies != applies+1 {
		t.Errorf("the block delta applied the maps %d times, want once", r.dp.applies-applies)
	}
	if got, want := r.dp.Render(), golden(t, "with-blocks", ""); !strings.HasSuffix(want, "# ebpf\n"+got) {
		t.Errorf("maps after the block delta:\n%s\nwant the with-blocks maps:\n%s", got, want)
	}
	if d := cmp.Diff(sectionsBefore(drifted, "# ebpf"), sectionsBefore(r.render(), "# ebpf")); d != "" {
		t.Errorf("the block delta went over WireGuard, routing or the clamp (-before +after):\n%s", d)
	}

	apply(syncMsg(blocked, 3))
	if d := cmp.Diff(golden(t, "with-blocks", ""), r.render()); d != "" {
		t.Errorf("SyncState did not repair the node (-golden +got):\n%s", d)
	}
}

// sectionsBefore is the part of a render before the line marker.
func sectionsBefore(render, marker string) string {
	before, _, _ := strings.Cut(render, marker)
	return before
}

func TestHelloDescribesTheNode(t *testing.T) {
	r := newRig(t, "")
	h, err := r.a.Hello(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	k, _ := r.keys.Active()
	pub := k.Public()
	want := &meshpb.Hello{Node: "node-a", Capabilities: []string{"backend/userspace", "ipv6", "rotation/v1"}, AgentVersion: "test", Backend: "userspace", Mtu: 1420,
		Key: &meshpb.KeyReport{PublicKey: pub[:], Generation: 1, State: meshpb.KeyState_KEY_STATE_ACTIVE, CreatedUnixNano: k.Created.UnixNano()}}
	if !proto.Equal(h, want) {
		t.Errorf("hello %v, want %v", h, want)
	}
}

func TestStatusNamesPeersAndCounts(t *testing.T) {
	r := newRig(t, "")
	reconcile(t, r, states["two-peers-strict"])
	hs := time.Unix(1700000000, 0)
	if err := r.wgb.SetTraffic(wg.MeshInterface, wgtypes.Key(peerB.PublicKey), hs, 10, 20); err != nil {
		t.Fatal(err)
	}
	st, err := r.a.TunnelStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range st.Peers {
		got = append(got, fmt.Sprintf("%s %s %s hs=%d rx=%d tx=%d", p.Interface, p.Node, p.Endpoint, p.LastHandshakeUnixNano, p.RxBytes, p.TxBytes))
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("wg-mesh node-b 198.18.0.2:51820 hs=%d rx=10 tx=20", hs.UnixNano()),
		"wg-mesh node-c 198.18.0.3:51820 hs=0 rx=0 tx=0",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("peers (-want +got):\n%s", d)
	}
	if st.Mtu != 1420 || st.Backend != "userspace" || st.Verdicts["classify/steer"] != 3 || len(st.Conditions) != 0 {
		t.Errorf("status %v", st)
	}
	snap := r.a.Snapshot()
	if len(snap.Peers) != 2 || snap.Peers[0].Node != "node-b" || snap.MTU != 1420 {
		t.Errorf("health snapshot %+v", snap)
	}
}

// Pod interfaces get classify as they come and lose it as they go;
// wg-mesh gets deliver once the agent runs a state.
func TestFollowLinksAttachesToPodInterfaces(t *testing.T) {
	r := newRig(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.FollowLinks(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	idx := func(n string) int { i, _ := r.links.Index(n); return i }
	waitFor := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				c, d := r.dp.attached()
				t.Fatalf("timed out waiting for %s (classify %v, deliver %d)", what, c, d)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitFor("existing pod interfaces", func() bool {
		c, _ := r.dp.attached()
		return slices.Equal(c, []int{idx("veth1a2b"), idx("cali77")})
	})
	r.links.add("veth9f")
	r.links.add("docker0")
	r.links.remove("veth1a2b")
	waitFor("new and removed pod interfaces", func() bool {
		c, _ := r.dp.attached()
		return slices.Equal(c, []int{idx("cali77"), idx("veth9f")})
	})
	if _, d := r.dp.attached(); len(d) != 0 {
		t.Errorf("deliver attached before any state: %v", d)
	}
	reconcile(t, r, states["one-peer-loose"])
	if _, d := r.dp.attached(); !slices.Equal(d, []int{idx(wg.MeshInterface)}) {
		t.Errorf("deliver on %v, want wg-mesh %d", d, idx(wg.MeshInterface))
	}
}

func TestUninstallRemovesEverythingAndCloseNothing(t *testing.T) {
	r := newRig(t, "")
	reconcile(t, r, states["with-blocks"])
	before := r.render()
	if err := r.a.Close(); err != nil {
		t.Fatal(err)
	}
	if r.render() != before || !r.dp.closed || r.dp.removed {
		t.Error("Close changed the data plane")
	}
	if err := r.a.Uninstall(); err != nil {
		t.Fatal(err)
	}
	got := r.render()
	if d := cmp.Diff(golden(t, "uninstalled", got), got); d != "" {
		t.Errorf("(-golden +got):\n%s", d)
	}
	if err := keys.Remove(r.dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key directory survived: %v", err)
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	r := newRig(t, "")
	deps := agent.Deps{Tunnels: wg.NewManager(r.wgb), Routes: route.New(r.rk, route.Options{}), Clamp: mss.New(r.mk), Datapath: r.dp, Keys: r.keys, Links: r.links,
		Journal: rotation.FileJournal{Path: filepath.Join(r.dir, rotation.JournalFile)}}
	if _, err := agent.New(agent.Options{Node: "n", NodeIP: netip.MustParseAddr("198.18.0.1")}, deps); err != nil {
		t.Fatalf("complete options refused: %v", err)
	}
	cases := map[string]func(*agent.Options, *agent.Deps){
		"no node":     func(o *agent.Options, _ *agent.Deps) { o.Node = "" },
		"no node ip":  func(o *agent.Options, _ *agent.Deps) { o.NodeIP = netip.Addr{} },
		"bad pattern": func(o *agent.Options, _ *agent.Deps) { o.PodInterfaces = []string{"veth["} },
		"no datapath": func(_ *agent.Options, d *agent.Deps) { d.Datapath = nil },
		"no journal":  func(_ *agent.Options, d *agent.Deps) { d.Journal = nil },
		"rotation interface is the mesh interface": func(o *agent.Options, _ *agent.Deps) { o.RotationInterface = wg.MeshInterface },
		"rotation mark equals the mesh mark":       func(o *agent.Options, _ *agent.Deps) { o.RotationMark = route.DefaultMark },
		"rotation mark outside the mask":           func(o *agent.Options, _ *agent.Deps) { o.RotationMark = 0x4000 },
		"rotation table is the mesh table":         func(o *agent.Options, _ *agent.Deps) { o.RotationTable = route.DefaultTable },
		"clamp pattern misses the rotation interface": func(o *agent.Options, _ *agent.Deps) {
			o.RotationInterface = "vprot0"
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			o, d := agent.Options{Node: "n", NodeIP: netip.MustParseAddr("198.18.0.1")}, deps
			mod(&o, &d)
			if _, err := agent.New(o, d); !errors.Is(err, agent.ErrInvalid) {
				t.Errorf("New: %v, want ErrInvalid", err)
			}
		})
	}
}

// A fresh node drops cross-node pod traffic from the start: Start
// installs a strict data plane with the cluster CIDRs and no tunnel.
func TestStartOnFreshMapsFailsClosed(t *testing.T) {
	r := newRig(t, "")
	a, err := agent.New(agent.Options{Node: "node-a", NodeIP: netip.MustParseAddr("198.18.0.1"), ClusterCIDRs: pfx("100.64.0.0/16", "2001:db8::/32")},
		agent.Deps{Tunnels: wg.NewManager(r.wgb), Routes: route.New(r.rk, route.Options{}), Clamp: mss.New(r.mk), Datapath: r.dp, Keys: r.keys, Links: r.links,
			Journal: rotation.FileJournal{Path: filepath.Join(r.dir, rotation.JournalFile)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	want := "bpf config strict=true isolated=false drop-sample=64\nbpf cluster 100.64.0.0/16\nbpf cluster 2001:db8::/32\n"
	if d := cmp.Diff(want, r.dp.Render()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if r.wgb.Render() != "" || r.mk.Render() != "(no table)\n" {
		t.Error("Start touched WireGuard or nftables")
	}
	n := r.dp.applies
	if err := a.Start(); err != nil || r.dp.applies != n {
		t.Errorf("a second Start rewrote the maps (%v)", err)
	}
}
