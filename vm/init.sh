#!/bin/busybox sh
# /init of the vpblu VM initramfs, in two stages.
#
# Stage 1 (no argument) mounts the host root read-only over 9p with a RAM
# overlay on top, makes the guest kernel's modules visible at /lib/modules
# and chroots into it. PID 1 must do the chroot itself: it shares its root
# with the kernel's threads, so the kernel's own module requests
# (request_module runs /usr/sbin/modprobe) then see the host root too.
#
# Stage 2 ("run", PID 1 still, now in the host root) runs the command the
# host put in the control share, with its output going to a file there,
# writes its exit code there and powers off. A setup failure powers off
# without an exit code; the host then reports the console.

lib=/usr/local/lib/vpblu-vm
ctl=/run/vpblu-vm

say() { echo "vpblu-vm: $*"; }
die() { say "setup failed: $*"; sync; poweroff -f; sleep 10; }
must() { "$@" || die "$*"; }

if [ "$1" = run ]; then
	$lib/busybox --install -s $lib/bin
	export PATH=$lib/bin
	# A node has a default route, and kube-apiserver refuses to start
	# without one; this one leads to a dummy device, so nothing leaves.
	modprobe dummy numdummies=0 &&
		ip link add uplink0 type dummy &&
		ip addr add 198.19.255.254/32 dev uplink0 &&
		ip link set uplink0 up &&
		ip route add default dev uplink0 ||
		die "adding the default route"
	# Under software emulation (multi-threaded TCG) the kernel patching
	# its own code while another vCPU runs it can crash the guest: a
	# static key flipped by a ping once ended a 6.12 guest with an int3
	# Oops in __netif_receive_skb_core. The keys the network tests flip
	# most are held at one for the guest's life: packet timestamps (every
	# ping and capture turns them on and off) and ingress/egress
	# classifiers (every data-plane attach and detach).
	ip link set lo up && /usr/sbin/tc qdisc add dev lo clsact ||
		say "cannot hold the classifier keys (tc qdisc add dev lo clsact failed)"
	/usr/bin/ping -q -i 3600 127.0.0.1 >/dev/null 2>&1 &
	say "command starting at $(cut -d' ' -f1 /proc/uptime)s uptime"
	# The output goes to the control share, which the host follows: the
	# serial console is far too slow for a verbose test binary.
	env -i /bin/sh $ctl/run.sh </dev/null >$ctl/output 2>&1
	rc=$?
	# Whatever the command left running must not write after the exit code.
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = 1 ] || kill -9 "$p" 2>/dev/null
	done
	echo "$rc" >$ctl/exit
	sync
	say "command exited with $rc at $(cut -d' ' -f1 /proc/uptime)s uptime"
	poweroff -f
	exit 0
fi

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

must mount -t proc proc /proc
must mount -t sysfs sysfs /sys
must mount -t devtmpfs devtmpfs /dev
say "init started at $(cut -d' ' -f1 /proc/uptime)s uptime"

while read -r mod; do
	must insmod "/modules/$mod"
done </modules/load

mkdir -p /lower /upper /newroot /ctl
opts=trans=virtio,version=9p2000.L,msize=262144
must mount -t 9p -o "$opts,ro,cache=loose" hostroot /lower
must mount -t 9p -o "$opts" vmctl /ctl
. /ctl/config

# The host root stays read-only; everything the guest writes lands in RAM.
must mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/data /upper/work
must mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot

r=/newroot
must mount -t proc proc $r/proc
must mount -t sysfs sysfs $r/sys
must mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm
must mount -t devpts -o newinstance,ptmxmode=0666 devpts $r/dev/pts
must mount -t tmpfs -o mode=1777 shm $r/dev/shm
must mount -t bpf -o mode=0700 bpffs $r/sys/fs/bpf
must mount -t cgroup2 cgroup2 $r/sys/fs/cgroup
mount -t debugfs debugfs $r/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $r/sys/kernel/tracing 2>/dev/null
# A fresh /run (and so /var/run): netns handles, WireGuard sockets and
# pid files of the host mean nothing here.
must mount -t tmpfs -o mode=0755 run $r/run
mkdir -p $r/run/netns $r/run/wireguard $r/run/lock $r$ctl
must mount --move /ctl $r$ctl

# busybox, for stage 2 and as the module tools: the host may have no kmod,
# and the module index Prepare built is the text one busybox reads.
mkdir -p $r$lib/bin
cp /bin/busybox $r$lib/busybox
for tool in modprobe insmod rmmod lsmod modinfo depmod; do
	ln -sf $lib/busybox "$r/usr/sbin/$tool"
done
echo /usr/sbin/modprobe >/proc/sys/kernel/modprobe
# The guest kernel's modules; busybox modprobe resolves aliases
# (rtnl-link-wireguard, sch_clsact) from the modules.alias Prepare built.
mkdir -p "$r/lib/modules/$VM_RELEASE"
must mount --bind "$r$VM_MODULES" "$r/lib/modules/$VM_RELEASE"

mkdir -p $r/var/lib/vpblu $r/var/tmp $r/tmp
chmod 1777 $r/tmp $r/var/tmp
if [ -n "$VM_SHARE" ]; then
	mkdir -p "$r$VM_SHARE"
	must mount -t 9p -o "$opts" vmshare "$r$VM_SHARE"
fi

hostname vpblu-vm
ip link set lo up
cp /init $r$lib/init
exec chroot $r $lib/busybox sh $lib/init run
