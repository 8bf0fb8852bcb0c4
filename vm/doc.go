// Package vm runs the e2e suite inside disposable QEMU virtual machines
// booting Debian kernels that have in-kernel WireGuard, so the kernel
// backend and both BPF attach paths (clsact on 6.1, tcx on 6.12) are tested
// on a host whose own kernel lacks WireGuard.
package vm
