#!/usr/bin/env bash
# Builds the local container images that the lab and the tests use. No registry is reached:
#   sophia-platform/base:bookworm-KEY   Debian bookworm minbase rootfs (debootstrap) brought in with docker import
#   sophia-platform/pause:KEY           the lab cluster's pod sandbox image: one static binary (lab/images/pause)
#   sophia-platform/mcp-server:KEY      the sample MCP server (official mcp SDK) layered on it with docker build,
#                                       also tagged :lab (the tag the sample stack names)
#   sophia-platform/ADDON:VERSION-KEY   the lab cluster's add-ons (coredns, local-path-provisioner): the Go
#                                       binary that scripts/setup.sh built at the version that
#                                       requirements/go-tools.txt pins, alone in an image
#   sophia-platform/nvidia-device-plugin:VERSION-KEY
#                                       NVIDIA's k8s-device-plugin and gpu-feature-discovery (cgo, built by
#                                       scripts/setup.sh) on the Debian base image, laid out as NVIDIA's image is
#   sophia-platform/swarm-node:bookworm-KEY
#                                       the multi-node Swarm lab's node (scripts/swarm-lab.sh): a minbase rootfs with
#                                       Debian's docker.io (debootstrap, docker import) and lab/images/swarm-node's
#                                       entry point. Not part of the default build: `build-images.sh swarm-node`,
#                                       which scripts/swarm-lab.sh runs on demand.
# KEY is a content key over every input of the image, so an image is rebuilt only when an input changes.
# Debian packages come from the mirror the host's apt already uses; Python wheels from a host-side
# wheelhouse (containers cannot verify TLS to the package index here, and should not need to).
#
# Usage: scripts/build-images.sh [all|swarm-node]   (default: all, which leaves swarm-node out)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
BASE_RECIPE="suite=$SUITE variant=minbase include=$BASE_PACKAGES recipe=1"
BASE_KEY=$(printf '%s' "$BASE_RECIPE" | sha256sum | cut -c1-12)
BASE_IMAGE="sophia-platform/base:$SUITE-$BASE_KEY"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  # The first deb URI for the main archive in the host's apt sources (deb822 or one-line format).
  local uri
  uri=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)
  [ -n "$uri" ] || uri=$(grep -h -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list*: debootstrap needs the one apt uses."
  printf '%s' "$uri"
}

build_base() {
  image_exists "$BASE_IMAGE" && return 0
  local tarball="$SOPHIA_CACHE/images/base-$SUITE-$BASE_KEY.tar" rootfs log="$SOPHIA_CACHE/debootstrap.log"
  mkdir -p "$SOPHIA_CACHE/images"
  if [ ! -f "$tarball" ]; then
    step "debootstrap $SUITE ($BASE_PACKAGES) for $BASE_IMAGE (about a minute, once)"
    rootfs=$(mktemp -d "$SOPHIA_CACHE/rootfs.XXXXXX")
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$(debian_mirror)" >"$log" 2>&1; then
      tail -n 15 "$log" >&2; rm -rf "$rootfs"
      die "debootstrap failed (log: $log). A package named above as missing is not in Debian $SUITE."
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  step "importing $BASE_IMAGE"
  docker import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
}

