package bpf

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/lumbrjx/vpblu/core/blocks"
)

// outcome is what a program did with one packet: the verdict and reason
// (from the counter that moved) and the mark it set.
type outcome struct {
	Verdict Verdict
	Reason  Reason
	Mark    uint32
}

// header is what the reference model needs of a packet.
type header struct {
	nonIP, malformed bool
	src, dst         netip.Addr
}

// modelClassify is the Go reference of classify (see classify.c).
func modelClassify(s State, p header) outcome {
	switch {
	case p.nonIP:
		return outcome{VerdictPass, ReasonNonIP, 0}
	case p.malformed:
		return outcome{VerdictPass, ReasonMalformed, 0}
	case blocks.Match(s.Blocks, p.src, p.dst):
		return outcome{VerdictDrop, ReasonBlock, 0}
	case containsAny(s.Locals, p.dst):
		return outcome{VerdictPass, ReasonLocal, 0}
	}
	noTunnel := outcome{VerdictPass, ReasonNoTunnel, 0}
	if s.Config.Strict {
		noTunnel.Verdict = VerdictDrop
	}
	if r, ok := longestRemote(s.Remotes, p.dst); ok {
		n := nodeOf(s, r.Node)
		switch {
		case s.Config.Isolated || n.Isolated:
			return outcome{VerdictDrop, ReasonIsolated, 0}
		case n.Ready:
			return outcome{VerdictSteer, ReasonTunnel, r.Mark}
		}
		return noTunnel
	}
	if containsAny(s.Clusters, p.dst) {
		if s.Config.Isolated {
			return outcome{VerdictDrop, ReasonIsolated, 0}
		}
		return noTunnel
	}
	return outcome{VerdictPass, ReasonOther, 0}
}

// modelDeliver is the Go reference of deliver (see deliver.c).
func modelDeliver(s State, p header) outcome {
	switch {
	case p.nonIP:
		return outcome{VerdictPass, ReasonNonIP, 0}
	case p.malformed:
		return outcome{VerdictPass, ReasonMalformed, 0}
	case blocks.Match(s.Blocks, p.src, p.dst):
		return outcome{VerdictDrop, ReasonBlock, 0}
	}
	r, remote := longestRemote(s.Remotes, p.src)
	if remote && nodeOf(s, r.Node).Isolated {
		return outcome{VerdictDrop, ReasonIsolated, 0}
	}
	if s.Config.Isolated && (remote || containsAny(s.Clusters, p.src)) {
		return outcome{VerdictDrop, ReasonIsolated, 0}
	}
	return outcome{VerdictPass, ReasonTunnel, 0}
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func longestRemote(rs []Remote, a netip.Addr) (Remote, bool) {
	best, found := Remote{}, false
	for _, r := range rs {
		if r.CIDR.Contains(a) && (!found || r.CIDR.Bits() > best.CIDR.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

func nodeOf(s State, id uint32) Node {
	for _, n := range s.Nodes {
		if n.ID == id {
			return n
		}
	}
	return Node{ID: id}
}

// skbContext is struct __sk_buff as BPF_PROG_TEST_RUN takes it in and
// gives it back; only mark and ifindex are used.
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex, TCIndex                                  uint32
	Rest                                                                        [192 - 48]byte
}

// rawCounters reads every counter, summed over CPUs.
func rawCounters(t testing.TB, d *Datapath) map[counterKey]uint64 {
	t.Helper()
	sums, err := d.counterSums()
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// movedCounter returns the one counter that went up by one between
// before and after.
func movedCounter(t testing.TB, before, after map[counterKey]uint64) counterKey {
	t.Helper()
	var moved []counterKey
	for k, n := range after {
		if n != before[k] {
			moved = append(moved, k)
		}
	}
	if len(moved) != 1 || after[moved[0]]-before[moved[0]] != 1 {
		t.Fatalf("want exactly one counter up by one, got %v", moved)
	}
	return moved[0]
}

// run runs the program of hook on data through BPF_PROG_TEST_RUN and
// checks that its return code, mark and counter tell one story.
func run(t testing.TB, d *Datapath, h Hook, data []byte) outcome {
	t.Helper()
	prog, err := d.program(h)
	if err != nil {
		t.Fatal(err)
	}
	before := rawCounters(t, d)
	var ctx skbContext
	ret, err := prog.Run(&ebpf.RunOptions{Data: data, Context: ctx, ContextOut: &ctx})
	if err != nil {
		t.Fatalf("run %s: %v", h, err)
	}
	k := movedCounter(t, before, rawCounters(t, d))
	if k.hook != h {
		t.Fatalf("%s moved a %s counter", h, k.hook)
	}
	want := int32(-1) // TC_ACT_UNSPEC: pass and steer continue the chain
	if k.verdict == VerdictDrop {
		want = 2 // TC_ACT_SHOT
	}
	if int32(ret) != want {
		t.Fatalf("%s returned %d for a %s verdict", h, int32(ret), k.verdict)
	}
	if (ctx.Mark != 0) != (k.verdict == VerdictSteer) {
		t.Fatalf("%s set mark %#x with a %s verdict", h, ctx.Mark, k.verdict)
	}
	return outcome{Verdict: k.verdict, Reason: k.reason, Mark: ctx.Mark}
}

// dropReader reads sampled drops in tests.
type dropReader struct{ r *ringbuf.Reader }

func newDropReader(t testing.TB, d *Datapath) *dropReader {
	t.Helper()
	r, err := ringbuf.NewReader(d.classify.VpbluDrops)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &dropReader{r}
}

// drain returns the drops waiting in the ring buffer.
func (dr *dropReader) drain(t testing.TB) []Drop {
	t.Helper()
	var out []Drop
	for {
		dr.r.SetDeadline(time.Now())
		rec, err := dr.r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("read drops: %v", err)
		}
		drop, err := decodeDrop(rec.RawSample)
		if err != nil {
			t.Fatal(err)
		}
		drop.Monotonic = 0
		out = append(out, drop)
	}
}

// headerOf parses a test frame the way classify should: Ethernet, up to
// two VLAN tags, then the fixed IPv4 or IPv6 header.
func headerOf(frame []byte) (header, bool) {
	if len(frame) < 14 {
		return header{malformed: true}, true
	}
	typ, off := uint16(frame[12])<<8|uint16(frame[13]), 14
	for i := 0; i < 2 && (typ == etherVLAN || typ == etherQinQ); i++ {
		if len(frame) < off+4 {
			return header{malformed: true}, true
		}
		typ, off = uint16(frame[off+2])<<8|uint16(frame[off+3]), off+4
	}
	return headerOfIP(typ, frame[off:]), true
}

// headerOfIP parses an IP header of the given ethertype.
func headerOfIP(typ uint16, b []byte) header {
	switch typ {
	case etherIPv4:
		if len(b) < 20 || b[0]>>4 != 4 || b[0]&0xf < 5 {
			return header{malformed: true}
		}
		return header{src: netip.AddrFrom4([4]byte(b[12:16])), dst: netip.AddrFrom4([4]byte(b[16:20]))}
	case etherIPv6:
		if len(b) < 40 || b[0]>>4 != 6 {
			return header{malformed: true}
		}
		return header{src: netip.AddrFrom16([16]byte(b[8:24])), dst: netip.AddrFrom16([16]byte(b[24:40]))}
	}
	return header{nonIP: true}
}
