package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests boot real guests: each boot takes seconds under emulation.
// They are skipped with -short, and skipped loudly (failed when CI=true)
// when a host tool is missing (hack/deps.sh vm net installs them). The
// first run downloads the kernels (about 180 MB) into ~/.cache/vpblu/vm.
// They need no privilege on the host (QEMU runs unprivileged; the guest
// command is root inside the guest), so they do not use privtest.

var images sync.Map // kernel name → *Image

// notRun skips the test, or fails it when CI=true.
func notRun(t *testing.T, why string) {
	t.Helper()
	msg := "VM TEST NOT RUN: " + why
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI=true: VM tests must run)")
	}
	t.Skip(msg)
}

// guestImage prepares k once per test binary.
func guestImage(t *testing.T, k Kernel) *Image {
	t.Helper()
	if testing.Short() {
		t.Skip("VM TEST NOT RUN: -short (guests take seconds to boot)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "busybox", "wg", "ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			notRun(t, tool+" missing (run hack/deps.sh vm net)")
		}
	}
	if im, ok := images.Load(k.Name); ok {
		return im.(*Image)
	}
	im, err := Prepare(t.Context(), k, "")
	if errors.Is(err, ErrMissingTool) {
		notRun(t, err.Error())
	}
	if err != nil {
		t.Fatalf("preparing kernel %s: %v", k.Name, err)
	}
	images.Store(k.Name, im)
	return im
}

// failWithConsole fails the test with the guest's console and output.
func failWithConsole(t *testing.T, res *Result, format string, args ...any) {
	t.Helper()
	if res != nil {
		t.Logf("guest console (tail):\n%s", res.Console)
		t.Logf("command output:\n%s", res.Output)
	}
	t.Fatalf(format, args...)
}

// newestKernel is the kernel tests use when the kernel does not matter.
func newestKernel() Kernel { return Kernels[len(Kernels)-1] }

// wireGuardScript proves, inside the guest, what the kernel backend suites
// rely on. Topology:
//
//	 netns a                              netns b
//	┌───────────────────────┐            ┌───────────────────────┐
//	│ wg0 100.64.0.1 ───────┼── tunnel ──┼─────── wg0 100.64.0.2 │
//	│ va  198.18.0.1/24 ────┼─── veth ───┼──── vb 198.18.0.2/24  │
//	└───────────────────────┘            └───────────────────────┘
const wireGuardScript = `set -eu
test "$(uname -r)" = "$WANT_RELEASE" || { echo "uname -r is $(uname -r), want $WANT_RELEASE"; exit 1; }
grep -q ' /sys/fs/bpf bpf ' /proc/mounts || { echo "no bpffs"; exit 1; }
modprobe wireguard
grep -q '^wireguard ' /proc/modules
ip link add wg0 type wireguard
ip link del wg0

ip netns add a
ip netns add b
ip link add va netns a type veth peer name vb netns b
ip -n a addr add 198.18.0.1/24 dev va
ip -n b addr add 198.18.0.2/24 dev vb
ip -n a link set va up
ip -n b link set vb up
keys=$(mktemp -d)
for side in a b; do
	wg genkey >"$keys/$side.key"
	wg pubkey <"$keys/$side.key" >"$keys/$side.pub"
done
setup() { # side, its address, peer side, peer address, peer underlay
	ip -n "$1" link add wg0 type wireguard
	ip netns exec "$1" wg set wg0 private-key "$keys/$1.key" listen-port 51820 \
		peer "$(cat "$keys/$3.pub")" endpoint "$5:51820" allowed-ips "$4/32"
	ip -n "$1" addr add "$2/32" peer "$4/32" dev wg0
	ip -n "$1" link set wg0 up
}
setup a 100.64.0.1 b 100.64.0.2 198.18.0.2
setup b 100.64.0.2 a 100.64.0.1 198.18.0.1
ip netns exec a ping -c 3 -i 0.5 -W 5 100.64.0.2
ip netns exec b wg show wg0 latest-handshakes | awk '$2 == 0 { exit 1 }'
# The clsact qdisc (the BPF attach path without tcx) loads on demand.
ip netns exec a tc qdisc add dev va clsact
echo "wireguard tunnel works"
`

