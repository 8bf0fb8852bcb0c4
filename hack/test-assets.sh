#!/usr/bin/env bash
# Builds the binaries that tests run against a real API server with:
# kube-apiserver and kubectl from k8s.io/kubernetes (through the Go module
# proxy, see tools/k8s/go.mod) and etcd from Debian's etcd-server. Results are
# cached outside the clone so only the first run on a machine pays (~10 min on
# 2 cores); later runs take a second. Prints the assets directory last, which
# is what KUBEBUILDER_ASSETS should be set to.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$root/tools/k8s/go.mod")
cache=${VPBLU_CACHE:-$HOME/.cache/vpblu}
dir=$cache/k8s/$version
stamp=$dir/.stamp
want=$(cat "$root/tools/k8s/go.mod" "$root/tools/k8s/go.sum" | sha256sum | cut -d' ' -f1)-$(go env GOVERSION)

"$root/hack/deps.sh" etcd

if [[ -x $dir/kube-apiserver && -x $dir/kubectl && -x $dir/etcd && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
	echo "$dir"
	exit 0
fi

mkdir -p "$dir"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
echo "building kube-apiserver and kubectl $version into $dir (first run only, ~10 min)" >&2
(
	cd "$root/tools/k8s"
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/kubectl" k8s.io/kubernetes/cmd/kubectl
) >&2
ln -sf "$(command -v etcd)" "$dir/etcd"
echo "$want" >"$stamp"
echo "$dir"
