#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only when missing. Each
# argument names a group; the groups are listed below with what needs them.
set -euo pipefail

declare -A groups=(
	[etcd]="etcd-server:etcd"                                   # API server tests
	[generate]="clang:clang llvm:llvm-strip protobuf-compiler:protoc libbpf-dev:/usr/include/bpf/bpf_helpers.h"
	[net]="iproute2:ip iputils-ping:ping tcpdump:tcpdump iperf3:iperf3 wireguard-tools:wg nftables:nft" # privileged and sim tests
	[vm]="qemu-system-x86:qemu-system-x86_64 busybox-static:/bin/busybox xz-utils:xz zstd:zstd"
)

missing=()
for g in "$@"; do
	for pair in ${groups[$g]:?unknown dependency group $g}; do
		pkg=${pair%%:*} probe=${pair#*:}
		if [[ $probe == /* ]]; then [[ -e $probe ]] && continue; else command -v "$probe" >/dev/null && continue; fi
		missing+=("$pkg")
	done
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "missing Debian packages: ${missing[*]} (run as root or install them)" >&2
	exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
