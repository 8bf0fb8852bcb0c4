package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GoTest is a prebuilt Go test binary to run in a guest.
type GoTest struct {
	// Kernel is the kernel to boot; it is prepared (downloaded on first
	// use) in CacheDir ("" means DefaultCacheDir).
	Kernel   Kernel
	CacheDir string
	// Binary is the host path of a test binary (go test -c). It runs from
	// the host root as it is, with the host's libraries, so it need not
	// be static.
	Binary string
	// Args are the binary's arguments (-test.v, -test.run, ...). Unless
	// they set -test.timeout, it is set a little below Timeout so the
	// binary itself reports a hung test with its goroutines.
	Args []string
	// Env is added to the binary's environment, e.g.
	// VPBLU_SIM_BACKEND=kernel, after guestTestEnv (so it can override it).
	Env []string
	// Dir is the working directory; "" means the binary's directory.
	Dir string
	// MemoryMiB is the guest's memory; 0 means 3072, enough for an API
	// server, etcd, controllers and agents.
	MemoryMiB int
	// CPUs is the number of virtual CPUs; 0 means 2.
	CPUs int
	// Timeout bounds the run, boot included; 0 means 30 minutes.
	Timeout time.Duration
	// Console and ShareDir are as in RunOptions.
	Console  io.Writer
	ShareDir string
}

const (
	defaultGoTestMemoryMiB = 3072
	defaultGoTestTimeout   = 30 * time.Minute
)

// guestTestEnv starts every test binary's environment. Under emulation a
// real kube-apiserver with etcd (tools/testenv) takes over a minute to get
// ready (measured 80 s on a loaded 2-core host), far past envtest's 20 s
// default.
var guestTestEnv = []string{
	"KUBEBUILDER_CONTROLPLANE_START_TIMEOUT=5m",
	"KUBEBUILDER_CONTROLPLANE_STOP_TIMEOUT=1m",
}

// RunGoTest prepares gt.Kernel and runs the test binary in a guest. The
// binary's output is Result.Output and its exit status Result.ExitCode
// (0: passed, 1: a test failed); an error means the binary could not be
// run to its end.
func RunGoTest(ctx context.Context, gt GoTest) (*Result, error) {
	bin, err := filepath.Abs(gt.Binary)
	if err != nil {
		return nil, fmt.Errorf("running test binary: %w", err)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("running test binary: %s is not an executable file", bin)
	}
	if gt.MemoryMiB == 0 {
		gt.MemoryMiB = defaultGoTestMemoryMiB
	}
	if gt.Timeout == 0 {
		gt.Timeout = defaultGoTestTimeout
	}
	if gt.Dir == "" {
		gt.Dir = filepath.Dir(bin)
	}
	im, err := Prepare(ctx, gt.Kernel, gt.CacheDir)
	if err != nil {
		return nil, err
	}
	return Run(ctx, RunOptions{
		Image:     im,
		Command:   append([]string{bin}, testArgs(gt.Args, gt.Timeout)...),
		Env:       append(append([]string(nil), guestTestEnv...), gt.Env...),
		Dir:       gt.Dir,
		MemoryMiB: gt.MemoryMiB,
		CPUs:      gt.CPUs,
		Timeout:   gt.Timeout,
		Console:   gt.Console,
		ShareDir:  gt.ShareDir,
	})
}

// testArgs adds -test.timeout to args unless they have one: the guest's
// timeout less a margin for booting and for the binary to print its
// goroutines.
func testArgs(args []string, timeout time.Duration) []string {
	for _, a := range args {
		if strings.HasPrefix(a, "-test.timeout") || strings.HasPrefix(a, "--test.timeout") {
			return args
		}
	}
	margin := min(timeout/4, 2*time.Minute)
	return append(append([]string(nil), args...), "-test.timeout="+(timeout-margin).String())
}
