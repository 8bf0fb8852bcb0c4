// Package vm runs commands and Go test binaries inside disposable QEMU
// virtual machines booting Debian kernels that have in-kernel WireGuard, so
// the kernel backend and both BPF attach paths (clsact on 6.1, tcx on 6.12)
// are tested on a host whose own kernel lacks WireGuard.
//
// Prepare fetches a kernel package with the host's apt (never installing
// it), unpacks it into the cache (~/.cache/vpblu/vm), decompresses its
// modules, builds their index with busybox depmod and extracts the
// uncompressed kernel, which QEMU boots through PVH in a fraction of the
// time a bzImage takes under emulation. Only the first run downloads.
//
// Run boots an image with a small initramfs (static busybox, virtio, 9p and
// overlay modules) whose /init mounts the host's root file system read-only
// over virtio-9p under a RAM overlay, mounts fresh /proc, /sys, /dev,
// /sys/fs/bpf, cgroup2 and /run, makes the guest kernel's modules visible
// at /lib/modules with busybox as modprobe, and chroots into it: the
// command runs as root with the host's tools and files, writes vanish with
// the guest, and the kernel's own module requests (rtnl-link-wireguard,
// sch_clsact) work. The host drives QEMU through QMP (go-qemu): status,
// quit at the timeout, kill if that fails; nothing it starts outlives Run.
// RunGoTest runs a prebuilt test binary that way.
//
// The guest has no network but loopback and a dummy uplink carrying its
// default route; tests build theirs in network namespaces.
//
// It is not a general VM manager: one guest per call, no disks, no
// persistent state, x86-64 only. It does not change the host: kernels are
// unpacked into the cache and the host root is exported read-only.
package vm
