#!/usr/bin/env bash
# Installs vpblu with its Helm chart on a kind cluster with Flannel and
# checks the mesh (SPEC §13 "kind"). Needs a running Docker engine; it
# refuses to start without one.
#
#   host: docker, kind, kubectl, helm, go
#     │
#     └─ docker network "kind" = the underlay (node IPs)
#          ├─ <cluster>-control-plane  flannel, vpblu-agent
#          ├─ <cluster>-worker         flannel, vpblu-agent, a controller, pod vpblu-ping-a
#          └─ <cluster>-worker2        flannel, vpblu-agent, a controller, pod vpblu-ping-b
#   pod network 10.244.0.0/16 (Flannel VXLAN, UDP 8472); vpblu tunnels UDP 51820
#
# Steps:
#   1. build the images without Docker (go run ./tools/images) into bin/images
#   2. create the cluster (no default CNI), add the CNI bridge plugin Flannel
#      delegates to, install Flannel
#   3. load the images into the nodes, install the chart with
#      policies.install=true and wait for every pod to be ready
#   4. smoke checks: every node's VpbluNode has all its peers up, every node
#      has wg-mesh, a pod pings a pod on another node, and during that ping
#      no cleartext ICMP crosses the underlay inside Flannel's VXLAN while
#      WireGuard packets do (a capture in the worker's network namespace)
#
# Not done here: the §12 acceptance suite (e2e.Run). It needs an
# implementation of e2e.Cluster for kind, which does not exist yet; see the
# message at the end.
#
# Environment:
#   CLUSTER=vpblu-e2e         kind cluster name
#   KEEP_CLUSTER=0            1 keeps the cluster (and reuses an existing one)
#   KIND_NODE_IMAGE=          node image (default: kind's)
#   KIND_VERSION=v0.32.0      kind installed with go install when missing
#   HELM_VERSION=v4.3.1       helm installed with go install when missing
#   FLANNEL_VERSION=v0.28.8   kube-flannel.yml release
#   CNI_PLUGINS_VERSION=v1.7.1  containernetworking/plugins release (bridge)
#   NETSHOOT_IMAGE=nicolaka/netshoot:v0.13  tcpdump for the underlay check
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${CLUSTER:-vpblu-e2e}
keep=${KEEP_CLUSTER:-0}
namespace=vpblu-system
pod_cidr=10.244.0.0/16
kind_version=${KIND_VERSION:-v0.32.0}
helm_version=${HELM_VERSION:-v4.3.1}
flannel_version=${FLANNEL_VERSION:-v0.28.8}
cni_version=${CNI_PLUGINS_VERSION:-v1.7.1}
netshoot=${NETSHOOT_IMAGE:-nicolaka/netshoot:v0.13}
cache=${VPBLU_CACHE:-$HOME/.cache/vpblu}
tools=$cache/tools
export PATH=$tools:$PATH

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }

# --- 0. refuse without Docker ---------------------------------------------
if ! command -v docker >/dev/null 2>&1; then
	printf 'kind-e2e: refusing to run: no docker command. kind runs Kubernetes nodes as Docker containers;\ninstall Docker and start it, then run make kind-e2e again. Nothing was done.\n' >&2
	exit 2
fi
if ! docker info >/dev/null 2>&1; then
	printf 'kind-e2e: refusing to run: Docker is not running (docker info failed).\nkind runs Kubernetes nodes as Docker containers; start the Docker engine, then run make kind-e2e again. Nothing was done.\n' >&2
	exit 2
fi

# --- tools ----------------------------------------------------------------
need_go_tool() { # name module@version
	command -v "$1" >/dev/null 2>&1 && return
	log "installing $2 into $tools"
	mkdir -p "$tools"
	GOBIN=$tools go install "$2"
}
command -v go >/dev/null 2>&1 || die "go is required (it builds the images and installs kind and helm)"
command -v curl >/dev/null 2>&1 || die "curl is required (Flannel's manifest and the CNI plugins are downloaded)"
need_go_tool kind "sigs.k8s.io/kind@$kind_version"
need_go_tool helm "helm.sh/helm/v4/cmd/helm@$helm_version"
if ! command -v kubectl >/dev/null 2>&1; then
	log "no kubectl on PATH: using the one make test-assets builds"
	PATH=$("$root/hack/test-assets.sh"):$PATH
fi
kubectl() { command kubectl --context "kind-$cluster" "$@"; }