func TestKernelRunsWireGuardTunnelBetweenNamespaces(t *testing.T) {
	for _, k := range Kernels {
		t.Run(k.Name, func(t *testing.T) {
			im := guestImage(t, k)
			res, err := Run(t.Context(), RunOptions{
				Image:   im,
				Command: []string{"sh", "-c", wireGuardScript},
				Env:     []string{"WANT_RELEASE=" + im.Release},
				Timeout: 3 * time.Minute,
			})
			if err != nil {
				failWithConsole(t, res, "running guest: %v", err)
			}
			if res.ExitCode != 0 || !strings.Contains(string(res.Output), "wireguard tunnel works") {
				failWithConsole(t, res, "guest script exited %d", res.ExitCode)
			}
			t.Logf("kernel %s: boot %s, run %s", im, res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
		})
	}
}

func TestRunReturnsCommandExitCodeAndOutput(t *testing.T) {
	tests := []struct {
		name     string
		command  []string
		env      []string
		dir      string
		wantCode int
		// wantOutput must be in the command's output and reach the
		// Console writer.
		wantOutput string
	}{
		{
			name:       "a failing command's status and stderr come back",
			command:    []string{"sh", "-c", "echo to-stderr >&2; exit 3"},
			wantCode:   3,
			wantOutput: "to-stderr",
		},
		{
			name:       "a missing command exits 127",
			command:    []string{"/nonexistent/command"},
			wantCode:   127,
			wantOutput: "/nonexistent/command: not found",
		},
		{
			name:       "env and working directory reach the command",
			command:    []string{"sh", "-c", `echo "$GREETING from $PWD on $VPBLU_VM"`},
			env:        []string{"GREETING=hello 'quoted'"},
			dir:        "/usr",
			wantCode:   0,
			wantOutput: "hello 'quoted' from /usr on " + newestKernel().Name,
		},
		{
			name:       "processes left running do not keep the guest up",
			command:    []string{"sh", "-c", "sleep 1000 & echo left-running"},
			wantCode:   0,
			wantOutput: "left-running",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := guestImage(t, newestKernel())
			var console bytes.Buffer
			res, err := Run(t.Context(), RunOptions{
				Image: im, Command: tt.command, Env: tt.env, Dir: tt.dir, Timeout: 2 * time.Minute, Console: &console,
			})
			if err != nil {
				failWithConsole(t, res, "running guest: %v", err)
			}
			if res.ExitCode != tt.wantCode {
				failWithConsole(t, res, "exit code %d, want %d", res.ExitCode, tt.wantCode)
			}
			if !strings.Contains(string(res.Output), tt.wantOutput) {
				failWithConsole(t, res, "output lacks %q", tt.wantOutput)
			}
			if !strings.Contains(console.String(), tt.wantOutput) {
				failWithConsole(t, res, "Console writer lacks %q", tt.wantOutput)
			}
			if res.ShutdownReason != "guest-shutdown" {
				failWithConsole(t, res, "shutdown reason %q, want guest-shutdown", res.ShutdownReason)
			}
		})
	}
}

func TestHungGuestIsStoppedAndLeavesNothing(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  time.Duration // cancel the context after this long; 0: never
		// freeze stops QEMU itself (SIGSTOP) early on, so it cannot answer
		// QMP and must be killed.
		freeze     bool
		wantErr    error
		wantReason string
	}{
		{name: "at the timeout", timeout: 20 * time.Second, wantErr: ErrTimeout, wantReason: "host-qmp-quit"},
		{name: "when the context ends", timeout: time.Minute, cancel: 10 * time.Second, wantErr: context.Canceled, wantReason: "host-qmp-quit"},
		{name: "by a kill when QEMU does not answer", timeout: 15 * time.Second, freeze: true, wantErr: ErrTimeout, wantReason: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := guestImage(t, newestKernel())
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			limit := tt.timeout
			if tt.cancel != 0 {
				time.AfterFunc(tt.cancel, cancel)
				limit = tt.cancel
			}
			if tt.freeze {
				time.AfterFunc(5*time.Second, func() { freezeQEMU(t, tmp) })
			}
			begin := time.Now()
			res, err := Run(ctx, RunOptions{Image: im, Command: []string{"sleep", "1000"}, Timeout: tt.timeout})
			took := time.Since(begin)
			if !errors.Is(err, tt.wantErr) {
				failWithConsole(t, res, "error %v, want %v", err, tt.wantErr)
			}
			if res.ExitCode != -1 {
				t.Errorf("exit code %d, want -1", res.ExitCode)
			}
			if res.ShutdownReason != tt.wantReason {
				t.Errorf("shutdown reason %q, want %q", res.ShutdownReason, tt.wantReason)
			}
			// Stopped when due, not later than a QMP quit (or a kill) takes.
			if max := limit + quitGrace + 5*time.Second; took < limit || took > max {
				t.Errorf("Run took %s, want between %s and %s", took, limit, max)
			}
			if err := syscall.Kill(res.PID, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("qemu (pid %d) still exists: kill 0: %v", res.PID, err)
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range left {
				t.Errorf("left behind in TMPDIR: %s", e.Name())
			}
		})
	}
}

// freezeQEMU sends SIGSTOP to the QEMU whose command line names dir.
func freezeQEMU(t *testing.T, dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), "qemu-system") || !strings.Contains(string(cmdline), dir) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Errorf("stopping qemu: %v", err)
			}
			return
		}
	}
	t.Errorf("no qemu running with %s", dir)
}

