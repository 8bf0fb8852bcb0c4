package sim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the simulator started. Its output goes to a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

// startProc starts a command in its own process group with its output in
// logDir/name.log, and records its PID in the slot's run directory so a
// later sweep can end it if this process dies first.
func startProc(runDir, name string, argv []string, env []string) (*Proc, error) {
	logPath := filepath.Join(runDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// Own process group: a signal to the group also reaches helpers the
	// process started; Pdeathsig ends it if the simulator dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	if err := os.WriteFile(filepath.Join(runDir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		logf.Close()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pdeathsig is sent when the *thread* that forked the child exits, and the
// namespace helpers (tools/netns) retire their locked threads on purpose.
// So every child is forked from one locked thread that lives as long as
// the process: its children die with the simulator, and only then.
var spawnRequests = make(chan spawnRequest)

type spawnRequest struct {
	cmd  *exec.Cmd
	errc chan error
}

func init() {
	go func() {
		runtime.LockOSThread()
		for req := range spawnRequests {
			req.errc <- req.cmd.Start()
		}
	}()
}

func spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawnRequests <- spawnRequest{cmd, errc}
	return <-errc
}

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends sig to the process group and waits up to timeout for the
// process to exit, then kills the group.
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = syscall.Kill(-p.PID(), sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
	}
	_ = os.Remove(strings.TrimSuffix(p.Log, ".log") + ".pid")
	return nil
}

// Tail returns the last n bytes of the process's log.
func (p *Proc) Tail(n int64) string { return tailFile(p.Log, n) }

func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(buf, off)
	return string(buf)
}

// killRecorded ends every process whose PID file is in runDir: leftovers
// of a run that died without tearing down. The process group is killed, so
// children go too. A PID file whose process is gone is just removed.
func killRecorded(runDir string) error {
	files, _ := filepath.Glob(filepath.Join(runDir, "*.pid"))
	var errs []error
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err == nil && pid > 1 && processStartedFrom(pid, runDir) {
			if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill %s (%d): %w", filepath.Base(f), pid, err))
			}
		}
		_ = os.Remove(f)
	}
	return errors.Join(errs...)
}

// processStartedFrom guards against PID reuse: every process the
// simulator starts names the run directory in its command line, so a PID
// whose command line does not is somebody else's and is left alone.
func processStartedFrom(pid int, runDir string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(raw), runDir)
}