arch=$(go env GOARCH)
case $arch in amd64 | arm64) ;; *) die "unsupported architecture $arch (images are built for amd64 and arm64)" ;; esac

diagnose() {
	log "diagnostics"
	kubectl get nodes -o wide || true
	kubectl get pods -A -o wide || true
	kubectl get vpblunodes -o wide || true
	kubectl -n "$namespace" describe pods || true
	kubectl -n "$namespace" logs -l app.kubernetes.io/component=controller --all-containers --tail=100 --prefix || true
	kubectl -n "$namespace" logs -l app.kubernetes.io/component=agent --all-containers --tail=100 --prefix || true
}
cleanup() {
	rc=$?
	if [[ $rc -ne 0 ]]; then
		diagnose
	fi
	kubectl delete pod vpblu-ping-a vpblu-ping-b --ignore-not-found --wait=false >/dev/null 2>&1 || true
	if [[ $keep == 1 ]]; then
		log "keeping cluster $cluster (kind delete cluster --name $cluster removes it)"
	else
		log "deleting cluster $cluster"
		kind delete cluster --name "$cluster" || true
	fi
	exit "$rc"
}

# --- 1. images ------------------------------------------------------------
log "building images (no Docker daemon involved)"
(cd "$root" && go run ./tools/images --out bin/images)
tag=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$root/deploy/helm/vpblu/Chart.yaml")

# --- 2. cluster and Flannel -------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	[[ $keep == 1 ]] || die "cluster $cluster exists; delete it (kind delete cluster --name $cluster) or set KEEP_CLUSTER=1 to reuse it"
	log "reusing cluster $cluster"
	trap cleanup EXIT
