#!/usr/bin/env bash
# The multi-node Swarm lab: one manager and SOPHIA_SWARM_WORKERS workers (default 2) as Docker-in-Docker
# containers on the local engine, with the sample stack deployed across them.
#
#   scripts/swarm-lab.sh up [--no-stack] [--redeploy]   start (or reuse) the lab; last line DOCKER_HOST=<manager socket>
#       --no-stack: nodes and Swarm only. The stack is deployed when it is missing a service or its files or image
#       tag changed, so a second `up` changes nothing (and keeps what tests changed in its services);
#       --redeploy: `docker stack deploy` again all the same, which puts every service back to the stack file.
#   scripts/swarm-lab.sh down                            remove the node containers, their volumes, the network and
#                                                        the state directory (the cached node image stays)
#   scripts/swarm-lab.sh status                          nodes, the stack's services and the address pool; exit 1 if down
#
# Each node runs its own dockerd (Debian's docker.io, image sophia-platform/swarm-node, built on demand by
# scripts/build-images.sh swarm-node) in a container with the capability set of ../shared/notes/lab-facts.md
# (--privileged fails on these machines), its /var/lib/docker on a Docker volume with the inner storage driver
# overlay2 (vfs only as a fallback: it copies every image layer per container), and a second API socket in a
# bind-mounted folder, so that the controller reaches each node from the host:
#   DOCKER_HOST=unix://$SOPHIA_CACHE/lab/swarm/<manager|worker1|...>/docker.sock    (root only: folders 0700)
# worker1 is the GPU node: label gpu=true and eight Swarm generic resources NVIDIA-GPU (fake ids lab-gpu-N, as the
# host engine's: no GPU exists here), so services that reserve NVIDIA-GPU schedule there alone.
#
# No IPVS in these machines' kernel: Swarm's ingress mesh and VIPs do not work, so the sample stack publishes
# its ports in host mode (reachable at each node's IP on network sophia-swarm-lab, e.g. 172.31.250.11:9025) and
# its services reach each other by DNS round robin (endpoint_mode: dnsrr) on the overlay network.
#
# Settings (environment): SOPHIA_SWARM_WORKERS (2), SOPHIA_SWARM_GPUS (8, on worker1: an 8-GPU host; the sample stack reserves 4), SOPHIA_SWARM_TIMEOUT (300 s for
# the stack to converge), SOPHIA_SWARM_SUBNET (172.31.250.0/24, a /24 for the nodes' bridge network),
# SOPHIA_SWARM_ADDR_POOL (172.30.0.0/16, Swarm's default address pool, /24 per overlay network; read at swarm init),
# SOPHIA_SWARM_STORAGE_DRIVER (the inner storage driver; default: overlay2, vfs when overlay2 fails),
# SOPHIA_SWARM_NAME (sophia-swarm: a lab of another name beside it needs another SOPHIA_SWARM_SUBNET too).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

