package agent_test

// Privileged test of a whole key rotation with two real agents (userspace
// WireGuard, real eBPF, netlink routing, nftables), fed their desired
// state and the controller's RotationCommands directly, under continuous
// UDP traffic between a pod behind each node:
//
//	pod-a 100.64.1.2 ─ p1 [classify] ─ node-1 ═ vpwa… (51820) ══ WireGuard ══ (51820) vpwb… ═ node-2 ─ p2 ─ pod-b 100.64.2.2
//	                                          ═ vpwra… (51821) ══ WireGuard ══ (51821) vpwrb… ═   (during the rotation)
//	                               ul0 198.18.0.1 ────── underlay (captured) ────── ul0 198.18.0.2
//
// Each node also has the base CNI's cleartext route to the other's pod
// CIDR and a strict rp_filter, as a Flannel host-gw node would: a packet
// that is not steered into a tunnel is delivered in cleartext and shows
// in the capture of the underlay (an AF_PACKET socket on node-1's ul0).
// Node 1 rotates its key (generation 1 → 2) through every forward stage,
// then starts another rotation (→ 3) and rolls it back from SwitchToTemp.
// Both must lose no datagram and put no pod packet on the underlay in
// cleartext.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/bpf"
	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/internal/testnet"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/rotation"
	"github.com/lumbrjx/vpblu/nodeagent/route"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

const (
	// flowInterval is the gap between two datagrams of a flow (1000/s).
	flowInterval = time.Millisecond
	// settle is ctrl/rotation's default Options.Settle.
	settle = time.Second
	// podPort receives the flows in each pod; they are sent from podPort+1.
	podPort = 7000
)

