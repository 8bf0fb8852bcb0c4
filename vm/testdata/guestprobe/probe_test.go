// Package guestprobe is a test binary the vm tests build with
// CGO_ENABLED=0 go test -c and run inside guests: it proves a Go test binary
// from the host drives the guest kernel's WireGuard and BPF. It lives in
// testdata so go test ./... never runs it on the host.
package guestprobe

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func inGuest(t *testing.T) {
	t.Helper()
	if os.Getenv("VPBLU_VM") == "" {
		t.Fatal("guestprobe runs only inside a vpblu VM guest (VPBLU_VM unset)")
	}
}

// TestGuestKernelWireGuard creates a WireGuard link through netlink and
// configures it through wgctrl: the kernel implementation must answer.
func TestGuestKernelWireGuard(t *testing.T) {
	inGuest(t)
	wg := &netlink.GenericLink{LinkAttrs: netlink.LinkAttrs{Name: "wgprobe"}, LinkType: "wireguard"}
	if err := netlink.LinkAdd(wg); err != nil {
		t.Fatalf("adding wireguard link: %v", err)
	}
	defer netlink.LinkDel(wg)
	c, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	port := 51820
	if err := c.ConfigureDevice("wgprobe", wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		t.Fatalf("configuring device: %v", err)
	}
	dev, err := c.Device("wgprobe")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Type != wgtypes.LinuxKernel || dev.PublicKey != key.PublicKey() || dev.ListenPort != port {
		t.Errorf("device: type %v, public key %v, port %d; want kernel, %v, %d",
			dev.Type, dev.PublicKey, dev.ListenPort, key.PublicKey(), port)
	}
}

// TestGuestBPF loads a tc program that counts packets, runs it with
// BPF_PROG_TEST_RUN, pins it in /sys/fs/bpf and attaches it to a dummy
// link: with tcx where the kernel has it (VPBLU_PROBE_TCX=1), else through
// a clsact qdisc, whose module the kernel loads on demand.
func TestGuestBPF(t *testing.T) {
	inGuest(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), // TC_ACT_OK
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("loading program: %v", err)
	}
	defer prog.Close()

	ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	if err != nil || ret != 0 {
		t.Fatalf("test run: %d, %v; want 0", ret, err)
	}
	pin := filepath.Join("/sys/fs/bpf", "vpblu-probe")
	if err := prog.Pin(pin); err != nil {
		t.Fatalf("pinning: %v", err)
	}
	defer prog.Unpin()

	dummy := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}}
	if err := netlink.LinkAdd(dummy); err != nil {
		t.Fatalf("adding dummy link: %v", err)
	}
	defer netlink.LinkDel(dummy)
	l, err := netlink.LinkByName("probe0")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("VPBLU_PROBE_TCX") == "1" {
		tl, err := link.AttachTCX(link.TCXOptions{Interface: l.Attrs().Index, Program: prog, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			t.Fatalf("attaching with tcx: %v", err)
		}
		defer tl.Close()
	} else {
		qdisc := &netlink.GenericQdisc{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
			QdiscType:  "clsact",
		}
		if err := netlink.QdiscAdd(qdisc); err != nil {
			t.Fatalf("adding clsact: %v", err)
		}
		filter := &netlink.BpfFilter{
			FilterAttrs:  netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1},
			Fd:           prog.FD(),
			Name:         "vpblu-probe",
			DirectAction: true,
		}
		if err := netlink.FilterAdd(filter); err != nil {
			t.Fatalf("adding bpf filter: %v", err)
		}
	}
	// A packet leaving probe0 passes the program.
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 0, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp4", "198.18.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("probe"))
	conn.Close()
	var n uint64
	if err := counter.Lookup(uint32(0), &n); err != nil {
		t.Fatal(err)
	}
	// One from the test run, at least one from the egress packet (ARP).
	if n < 2 {
		t.Errorf("program ran %d times; want at least 2", n)
	}
}

// TestGuestWritesShare leaves a file in the share directory for the host.
func TestGuestWritesShare(t *testing.T) {
	inGuest(t)
	dir := os.Getenv("VPBLU_PROBE_SHARE")
	if dir == "" {
		t.Fatal("VPBLU_PROBE_SHARE unset")
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := string(bytes.TrimRight(uts.Release[:], "\x00"))
	if err := os.WriteFile(filepath.Join(dir, "release"), []byte(release), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFixtureFailsWhenAsked fails: the vm tests select it to check that a
// failing test binary's exit status comes back.
func TestFixtureFailsWhenAsked(t *testing.T) {
	t.Log("failing on purpose")
	t.Fail()
}
