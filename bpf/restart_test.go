package bpf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/lumbrjx/vpblu/core/blocks"
	"github.com/lumbrjx/vpblu/tools/privtest"
)

// TestMain lets the test binary double as the "restarted daemon" of
// TestRestartKeepsDataPlane: with VPBLU_BPF_HELPER=restart it runs
// restartHelper instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("VPBLU_BPF_HELPER") == "restart" {
		os.Exit(restartHelper())
	}
	os.Exit(m.Run())
}

// helperReport is what the helper process prints as JSON.
type helperReport struct {
	Dump        State
	Outcomes    []outcome
	Attachments []Attachment
	Counters    map[string]uint64
	// CapacityErr is the error of an Apply that does not fit the smaller
	// capacity the helper opened with; DumpAfter is the state after it.
	CapacityErr   string
	DumpAfter     State
	OutcomesAfter []outcome
}

// restartPackets are the packets the parent and the helper both judge.
func restartPackets() [][]byte {
	return [][]byte{
		udp4(ip("100.64.1.2"), ip("100.64.1.1")),
		udp4(ip("100.64.1.3"), ip("100.64.1.1")),
		udp4(ip("100.64.1.2"), ip("100.64.2.9")),
		udp6(ip("2001:db8:1::2"), ip("2001:db8:1::1")),
		udp4(ip("100.64.1.2"), ip("100.64.7.1")),
	}
}

// restartHelper re-opens the pins of a datapath another process created,
// reports what it finds, re-attaches classify as a restarted daemon does,
// and tries a state too big for a smaller capacity.
func restartHelper() int {
	err := func() error {
		pinDir, nsName := os.Getenv("VPBLU_PIN_DIR"), os.Getenv("VPBLU_NETNS")
		ifindex, err := strconv.Atoi(os.Getenv("VPBLU_IFINDEX"))
		if err != nil {
			return err
		}
		mode, err := strconv.Atoi(os.Getenv("VPBLU_ATTACH"))
		if err != nil {
			return err
		}
		h, err := netns.GetFromName(nsName)
		if err != nil {
			return err
		}
		ns := privtest.NS{Name: nsName, Handle: h}
		d, err := Open(Options{PinDir: pinDir, Attach: AttachMode(mode), Capacity: Capacity{Remotes: 2}})
		if err != nil {
			return err
		}
		defer d.Close()
		var rep helperReport
		if rep.Dump, err = d.Dump(); err != nil {
			return err
		}
		if rep.Outcomes, err = judge(d); err != nil {
			return err
		}
		err = ns.Do(func() error {
			if err := d.AttachClassify(ifindex); err != nil {
				return err
			}
			rep.Attachments, err = d.Attachments()
			return err
		})
		if err != nil {
			return err
		}
		if rep.Counters, err = d.Counters(); err != nil {
			return err
		}
		bigger := rep.Dump
		bigger.Remotes = append(slices.Clone(bigger.Remotes), Remote{pfx("100.64.8.0/24"), 2, 0x108}, Remote{pfx("100.64.9.0/24"), 2, 0x109})
		if err := d.Apply(bigger); err != nil {
			rep.CapacityErr = err.Error()
			if !errors.Is(err, ErrCapacity) {
				rep.CapacityErr = "not ErrCapacity: " + err.Error()
			}
		}
		if rep.DumpAfter, err = d.Dump(); err != nil {
			return err
		}
		if rep.OutcomesAfter, err = judge(d); err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(rep)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "restart helper:", err)
		return 1
	}
	return 0
}

// judge runs restartPackets through classify without a testing.T.
func judge(d *Datapath) ([]outcome, error) {
	var out []outcome
	for _, pkt := range restartPackets() {
		before, err := d.counterSums()
		if err != nil {
			return nil, err
		}
		var ctx skbContext
		if _, err := d.classify.VpbluClassify.Run(&ebpf.RunOptions{Data: pkt, Context: ctx, ContextOut: &ctx}); err != nil {
			return nil, err
		}
		after, err := d.counterSums()
		if err != nil {
			return nil, err
		}
		for k, n := range after {
			if n != before[k] {
				out = append(out, outcome{k.verdict, k.reason, ctx.Mark})
			}
		}
	}
	return out, nil
}

