#!/usr/bin/env bash
# The lab cluster: a real Kubernetes control plane built from source, plus kwok GPU nodes at scale.
#
#   scripts/lab-cluster.sh up [--gpu-nodes N]   start (or reuse) the lab; the last line is KUBECONFIG=<path>
#   scripts/lab-cluster.sh nodes N              make the kwok GPU node count N (adds or removes nodes)
#   scripts/lab-cluster.sh restart-apiserver    stop and start kube-apiserver alone (objects live in etcd)
#   scripts/lab-cluster.sh down                 stop the lab and delete its state (binaries stay cached)
#   scripts/lab-cluster.sh status
#
# Tier reached (see README, "Lab cluster"): K3s cannot be had here (the Go module proxy refuses every version
# of github.com/k3s-io/k3s), so the control plane is the fallback the issue names: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler built from Go source at pinned versions, run as local processes
# by `kwokctl --runtime binary` with local binary paths, and the kwok controller managing the fake GPU nodes.
# Nothing is mocked: the API server, scheduler and controllers are the upstream programs.
#
# The real node ("agent", unless SOPHIA_LAB_AGENT=0): a kubelet and kube-proxy (iptables mode) built from the
# same source, on this machine, with their own containerd (Debian's package, own socket and state, beside the
# Docker Engine's), Debian's CNI plugins (a bridge with host-local IPAM: one node, so no flannel), the locally
# built pause image as the sandbox image, and the lab images imported from the Docker Engine. It is labelled
# gpu=true and advertises nvidia.com/gpu through a node status patch (a stand-in: no GPU exists here), and its
# containerd has a runtime handler `nvidia` that runs runc (a stand-in for the NVIDIA container runtime).
#
# Add-ons, as pods on the real node from local images built from Go source (lab/addons/*.yaml, our own
# manifests): CoreDNS at the cluster DNS address and the local-path provisioner with the default StorageClass
# `local-path`. NetworkPolicy is enforced by kube-router's policy controller (the one K3s embeds in its agent),
# run on the real node beside kube-proxy with its router and service proxy off.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

NAME=${SOPHIA_LAB_CLUSTER:-sophia-lab}
BIN="$SOPHIA_CACHE/bin"
KUBE="$BIN/kubernetes"
export KWOK_WORKDIR="$SOPHIA_CACHE/kwok"
# kwokctl shells out to kubectl to check the cluster: make it ours, not whatever else is on PATH.
export KWOK_KUBECTL_BINARY="$KUBE/kubectl" PATH="$KUBE:$PATH"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig.yaml"
# K3s's defaults, so that the lab looks like the clusters the collection installs.
POD_CIDR=10.42.0.0/16
SERVICE_CIDR=10.43.0.0/16
CLUSTER_DNS=10.43.0.10
AGENT=${SOPHIA_LAB_AGENT:-1}
AGENT_NAME=sophia-lab-agent
AGENT_POD_SUBNET=10.42.0.0/24
AGENT_GPUS=${SOPHIA_LAB_AGENT_GPUS:-4}
AGENT_STATE=${SOPHIA_LAB_ROOT:-/var/lib/sophia-lab}
AGENT_RUN=/run/sophia-lab
AGENT_ETC="$SOPHIA_CACHE/lab-node"
CTRD_SOCK="$AGENT_RUN/containerd.sock"
CLUSTER_DOMAIN=cluster.local
# The first address of the service range: the `kubernetes` Service that pods reach the API server through.
API_SERVICE_IP=10.43.0.1
ADDONS_DIR="$ROOT/lab/addons"

