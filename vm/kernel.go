package vm

import (
	"fmt"
	"strings"
)

// Kernel is a Debian kernel series the guest can boot. Each has WireGuard
// as a module; they differ in how tc BPF programs attach.
type Kernel struct {
	// Name is how tests, flags and the cache name the series: its
	// major.minor version.
	Name string
	// Package is the Debian metapackage whose dependency is the current
	// kernel image package of the series (resolved with apt-cache).
	Package string
	// TCX reports whether the kernel has tcx links (6.6 and later); without
	// them tc BPF programs attach through a clsact qdisc.
	TCX bool
}

// Kernels are the kernel series vpblu is tested on, oldest first.
var Kernels = []Kernel{
	{Name: "6.1", Package: "linux-image-amd64", TCX: false},
	{Name: "6.12", Package: "linux-image-6.12-amd64", TCX: true},
}

// KernelByName returns the kernel of Kernels with the given name.
func KernelByName(name string) (Kernel, error) {
	names := make([]string, 0, len(Kernels))
	for _, k := range Kernels {
		if k.Name == name {
			return k, nil
		}
		names = append(names, k.Name)
	}
	return Kernel{}, fmt.Errorf("%w %q (have %s)", ErrUnknownKernel, name, strings.Join(names, ", "))
}