func TestGuestKernelPanicEndsRunWithoutExitCode(t *testing.T) {
	im := guestImage(t, newestKernel())
	res, err := Run(t.Context(), RunOptions{
		Image:   im,
		Command: []string{"sh", "-c", "echo c >/proc/sysrq-trigger; sleep 1000"},
		Timeout: 2 * time.Minute,
	})
	if !errors.Is(err, ErrNoExitCode) {
		failWithConsole(t, res, "error %v, want %v", err, ErrNoExitCode)
	}
	if !strings.Contains(string(res.Console), "Kernel panic") {
		failWithConsole(t, res, "console lacks the panic")
	}
	if res.ShutdownReason != "guest-reset" {
		failWithConsole(t, res, "shutdown reason %q, want guest-reset", res.ShutdownReason)
	}
}

var (
	probeOnce sync.Once
	probeBin  string
	probeErr  error
)

// guestProbe builds testdata/guestprobe as a static test binary, once.
func guestProbe(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vpblu-vm-probe-")
		if err != nil {
			probeErr = err
			return
		}
		probeBin = filepath.Join(dir, "guestprobe.test")
		cmd := exec.Command("go", "test", "-c", "-o", probeBin, "./testdata/guestprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = errors.New("building guestprobe: " + err.Error() + "\n" + string(out))
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probeBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if probeBin != "" {
		os.RemoveAll(filepath.Dir(probeBin))
	}
	os.Exit(code)
}

func TestRunGoTestRunsStaticTestBinaryInGuest(t *testing.T) {
	type want struct {
		code  int
		lines []string
	}
	type testCase struct {
		name   string
		kernel Kernel
		args   []string
		want   want
	}
	var tests []testCase
	for _, k := range Kernels {
		tests = append(tests, testCase{
			name:   "kernel WireGuard, BPF and the share work on " + k.Name,
			kernel: k,
			args:   []string{"-test.v", "-test.run", "^TestGuest"},
			want: want{code: 0, lines: []string{
				"--- PASS: TestGuestKernelWireGuard", "--- PASS: TestGuestBPF", "--- PASS: TestGuestWritesShare", "PASS",
			}},
		})
	}
	tests = append(tests, testCase{
		name:   "a failing test's status comes back",
		kernel: newestKernel(),
		args:   []string{"-test.v", "-test.run", "^TestFixtureFailsWhenAsked$"},
		want:   want{code: 1, lines: []string{"--- FAIL: TestFixtureFailsWhenAsked", "FAIL"}},
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guestImage(t, tt.kernel)
			bin := guestProbe(t)
			share := t.TempDir()
			tcx := "0"
			if tt.kernel.TCX {
				tcx = "1"
			}
			res, err := RunGoTest(t.Context(), GoTest{
				Kernel:   tt.kernel,
				Binary:   bin,
				Args:     tt.args,
				Env:      []string{"VPBLU_PROBE_SHARE=" + share, "VPBLU_PROBE_TCX=" + tcx},
				Timeout:  3 * time.Minute,
				ShareDir: share,
			})
			if err != nil {
				failWithConsole(t, res, "running test binary: %v", err)
			}
			if res.ExitCode != tt.want.code {
				failWithConsole(t, res, "exit code %d, want %d", res.ExitCode, tt.want.code)
			}
			for _, l := range tt.want.lines {
				if !hasLinePrefix(res.Output, l) {
					failWithConsole(t, res, "output lacks a line starting %q", l)
				}
			}
			if tt.want.code == 0 {
				got, err := os.ReadFile(filepath.Join(share, "release"))
				if err != nil {
					t.Fatalf("reading the file the guest left: %v", err)
				}
				if im := guestImage(t, tt.kernel); string(got) != im.Release {
					t.Errorf("guest wrote release %q, want %q", got, im.Release)
				}
			}
			t.Logf("boot %s, run %s", res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
		})
	}
}

func hasLinePrefix(out []byte, prefix string) bool {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestPrepareCachesBootableImage(t *testing.T) {
	for _, k := range Kernels {
		t.Run(k.Name, func(t *testing.T) {
			im := guestImage(t, k)
			meta := filepath.Join(im.Dir, metaFile)
			before, err := os.Stat(meta)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Prepare(t.Context(), k, filepath.Dir(filepath.Dir(im.Dir)))
			if err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(meta)
			if err != nil {
				t.Fatal(err)
			}
			if again.Dir != im.Dir || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("second Prepare gave %s (image.json modified %v), want the cached %s untouched", again.Dir, after.ModTime(), im.Dir)
			}
			if filepath.Base(im.BootKernel()) != "vmlinux" {
				t.Errorf("boot kernel %s, want the extracted vmlinux (Debian kernels have PVH)", im.BootKernel())
			}
			for _, f := range []string{"modules.dep", "modules.alias", "kernel/drivers/net/wireguard/wireguard.ko"} {
				if _, err := os.Stat(filepath.Join(im.Modules(), f)); err != nil {
					t.Errorf("module tree: %v", err)
				}
			}
		})
	}
}
