package main_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/ctrl/manager/clustertest"
	"github.com/lumbrjx/vpblu/ctrl/streamserver/agenttest"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// TestMain removes the controller binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// buildController builds cmd/vpblu-controller once per test binary.
func buildController(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vpblu-controller-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "vpblu-controller")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// process is a controller process the test started.
type process struct {
	cmd        *exec.Cmd
	streamAddr string
	healthAddr string
	log        *lockedBuffer
	done       chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs the controller binary against the cluster; the test's
// cleanup kills it (this process only, by its PID).
func startProcess(t testing.TB, bin string, c *clustertest.Cluster, extra ...string) *process {
	t.Helper()
	p := &process{streamAddr: freePort(t), healthAddr: freePort(t), log: &lockedBuffer{}, done: make(chan struct{})}
	args := append([]string{
		"--kubeconfig", c.Env.Kubeconfig,
		"--namespace", clustertest.Namespace,
		"--stream-addr", p.streamAddr,
		"--tls-ip-addresses", "127.0.0.1",
		"--agent-service-accounts", clustertest.Namespace + ":" + clustertest.AgentServiceAccount,
		"--metrics-addr", "0",
		"--health-addr", p.healthAddr,
		"--log-format", "text",
		"--status-min-interval", "1s",
	}, extra...)
	p.cmd = exec.Command(bin, args...)
	var out io.Writer = p.log
	if dir := os.Getenv("VPBLU_TEST_LOGDIR"); dir != "" {
		// Keep the whole log, also if the test binary is killed.
		f, err := os.CreateTemp(dir, "vpblu-controller-*.log")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		out = io.MultiWriter(p.log, f)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("controller %s (pid %d) log:\n%s", p.streamAddr, p.cmd.Process.Pid, tail(p.log.String(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Logf("kill %d: %v", p.cmd.Process.Pid, err)
	}
	<-p.done
}

func (p *process) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.healthAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("controller exited:\n%s", tail(p.log.String(), 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("controller not ready after %v:\n%s", timeout, tail(p.log.String(), 40))
}

func (p *process) waitLeading(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.log.String(), `msg=leading`) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("controller exited:\n%s", tail(p.log.String(), 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("controller not leading after %v:\n%s", timeout, tail(p.log.String(), 40))
}

func ca(t testing.TB, c *clustertest.Cluster) *x509.CertPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := c.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func waitAgent(t testing.TB, a *agenttest.Agent, timeout time.Duration, what string, cond func(agenttest.Snapshot) bool) agenttest.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	snap, err := a.WaitFor(ctx, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return snap
}

// peers counts the peer lines of a rendered state.
func peers(state string) int {
	n := 0
	for _, l := range strings.Split(state, "\n") {
		if strings.HasPrefix(l, "peer ") {
			n++
		}
	}
	return n
}