kubectl() { "$KUBE/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }
kwokctl() { "$BIN/kwokctl" --name "$NAME" "$@"; }

log() { printf 'lab-cluster: %s\n' "$*" >&2; }

api_ready() { [ -f "$KUBECONFIG_PATH" ] && [ "$(kubectl get --raw /readyz --request-timeout=3s 2>/dev/null)" = ok ]; }

# pid_runs FILE: the pid FILE names runs the program the file is named after (its executable's name starts with
# it: etcd.pid -> etcd-v3.6.16). A pid file that outlived its process (the machine's processes were killed without
# `down`) can name a pid the kernel has given to another program since: that one is not ours, never signal it.
pid_runs() {
  local file=$1 pid exe
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null) && [ -n "$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  case "${exe##*/}" in "$(basename "$file" .pid)"*) return 0 ;; *) return 1 ;; esac
}

all_running() {
  local f
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    pid_runs "$f" || return 1
  done
}

wait_api() {
  local waited=0
  until api_ready; do
    [ $waited -ge 60 ] && { tail -n 20 "$CLUSTER_DIR/logs/kube-apiserver.log" >&2 || true; die "the API server did not become ready in 60 s (logs: $CLUSTER_DIR/logs)"; }
    sleep 1; waited=$((waited + 1))
  done
}

# The options a cluster is created with (kwokctl 0.8.0 indexes extra args by their position: every component's
# first --extra-args must come before any component's second). A cluster created with other options (an older
# version of this script) is recreated: CREATE_KEY is kept in the cluster's directory.
# kubelet-*: the API server reaches the real node's kubelet (exec, logs, port-forward, what `kubectl cp` and
# bluegreen_cutover's volume copy use) at its InternalIP - its host name resolves nowhere - with kwokctl's admin
# certificate (the kubelet takes clients that the cluster CA signed, and asks the API server what they may do).
CREATE_ARGS=(
  --extra-args "kube-apiserver=service-cluster-ip-range=$SERVICE_CIDR"
  --extra-args "kube-controller-manager=service-cluster-ip-range=$SERVICE_CIDR"
  --extra-args "kwok-controller=manage-all-nodes=false"
  --extra-args "kube-scheduler=leader-elect=false"
  --extra-args "kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname"
  --extra-args "kube-apiserver=kubelet-client-certificate=$CLUSTER_DIR/pki/admin.crt"
  --extra-args "kube-apiserver=kubelet-client-key=$CLUSTER_DIR/pki/admin.key"
  --extra-args "kube-controller-manager=cluster-cidr=$POD_CIDR"
  --extra-args "kube-controller-manager=leader-elect=false"
  --extra-args "kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node"
)
CREATE_KEY=$(printf '%s\n' "${CREATE_ARGS[@]}" | sha256sum | cut -c1-12)

up() {
  local gpu_nodes=${1:-}
  [ -x "$BIN/kwokctl" ] && [ -x "$KUBE/kube-apiserver" ] && [ -x "$BIN/etcd" ] && [ -x "$BIN/kwok" ] \
    || die "the lab cluster's binaries are missing: run scripts/setup.sh go (or make setup) first."
  if [ -f "$CLUSTER_DIR/kwok.yaml" ] && [ "$(cat "$CLUSTER_DIR/sophia-create.key" 2>/dev/null)" != "$CREATE_KEY" ]; then
    log "the cluster $NAME was created with other options: recreating it"
    down
  fi
  if api_ready && all_running; then
    log "reusing the running cluster $NAME"
  elif [ -f "$CLUSTER_DIR/kwok.yaml" ]; then
    log "starting the existing cluster $NAME"
    kwokctl start cluster >/dev/null 2>&1 || die "kwokctl could not start $NAME (logs: $CLUSTER_DIR/logs)"
    wait_api
  else
    log "creating the cluster $NAME (control plane from source: $("$KUBE/kube-apiserver" --version), etcd $("$BIN/etcd" --version | sed -n 's/^etcd Version: //p'))"
    mkdir -p "$KWOK_WORKDIR"
    # kwok only manages the fake nodes (real kubelets manage theirs). One instance of each controller, so no
    # leader election: with it, kube-controller-manager and kube-scheduler exit when the API server is away
    # for a few seconds, and nothing here restarts them (CREATE_ARGS).
    kwokctl create cluster --runtime binary \
      --kube-apiserver-binary "$KUBE/kube-apiserver" \
      --kube-controller-manager-binary "$KUBE/kube-controller-manager" \
      --kube-scheduler-binary "$KUBE/kube-scheduler" \
      --etcd-binary "$BIN/etcd" \
      --kwok-controller-binary "$BIN/kwok" \
      --kubeconfig "$KWOK_WORKDIR/kubeconfig.yaml" \
      "${CREATE_ARGS[@]}" \
      --wait 2m >"$KWOK_WORKDIR/create-$NAME.log" 2>&1 \
      || { tail -n 20 "$KWOK_WORKDIR/create-$NAME.log" >&2; die "kwokctl could not create $NAME (log: $KWOK_WORKDIR/create-$NAME.log)"; }
    printf '%s\n' "$CREATE_KEY" >"$CLUSTER_DIR/sophia-create.key"
    wait_api
  fi
  chmod 0600 "$KUBECONFIG_PATH"
  serving_cert_for_pods
  agent_up
  addons_up
  [ -n "$gpu_nodes" ] && nodes "$gpu_nodes"
  echo "KUBECONFIG=$KUBECONFIG_PATH"
}

# Pods reach the API server as https://$API_SERVICE_IP (the `kubernetes` Service) and check its certificate
# against the cluster CA; kwokctl's serving certificate does not name that address (it has no option for
# extra names), so the lab reissues it once, with the same key, subject and CA, adding the Service's address
# and names, then restarts the API server.
serving_cert_for_pods() {
  local pki="$CLUSTER_DIR/pki" sans tmp pid
  openssl x509 -in "$pki/admin.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$API_SERVICE_IP\b" && return 0
  log "adding $API_SERVICE_IP to the API server's certificate (in-cluster clients connect to it)"
  sans=$(openssl x509 -in "$pki/admin.crt" -noout -ext subjectAltName | tail -n +2 | sed 's/ //g; s/IPAddress:/IP:/g')
  tmp=$(mktemp -d)
  printf 'subjectAltName=%s,IP:%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n' \
    "$sans" "$API_SERVICE_IP" >"$tmp/ext.cnf"
  openssl req -new -key "$pki/admin.key" -subj "/O=system:masters/CN=kwok-admin" -out "$tmp/csr.pem" 2>/dev/null \
    && openssl x509 -req -in "$tmp/csr.pem" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 36500 \
      -extfile "$tmp/ext.cnf" -out "$tmp/admin.crt" 2>/dev/null \
    || { rm -rf "$tmp"; die "could not reissue the API server's certificate in $pki (openssl)"; }
  install -m 0644 "$tmp/admin.crt" "$pki/admin.crt"
  rm -rf "$tmp"
  # A fresh control plane: no client to drain, so stop it at once and let kwokctl start what is down.
  pid=$(cat "$CLUSTER_DIR/pids/kube-apiserver.pid")
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  kwokctl start cluster >/dev/null 2>&1 || die "kwokctl could not start kube-apiserver again (logs: $CLUSTER_DIR/logs)"
  wait_api
}

# One kwok GPU node, in the shape GPU Feature Discovery labels real ones: every fourth an 8x H100 SXM host
# (x86_64), the others a Lambda GH200 (one H100 96 GB on an arm64 Grace CPU).
gpu_node() {
  local i=$1 name product count arch itype memory
  name=$(printf 'kwok-gpu-%04d' "$i")
  if [ $((i % 4)) -eq 0 ]; then
    product=NVIDIA-H100-80GB-HBM3 count=8 arch=amd64 itype=gpu_8x_h100_sxm5 memory=81559
  else
    product=NVIDIA-GH200-480GB count=1 arch=arm64 itype=gpu_1x_gh200 memory=97871
  fi
  cat <<EOF
- apiVersion: v1
  kind: Node
  metadata:
    name: $name
    annotations:
      kwok.x-k8s.io/node: fake
      node.alpha.kubernetes.io/ttl: "0"
    labels:
      type: kwok
      gpu: "true"
      kubernetes.io/hostname: $name
      kubernetes.io/os: linux
      kubernetes.io/arch: $arch
      node.kubernetes.io/instance-type: $itype
      nvidia.com/gpu.present: "true"
      nvidia.com/gpu.product: $product
      nvidia.com/gpu.count: "$count"
      nvidia.com/gpu.memory: "$memory"
  spec:
    taints:
      - key: kwok.x-k8s.io/node
        value: fake
        effect: NoSchedule
  status:
    capacity: {cpu: "64", memory: 480Gi, pods: "110", nvidia.com/gpu: "$count"}
    allocatable: {cpu: "64", memory: 480Gi, pods: "110", nvidia.com/gpu: "$count"}
EOF
}

nodes() {
  local want=$1 have i j batch
  [[ "$want" =~ ^[0-9]+$ ]] || die "nodes takes a count, not '$want'"
  have=$(kubectl get nodes -l type=kwok -o name | wc -l)
  if [ "$have" -gt "$want" ]; then
    # One DeleteCollection call for all of them (deleting ~1000 nodes one by one takes minutes), then refill.
    log "removing the $have kwok GPU nodes"
    kubectl delete --raw "/api/v1/nodes?labelSelector=type%3Dkwok" >/dev/null
    # the deletion completes in the background: wait for it, or re-creating a name finds it still there
    local waited=0
    until [ "$(kubectl get nodes -l type=kwok -o name | wc -l)" -eq 0 ]; do
      [ $waited -ge 120 ] && die "the kwok GPU nodes were not deleted in 120 s"
      sleep 1; waited=$((waited + 1))
    done
    have=0
  fi
  if [ "$have" -lt "$want" ]; then
    log "adding kwok GPU nodes $((have + 1))..$want"
    for ((i = have + 1; i <= want; i += 250)); do
      batch=$((i + 249 > want ? want : i + 249))
      { echo "apiVersion: v1"; echo "kind: List"; echo "items:"
        for ((j = i; j <= batch; j++)); do gpu_node "$j"; done; } | kubectl create -f - >/dev/null
    done
  fi
  # kwok marks each node Ready on its next pass
  local waited=0 ready
  while :; do
    ready=$(kubectl get nodes -l type=kwok --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)
    [ "$ready" -ge "$want" ] && break
    [ $waited -ge 180 ] && die "only $ready of $want kwok GPU nodes became Ready in 180 s (log: $CLUSTER_DIR/logs/kwok-controller.log)"
    sleep 1; waited=$((waited + 1))
  done
  log "$want kwok GPU nodes Ready"
}

ctr() { command ctr -a "$CTRD_SOCK" -n k8s.io "$@"; }

agent_pid_alive() { pid_runs "$AGENT_ETC/$1.pid"; }

agent_start() { # NAME COMMAND...: start a daemon in its own session, log and pid in $AGENT_ETC
  local name=$1; shift
  agent_pid_alive "$name" && return 0
  setsid nohup "$@" >>"$AGENT_ETC/$name.log" 2>&1 </dev/null &
  echo $! >"$AGENT_ETC/$name.pid"
}

write_agent_config() {
  local pause=$1
  mkdir -p "$AGENT_ETC/cni" "$AGENT_STATE" "$AGENT_RUN"
  # restrict_oom_score_adj: these machines' capability bounding set lacks CAP_SYS_RESOURCE, so runc cannot
  # give a sandbox the negative OOM score the CRI plugin asks for ("can't get final child's PID from pipe").
  cat >"$AGENT_ETC/containerd.toml" <<TOML
version = 2
root = "$AGENT_STATE/containerd"
state = "$AGENT_RUN/containerd"
[grpc]
  address = "$CTRD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "docker.io/$pause"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    # Lab stand-in for the NVIDIA container runtime: same handler name, plain runc underneath.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$AGENT_ETC/cni"
TOML
  # firewall: the Docker Engine sets the FORWARD policy to DROP, and bridged pod-to-pod traffic passes FORWARD
  # (br_netfilter); the plugin accepts each pod's traffic there, as it does on hosts that run Docker beside CNI.
  cat >"$AGENT_ETC/cni/10-sophia-lab.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "sophia-lab", "plugins": [
  {"type": "bridge", "bridge": "cni-sophia0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$AGENT_POD_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall", "backend": "iptables"}
]}
JSON
  cat >"$AGENT_ETC/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
# These machines run cgroup v1 (in maintenance since Kubernetes 1.31); 1.34 still runs on it when told so.
failCgroupV1: false
containerRuntimeEndpoint: unix://$CTRD_SOCK
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS]
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $CLUSTER_DIR/pki/ca.crt}
authorization: {mode: Webhook}
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
readOnlyPort: 0
YAML
}