else
	log "creating kind cluster $cluster (3 nodes, no default CNI)"
	trap cleanup EXIT
	kind create cluster --name "$cluster" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 0s --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: $pod_cidr
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF
fi
mapfile -t nodes < <(kind get nodes --name "$cluster" | sort)
[[ ${#nodes[@]} -ge 3 ]] || die "want 3 nodes, have ${#nodes[@]}"

# Flannel's CNI config delegates to the bridge plugin, which kind's node
# image does not ship.
cni_tgz=$cache/cni-plugins-linux-$arch-$cni_version.tgz
if [[ ! -s $cni_tgz ]]; then
	log "downloading CNI plugins $cni_version"
	mkdir -p "$cache"
	curl -fsSL -o "$cni_tgz.tmp" "https://github.com/containernetworking/plugins/releases/download/$cni_version/cni-plugins-linux-$arch-$cni_version.tgz"
	mv "$cni_tgz.tmp" "$cni_tgz"
fi
for n in "${nodes[@]}"; do
	docker cp "$cni_tgz" "$n:/tmp/cni-plugins.tgz"
	docker exec "$n" tar -xzf /tmp/cni-plugins.tgz -C /opt/cni/bin ./bridge
done

log "installing Flannel $flannel_version"
kubectl apply -f "https://github.com/flannel-io/flannel/releases/download/$flannel_version/kube-flannel.yml"
kubectl -n kube-flannel rollout status daemonset/kube-flannel-ds --timeout 5m
kubectl wait --for=condition=Ready nodes --all --timeout 5m

# --- 3. vpblu ---------------------------------------------------------------
log "loading images ghcr.io/lumbrjx/vpblu-{controller,agent}:$tag into the nodes"
kind load image-archive "$root/bin/images/vpblu-controller.tar" --name "$cluster"
kind load image-archive "$root/bin/images/vpblu-agent.tar" --name "$cluster"

log "installing the chart"
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$namespace" pod-security.kubernetes.io/enforce=privileged --overwrite
helm --kube-context "kind-$cluster" upgrade --install vpblu "$root/deploy/helm/vpblu" \
	--namespace "$namespace" \
	--set policies.install=true \
	--set "clusterCIDRs={$pod_cidr}" \
	--set controller.image.pullPolicy=Never \
	--set agent.image.pullPolicy=Never \
	--wait --timeout 5m

# --- 4. smoke checks ----------------------------------------------------------
kubectl -n "$namespace" rollout status deployment/vpblu-controller --timeout 2m
kubectl -n "$namespace" rollout status daemonset/vpblu-agent --timeout 2m

log "waiting for every node to have all $((${#nodes[@]} - 1)) peers up"
want=$((${#nodes[@]} - 1))
deadline=$((SECONDS + 180))
while :; do
	lines=$(kubectl get vpblunodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.peersUp} {.status.peersTotal}{"\n"}{end}')
	if [[ $(wc -l <<<"$lines") -eq ${#nodes[@]} ]] && awk -v w="$want" '$2 != w || $3 != w {bad = 1} END {exit bad}' <<<"$lines"; then
		break
	fi
	((SECONDS < deadline)) || die "the mesh did not form in 180 s:"$'\n'"$lines"
	sleep 3
done
kubectl get vpblunodes -o wide

log "wg-mesh on every node"
for n in "${nodes[@]}"; do
	docker exec "$n" ip -d link show wg-mesh || die "$n has no wg-mesh"
done
for p in $(kubectl -n "$namespace" get pods -l app.kubernetes.io/component=agent -o name); do
	echo "--- $p"
	kubectl -n "$namespace" exec "$p" -- vpblu-agent dump
done

log "pod to pod across nodes"
for pair in "vpblu-ping-a ${nodes[1]}" "vpblu-ping-b ${nodes[2]}"; do
	read -r name node <<<"$pair"
	kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name, labels: {app: vpblu-ping}}
spec:
  nodeName: $node
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:1.36, command: [sleep, "3600"]}]
EOF
done
kubectl wait --for=condition=Ready pod/vpblu-ping-a pod/vpblu-ping-b --timeout 2m
dst=$(kubectl get pod vpblu-ping-b -o jsonpath='{.status.podIP}')

log "underlay of ${nodes[1]} while vpblu-ping-a pings $dst"
capture=$(mktemp)
# Inside Flannel's VXLAN (UDP 8472), udp[39] is the inner IPv4 protocol
# (UDP 8 + VXLAN 8 + Ethernet 14 + 9): 1 is ICMP in cleartext.
docker run --rm --net "container:${nodes[1]}" --cap-add NET_RAW --cap-add NET_ADMIN "$netshoot" \
	timeout 12 tcpdump -p -n -t -l -i eth0 'udp port 51820 or (udp port 8472 and udp[39] = 1)' >"$capture" 2>/dev/null &
tcpdump_pid=$!
sleep 4
kubectl exec vpblu-ping-a -- ping -c 5 -W 2 "$dst"
wait "$tcpdump_pid" || true
cleartext=$(grep -cE '\.8472[: ]' "$capture" || true)
wireguard=$(grep -cE '\.51820[: ]' "$capture" || true)
rm -f "$capture"
echo "underlay: $wireguard WireGuard packets, $cleartext cleartext ICMP packets in VXLAN"
[[ $cleartext -eq 0 ]] || die "cleartext pod traffic crossed the underlay"
[[ $wireguard -gt 0 ]] || die "no WireGuard traffic on the underlay: the ping did not go through the tunnel"

cat >&2 <<'EOF'

kind-e2e: the chart installs and the mesh works (smoke checks passed).

NOT RUN: the SPEC §12 acceptance suite. It runs through the e2e.Cluster
interface (e2e/cluster.go), and there is no kind implementation of it yet.
What one needs, method by method:
  Ping, Iperf        kubectl exec into workload pods from an image with ping and iperf3
  StartFlow          a sequence-numbered UDP sender/receiver in those pods (the simulator's
                     is a host process; kind needs it in an image)
  StartCapture       tcpdump in a node's network namespace (docker run --net container:<node>),
                     as the underlay check above does, parsed into CaptureStats
  WireGuard,
  DataPlane          docker exec into the node (ip, nft) plus `vpblu-agent dump`; wg needs
                     wireguard-tools, which kind's node image lacks
  Stop/StartControllers, KillController, Leader
                     scale the Deployment, read the Lease holder, SIGKILL through the node's
                     containerd (crictl)
  RestartAgent, UninstallAgents, StartAgents
                     delete the agent pod; run `vpblu-agent --uninstall` in a privileged pod
  AddNode, RemoveNode
                     kind cannot add a node to a running cluster: pre-create a spare node
                     that is cordoned and tainted until AddNode
  StreamAddrs, CABundle, AgentToken
                     a port-forward to the Service, the vpblu-ca ConfigMap, and
                     `kubectl create token vpblu-agent --audience vpblu.io/agent
                     --bound-object-kind Pod --bound-object-name <agent pod>`
EOF