build_mcp_server() {
  local dir="$ROOT/lab/images/mcp-server" key image ctx wheels log="$SOPHIA_CACHE/docker-build-mcp-server.log"
  key=$( { echo "$BASE_IMAGE"; cat "$dir/Dockerfile" "$dir/requirements.txt" "$dir/server.py" "$dir/healthcheck.sh"; } | sha256sum | cut -c1-12)
  image="sophia-platform/mcp-server:$key"
  if ! image_exists "$image"; then
    wheels="$SOPHIA_CACHE/wheelhouse/mcp-server-$(sha256sum "$dir/requirements.txt" | cut -c1-12)"
    if [ ! -f "$wheels/.complete" ]; then
      step "downloading the wheels for the sample MCP server into $wheels"
      rm -rf "$wheels"; mkdir -p "$wheels"
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -r "$dir/requirements.txt" -d "$wheels" >"$log" 2>&1 \
        || { tail -n 15 "$log" >&2; die "pip download failed for $dir/requirements.txt (log: $log)."; }
      touch "$wheels/.complete"
    fi
    step "building $image"
    ctx=$(mktemp -d)
    cp "$dir/Dockerfile" "$dir/requirements.txt" "$dir/server.py" "$dir/healthcheck.sh" "$ctx/"
    mkdir "$ctx/wheels" && cp "$wheels"/*.whl "$ctx/wheels/"
    if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "sophia.ai/content-key=$key" -t "$image" "$ctx" >"$log" 2>&1; then
      tail -n 20 "$log" >&2; rm -rf "$ctx"
      die "docker build of $image failed (log: $log)."
    fi
    rm -rf "$ctx"
  fi
  docker tag "$image" sophia-platform/mcp-server:lab
  printf '%s\n' "$image" >"$SOPHIA_CACHE/images/mcp-server.current"
}

build_pause() {
  local src="$ROOT/lab/images/pause/pause.c" key image ctx
  key=$( { gcc --version | head -n 1; cat "$src"; } | sha256sum | cut -c1-12)
  image="sophia-platform/pause:$key"
  if ! image_exists "$image"; then
    step "building $image"
    ctx=$(mktemp -d)
    gcc -static -O2 -o "$ctx/pause" "$src" || { rm -rf "$ctx"; die "gcc could not build $src (apt-get install gcc libc6-dev)."; }
    tar -C "$ctx" --owner=0 --group=0 -c pause | docker import --change 'ENTRYPOINT ["/pause"]' - "$image" >/dev/null
    rm -rf "$ctx"
  fi
  printf '%s\n' "$image" >"$SOPHIA_CACHE/images/pause.current"
}

# One static Go binary (built by scripts/setup.sh's go step) as /NAME in an image of its own.
build_addon() {
  local name=$1 version bin key image ctx
  version=$(awk -v n="$name" '$1 == n {print $3}' "$ROOT/requirements/go-tools.txt")
  bin="$SOPHIA_CACHE/bin/$name-$version"
  [ -x "$bin" ] || die "$bin is missing: run scripts/setup.sh go first."
  key=$(sha256sum "$bin" | cut -c1-12)
  image="sophia-platform/$name:$version-$key"
  if ! image_exists "$image"; then
    step "building $image"
    ctx=$(mktemp -d)
    cp "$bin" "$ctx/$name"
    tar -C "$ctx" --owner=0 --group=0 -c "$name" \
      | docker import --change "ENTRYPOINT [\"/$name\"]" --change "LABEL sophia.ai/content-key=$key" - "$image" >/dev/null
    rm -rf "$ctx"
  fi
  printf '%s\n' "$image" >"$SOPHIA_CACHE/images/$name.current"
}

# NVIDIA's device plugin for the lab (role nvidia_plugin): the commands scripts/setup.sh built with cgo (they link
# glibc, so they sit on the Debian base image), in /usr/bin with the environment and entry point of NVIDIA's own
# image (deployments/container/Dockerfile), so that the role's manifests run it unchanged.
build_nvidia_device_plugin() {
  local name=nvidia-device-plugin version cmds dir key image ctx c log="$SOPHIA_CACHE/docker-build-nvidia-device-plugin.log"
  read -r version cmds < <(awk -v n="$name" '$1 == n {print $3, $4}' "$ROOT/requirements/go-tools.txt") \
    || die "requirements/go-tools.txt has no $name line."
  dir="$SOPHIA_CACHE/bin/$name-$version"
  for c in ${cmds//,/ }; do [ -x "$dir/$c" ] || die "$dir/$c is missing: run scripts/setup.sh go first."; done
  ctx=$(mktemp -d)
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
ARG BASE_IMAGE
FROM $BASE_IMAGE
ENV NVIDIA_DISABLE_REQUIRE=true NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY bin/ /usr/bin/
ENTRYPOINT ["nvidia-device-plugin"]
DOCKERFILE
  key=$( { echo "$BASE_IMAGE"; cat "$ctx/Dockerfile"; for c in ${cmds//,/ }; do sha256sum "$dir/$c" | cut -c1-64; done; } | sha256sum | cut -c1-12)
  image="sophia-platform/$name:$version-$key"
  if ! image_exists "$image"; then
    step "building $image"
    mkdir "$ctx/bin" && for c in ${cmds//,/ }; do cp "$dir/$c" "$ctx/bin/"; done
    if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "sophia.ai/content-key=$key" \
        --label "version=$version" -t "$image" "$ctx" >"$log" 2>&1; then
      tail -n 20 "$log" >&2; rm -rf "$ctx"
      die "docker build of $image failed (log: $log)."
    fi
  fi
  rm -rf "$ctx"
  printf '%s\n' "$image" >"$SOPHIA_CACHE/images/$name.current"
}

# The multi-node Swarm lab's node image (scripts/swarm-lab.sh): Debian's docker.io (dockerd, containerd, runc) and
# what the inner engine calls (iptables, ip, ps) on a minbase rootfs, built as the base image is (debootstrap,
# docker import), plus lab/images/swarm-node/entrypoint.sh appended to the import stream. The rootfs tarball is
# keyed by the package recipe alone, so that a change to the entry point re-imports without a new debootstrap.
SWARM_NODE_PACKAGES=docker.io,iptables,ca-certificates,procps,iproute2
build_swarm_node() {
  local dir="$ROOT/lab/images/swarm-node" recipe rootfs_key key image tarball rootfs ctx
  local log="$SOPHIA_CACHE/debootstrap-swarm-node.log"
  recipe="suite=$SUITE variant=minbase include=$SWARM_NODE_PACKAGES recipe=1"
  rootfs_key=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
  key=$( { echo "$recipe"; cat "$dir/entrypoint.sh"; } | sha256sum | cut -c1-12)
  image="sophia-platform/swarm-node:$SUITE-$key"
  mkdir -p "$SOPHIA_CACHE/images"
  if ! image_exists "$image"; then
    tarball="$SOPHIA_CACHE/images/swarm-node-rootfs-$SUITE-$rootfs_key.tar"
    if [ ! -f "$tarball" ]; then
      command -v debootstrap >/dev/null || die "debootstrap is needed to build $image: apt-get install debootstrap (or make setup)."
      step "debootstrap $SUITE ($SWARM_NODE_PACKAGES) for $image (about a minute, once)"
      rootfs=$(mktemp -d "$SOPHIA_CACHE/rootfs.XXXXXX")
      if ! debootstrap --variant=minbase --include="$SWARM_NODE_PACKAGES" "$SUITE" "$rootfs" "$(debian_mirror)" >"$log" 2>&1; then
        tail -n 15 "$log" >&2; rm -rf "$rootfs"
        die "debootstrap failed (log: $log). A package named above as missing is not in Debian $SUITE."
      fi
      rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
      tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$rootfs"
    fi
    step "importing $image"
    ctx=$(mktemp -d "$SOPHIA_CACHE/swarm-node.XXXXXX")
    install -D -m 0755 "$dir/entrypoint.sh" "$ctx/entry/usr/local/bin/sophia-swarm-node"
    cp "$tarball" "$ctx/rootfs.tar"
    tar -rf "$ctx/rootfs.tar" -C "$ctx/entry" --owner=0 --group=0 --numeric-owner ./usr/local/bin/sophia-swarm-node
    if ! docker import --change 'ENTRYPOINT ["/usr/local/bin/sophia-swarm-node"]' \
        --change "LABEL sophia.ai/content-key=$key" "$ctx/rootfs.tar" "$image" >/dev/null; then
      rm -rf "$ctx"; die "docker import of $image failed."
    fi
    rm -rf "$ctx"
    # earlier keys of this image (one 400 MB layer each): drop those that no container uses
    docker image ls --format '{{.Repository}}:{{.Tag}}' sophia-platform/swarm-node | grep -vxF "$image" \
      | xargs -r docker image rm >/dev/null 2>&1 || true
  fi
  printf '%s\n' "$image" >"$SOPHIA_CACHE/images/swarm-node.current"
}

case "${1:-all}" in
  all)
    build_base
    printf '%s\n' "$BASE_IMAGE" >"$SOPHIA_CACHE/images/base.current"
    build_pause
    build_mcp_server
    for addon in coredns local-path-provisioner; do build_addon "$addon"; done
    build_nvidia_device_plugin
    ;;
  swarm-node) build_swarm_node ;;
  *) die "unknown image set '$1' (scripts/build-images.sh [all|swarm-node])" ;;
esac
