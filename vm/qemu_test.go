package vm

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMachineArgs(t *testing.T) {
	base := machine{
		Kernel: "/c/vmlinux", Initramfs: "/t/initramfs.cpio", MemoryMiB: 3072, CPUs: 2,
		QMPSocket: "vpblu-vm-1234", CtlDir: "/t/ctl",
	}
	common := func(accel ...string) []string {
		a := []string{"-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-m", "3072", "-smp", "2"}
		a = append(a, accel...)
		return append(a,
			"-kernel", "/c/vmlinux", "-initrd", "/t/initramfs.cpio", "-append", strings.Join(kernelCmdline, " "),
			"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
			"-chardev", "socket,id=qmp,path=vpblu-vm-1234,abstract=on,server=on,wait=off",
			"-mon", "chardev=qmp,mode=control", "-nic", "none",
			"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on",
			"-virtfs", "local,path=/t/ctl,mount_tag=vmctl,security_model=none,multidevs=remap",
		)
	}
	tcg := []string{"-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max"}
	tests := []struct {
		name string
		m    func(m machine) machine
		want []string
	}{
		{name: "without KVM the CPU is emulated", m: func(m machine) machine { return m }, want: common(tcg...)},
		{name: "with KVM the host CPU is used", m: func(m machine) machine { m.KVM = true; return m },
			want: common("-accel", "kvm", "-cpu", "host")},
		{name: "a share is a third read-write 9p export, commas doubled",
			m:    func(m machine) machine { m.ShareDir = "/s,x"; return m },
			want: append(common(tcg...), "-virtfs", "local,path=/s,,x,mount_tag=vmshare,security_model=none,multidevs=remap")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.m(base).args()); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTestArgsBoundsTestTimeoutBelowGuestTimeout(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "added a quarter below a short timeout", args: []string{"-test.v"}, want: []string{"-test.v", "-test.timeout=3m0s"}},
		{name: "kept when given", args: []string{"-test.timeout=1m"}, want: []string{"-test.timeout=1m"}},
		{name: "kept when given with two dashes", args: []string{"--test.timeout", "1m"}, want: []string{"--test.timeout", "1m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, testArgs(tt.args, 4*time.Minute)); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	if got := testArgs(nil, 30*time.Minute); !cmp.Equal(got, []string{"-test.timeout=28m0s"}) {
		t.Errorf("long timeout: %v, want a 2m margin", got)
	}
}