// TestRestartKeepsDataPlane: a daemon applies a policy, attaches
// classify and exits; packets are still judged by the pinned program and
// maps; a second process re-opens the pins, finds the same state and
// verdicts, re-attaches in place, and cannot replace the state with one
// over its (smaller) capacity.
func TestRestartKeepsDataPlane(t *testing.T) {
	privtest.Require(t, "pin BPF maps and attach programs")
	for _, mode := range []struct {
		name string
		mode AttachMode
	}{{"tcx", AttachTCX}, {"clsact", AttachLegacy}} {
		t.Run(mode.name, func(t *testing.T) {
			pinDir := testPinDir(t)
			n := newVethNet(t)
			policy := State{
				Config:   Config{Strict: true},
				Locals:   []netip.Prefix{pfx("100.64.1.0/24"), pfx("2001:db8:1::/64")},
				Remotes:  []Remote{{pfx("100.64.2.0/24"), 2, steerMark}},
				Nodes:    []Node{{ID: 2, Ready: true}},
				Clusters: []netip.Prefix{pfx("100.64.0.0/16")},
				Blocks:   []blocks.Rule{{Src: pfx("100.64.1.2/32"), Dst: pfx("100.64.1.1/32")}},
			}
			first, err := Open(Options{PinDir: pinDir, Attach: mode.mode})
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Apply(policy); err != nil {
				t.Fatal(err)
			}
			if err := n.host.Do(func() error { return first.AttachClassify(n.hostIdx) }); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.host.Do(func() error { return Remove(pinDir) }) })
			want, err := first.Dump()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(mustCanonical(t, policy), want, cmpState); diff != "" {
				t.Fatalf("Dump differs from what was applied (-applied +dump):\n%s", diff)
			}
			wantOutcomes, err := judge(first)
			if err != nil {
				t.Fatal(err)
			}
			progsBefore := attachedPrograms(t, n.host, n.hostIdx)
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}

			// No process holds the data plane now.
			if n.ping("100.64.1.1") {
				t.Error("a block stopped holding when the daemon exited")
			}
			if !n.ping("2001:db8:1::1") {
				t.Error("traffic stopped flowing when the daemon exited")
			}

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "VPBLU_BPF_HELPER=restart", "VPBLU_PIN_DIR="+pinDir,
				"VPBLU_NETNS="+n.host.Name, fmt.Sprintf("VPBLU_IFINDEX=%d", n.hostIdx), fmt.Sprintf("VPBLU_ATTACH=%d", mode.mode))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("helper process: %v\n%s", err, stderr.String())
			}
			var rep helperReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("helper output %q: %v", stdout.String(), err)
			}
			t.Logf("helper: %d verdicts, attachments %+v, drop-block %d, over capacity: %s", len(rep.Outcomes), rep.Attachments, rep.Counters["classify/drop-block"], rep.CapacityErr)
			if diff := cmp.Diff(want, rep.Dump, cmpState); diff != "" {
				t.Errorf("the second process reads another state (-first +second):\n%s", diff)
			}
			if diff := cmp.Diff(wantOutcomes, rep.Outcomes); diff != "" {
				t.Errorf("verdicts changed across the restart (-before +after):\n%s", diff)
			}
			if want := []Attachment{{HookClassify, n.hostIdx, mode.mode, true}}; !slices.Equal(rep.Attachments, want) {
				t.Errorf("attachments after re-attaching: %+v, want %+v", rep.Attachments, want)
			}
			if rep.Counters["classify/drop-block"] < 2 {
				t.Errorf("counters did not survive: classify/drop-block = %d, want the blocked pings", rep.Counters["classify/drop-block"])
			}
			if rep.CapacityErr == "" || strings.HasPrefix(rep.CapacityErr, "not ") {
				t.Errorf("Apply over capacity: %q, want ErrCapacity", rep.CapacityErr)
			}
			if diff := cmp.Diff(want, rep.DumpAfter, cmpState); diff != "" {
				t.Errorf("a refused Apply changed the state (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(wantOutcomes, rep.OutcomesAfter); diff != "" {
				t.Errorf("a refused Apply changed verdicts (-before +after):\n%s", diff)
			}

			// Re-attaching an identical program keeps the one in place, so
			// the restart changes nothing a dump of the data plane shows.
			if got := attachedPrograms(t, n.host, n.hostIdx); !slices.Equal(got, progsBefore) || len(got) != 1 {
				t.Errorf("programs attached after the restart: %v, want the same as before: %v", got, progsBefore)
			}

			// The program the helper attached still works after it exited.
			if n.ping("100.64.1.1") {
				t.Error("the block stopped holding after the second process exited")
			}
			if !n.ping("2001:db8:1::1") {
				t.Error("traffic stopped after the second process exited")
			}
			if got := n.attachments(t, openPinned(t, pinDir, mode.mode)); len(got) != 1 {
				t.Errorf("attachments: %+v, want one", got)
			}
		})
	}
}

// attachedPrograms returns the IDs of the programs on tc ingress of the
// interface, through tcx and clsact filters.
func attachedPrograms(t *testing.T, ns privtest.NS, ifindex int) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	err := ns.Do(func() error {
		if res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress}); err == nil {
			for _, p := range res.Programs {
				ids = append(ids, p.ID)
			}
		}
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return err
		}
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return nil // no clsact qdisc
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok {
				ids = append(ids, ebpf.ProgramID(bf.Id))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// openPinned opens an existing pin directory and closes it at the end.
func openPinned(t *testing.T, pinDir string, mode AttachMode) *Datapath {
	t.Helper()
	d, err := Open(Options{PinDir: pinDir, Attach: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustCanonical(t testing.TB, s State) State {
	t.Helper()
	c, err := s.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cmpState compares states with netip values and nil and empty slices
// alike.
var cmpState = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateEmpty(),
}
