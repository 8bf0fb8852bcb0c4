package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The acceptance suite of SPEC §12 (package e2e, run by sim's TestE2E) and
// the kernel-backend tests of nodeagent/wg, inside a guest per kernel with
// in-kernel WireGuard: the API server, both controllers and every agent
// run on the guest kernel, the agents with the kernel backend.
//
// VPBLU_VM_E2E selects how much of the suite runs:
//
//	(unset)  the CI subset: §12.2, §12.3, §12.4, §12.8, §12.10
//	all      every criterion (make vm-e2e)
//	<regexp> the criteria whose subtest names match, e.g. '12\.(6|11)-'
const ciCriteria = `12\.(2|3|4|8|10)-`

func suiteSelection() (pattern, label string) {
	switch v := os.Getenv("VPBLU_VM_E2E"); v {
	case "":
		return ciCriteria, "CI subset (§12.2, §12.3, §12.4, §12.8, §12.10)"
	case "all":
		return "", "every criterion"
	default:
		return v, "criteria matching " + v
	}
}

// guestBinaries builds what the guest runs into a temporary directory:
// the controller, agent and kubectl plugin, the sim test binary (the suite) and the
// nodeagent/wg test binary (the kernel backend). The guest sees the
// host's /tmp through its read-only overlay.
func guestBinaries(t *testing.T) (binDir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "vpblu-vm-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	builds := [][]string{
		{"go", "build", "-trimpath", "-o", dir + "/", "./cmd/vpblu-controller", "./cmd/vpblu-agent", "./cmd/kubectl-vpblu"},
		{"go", "test", "-c", "-o", filepath.Join(dir, "sim.test"), "./sim"},
		{"go", "test", "-c", "-o", filepath.Join(dir, "wg.test"), "./nodeagent/wg"},
	}
	for _, argv := range builds {
		cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	return dir
}

// emulationEnv stretches the suite's deadlines and timing targets, and the
// controllers' lease, when the guest runs under software emulation: a
// whole cluster in a 2-vCPU TCG guest runs about ten times slower than on
// the host (measured: mesh formation 6 s against 0.1–0.5 s, API calls past
// a 15 s lease's renew timeout on a busy host). Loss and cleartext
// criteria stay exact.
func emulationEnv() []string {
	if _, err := os.Stat("/dev/kvm"); err == nil {
		return nil
	}
	return []string{"VPBLU_E2E_SLOWDOWN=10", "VPBLU_SIM_LEASE_DURATION=30s"}
}

// failures returns the suite's lines that say what failed: the
// "--- FAIL" lines and the runner's list of failed criteria, so the
// message that ends a long log still names them.
func failures(out []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "--- FAIL") || strings.Contains(l, "failed criteria") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// figures returns the suite's "e2e: name value" lines.
func figures(out []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "e2e: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestAcceptanceSuiteInGuestWithKernelWireGuard(t *testing.T) {
	pattern, label := suiteSelection()
	// The whole suite under emulation takes about half an hour per kernel.
	suiteTimeout := 40 * time.Minute
	if pattern == "" {
		suiteTimeout = 70 * time.Minute
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		notRun(t, "KUBEBUILDER_ASSETS is not set (make test and make vm-e2e set it from hack/test-assets.sh)")
	}
	for _, k := range Kernels {
		guestImage(t, k)
	}
	bins := guestBinaries(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("running %s in a guest per kernel", label)

	for _, k := range Kernels {
		t.Run(k.Name, func(t *testing.T) {
			t.Run("nodeagent kernel backend", func(t *testing.T) {
				res, err := RunGoTest(t.Context(), GoTest{
					Kernel: k, Binary: filepath.Join(bins, "wg.test"),
					Args: []string{"-test.v", "-test.run", "Kernel"},
					// The kernel has WireGuard here: a skip would hide a failure.
					Env:     []string{"CI=true", "VPBLU_REQUIRE_KERNEL_WIREGUARD=1"},
					Dir:     filepath.Join(root, "nodeagent", "wg"),
					Timeout: 10 * time.Minute,
				})
				if err != nil {
					failWithConsole(t, res, "guest run: %v", err)
				}
				if res.ExitCode != 0 || !hasLinePrefix(res.Output, "--- PASS: TestKernel") {
					failWithConsole(t, res, "nodeagent/wg kernel tests in the guest exited %d", res.ExitCode)
				}
				t.Logf("boot %s, run %s", res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
			})

			t.Run("acceptance suite", func(t *testing.T) {
				run := "^TestE2E$"
				if pattern != "" {
					run += "/" + pattern
				}
				res, err := RunGoTest(t.Context(), GoTest{
					Kernel: k, Binary: filepath.Join(bins, "sim.test"),
					Args: []string{"-test.v", "-test.count=1", "-test.run", run},
					Env: append([]string{
						"CI=true", "VPBLU_SIM_BACKEND=kernel", "VPBLU_BIN_DIR=" + bins,
						"KUBEBUILDER_ASSETS=" + assets,
					}, emulationEnv()...),
					Dir:     filepath.Join(root, "sim"),
					Timeout: suiteTimeout,
				})
				if res != nil {
					for _, l := range figures(res.Output) {
						// Per kernel, so make vm-e2e's log compares them.
						fmt.Printf("%s kernel=%s\n", l, k.Name)
						t.Log(l)
					}
				}
				if err != nil {
					failWithConsole(t, res, "guest run: %v", err)
				}
				if res.ExitCode != 0 || !hasLinePrefix(res.Output, "--- PASS: TestE2E") {
					failWithConsole(t, res, "the suite failed in the guest (exit %d):\n%s", res.ExitCode, failures(res.Output))
				}
				if !bytes.Contains(res.Output, []byte("backend kernel")) {
					failWithConsole(t, res, "the guest's agents did not run the kernel backend")
				}
				t.Logf("boot %s, run %s", res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
			})
		})
	}
}