func TestRotationUnderLoadLosesNothingAndLeaksNothing(t *testing.T) {
	privtest.Require(t, "create network namespaces, TUN devices, routes, nftables rules, eBPF programs and packet sockets")
	base := bpffs(t)
	na, nb := testnet.TwoNodes(t)
	suffix := testnet.RandHex(3)
	nodes := []*liveNode{
		{Node: na, wgName: "vpwa" + suffix, rotName: "vpwra" + suffix},
		{Node: nb, wgName: "vpwb" + suffix, rotName: "vpwrb" + suffix},
	}
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		if err := addCNIRoute(n.Node, nodes[2-n.Index].Node); err != nil {
			t.Fatal(err)
		}
	}

	// The capture can fail: before any agent runs, pod traffic crosses
	// the underlay in cleartext and is seen.
	ctrl := startCapture(t, na.NS, "ul0")
	control := startFlows(t, a, b, 0)
	time.Sleep(50 * time.Millisecond)
	control.stop(t)
	if got := ctrl.stop(t); got.cleartext == 0 {
		t.Fatalf("the capture saw no cleartext pod packet without vpblu (%+v): it cannot detect a leak", got)
	}

	for _, n := range nodes {
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
		})
	}
	for _, n := range nodes {
		s := stateFor(n, nodes[2-n.Index])
		if err := n.NS.Do(func() error { return n.a.Reconcile(context.Background(), s) }); err != nil {
			t.Fatalf("node %d: Reconcile: %v", n.Index, err)
		}
	}
	a.PingFrom(t, nb.PodIPs[0])
	b.PingFrom(t, na.PodIPs[0])
	pathsBefore := paths(t, nodes)
	oldKey := a.pub

	// The same traffic without a rotation, for comparison.
	t.Run("baseline", func(t *testing.T) {
		r := &rotationRun{t: t, subject: a, peer: b}
		cap := startCapture(t, na.NS, "ul0")
		fl := startFlows(t, a, b)
		r.begin = fl.start
		time.Sleep(3 * time.Second)
		fs := fl.stop(t)
		cs := cap.stop(t)
		r.report(fs, cs)
		checkLossless(t, fs, cs)
	})

	t.Run("forward", func(t *testing.T) {
		r := &rotationRun{t: t, subject: a, peer: b, gen: 2, oldKey: a.pub}
		cap := startCapture(t, na.NS, "ul0")
		fl := startFlows(t, a, b)
		r.begin = fl.start
		r.stage("Prepare", prepare, noStep, false, 0, a)
		r.stage("Distribute", distribute, noStep, true, 0, a, b)
		r.stage("SwitchToTemp", activate, switchToTemp, false, settle, a, b)
		rot := tempTraffic(t, nodes)
		// The peer re-keys first: its first handshake under the new key
		// reaches a subject still on the old one and is retried (5 s).
		r.stage("Rekey", activate, rekey, true, 0, b, a)
		r.stage("SwitchBack", activate, switchBack, false, settle, a, b)
		r.stage("Retire", retire, noStep, false, 0, a, b)
		// The controller's commit reaches node 2's desired state.
		a.pub = r.newKey
		r.timed("KeyCommit", func() error {
			return b.NS.Do(func() error { return b.a.Reconcile(context.Background(), stateFor(b, a)) })
		})
		time.Sleep(200 * time.Millisecond) // traffic on the final path
		fs := fl.stop(t)
		cs := cap.stop(t)
		r.report(fs, cs)
		checkLossless(t, fs, cs)
		if rot == 0 {
			t.Error("no traffic went through the temporary interfaces while switched to them")
		}
		if cs.wgRot == 0 {
			t.Error("the capture saw no WireGuard packet on the temporary port")
		}

		infos, err := keys.Inspect(a.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].State != keys.Active || infos[0].Generation != 2 || infos[0].Public != wgtypes.Key(r.newKey) {
			t.Errorf("node 1's keys after the rotation: %+v, want only the new key, generation 2", infos)
		}
		files, _ := filepath.Glob(filepath.Join(a.stateDir, "key-*"))
		if len(files) != 1 {
			t.Errorf("key files after the rotation: %v, want one", files)
		}
		for _, n := range nodes {
			for _, ifc := range []string{n.wgName, n.rotName} {
				st, err := n.wgb.Device(ifc)
				if err != nil {
					continue
				}
				if st.PublicKey == wgtypes.Key(oldKey) {
					t.Errorf("node %d: %s still runs node 1's old key", n.Index, ifc)
				}
				for _, p := range st.Peers {
					if p.PublicKey == wgtypes.Key(oldKey) {
						t.Errorf("node %d: %s still has a peer with node 1's old key", n.Index, ifc)
					}
				}
			}
		}
		checkNoTemp(t, nodes, pathsBefore)
		a.PingFrom(t, nb.PodIPs[0])
		b.PingFrom(t, na.PodIPs[0])
	})
	if t.Failed() {
		return
	}

	t.Run("rollback from SwitchToTemp", func(t *testing.T) {
		r := &rotationRun{t: t, subject: a, peer: b, gen: 3, oldKey: a.pub}
		cap := startCapture(t, na.NS, "ul0")
		fl := startFlows(t, a, b)
		r.begin = fl.start
		r.stage("Prepare", prepare, noStep, false, 0, a)
		r.stage("Distribute", distribute, noStep, true, 0, a, b)
		r.stage("SwitchToTemp", activate, switchToTemp, false, settle, a, b)
		rot := tempTraffic(t, nodes)
		r.stage("RollbackSwitchBack", rollback, switchBack, false, settle, a, b)
		r.stage("RollbackTeardown", rollback, teardown, false, 0, a, b)
		time.Sleep(200 * time.Millisecond)
		fs := fl.stop(t)
		cs := cap.stop(t)
		r.report(fs, cs)
		checkLossless(t, fs, cs)
		if rot == 0 {
			t.Error("no traffic went through the temporary interfaces while switched to them")
		}
		infos, err := keys.Inspect(a.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].Generation != 2 || infos[0].Public != wgtypes.Key(a.pub) {
			t.Errorf("node 1's keys after the rollback: %+v, want only generation 2", infos)
		}
		if st, err := b.wgb.Device(b.wgName); err != nil || len(st.Peers) != 1 || st.Peers[0].PublicKey != wgtypes.Key(a.pub) {
			t.Errorf("node 2's peer after the rollback: %v, want node 1's generation 2 key", err)
		}
		checkNoTemp(t, nodes, pathsBefore)
	})
}

