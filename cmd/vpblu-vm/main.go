// Command vpblu-vm runs a command, or a Go test binary, inside a disposable
// QEMU guest booting a Debian kernel with in-kernel WireGuard (package vm).
//
//	vpblu-vm -kernel 6.12 -- sh -c 'modprobe wireguard && uname -r'
//	vpblu-vm -kernel all -gotest -env VPBLU_SIM_BACKEND=kernel -- ./e2e.test -test.v
//	vpblu-vm -kernel all -prepare
//
// The guest's console goes to standard error. vpblu-vm exits with the
// command's exit status (the first non-zero one with -kernel all), or 125
// when the guest could not run it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lumbrjx/vpblu/vm"
)

type envFlag []string

func (e *envFlag) String() string     { return strings.Join(*e, " ") }
func (e *envFlag) Set(s string) error { *e = append(*e, s); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	var (
		kernel  = flag.String("kernel", "6.12", "kernel to boot: "+kernelNames()+", or all")
		memory  = flag.Int("memory", 0, "guest memory in MiB (default 1024, 3072 with -gotest)")
		cpus    = flag.Int("cpus", 2, "virtual CPUs")
		timeout = flag.Duration("timeout", 0, "bound for each guest run, boot included (default 10m, 30m with -gotest)")
		share   = flag.String("share", "", "host directory mounted read-write at the same path in the guest")
		dir     = flag.String("dir", "", "working directory in the guest")
		cache   = flag.String("cache", "", "kernel cache directory (default ~/.cache/vpblu/vm)")
		gotest  = flag.Bool("gotest", false, "the command is a statically built Go test binary (adds -test.timeout)")
		prepare = flag.Bool("prepare", false, "only download and unpack the kernels")
		env     envFlag
	)
	flag.Var(&env, "env", "NAME=value added to the guest command's environment (repeatable)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	kernels := vm.Kernels
	if *kernel != "all" {
		k, err := vm.KernelByName(*kernel)
		if err != nil {
			log.Error("bad flag", "err", err)
			return 2
		}
		kernels = []vm.Kernel{k}
	}
	command := flag.Args()
	if !*prepare && len(command) == 0 {
		fmt.Fprintln(os.Stderr, "usage: vpblu-vm [flags] -- command [args...]")
		flag.PrintDefaults()
		return 2
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	status := 0
	for _, k := range kernels {
		start := time.Now()
		if *prepare {
			im, err := vm.Prepare(ctx, k, *cache)
			if err != nil {
				log.Error("preparing kernel failed", "kernel", k.Name, "err", err)
				return 125
			}
			log.Info("kernel ready", "kernel", k.Name, "package", im.Package, "version", im.Version,
				"release", im.Release, "dir", im.Dir, "took", time.Since(start).Round(time.Millisecond))
			continue
		}
		var res *vm.Result
		var err error
		if *gotest {
			res, err = vm.RunGoTest(ctx, vm.GoTest{
				Kernel: k, CacheDir: *cache, Binary: command[0], Args: command[1:], Env: env,
				Dir: *dir, MemoryMiB: *memory, CPUs: *cpus, Timeout: *timeout, Console: os.Stderr, ShareDir: *share,
			})
		} else {
			var im *vm.Image
			im, err = vm.Prepare(ctx, k, *cache)
			if err == nil {
				res, err = vm.Run(ctx, vm.RunOptions{
					Image: im, Command: command, Env: env, Dir: *dir, MemoryMiB: *memory, CPUs: *cpus,
					Timeout: *timeout, Console: os.Stderr, ShareDir: *share,
				})
			}
		}
		if err != nil {
			log.Error("guest run failed", "kernel", k.Name, "err", err)
			return 125
		}
		log.Info("guest run done", "kernel", k.Name, "exit", res.ExitCode,
			"boot", res.BootTime.Round(time.Millisecond), "took", res.Duration.Round(time.Millisecond),
			"prepare_and_run", time.Since(start).Round(time.Millisecond))
		if res.ExitCode != 0 && status == 0 {
			status = res.ExitCode
		}
	}
	return status
}

func kernelNames() string {
	var names []string
	for _, k := range vm.Kernels {
		names = append(names, k.Name)
	}
	return strings.Join(names, ", ")
}
