package vm

import (
	"fmt"
	"os"
	"strings"
)

// machine is one QEMU invocation: everything the command line depends on.
type machine struct {
	// Kernel is the kernel file: an ELF with a PVH entry or a bzImage.
	Kernel    string
	Initramfs string
	MemoryMiB int
	CPUs      int
	// KVM selects hardware virtualization; without it QEMU emulates the
	// CPU (TCG), about ten times slower but available everywhere.
	KVM bool
	// QMPSocket names the abstract unix socket QEMU serves QMP on: no file
	// to clean up, and no limit from the 108-byte socket path when
	// TMPDIR is long.
	QMPSocket string
	// CtlDir is the host directory shared read-write as "vmctl".
	CtlDir string
	// ShareDir, if set, is shared read-write as "vmshare".
	ShareDir string
}

// kernelCmdline is the guest kernel's command line. quiet keeps the
// console for the command; panic=-1 turns a panic into a reboot, which
// -no-reboot turns into QEMU exiting; mitigations=off because speculative
// execution mitigations only cost time under emulation (PTI flushes TCG's
// TLB on every system call).
var kernelCmdline = []string{
	"console=ttyS0", "quiet", "panic=-1", "oops=panic", "rdinit=/init",
	"mitigations=off", "8250.nr_uarts=1", "random.trust_cpu=on",
}

// args returns the QEMU command line, without the program name.
func (m machine) args() []string {
	a := []string{
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none",
		"-m", fmt.Sprint(m.MemoryMiB),
		"-smp", fmt.Sprint(m.CPUs),
	}
	if m.KVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max")
	}
	a = append(a,
		"-kernel", m.Kernel,
		"-initrd", m.Initramfs,
		"-append", strings.Join(kernelCmdline, " "),
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-chardev", "socket,id=qmp,path="+m.QMPSocket+",abstract=on,server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-nic", "none",
		"-virtfs", virtfs("/", "hostroot", true),
		"-virtfs", virtfs(m.CtlDir, "vmctl", false),
	)
	if m.ShareDir != "" {
		a = append(a, "-virtfs", virtfs(m.ShareDir, "vmshare", false))
	}
	return a
}

// virtfs renders a -virtfs option. multidevs=remap keeps inode numbers
// unique across the host file systems under path (without it /proc in the
// guest breaks); commas in paths are doubled as QEMU wants.
func virtfs(path, tag string, readonly bool) string {
	s := "local,path=" + strings.ReplaceAll(path, ",", ",,") + ",mount_tag=" + tag +
		",security_model=none,multidevs=remap"
	if readonly {
		s += ",readonly=on"
	}
	return s
}

// kvmUsable reports whether /dev/kvm can be opened for hardware
// virtualization.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
