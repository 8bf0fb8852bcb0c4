package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// RunOptions say what to run in a guest and on what machine.
type RunOptions struct {
	// Image is the kernel to boot (from Prepare).
	Image *Image
	// Command runs as root, chrooted into the host's root file system (read
	// only, under a RAM overlay: writes succeed and vanish with the guest),
	// with the guest kernel's modules at /lib/modules. Fresh proc, sysfs,
	// devtmpfs, bpffs (/sys/fs/bpf), cgroup2 and /run are mounted; the
	// loopback interface is up and a dummy uplink0 (198.19.255.254/32)
	// carries the default route; there is no other network. Processes
	// the command leaves behind are killed when it exits.
	Command []string
	// Env is added, as NAME=value, to the command's environment: PATH,
	// HOME=/root and VPBLU_VM=<kernel name>. Nothing is inherited from the
	// host.
	Env []string
	// Dir is the command's working directory in the guest; "" means /.
	Dir string
	// MemoryMiB is the guest's memory; 0 means 1024.
	MemoryMiB int
	// CPUs is the number of virtual CPUs; 0 means 2.
	CPUs int
	// Timeout bounds the whole run, boot included; 0 means 10 minutes.
	// A guest still running then is stopped and Run returns ErrTimeout.
	Timeout time.Duration
	// Console receives, line by line as they arrive, the serial console
	// (the kernel's messages and /init's progress) and the command's
	// output. nil discards them (Result keeps both).
	Console io.Writer
	// ShareDir, an existing host directory, is mounted read-write at the
	// same path in the guest, so the command can leave files for the
	// caller there. "" shares nothing.
	ShareDir string
}

// Result is what a guest run left behind.
type Result struct {
	// ExitCode is the command's exit status, or -1 if the guest never
	// reported one (timeout, failed setup, kernel panic).
	ExitCode int
	// Output is the command's standard output and error, interleaved.
	Output []byte
	// Console is the tail (up to 1 MiB) of the serial console: kernel
	// messages and /init's progress, for failure reports. The command's
	// output is not on it.
	Console []byte
	// BootTime is how long after QEMU started the command started; zero if
	// it never did.
	BootTime time.Duration
	// Duration is the whole run, from QEMU's start to its exit.
	Duration time.Duration
	// PID was QEMU's process ID; that process is gone when Run returns.
	PID int
	// ShutdownReason is QEMU's reason for shutting down as QMP reported it:
	// "guest-shutdown" after the command, "guest-reset" after a kernel
	// panic, "host-qmp-quit" when stopped at the timeout; "" if unknown.
	ShutdownReason string
}

const (
	defaultMemoryMiB = 1024
	defaultCPUs      = 2
	defaultTimeout   = 10 * time.Minute
	// quitGrace is how long QEMU gets to exit after a QMP quit before it is
	// killed.
	quitGrace = 5 * time.Second
)

// Run boots opts.Image in QEMU, runs opts.Command in the guest, and returns
// once QEMU has exited, whatever happened: no QEMU process, socket or
// temporary file outlives the call, also when ctx ends or the timeout
// passes (then the guest is stopped through QMP, or killed). A command that
// ran and failed is not an error: see Result.ExitCode. The Result is
// returned with any error that occurred after QEMU started, so callers can
// show its console.
func Run(ctx context.Context, opts RunOptions) (*Result, error) {
	if opts.Image == nil {
		return nil, errors.New("running guest: no image")
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = defaultMemoryMiB
	}
	if opts.CPUs == 0 {
		opts.CPUs = defaultCPUs
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.ShareDir != "" {
		dir, err := filepath.Abs(opts.ShareDir)
		if err != nil {
			return nil, fmt.Errorf("running guest: %w", err)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("running guest: share %s is not a directory", dir)
		}
		opts.ShareDir = dir
	}
	script, err := runScript(opts.Image.Kernel.Name, opts.Command, opts.Env, opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("running guest: %w", err)
	}
	qemuPath, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("running guest: %w: qemu-system-x86_64 (package qemu-system-x86)", ErrMissingTool)
	}
	busybox, err := findBusybox()
	if err != nil {
		return nil, fmt.Errorf("running guest: %w", err)
	}

	tmp, err := os.MkdirTemp("", "vpblu-vm-")
	if err != nil {
		return nil, fmt.Errorf("running guest: %w", err)
	}
	defer os.RemoveAll(tmp)
	m := machine{
		Kernel:    opts.Image.BootKernel(),
		Initramfs: filepath.Join(tmp, "initramfs.cpio"),
		MemoryMiB: opts.MemoryMiB,
		CPUs:      opts.CPUs,
		KVM:       kvmUsable(),
		QMPSocket: filepath.Base(tmp) + "-qmp",
		CtlDir:    filepath.Join(tmp, "ctl"),
		ShareDir:  opts.ShareDir,
	}
	if err := writeControl(m, opts.Image, busybox, script); err != nil {
		return nil, fmt.Errorf("running guest: %w", err)
	}
	return boot(ctx, qemuPath, m, opts)
}