import_images() { # the lab images the Docker Engine has, into the agent's containerd (skipped when present)
  local img have missing=()
  have=$(ctr images ls -q)
  for img in "$@"; do
    grep -qx "docker.io/$img" <<<"$have" || missing+=("$img")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "importing ${missing[*]} into the agent's containerd"
  docker save "${missing[@]}" | ctr images import - >/dev/null || die "could not import ${missing[*]} into the agent's containerd"
}

agent_up() {
  [ "$AGENT" = 1 ] || return 0
  local pause mcp waited=0
  pause=$(cat "$SOPHIA_CACHE/images/pause.current" 2>/dev/null) || die "no pause image: run scripts/setup.sh images first."
  mcp=$(cat "$SOPHIA_CACHE/images/mcp-server.current" 2>/dev/null) || die "no sample MCP image: run scripts/setup.sh images first."
  command -v containerd >/dev/null && [ -x /usr/lib/cni/bridge ] && command -v conntrack >/dev/null \
    && command -v ipset >/dev/null && [ -x "$BIN/kube-router" ] \
    || die "the agent needs containerd, containernetworking-plugins, conntrack, ipset and kube-router: run scripts/setup.sh."
  write_agent_config "$pause"
  agent_start containerd containerd --config "$AGENT_ETC/containerd.toml"
  until [ -S "$CTRD_SOCK" ] && ctr version >/dev/null 2>&1; do
    [ $waited -ge 30 ] && { tail -n 15 "$AGENT_ETC/containerd.log" >&2; die "the agent's containerd did not start (log: $AGENT_ETC/containerd.log)"; }
    sleep 1; waited=$((waited + 1))
  done
  import_images "$pause" "$mcp" sophia-platform/mcp-server:lab $(addon_images)
  # :lab names the image set-up built last (as in the Docker Engine): an import skips a tag it has, so a rebuilt
  # image would leave the agent's :lab on the previous build
  ctr images tag --force "docker.io/$mcp" docker.io/sophia-platform/mcp-server:lab >/dev/null \
    || die "could not tag $mcp as sophia-platform/mcp-server:lab in the agent's containerd"
  agent_start kubelet "$KUBE/kubelet" --config "$AGENT_ETC/kubelet.yaml" --kubeconfig "$KUBECONFIG_PATH" \
    --root-dir "$AGENT_STATE/kubelet" --cert-dir "$AGENT_ETC/pki" --hostname-override "$AGENT_NAME" \
    --node-labels "gpu=true,sophia.ai/lab-node=real"
  agent_start kube-proxy "$KUBE/kube-proxy" --kubeconfig "$KUBECONFIG_PATH" --hostname-override "$AGENT_NAME" \
    --cluster-cidr "$POD_CIDR" --proxy-mode iptables
  waited=0
  until [ "$(kubectl get node "$AGENT_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
    [ $waited -ge 90 ] && { tail -n 15 "$AGENT_ETC/kubelet.log" >&2; die "the agent node did not become Ready in 90 s (log: $AGENT_ETC/kubelet.log)"; }
    sleep 1; waited=$((waited + 1))
  done
  # NetworkPolicy: kube-router's policy controller alone (iptables and ipsets), as K3s runs it in its agent.
  # It looks its node up when it starts, so it starts once the node has registered.
  agent_start kube-router "$BIN/kube-router" --kubeconfig "$KUBECONFIG_PATH" --hostname-override "$AGENT_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --service-cluster-ip-range "$SERVICE_CIDR" --health-port 20244 --metrics-port 0
  # Stand-in for the NVIDIA device plugin: advertise GPUs through the node's status (no GPU exists here).
  kubectl patch node "$AGENT_NAME" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$AGENT_GPUS\"}}}" >/dev/null
  printf 'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: nvidia\nhandler: nvidia\n' | kubectl apply -f - >/dev/null
  log "agent $AGENT_NAME Ready (real pods; $AGENT_GPUS stand-in GPUs; runtime class nvidia)"
}

image_of() { cat "$SOPHIA_CACHE/images/$1.current" 2>/dev/null || die "no $1 image: run scripts/setup.sh images first."; }

# The images the lab's add-ons and playbooks run on the agent: the add-ons', and the NVIDIA device plugin's (role
# nvidia_plugin in make phase2 and its molecule scenario; set-up builds it, imagePullPolicy Never on the lab).
addon_images() { local n; for n in base coredns local-path-provisioner nvidia-device-plugin; do image_of "$n"; done; }

go_version_of() { awk -v n="$1" '$1 == n {print $3}' "$ROOT/requirements/go-tools.txt"; }

render_addons() {
  local f
  for f in "$ADDONS_DIR"/*.yaml; do
    echo "---"
    sed -e "s|@COREDNS_IMAGE@|docker.io/$(image_of coredns)|g" -e "s|@COREDNS_VERSION@|$(go_version_of coredns)|g" \
      -e "s|@LPP_IMAGE@|docker.io/$(image_of local-path-provisioner)|g" -e "s|@LPP_VERSION@|$(go_version_of local-path-provisioner)|g" \
      -e "s|@HELPER_IMAGE@|docker.io/$(image_of base)|g" -e "s|@STORAGE_DIR@|$AGENT_STATE/storage|g" \
      -e "s|@CLUSTER_DNS@|$CLUSTER_DNS|g" -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" "$f"
  done
}

# Applied with server-side apply (idempotent); skipped when the rendered manifests are the ones last applied
# and every add-on is ready, so that reusing a running lab stays quick.
addons_up() {
  [ "$AGENT" = 1 ] || return 0
  local rendered sum stamp="$CLUSTER_DIR/addons.sha256" w
  rendered=$(render_addons)
  sum=$(printf '%s' "$rendered" | sha256sum | cut -c1-64)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ] && addons_ready; then return 0; fi
  printf '%s\n' "$rendered" | kubectl apply --server-side --force-conflicts --field-manager sophia-lab -f - >/dev/null \
    || die "could not apply the lab's add-ons (lab/addons/*.yaml)"
  for w in deployment/coredns deployment/local-path-provisioner; do
    kubectl -n kube-system rollout status "$w" --timeout=120s >/dev/null 2>&1 || {
      kubectl -n kube-system get pods -o wide >&2
      die "add-on $w did not become ready in 120 s (kubectl -n kube-system describe $w)"; }
  done
  printf '%s\n' "$sum" >"$stamp"
  log "add-ons ready: CoreDNS at $CLUSTER_DNS, StorageClass local-path (default)"
}

addons_ready() {
  local w
  for w in deployment/coredns deployment/local-path-provisioner; do
    kubectl -n kube-system rollout status "$w" --timeout=1s >/dev/null 2>&1 || return 1
  done
}

agent_down() {
  local name t
  for name in kube-router kube-proxy kubelet; do
    if agent_pid_alive "$name"; then kill "$(cat "$AGENT_ETC/$name.pid")"; fi
  done
  if [ -S "$CTRD_SOCK" ]; then
    for t in $(ctr tasks ls -q 2>/dev/null); do ctr tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
  fi
  if agent_pid_alive containerd; then kill "$(cat "$AGENT_ETC/containerd.pid")"; sleep 1; fi
  # pods' volume and sandbox mounts first: never rm -rf through a mount
  grep -E " ($AGENT_STATE|$AGENT_RUN)" /proc/mounts | awk '{print $2}' | sort -r | xargs -r umount -l 2>/dev/null || true
  if [ -x "$KUBE/kube-proxy" ]; then "$KUBE/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  if [ -x "$BIN/kube-router" ]; then "$BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true; fi
  ip link del cni-sophia0 2>/dev/null || true
  rm -rf "$AGENT_STATE" "$AGENT_RUN" /var/lib/cni/networks/sophia-lab "$AGENT_ETC"/*.pid
}

# Stop kube-apiserver (SIGTERM, then SIGKILL after 10 s), wait until it is gone, then let kwokctl start
# what is down again (kube-controller-manager and kube-scheduler may exit while it is away).
restart_apiserver() {
  local pid waited=0
  pid=$(cat "$CLUSTER_DIR/pids/kube-apiserver.pid")
  kill -TERM "$pid"
  # Open watches hold a graceful shutdown for up to a minute; after 10 s, stop it as a crash would.
  while kill -0 "$pid" 2>/dev/null; do
    [ $waited -eq 10 ] && kill -KILL "$pid" 2>/dev/null
    [ $waited -ge 30 ] && die "kube-apiserver (pid $pid) did not exit"
    sleep 1; waited=$((waited + 1))
  done
  api_ready && die "an API server still answers after kube-apiserver (pid $pid) exited"
  kwokctl start cluster >/dev/null 2>&1 || die "kwokctl could not start kube-apiserver again (logs: $CLUSTER_DIR/logs)"
  wait_api
  log "kube-apiserver restarted (was pid $pid, now $(cat "$CLUSTER_DIR/pids/kube-apiserver.pid"))"
}

down() {
  agent_down
  if [ -d "$CLUSTER_DIR" ]; then
    kwokctl delete cluster --kubeconfig "$KWOK_WORKDIR/kubeconfig.yaml" >/dev/null 2>&1 || true
    rm -rf "$CLUSTER_DIR"
    log "cluster $NAME deleted"
  else
    log "no cluster $NAME"
  fi
}

status() {
  if api_ready; then
    echo "cluster $NAME: running ($(kubectl get nodes --no-headers | wc -l) nodes)"
    echo "KUBECONFIG=$KUBECONFIG_PATH"
  else
    echo "cluster $NAME: not running"
    return 1
  fi
}

cmd=${1:-}; shift || true
case "$cmd" in
  up)
    gpu=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --gpu-nodes) gpu=${2:?--gpu-nodes takes a count}; shift 2 ;;
        *) die "unknown option '$1' (up [--gpu-nodes N])" ;;
      esac
    done
    up "$gpu" ;;
  nodes) nodes "${1:?nodes takes a count}" ;;
  restart-apiserver) restart_apiserver ;;
  down) down ;;
  status) status ;;
  *) die "usage: scripts/lab-cluster.sh up [--gpu-nodes N] | nodes N | restart-apiserver | down | status" ;;
esac