log() { printf 'swarm-lab: [+%ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'swarm-lab: ERROR: %s\n' "$*" >&2; exit 1; }

# The lab's name: containers NAME-manager, NAME-worker1..., volumes NAME-<node>-data, network NAME-lab, state in
# $SOPHIA_CACHE/lab/swarm (another name: lab/<name without sophia->; the error tests use one beside the lab).
PREFIX=${SOPHIA_SWARM_NAME:-sophia-swarm}
STATE="$SOPHIA_CACHE/lab/${PREFIX#sophia-}"
LOCK="$STATE.lock"
NETWORK="$PREFIX-lab"
LABEL=sophia.ai/swarm-lab
NODE_LABEL=sophia.ai/swarm-lab.node
SUBNET=${SOPHIA_SWARM_SUBNET:-172.31.250.0/24}
NET_PREFIX=${SUBNET%.0/24}
# Production Swarm allocates overlay networks from 10.0.0.0/8, which holds K3s's 10.42.0.0/16 and 10.43.0.0/16 (and
# the lab cluster's): the lab uses a pool outside 10/8, the host's docker0 (172.17/16) and the nodes' bridge.
ADDR_POOL=${SOPHIA_SWARM_ADDR_POOL:-172.30.0.0/16}
ADDR_POOL_MASK=24
WORKERS=${SOPHIA_SWARM_WORKERS:-2}
GPUS=${SOPHIA_SWARM_GPUS:-8}
TIMEOUT=${SOPHIA_SWARM_TIMEOUT:-300}
NODE_WAIT=60
STACK=sophia
STACK_FILE="$ROOT/examples/sophia-mcp-stack.yml"
# Four critical services with two replicas (one per node): the production shape phase 1 must keep serving.
STACK_OVERRIDE="$ROOT/examples/sophia-mcp-stack.ha.yml"
SECRET=mcp_api_key
GPU_NODE=worker1

# The controller's own engine is the local one: never a node of this lab (up prints DOCKER_HOST=<manager>).
case "${DOCKER_HOST:-}" in *"$STATE"/*) unset DOCKER_HOST ;; esac

container() { printf '%s-%s' "$PREFIX" "$1"; }
volume() { printf '%s-%s-data' "$PREFIX" "$1"; }
sock() { printf '%s/%s/docker.sock' "$STATE" "$1"; }
node_ip() {
  case "$1" in
    manager) printf '%s.10' "$NET_PREFIX" ;;
    worker*) printf '%s.%d' "$NET_PREFIX" $((10 + ${1#worker})) ;;
  esac
}
# The docker CLI against one node's engine.
nd() { local n=$1; shift; docker -H "unix://$(sock "$n")" "$@"; }
mgr() { nd manager "$@"; }
nodes() { local i; echo manager; for ((i = 1; i <= WORKERS; i++)); do echo "worker$i"; done; }

CHANGES=()
changed() { CHANGES+=("$*"); log "$*"; }

check_settings() {
  if ! [[ $WORKERS =~ ^[0-9]+$ ]] || [ "$WORKERS" -lt 1 ] || [ "$WORKERS" -gt 50 ]; then
    die "SOPHIA_SWARM_WORKERS must be a number from 1 to 50 (worker1 is the GPU node), not '$WORKERS'."
  fi
  [[ $GPUS =~ ^[0-9]+$ ]] || die "SOPHIA_SWARM_GPUS must be a number, not '$GPUS'."
  [[ $TIMEOUT =~ ^[0-9]+$ ]] || die "SOPHIA_SWARM_TIMEOUT must be a number of seconds, not '$TIMEOUT'."
  [[ $SUBNET =~ ^[0-9]+\.[0-9]+\.[0-9]+\.0/24$ ]] || die "SOPHIA_SWARM_SUBNET must be a /24 such as 172.31.250.0/24, not '$SUBNET'."
  local longest
  longest="unix://$(sock "worker$WORKERS")"
  [ ${#longest} -lt 100 ] || die "the node socket path $longest is too long for a unix socket (107 bytes):" \
    "set SOPHIA_CACHE to a shorter folder."
}

require_engine() {
  command -v docker >/dev/null || die "the docker command is missing: apt-get install docker.io (make setup does)."
  timeout 10 docker info >/dev/null 2>&1 || die "no Docker Engine answers on this machine" \
    "(DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}): start one with 'scripts/setup.sh engine'" \
    "(make setup does), then run this again."
}

lock() {
  mkdir -p "$SOPHIA_CACHE/lab"
  exec 9>"$LOCK"
  flock -w 900 9 || die "another scripts/swarm-lab.sh has held $LOCK for 15 minutes; is one stuck?"
}

# --- nodes -------------------------------------------------------------------------------------------------
ensure_node_image() {
  "$ROOT/scripts/build-images.sh" swarm-node || die "the node image could not be built (above)."
  IMAGE=$(cat "$SOPHIA_CACHE/images/swarm-node.current")
}

ensure_network() {
  local have
  if have=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK" 2>/dev/null); then
    [ "$have" = "$SUBNET" ] || die "network $NETWORK exists with subnet $have, not $SUBNET:" \
      "run 'scripts/swarm-lab.sh down' first to change it."
    return 0
  fi
  local err
  err=$(docker network create --driver bridge --subnet "$SUBNET" --gateway "$NET_PREFIX.1" \
        --label "$LABEL=$PREFIX" "$NETWORK" 2>&1 >/dev/null) \
    || die "could not create network $NETWORK ($SUBNET): $err. If it overlaps another network or route," \
           "pick a free /24 with SOPHIA_SWARM_SUBNET."
  changed "network $NETWORK ($SUBNET) created"
}

# dockerd's own arguments for a node (the entry point adds its sockets, storage driver and cgroup parent).
node_args() {
  local i
  if [ "$1" = "$GPU_NODE" ]; then
    for ((i = 0; i < GPUS; i++)); do printf '%s\n' --node-generic-resource "NVIDIA-GPU=lab-gpu-$i"; done
  fi
}

node_config() {
  local args
  args=$(node_args "$1" | tr '\n' ' ')
  printf '%s' "$IMAGE $DRIVER $(node_ip "$1") $SUBNET $args" | sha256sum | cut -c1-12
}

node_running() { [ "$(docker inspect -f '{{.State.Running}}' "$(container "$1")" 2>/dev/null)" = true ]; }
node_answers() { timeout 5 docker -H "unix://$(sock "$1")" version >/dev/null 2>&1; }

remove_node() {
  docker rm -f "$(container "$1")" >/dev/null 2>&1 || true
  docker volume rm "$(volume "$1")" >/dev/null 2>&1 || true
  rm -rf "${STATE:?}/$1"
}

start_node() {
  local n=$1 c args=()
  c=$(container "$n")
  mapfile -t args < <(node_args "$n")
  mkdir -p "$STATE/$n" && chmod 0700 "$STATE/$n"
  docker volume create --label "$LABEL=$PREFIX" --label "$NODE_LABEL=$n" "$(volume "$n")" >/dev/null
  docker run -d --name "$c" --hostname "$c" --init --restart unless-stopped \
    --label "$LABEL=$PREFIX" --label "$NODE_LABEL=$n" --label "$LABEL.config=$(node_config "$n")" \
    --network "$NETWORK" --ip "$(node_ip "$n")" \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /tmp \
    -v "$(volume "$n"):/var/lib/docker" -v "$STATE/$n:/sophia-lab" \
    -e "SOPHIA_STORAGE_DRIVER=$DRIVER" \
    "$IMAGE" "${args[@]}" >/dev/null
}

# 0 when the node's engine answers within NODE_WAIT seconds, 1 when it exited or did not answer.
# The node containers restart unless stopped (so that the lab survives an engine restart): a dockerd that exits
# shows as a restart, not as a stopped container.
wait_node() {
  local n=$1 waited=0 restarts
  restarts=$(restart_count "$n")
  until node_answers "$n"; do
    node_running "$n" || return 1
    [ "$(restart_count "$n")" = "$restarts" ] || return 1
    [ $waited -ge $NODE_WAIT ] && return 1
    sleep 1; waited=$((waited + 1))
  done
}
restart_count() { docker inspect -f '{{.RestartCount}} {{.State.Restarting}}' "$(container "$1")" 2>/dev/null || true; }

node_failure() {
  local n=$1 logf="$STATE/$1/dockerd.log" what
  if node_running "$n" && [ "$(restart_count "$n")" = "0 false" ]; then
    what="did not answer on $(sock "$n") within ${NODE_WAIT}s"
  else
    what="exited during start-up"
  fi
  # stop the restart loop, keep the container for a look (down removes it); a start under way ends as the ones
  # before it did: let it, so that the log's tail holds dockerd's last words
  docker update --restart no "$(container "$n")" >/dev/null 2>&1 || true
  [ "$what" = "exited during start-up" ] && { timeout 15 docker wait "$(container "$n")" >/dev/null 2>&1 || true; }
  local out
  # dockerd's gRPC chatter hides its last words: leave it out of the tail
  { echo "--- tail of $logf (without module=grpc lines)"; grep -v 'module=grpc' "$logf" 2>/dev/null | tail -n 15 || echo "(no log)"; } >&2
  out=$(docker logs --tail 10 "$(container "$n")" 2>&1 || true)
  [ -z "$out" ] || printf -- '--- docker logs %s (tail)\n%s\n' "$(container "$n")" "$out" >&2
  die "the Docker Engine in node $(container "$n") $what (log tail above; whole log: $logf)." \
      "Run 'scripts/swarm-lab.sh down', then 'up' again; if the log names the storage driver, set" \
      "SOPHIA_SWARM_STORAGE_DRIVER=vfs (slow) and retry."
}

# The inner storage driver: overlay2 on the node's volume (an ext4 folder of the outer engine, not overlay, so
# overlay2 nests); vfs only when overlay2 does not start here (it copies every layer per container).
pick_driver() {
  DRIVER=${SOPHIA_SWARM_STORAGE_DRIVER:-}
  [ -n "$DRIVER" ] || DRIVER=$(cat "$STATE/storage-driver" 2>/dev/null || true)
  # a manager that runs already says which driver it was given
  [ -n "$DRIVER" ] || DRIVER=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(container manager)" 2>/dev/null \
                               | sed -n 's/^SOPHIA_STORAGE_DRIVER=//p' || true)
  if [ -n "$DRIVER" ]; then
    printf '%s\n' "$DRIVER" >"$STATE/storage-driver"
    return 0
  fi
  DRIVER=overlay2
  start_node manager
  if wait_node manager; then
    changed "node $(container manager) started (storage driver overlay2)"
  else
    grep -iE 'overlay|graphdriver|storage' "$STATE/manager/dockerd.log" 2>/dev/null | tail -n 3 >&2 || true
    log "overlay2 did not start in the node (above); falling back to vfs (a full copy of every layer per container)"
    remove_node manager
    DRIVER=vfs
    start_node manager
    wait_node manager || node_failure manager
    changed "node $(container manager) started (storage driver vfs)"
  fi
  printf '%s\n' "$DRIVER" >"$STATE/storage-driver"
}

ensure_node() {
  local n=$1 c have
  c=$(container "$n")
  have=$(docker inspect -f "{{index .Config.Labels \"$LABEL.config\"}}" "$c" 2>/dev/null || true)
  if [ -n "$have" ] && [ "$have" = "$(node_config "$n")" ]; then
    if ! node_running "$n"; then
      mkdir -p "$STATE/$n" && chmod 0700 "$STATE/$n"
      docker start "$c" >/dev/null
      changed "node $c started again"
    elif [ ! -S "$(sock "$n")" ]; then
      # its bind-mounted folder was removed under it: a restart mounts the folder anew
      mkdir -p "$STATE/$n" && chmod 0700 "$STATE/$n"
      docker restart "$c" >/dev/null
      changed "node $c restarted (its socket folder had gone)"
    fi
  else
    if [ -n "$have" ]; then
      changed "node $c recreated (its image or settings changed)"
      remove_node "$n"
    fi
    start_node "$n"
    [ -n "$have" ] || changed "node $c started ($(node_ip "$n"))"
  fi
  wait_node "$n" || node_failure "$n"
}

# Workers beyond SOPHIA_SWARM_WORKERS, left by an earlier `up` with more.
remove_extra_workers() {
  local n i
  for n in $(docker ps -a --filter "label=$LABEL=$PREFIX" --format "{{.Label \"$NODE_LABEL\"}}"); do
    case "$n" in worker*) i=${n#worker} ;; *) continue ;; esac
    [ "$i" -gt "$WORKERS" ] || continue
    remove_node "$n"
    changed "node $(container "$n") removed (SOPHIA_SWARM_WORKERS=$WORKERS)"
  done
}

# --- images ------------------------------------------------------------------------------------------------
mcp_image() {
  local current tag=lab
  current=$(cat "$SOPHIA_CACHE/images/mcp-server.current" 2>/dev/null || true)
  [ -n "$current" ] && tag=${current##*:}
  MCP_TAG=$tag
  MCP_REF="sophia-platform/mcp-server:$tag"
  MCP_ID=$(docker image inspect -f '{{.Id}}' "$MCP_REF" 2>/dev/null) \
    || die "the sample image $MCP_REF is not on this engine: run 'make setup' (scripts/build-images.sh) first."
}

# docker save | docker load into each node that lacks the image (no registry); compared by image ID.
load_images() {
  local n refs=("$MCP_REF")
  [ "$MCP_TAG" != lab ] && [ "$(docker image inspect -f '{{.Id}}' sophia-platform/mcp-server:lab 2>/dev/null)" = "$MCP_ID" ] \
    && refs+=(sophia-platform/mcp-server:lab)
  for n in $(nodes); do
    [ "$(nd "$n" image inspect -f '{{.Id}}' "$MCP_REF" 2>/dev/null)" = "$MCP_ID" ] && continue
    docker save "${refs[@]}" | nd "$n" load -q >/dev/null \
      || die "loading $MCP_REF into $(container "$n") failed (docker save | docker load); its log: $STATE/$n/dockerd.log"
    changed "image $MCP_REF loaded into $(container "$n")"
  done
}

# --- Swarm -------------------------------------------------------------------------------------------------
ensure_swarm() {
  local state out
  state=$(mgr info -f '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')
  case "$state" in
    "active true") ;;
    "inactive "*)
      # swarm init prints the join command with its token: keep its output to ourselves.
      out=$(mgr swarm init --advertise-addr "$(node_ip manager)" --listen-addr "$(node_ip manager):2377" \
            --default-addr-pool "$ADDR_POOL" --default-addr-pool-mask-length "$ADDR_POOL_MASK" 2>&1) \
        || die "swarm init on $(container manager) failed: $(printf '%s' "$out" | grep -v -i token | tail -n 3)"
      changed "Swarm initialised on $(container manager) (address pool $ADDR_POOL, /$ADDR_POOL_MASK per network)"
      ;;
    *) die "the manager $(container manager) is in Swarm state '$state': run 'scripts/swarm-lab.sh down', then 'up'." ;;
  esac
}

ensure_workers() {
  local n state node_id members token="" out
  members=$(mgr node ls -q)
  for n in $(nodes); do
    [ "$n" = manager ] && continue
    read -r state node_id < <(nd "$n" info -f '{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}')
    if [ "$state" = active ] && grep -qx "$node_id" <<<"$members"; then continue; fi
    if [ "$state" != inactive ]; then
      # a member of an earlier Swarm (the manager was recreated), or stuck joining
      nd "$n" swarm leave --force >/dev/null 2>&1 || true
    fi
    [ -n "$token" ] || token=$(mgr swarm join-token -q worker)
    out=$(nd "$n" swarm join --token "$token" --advertise-addr "$(node_ip "$n")" --listen-addr "$(node_ip "$n"):2377" \
          "$(node_ip manager):2377" 2>&1) \
      || die "$(container "$n") could not join the Swarm at $(node_ip manager):2377:" \
             "$(printf '%s' "$out" | grep -v -i token | tail -n 3). Check that the nodes reach each other on" \
             "network $NETWORK (docker network inspect $NETWORK), then run 'scripts/swarm-lab.sh down' and 'up'."
    changed "$(container "$n") joined the Swarm as a worker"
  done
  unset token
}

# Node entries left Down by recreated or removed nodes.
prune_nodes() {
  local id host status current=" "
  local n
  for n in $(nodes); do current+="$(nd "$n" info -f '{{.Swarm.NodeID}}') "; done
  while read -r id host status; do
    [[ $host == "$PREFIX"-* ]] || continue
    [[ $current == *" $id "* ]] && continue
    mgr node rm --force "$id" >/dev/null
    changed "stale Swarm node $host ($id, $status) removed"
  done < <(mgr node ls --format '{{.ID}} {{.Hostname}} {{.Status}}')
}

wait_ready() {
  local waited=0 want=$((WORKERS + 1)) ready
  while :; do
    ready=$(mgr node ls --format '{{.Status}} {{.Availability}}' | grep -c '^Ready Active$' || true)
    [ "$ready" -ge "$want" ] && return 0
    if [ $waited -ge $NODE_WAIT ]; then
      mgr node ls >&2 || true
      die "only $ready of $want Swarm nodes are Ready and Active after ${NODE_WAIT}s (above)."
    fi
    sleep 1; waited=$((waited + 1))
  done
}

ensure_labels() {
  local n id gpu
  for n in $(nodes); do
    id=$(nd "$n" info -f '{{.Swarm.NodeID}}')
    gpu=$(mgr node inspect -f '{{index .Spec.Labels "gpu"}}' "$id")
    if [ "$n" = "$GPU_NODE" ] && [ "$gpu" != true ]; then
      mgr node update --label-add gpu=true "$id" >/dev/null
      changed "label gpu=true set on $(container "$n")"
    elif [ "$n" != "$GPU_NODE" ] && [ -n "$gpu" ]; then
      mgr node update --label-rm gpu "$id" >/dev/null
      changed "label gpu removed from $(container "$n") (only $(container "$GPU_NODE") is a GPU node)"
    fi
  done
  id=$(nd "$GPU_NODE" info -f '{{.Swarm.NodeID}}')
  local have
  have=$(mgr node inspect -f '{{range .Description.Resources.GenericResources}}{{with .NamedResourceSpec}}{{.Kind}}{{"\n"}}{{end}}{{end}}' "$id" \
         | grep -c '^NVIDIA-GPU$' || true)
  [ "$have" -eq "$GPUS" ] || die "$(container "$GPU_NODE") advertises $have NVIDIA-GPU generic resources, not $GPUS:" \
    "check --node-generic-resource in $STATE/$GPU_NODE/dockerd.log; 'scripts/swarm-lab.sh down' and 'up' recreate it."
}

# --- the sample stack --------------------------------------------------------------------------------------
stack_services() { awk '/^services:/ {s = 1; next} /^[^ #]/ {s = 0} s && /^  [a-z0-9][a-z0-9_-]*:/ {sub(":.*", ""); print $1}' "$STACK_FILE"; }

ensure_secret() {
  mgr secret inspect "$SECRET" >/dev/null 2>&1 && return 0
  local file="$STATE/$SECRET"
  if [ ! -s "$file" ]; then
    (umask 077 && od -An -tx1 -N20 /dev/urandom | tr -d ' \n' >"$file")
  fi
  chmod 0600 "$file"
  mgr secret create "$SECRET" "$file" >/dev/null
  changed "secret $SECRET created (value in $file, 0600)"
}

ensure_stack() {
  local key want have missing=() s log="$STATE/stack-deploy.log"
  key=$( { cat "$STACK_FILE" "$STACK_OVERRIDE" "$(dirname "$STACK_FILE")"/config/*; echo "$STACK $MCP_TAG"; } | sha256sum | cut -c1-12)
  want=$(stack_services)
  have=$(mgr service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}}')
  for s in $want; do grep -qx "${STACK}_$s" <<<"$have" || missing+=("$s"); done
  if [ "$REDEPLOY" = 0 ] && [ ${#missing[@]} -eq 0 ] && [ "$(cat "$STATE/stack.key" 2>/dev/null)" = "$key" ]; then
    return 0
  fi
  ensure_secret
  # Relative paths in the stack file (its config) are read from the stack file's folder.
  if ! (cd "$(dirname "$STACK_FILE")" && MCP_IMAGE_TAG=$MCP_TAG DOCKER_HOST="unix://$(sock manager)" \
          docker stack deploy --detach=true --resolve-image never -c "$STACK_FILE" -c "$STACK_OVERRIDE" "$STACK") >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "docker stack deploy of $STACK_FILE on $(container manager) failed (above; log: $log)."
  fi
  printf '%s\n' "$key" >"$STATE/stack.key"
  if [ ${#missing[@]} -gt 0 ]; then
    changed "stack $STACK deployed (${#missing[@]} services created, image tag $MCP_TAG)"
  else
    changed "stack $STACK deployed again (image tag $MCP_TAG)"
  fi
}

# Every service of the stack with all its replicas running (tasks with a health check count once healthy).
wait_converged() {
  local waited=0 want pending
  want=$(stack_services | wc -l)
  while :; do
    pending=$(mgr service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Name}} {{.Replicas}}' \
              | awk -v want="$want" '{split($2, r, "/"); n++; if (r[1] != r[2]) print $1 " " $2} END {if (n < want) print "(only " n " of " want " services exist)"}')
    [ -z "$pending" ] && return 0
    if [ $waited -ge "$TIMEOUT" ]; then
      local name replicas
      {
        echo "services that did not converge (running/desired), with their latest tasks:"
        while read -r name replicas; do
          [[ $name == \(* ]] && { echo "  $name $replicas"; continue; }
          echo "  $name $replicas"
          mgr service ps --no-trunc --format '    {{.Node}} {{.CurrentState}} {{.Error}}' "$name" 2>/dev/null | head -n 3
        done <<<"$pending"
      } >&2
      die "$(grep -c . <<<"$pending") of $want services of stack $STACK did not converge within ${TIMEOUT}s (above)." \
          "Check the load (uptime: health checks time out above ~20) and SOPHIA_SWARM_TIMEOUT; 'docker service ps'" \
          "with DOCKER_HOST=unix://$(sock manager) shows more."
    fi
    sleep 3; waited=$((waited + 3))
  done
}

# --- commands ----------------------------------------------------------------------------------------------
up() {
  local no_stack=0 t0 n
  REDEPLOY=0
  for arg in "$@"; do
    case "$arg" in
      --no-stack) no_stack=1 ;;
      --redeploy) REDEPLOY=1 ;;
      *) die "unknown option '$arg' (up [--no-stack] [--redeploy])" ;;
    esac
  done
  t0=$(date +%s)
  check_settings
  require_engine
  lock
  mkdir -p "$STATE" && chmod 0700 "$STATE"
  ensure_node_image
  mcp_image
  ensure_network
  pick_driver
  for n in $(nodes); do ensure_node "$n"; done
  remove_extra_workers
  load_images
  ensure_swarm
  ensure_workers
  prune_nodes
  wait_ready
  ensure_labels
  if [ $no_stack = 0 ]; then
    ensure_stack
    wait_converged
  fi
  printf 'swarm-lab: nodes:'
  for n in $(nodes); do printf ' %s=%s' "$(container "$n")" "$(node_ip "$n")"; done
  printf '\nswarm-lab: gpu node: %s (gpu=true, %s NVIDIA-GPU); address pool %s; storage driver %s\n' \
    "$(container "$GPU_NODE")" "$GPUS" "$ADDR_POOL" "$DRIVER"
  [ $no_stack = 1 ] || printf 'swarm-lab: stack %s: %s services converged (image tag %s)\n' "$STACK" "$(stack_services | wc -l)" "$MCP_TAG"
  if [ ${#CHANGES[@]} -eq 0 ]; then
    log "reusing the running lab: nothing changed"
    echo "swarm-lab: changed: nothing"
  else
    printf 'swarm-lab: changed: %d\n' "${#CHANGES[@]}"
    printf 'swarm-lab:   %s\n' "${CHANGES[@]}"
  fi
  echo "swarm-lab: up in $(($(date +%s) - t0))s"
  echo "DOCKER_HOST=unix://$(sock manager)"
}

down() {
  require_engine
  lock
  local ids
  ids=$(docker ps -aq --filter "label=$LABEL=$PREFIX")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  ids=$(docker volume ls -q --filter "label=$LABEL=$PREFIX")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker volume rm $ids >/dev/null
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then docker network rm "$NETWORK" >/dev/null; fi
  rm -rf "$STATE"
  log "removed: node containers, their volumes, network $NETWORK and $STATE (the node image stays cached)"
}

status() {
  require_engine
  if ! node_running manager || ! node_answers manager; then
    echo "swarm-lab: down (no answer from $(container manager)); start it with scripts/swarm-lab.sh up"
    return 1
  fi
  echo "DOCKER_HOST=unix://$(sock manager)"
  echo "storage driver: $(mgr info -f '{{.Driver}}')"
  mgr info -f 'address pool: {{range .Swarm.Cluster.DefaultAddrPool}}{{.}} {{end}}(/{{.Swarm.Cluster.SubnetSize}} per network)'
  echo "nodes:"
  # shellcheck disable=SC2046,SC2016
  mgr node inspect -f '  {{.Description.Hostname}} {{.Status.Addr}} role={{.Spec.Role}} availability={{.Spec.Availability}} state={{.Status.State}} labels={{range $k, $v := .Spec.Labels}}{{$k}}={{$v}},{{end}} generic_resources={{range .Description.Resources.GenericResources}}{{with .NamedResourceSpec}}{{.Kind}}={{.Value}},{{end}}{{with .DiscreteResourceSpec}}{{.Kind}}={{.Value}},{{end}}{{end}}' \
    $(mgr node ls -q) | sed 's/,\( \|$\)/\1/g' | sort -k1,1
  local total converged
  total=$(mgr service ls --filter "label=com.docker.stack.namespace=$STACK" -q | wc -l)
  converged=$(mgr service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Replicas}}' \
              | awk '{split($1, r, "/"); if (r[1] == r[2]) c++} END {print c + 0}')
  echo "stack $STACK: $total services ($converged with every replica running)"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: scripts/swarm-lab.sh up [--no-stack] [--redeploy] | down | status" >&2; exit 2 ;;
esac