// writeControl writes the initramfs and the control share's files.
func writeControl(m machine, im *Image, busybox, script string) error {
	if err := os.Mkdir(m.CtlDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(m.CtlDir, "config"), []byte(guestConfig(im, m.ShareDir)), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(m.CtlDir, "run.sh"), []byte(script), 0o600); err != nil {
		return err
	}
	f, err := os.Create(m.Initramfs)
	if err != nil {
		return err
	}
	if err := writeInitramfs(im, busybox, f); err != nil {
		f.Close()
		return fmt.Errorf("writing initramfs: %w", err)
	}
	return f.Close()
}

// boot starts QEMU, waits for it to exit or stops it, and collects the
// result.
func boot(ctx context.Context, qemuPath string, m machine, opts RunOptions) (*Result, error) {
	start := time.Now()
	mux := newLineMux(opts.Console)
	con := newConsole(mux.source(), start)
	output := filepath.Join(m.CtlDir, "output")
	stopFollowing := make(chan struct{})
	followed := make(chan struct{})
	go func() {
		followFile(output, mux.source(), stopFollowing)
		close(followed)
	}()
	defer func() {
		close(stopFollowing)
		<-followed
	}()
	cmd := exec.Command(qemuPath, m.args()...)
	cmd.Stdout = con
	cmd.Stderr = con
	// If this process dies, QEMU dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = quitGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	res := &Result{ExitCode: -1, PID: cmd.Process.Pid}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	timeout := time.NewTimer(opts.Timeout)
	defer timeout.Stop()
	var runErr error
	mon, err := dialMonitor(ctx, m.QMPSocket, exited)
	if err != nil {
		runErr = err
		stop(nil, cmd, exited)
	} else {
		select {
		case <-exited:
		case <-ctx.Done():
			stop(mon, cmd, exited)
			runErr = fmt.Errorf("guest stopped: %w", ctx.Err())
		case <-timeout.C:
			status := stop(mon, cmd, exited)
			runErr = fmt.Errorf("%w after %s (guest was %s)", ErrTimeout, opts.Timeout, status)
		}
		mon.Close()
		res.ShutdownReason = mon.ShutdownReason()
	}
	res.Duration = time.Since(start)
	con.Flush()
	res.Console = con.Tail()
	res.BootTime = con.BootTime()
	if out, err := os.ReadFile(output); err == nil {
		res.Output = out
	}
	if runErr != nil {
		return res, runErr
	}
	code, err := os.ReadFile(filepath.Join(m.CtlDir, "exit"))
	if err != nil {
		return res, fmt.Errorf("%w (qemu: %v, shutdown reason %q)", ErrNoExitCode, exitStatus(waitErr), res.ShutdownReason)
	}
	res.ExitCode, err = strconv.Atoi(string(bytes.TrimSpace(code)))
	if err != nil {
		res.ExitCode = -1
		return res, fmt.Errorf("%w: bad exit code %q", ErrNoExitCode, code)
	}
	return res, nil
}

// stop ends a QEMU that is still running: a QMP quit if there is a
// monitor, a kill if there is none or QEMU has not exited quitGrace after
// the quit. It returns the guest's run state as QMP reported it before.
func stop(mon *monitor, cmd *exec.Cmd, exited <-chan struct{}) string {
	status := "unknown"
	if mon != nil {
		if s, err := within(time.Second, mon.Status); err == nil {
			status = s.String()
		}
		go func() { _ = mon.Quit() }()
		select {
		case <-exited:
			return status
		case <-time.After(quitGrace):
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	return status
}

// within runs f, giving up on its answer after d: a QMP call to a hung
// QEMU would never return (it does once QEMU is gone).
func within[T any](d time.Duration, f func() (T, error)) (T, error) {
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		v, err := f()
		ch <- answer{v, err}
	}()
	select {
	case a := <-ch:
		return a.v, a.err
	case <-time.After(d):
		var zero T
		return zero, errors.New("no answer")
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exited 0"
	}
	return err.Error()
}