// addCNIRoute gives n the base CNI's cleartext route to peer's pods and
// a strict rp_filter, as testnet's AddCleartextPath does, without its
// leak guard: a leak must show on the underlay, not as loss.
func addCNIRoute(n, peer *testnet.Node) error {
	return n.NS.Do(func() error {
		ul0, err := netlink.LinkByName("ul0")
		if err != nil {
			return err
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: ul0.Attrs().Index, Dst: testnet.Prefix(peer.PodCIDRs[0].String()), Gw: peer.Underlay.AsSlice()}); err != nil {
			return fmt.Errorf("cni route: %w", err)
		}
		return os.WriteFile("/proc/sys/net/ipv4/conf/all/rp_filter", []byte("1"), 0o644)
	})
}

// paths renders both nodes' rules and the tables of both paths.
func paths(t *testing.T, nodes []*liveNode) string {
	t.Helper()
	var b strings.Builder
	for _, n := range nodes {
		if err := n.NS.Do(func() error {
			s, err := route.Dump(route.Netlink{}, route.DefaultTable, rotation.DefaultTable)
			b.WriteString(s)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// checkNoTemp checks that no temporary interface, path, deliver link or
// journaled rotation is left on either node.
func checkNoTemp(t *testing.T, nodes []*liveNode, pathsBefore string) {
	t.Helper()
	for _, n := range nodes {
		err := n.NS.Do(func() error {
			if _, err := netlink.LinkByName(n.rotName); err == nil {
				return fmt.Errorf("%s still exists", n.rotName)
			}
			dp, err := bpf.Open(bpf.Options{PinDir: n.pin})
			if err != nil {
				return err
			}
			defer dp.Close()
			atts, err := dp.Attachments()
			if err != nil {
				return err
			}
			for _, at := range atts {
				if !at.Live {
					return fmt.Errorf("a %s link on the gone interface %d is left", at.Hook, at.Ifindex)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("node %d: %v", n.Index, err)
		}
		if o := n.a.Rotation(); o.Active() {
			t.Errorf("node %d still journals rotation %s", n.Index, o.ID)
		}
	}
	if got := paths(t, nodes); got != pathsBefore {
		t.Errorf("rules and tables after the rotation:\n%s\nwant as before:\n%s", got, pathsBefore)
	}
}

// tempTraffic returns the bytes both nodes sent through their temporary
// interfaces so far.
func tempTraffic(t *testing.T, nodes []*liveNode) int64 {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // some traffic on the temporary path
	var n int64
	for _, nd := range nodes {
		st, err := wg.NewManager(nd.wgb).Status(nd.rotName)
		if err != nil {
			t.Errorf("node %d: %v", nd.Index, err)
			continue
		}
		for _, p := range st.Peers {
			n += p.TxBytes
		}
	}
	return n
}

// rotationRun plays ctrl/rotation for one rotation of subject with its
// one peer: every stage goes to the nodes concerned and completes when
// all of them reported it done and, where the controller waits on
// handshakes, confirmed the other side; then it settles.
type rotationRun struct {
	t             *testing.T
	subject, peer *liveNode
	gen           uint64
	oldKey        desired.Key
	newKey        desired.Key
	begin         time.Time
	lines         []string
}

var genSeq atomic.Uint64

func (r *rotationRun) id() string { return fmt.Sprintf("node-%d/%d", r.subject.Index, r.gen) }

func (r *rotationRun) command(n *liveNode, phase meshpb.RotationPhase, step meshpb.RotationStep) *meshpb.ControllerMessage {
	c := &meshpb.RotationCommand{Id: r.id(), Phase: phase, Step: step, Subject: fmt.Sprintf("node-%d", r.subject.Index),
		NewKeyGeneration: r.gen, SubjectPublicKey: keyBytes(r.oldKey), TempPort: 51821}
	if r.newKey != (desired.Key{}) {
		c.SubjectNewPublicKey = keyBytes(r.newKey)
	}
	if n == r.subject {
		c.Peers = []*meshpb.Peer{{Node: fmt.Sprintf("node-%d", r.peer.Index), PublicKey: keyBytes(r.peer.pub),
			Endpoint: netip.AddrPortFrom(r.peer.Underlay, 51821).String()}}
	} else if r.newKey != (desired.Key{}) {
		c.Peers = []*meshpb.Peer{{Node: fmt.Sprintf("node-%d", r.subject.Index), PublicKey: keyBytes(r.newKey),
			Endpoint: netip.AddrPortFrom(r.subject.Underlay, 51821).String()}}
	}
	return &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: 1000 + genSeq.Add(1)},
		Cmd: &meshpb.ControllerMessage_Rotation{Rotation: c}}
}

func (r *rotationRun) stage(name string, phase meshpb.RotationPhase, step meshpb.RotationStep, confirm bool, settle time.Duration, nodes ...*liveNode) {
	r.t.Helper()
	r.timed(name, func() error {
		for _, n := range nodes {
			msg := r.command(n, phase, step)
			var code meshpb.AckCode
			var err error
			_ = n.NS.Do(func() error { code, err = n.a.Apply(context.Background(), msg); return nil })
			if code != meshpb.AckCode_ACK_OK {
				return fmt.Errorf("node %d: %s %v", n.Index, code, err)
			}
			if phase == prepare {
				k := n.rep.keys[len(n.rep.keys)-1]
				if k.GetState() != meshpb.KeyState_KEY_STATE_PENDING || k.GetGeneration() != r.gen {
					return fmt.Errorf("node %d reported %v after PREPARE", n.Index, k)
				}
				r.newKey = desired.Key(k.GetPublicKey())
			}
		}
		if !confirm {
			return nil
		}
		deadline := time.Now().Add(30 * time.Second)
		for _, n := range nodes {
			other := r.peer
			if n == r.peer {
				other = r.subject
			}
			want := fmt.Sprintf("node-%d", other.Index)
			for !r.confirmed(n, phase, step, want) {
				if time.Now().After(deadline) {
					return fmt.Errorf("node %d did not confirm a handshake with %s", n.Index, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		return nil
	})
	if settle > 0 {
		time.Sleep(settle)
	}
}

// confirmed reports whether n reported a handshake with peer for the
// stage, as the controller collects them.
func (r *rotationRun) confirmed(n *liveNode, phase meshpb.RotationPhase, step meshpb.RotationStep, peer string) bool {
	n.rep.mu.Lock()
	defer n.rep.mu.Unlock()
	for _, rr := range n.rep.rots {
		if rr.GetId() == r.id() && rr.GetPhase() == phase && rr.GetStep() == step && slices.Contains(rr.GetConfirmed(), peer) {
			return true
		}
	}
	return false
}

func (r *rotationRun) timed(name string, f func() error) {
	r.t.Helper()
	start := time.Now()
	if err := f(); err != nil {
		r.t.Fatalf("%s: %v", name, err)
	}
	r.lines = append(r.lines, fmt.Sprintf("%-18s at %6.3fs took %6.1fms", name, start.Sub(r.begin).Seconds(), float64(time.Since(start).Microseconds())/1000))
}

func (r *rotationRun) report(fs []flowStats, cs captureStats) {
	r.t.Helper()
	var b strings.Builder
	if r.gen == 0 {
		b.WriteString("no rotation:\n")
	} else {
		fmt.Fprintf(&b, "rotation %s, stages (from the start of the traffic; settle %s after the switches):\n", r.id(), settle)
	}
	for _, l := range r.lines {
		b.WriteString("  " + l + "\n")
	}
	for _, f := range fs {
		fmt.Fprintf(&b, "  flow %s: sent %d received %d lost %d duplicates %d longest gap %.1fms at %.3fs\n",
			f.name, f.sent, f.received, f.lost(), f.dups, float64(f.maxGap.Microseconds())/1000, f.maxGapAt.Seconds())
	}
	fmt.Fprintf(&b, "  underlay capture: %d frames, cleartext pod packets %d, WireGuard on 51820 %d, on 51821 %d, capture drops %d\n",
		cs.frames, cs.cleartext, cs.wgMesh, cs.wgRot, cs.drops)
	r.t.Log(b.String())
}

func checkLossless(t *testing.T, fs []flowStats, cs captureStats) {
	t.Helper()
	for _, f := range fs {
		if f.lost() != 0 || f.sendErrors != 0 {
			t.Errorf("flow %s lost %d of %d datagrams (%d send errors)", f.name, f.lost(), f.sent, f.sendErrors)
		}
		if f.sent < 1000 {
			t.Errorf("flow %s sent only %d datagrams", f.name, f.sent)
		}
	}
	if cs.cleartext != 0 {
		t.Errorf("%d cleartext pod packets on the underlay, e.g. %v", cs.cleartext, cs.examples)
	}
	if cs.drops != 0 {
		t.Errorf("the capture dropped %d frames: it cannot vouch for them", cs.drops)
	}
}

// ---- traffic ----

// flow sends numbered datagrams from one pod to the other every
// flowInterval and records what arrives.
type flow struct {
	name     string
	tx, rx   *net.UDPConn
	dst      *net.UDPAddr
	sent     atomic.Uint64
	sendErrs atomic.Uint64

	mu       sync.Mutex
	got      map[uint64]bool
	dups     int
	last     time.Time
	maxGap   time.Duration
	maxGapAt time.Time
}

type flowStats struct {
	name                 string
	sent, received, dups int
	sendErrors           int
	maxGap               time.Duration
	maxGapAt             time.Duration // since the traffic started
	lostSeqs             []uint64
}

func (f flowStats) lost() int { return f.sent - f.received }

type flows struct {
	start time.Time
	all   []*flow
	quit  chan struct{}
	wg    sync.WaitGroup
	rxWG  sync.WaitGroup
	rxEnd atomic.Bool
}

// startFlows starts a flow each way between the pods of a and b, over
// IPv4 and over IPv6. Only IPv4 has a cleartext CNI route: an IPv6 pod
// packet that is not steered has no route and shows as loss.
func startFlows(t *testing.T, a, b *liveNode, families ...int) *flows {
	t.Helper()
	fs := &flows{quit: make(chan struct{})}
	listen := func(n *liveNode, ip netip.Addr, port int) *net.UDPConn {
		var c *net.UDPConn
		if err := n.Pod.Do(func() error {
			var err error
			c, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip.AsSlice(), Port: port})
			if err == nil {
				err = c.SetReadBuffer(4 << 20)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if len(families) == 0 {
		families = []int{0, 1}
	}
	for _, fam := range families {
		name := []string{"v4", "v6"}[fam]
		for _, p := range [][2]*liveNode{{a, b}, {b, a}} {
			src, dst := p[0], p[1]
			fs.all = append(fs.all, &flow{
				name: fmt.Sprintf("pod-%d->pod-%d %s", src.Index, dst.Index, name),
				tx:   listen(src, src.PodIPs[fam], podPort+1), rx: listen(dst, dst.PodIPs[fam], podPort),
				dst: &net.UDPAddr{IP: dst.PodIPs[fam].AsSlice(), Port: podPort},
				got: map[uint64]bool{},
			})
		}
	}
	fs.start = time.Now()
	for _, f := range fs.all {
		fs.rxWG.Add(1)
		go func() { defer fs.rxWG.Done(); f.receive(&fs.rxEnd) }()
		fs.wg.Add(1)
		go func() { defer fs.wg.Done(); f.send(fs.start, fs.quit) }()
	}
	return fs
}

func (f *flow) send(start time.Time, quit <-chan struct{}) {
	buf := make([]byte, 96)
	for seq := uint64(0); ; seq++ {
		select {
		case <-quit:
			return
		default:
		}
		if d := time.Until(start.Add(time.Duration(seq) * flowInterval)); d > 0 {
			time.Sleep(d)
		}
		binary.BigEndian.PutUint64(buf, seq)
		f.sent.Add(1)
		if _, err := f.tx.WriteToUDP(buf, f.dst); err != nil {
			f.sendErrs.Add(1)
		}
	}
}

func (f *flow) receive(end *atomic.Bool) {
	buf := make([]byte, 2048)
	for {
		_ = f.rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := f.rx.ReadFromUDP(buf)
		now := time.Now()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !end.Load() {
				continue
			}
			return
		}
		if n < 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(buf)
		f.mu.Lock()
		if f.got[seq] {
			f.dups++
		}
		f.got[seq] = true
		if !f.last.IsZero() && now.Sub(f.last) > f.maxGap {
			f.maxGap, f.maxGapAt = now.Sub(f.last), now
		}
		f.last = now
		f.mu.Unlock()
	}
}

// stop ends the senders, gives the last datagrams a second to arrive and
// returns what each flow saw.
func (fs *flows) stop(t *testing.T) []flowStats {
	t.Helper()
	close(fs.quit)
	fs.wg.Wait()
	time.Sleep(time.Second)
	fs.rxEnd.Store(true)
	fs.rxWG.Wait()
	for _, f := range fs.all {
		f.tx.Close()
		f.rx.Close()
	}
	var out []flowStats
	for _, f := range fs.all {
		f.mu.Lock()
		s := flowStats{name: f.name, sent: int(f.sent.Load()), received: len(f.got), dups: f.dups, sendErrors: int(f.sendErrs.Load()),
			maxGap: f.maxGap, maxGapAt: f.maxGapAt.Sub(fs.start)}
		for seq := range uint64(s.sent) {
			if !f.got[seq] && len(s.lostSeqs) < 20 {
				s.lostSeqs = append(s.lostSeqs, seq)
			}
		}
		f.mu.Unlock()
		if len(s.lostSeqs) > 0 {
			t.Logf("flow %s lost sequence numbers (first 20): %v", s.name, s.lostSeqs)
		}
		out = append(out, s)
	}
	return out
}

// ---- underlay capture ----

// capture counts the frames on one interface with an AF_PACKET socket.
type capture struct {
	fd   int
	done chan struct{}
	end  atomic.Bool

	mu sync.Mutex
	st captureStats
}

type captureStats struct {
	frames, cleartext, wgMesh, wgRot, drops int
	examples                                []string
}

var (
	podNet4 = netip.MustParsePrefix("100.64.0.0/10")
	podNet6 = netip.MustParsePrefix("2001:db8::/32")
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startCapture(t *testing.T, ns privtest.NS, ifname string) *capture {
	t.Helper()
	c := &capture{fd: -1, done: make(chan struct{})}
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000}); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index})
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		t.Fatal(err)
	}
	// Frames queued before the bind may come from any interface.
	_, _ = unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	go c.run()
	t.Cleanup(func() {
		if !c.end.Load() {
			c.stop(t)
		}
	})
	return c
}

func (c *capture) run() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && !c.end.Load() {
				continue
			}
			return
		}
		c.classify(buf[:n])
	}
}

func (c *capture) classify(f []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.frames++
	if len(f) < 14 {
		return
	}
	var src, dst netip.Addr
	var l4 []byte
	proto := byte(0)
	switch binary.BigEndian.Uint16(f[12:14]) {
	case unix.ETH_P_IP:
		if len(f) < 34 {
			return
		}
		ihl := int(f[14]&0x0f) * 4
		src, dst, proto = netip.AddrFrom4([4]byte(f[26:30])), netip.AddrFrom4([4]byte(f[30:34])), f[23]
		if len(f) >= 14+ihl+4 {
			l4 = f[14+ihl:]
		}
		if podNet4.Contains(src) || podNet4.Contains(dst) {
			c.leak(src, dst, proto)
			return
		}
	case unix.ETH_P_IPV6:
		if len(f) < 54 {
			return
		}
		src, dst, proto = netip.AddrFrom16([16]byte(f[22:38])), netip.AddrFrom16([16]byte(f[38:54])), f[20]
		l4 = f[54:]
		if podNet6.Contains(src) || podNet6.Contains(dst) {
			c.leak(src, dst, proto)
			return
		}
	default:
		return
	}
	if proto != unix.IPPROTO_UDP || len(l4) < 4 {
		return
	}
	for _, port := range []uint16{binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])} {
		switch port {
		case 51820:
			c.st.wgMesh++
			return
		case 51821:
			c.st.wgRot++
			return
		}
	}
}

func (c *capture) leak(src, dst netip.Addr, proto byte) {
	c.st.cleartext++
	if len(c.st.examples) < 5 {
		c.st.examples = append(c.st.examples, fmt.Sprintf("%s->%s proto %d", src, dst, proto))
	}
}

// stop ends the capture and returns what it saw.
func (c *capture) stop(t *testing.T) captureStats {
	t.Helper()
	c.end.Store(true)
	<-c.done
	st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		t.Errorf("capture statistics: %v", err)
	}
	unix.Close(c.fd)
	c.mu.Lock()
	defer c.mu.Unlock()
	if st != nil {
		c.st.drops = int(st.Drops)
	}
	return c.st
}
