#!/usr/bin/env bash
# One set-up step for sophia_ai.platform: both README commands (`make lab`, `make test`) run it first.
#
# Idempotent and quick when everything is there; complete on a fresh Debian bookworm machine:
#   1. enough free disk for the cache and the Docker data root;
#   2. Debian packages (docker.io, debootstrap, ...);
#   3. a Docker Engine that answers (started in the background when none does: no systemd here);
#   4. the project virtualenv, from exact pins (requirements/constraints.txt);
#   5. Go tools at pinned versions through the Go module proxy (requirements/go-tools.txt);
#   6. the container images the lab and the tests use, built locally and tagged with a content key.
# Everything built lands in one cache directory outside the repository, keyed by version or content:
#   ${SOPHIA_CACHE:-$XDG_CACHE_HOME/sophia-platform}   (default ~/.cache/sophia-platform)
#
# Usage: scripts/setup.sh [STEP ...]   STEP: disk apt engine venv go images (default: all, in that order)
# Settings (environment): SOPHIA_CACHE, SOPHIA_MIN_FREE_GB (16), SOPHIA_LAB_GPUS (4), SOPHIA_ENGINE_WAIT (60 s),
#   SOPHIA_DOCKERD (the command that starts the engine, default dockerd), SOPHIA_APT_EXTRA (more Debian packages).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

mkdir -p "$SOPHIA_CACHE"

# 1. Disk ------------------------------------------------------------------------------------------
check_disk() {
  local need_gb=${SOPHIA_MIN_FREE_GB:-16} path free_kb
  for path in "$SOPHIA_CACHE" /var/lib; do
    free_kb=$(df -Pk "$path" | awk 'NR==2 {print $4}')
    if [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
      die "disk full: only $((free_kb / 1024)) MiB free under $path; set-up needs ${need_gb} GiB" \
          "(images, virtualenv, Go builds). Free space there (docker system prune -a removes unused" \
          "images), or point SOPHIA_CACHE at a larger disk; SOPHIA_MIN_FREE_GB changes the threshold."
    fi
  done
}

# 2. Debian packages -------------------------------------------------------------------------------
# command -> package; only what the host itself needs (containers get theirs from debootstrap).
# shellcheck disable=SC2206
APT_PACKAGES=(docker.io debootstrap iptables ca-certificates git make gcc libc6-dev
  containerd containernetworking-plugins conntrack ipset haproxy ${SOPHIA_APT_EXTRA:-})

ensure_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "Debian packages missing: ${missing[*]}; this machine has no apt-get." \
    "Install them with the system's package manager, then run set-up again."
  [ "$(id -u)" = 0 ] || die "Debian packages missing: ${missing[*]}; installing them needs root:" \
    "run 'sudo apt-get install ${missing[*]}', then set-up again."
  step "installing Debian packages: ${missing[*]}"
  local log="$SOPHIA_CACHE/apt.log"
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    die "apt-get could not install ${missing[*]} (log: $log). If a package is named as missing above," \
        "Debian's archive for this release lacks it: check /etc/apt/sources.list.d and the package name."
  fi
}

# 3. Docker Engine ---------------------------------------------------------------------------------
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

ensure_engine() {
  engine_up && return 0
  local dockerd=${SOPHIA_DOCKERD:-dockerd} log="$SOPHIA_CACHE/dockerd.log" args=() i
  command -v "${dockerd%% *}" >/dev/null || die "no Docker Engine answers and dockerd is not installed: apt-get install docker.io"
  step "starting dockerd in the background (log: $log)"
  # The lab engine advertises fake GPUs as Swarm generic resources (NVIDIA-GPU), so that stack services
  # that reserve a GPU schedule as they would on a Lambda GPU host. No GPU exists here: they run on CPU.
  for i in $(seq 0 $((${SOPHIA_LAB_GPUS:-4} - 1))); do args+=(--node-generic-resource "NVIDIA-GPU=lab-gpu-$i"); done
  : >"$log"
  # shellcheck disable=SC2086
  setsid nohup $dockerd "${args[@]}" >>"$log" 2>&1 </dev/null &
  local pid=$! waited=0
  until engine_up; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 25 "$log" >&2
      die "dockerd exited during start-up (its log's tail is above; whole log: $log)."
    fi
    [ $waited -ge "${SOPHIA_ENGINE_WAIT:-60}" ] && { tail -n 25 "$log" >&2; die "dockerd did not answer within ${waited}s (log above: $log)."; }
    sleep 1; waited=$((waited + 1))
  done
  echo "$pid" >"$SOPHIA_CACHE/dockerd.pid"
}

# 4. Virtualenv ------------------------------------------------------------------------------------
ensure_venv() {
  local key venv log="$SOPHIA_CACHE/pip.log"
  key=$(cat "$ROOT/requirements/requirements.txt" "$ROOT/requirements/constraints.txt" | sha256sum | cut -c1-12)
  venv="$SOPHIA_CACHE/venv/py$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-$key"
  if [ ! -f "$venv/.complete" ]; then
    step "creating the virtualenv $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv (Debian) or a Python with venv."
    if ! { "$venv/bin/pip" install -q --upgrade "pip==$(pin pip)" &&
           "$venv/bin/pip" install -q -r "$ROOT/requirements/requirements.txt" -c "$ROOT/requirements/constraints.txt"; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      die "pip could not install the pinned requirements (log: $log)."
    fi
    touch "$venv/.complete"
  fi
  ln -sfn "$venv" "$ROOT/.venv"
  ensure_ansible_test_pip
  # An ansible_collections tree that points at this checkout, for ansible-playbook, ansible-doc and pytest.
  mkdir -p "$SOPHIA_COLLECTIONS/ansible_collections/sophia_ai"
  ln -sfn "$ROOT" "$SOPHIA_COLLECTIONS/ansible_collections/sophia_ai/platform"
}

# ansible-test builds a venv per sanity test and bootstraps pip in it with a get-pip script that it downloads
# from a host this machine cannot reach. Stand in for that script: run pip from the very pip wheel that
# ansible-test pins (fetched from the package index) to install what ansible-test asks for.
ensure_ansible_test_pip() {
  local version script wheels
  version=$(sed -n "s/^ *pip='\([0-9.]*\)',$/\1/p" "$ROOT"/.venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py)
  [ -n "$version" ] || die "cannot find the pip version ansible-test pins (ansible_test/_internal/python_requirements.py)."
  script="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
  wheels="$SOPHIA_CACHE/wheelhouse/pip-$version"
  [ -f "$script" ] && grep -q sophia_ai "$script" && [ -f "$wheels/.complete" ] && return 0
  mkdir -p "$(dirname "$script")" "$wheels"
  "$ROOT/.venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$wheels" "pip==$version" \
    || die "could not download pip $version for ansible-test's venvs."
  touch "$wheels/.complete"
  cat >"$script" <<PY
"""pip $version bootstrap for ansible-test's venvs, written by sophia_ai.platform scripts/setup.sh."""
import sys
sys.path.insert(0, "$(ls "$wheels"/pip-"$version"-*.whl)")
from pip._internal.cli.main import main
ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--find-links", "$wheels", *ARGS]))
PY
}

pin() { sed -n "s/^$1==//p" "$ROOT/requirements/constraints.txt"; }

# 5. Go tools --------------------------------------------------------------------------------------
# requirements/go-tools.txt: NAME MODULE VERSION [REPLACE_OLD=REPLACE_NEW ...]
# Each is built once from a generated wrapper module (so that replace directives of the tool's own
# go.mod can be repeated, which `go install pkg@version` refuses) and cached as $SOPHIA_CACHE/bin/NAME-VERSION.
ensure_go_tools() {
  local name module version replaces bin wrap log
  # Go's module and build caches live in the one cache directory too (a cold cache is a cold build).
  export GOMODCACHE="$SOPHIA_CACHE/go/mod" GOCACHE="$SOPHIA_CACHE/go/build" GOFLAGS=-modcacherw CGO_ENABLED=0
  while read -r name module version replaces; do
    case "$name" in ''|\#*) continue ;; esac
    if [ "$name" = kubernetes ]; then build_kubernetes "$version" "$replaces"; continue; fi
    if [ "$name" = nvidia-device-plugin ]; then build_nvidia_device_plugin "$name" "$module" "$version" "$replaces"; continue; fi
    bin="$SOPHIA_CACHE/bin/$name-$version"
    if [ ! -x "$bin" ]; then
      command -v go >/dev/null || die "Go is needed to build $name $version (https://go.dev/doc/install); none is on PATH."
      step "building $name $version from the Go module proxy (once; cached as $bin)"
      wrap="$SOPHIA_CACHE/go-wrappers/$name-$version"; log="$SOPHIA_CACHE/go-$name-$version.log"
      rm -rf "$wrap"; mkdir -p "$wrap" "$SOPHIA_CACHE/bin"
      (
        cd "$wrap"
        go mod init "sophia.local/tools/$name" >/dev/null 2>&1
        for r in $replaces; do go mod edit -replace="$r"; done
        go get -tool "$module@$version"
        go build -trimpath -o "$bin.tmp" "$module"
        mv "$bin.tmp" "$bin"
      ) >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "building $name $version failed (log: $log)."; }
    fi
    ln -sfn "$bin" "$SOPHIA_CACHE/bin/$name"
  done <"$ROOT/requirements/go-tools.txt"
}

# Kubernetes components from k8s.io/kubernetes at VERSION. Its go.mod requires every staging module at v0.0.0
# and replaces it with ./staging/..., which a dependent module cannot use: the wrapper replaces each staging
# module with its published version (v0.MINOR.PATCH), read from the go.mod that the module proxy serves.
build_kubernetes() {
  local version=$1 cmds=${2//,/ } dir="$SOPHIA_CACHE/bin/kubernetes-$1" wrap="$SOPHIA_CACHE/go-wrappers/kubernetes-$1"
  local log="$SOPHIA_CACHE/go-kubernetes-$1.log" missing=() c
  for c in $cmds; do [ -x "$dir/$c" ] || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v go >/dev/null || die "Go is needed to build Kubernetes $version; none is on PATH."
    step "building Kubernetes $version (${missing[*]}) from the Go module proxy (once; cached in $dir; tens of minutes cold on 2 cores)"
    mkdir -p "$wrap" "$dir"
    (
      set -e
      cd "$wrap"
      if [ ! -f go.mod ]; then
        go mod init sophia.local/lab/kubernetes
        gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
        [ -n "$gomod" ] || { echo "the module proxy did not serve k8s.io/kubernetes@$version"; exit 1; }
        local minor_patch=${version#v1.}
        for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
          go mod edit -replace="$m=$m@v0.$minor_patch"
        done
        go mod edit -require="k8s.io/kubernetes@$version"
        go mod download k8s.io/kubernetes
      fi
      { echo '//go:build tools'; echo; echo 'package tools'; echo; echo 'import ('
        for c in $cmds; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done; echo ')'; } >tools.go
      go mod tidy
      local major=${version#v}; major=${major%%.*} minor=${version#v*.}; minor=${minor%%.*}
      local ld="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=$major"
      ld="$ld -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
      ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$version"
      local pkgs=(); for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
      # into a scratch folder first, so that a build cut short never leaves a binary that looks complete
      rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
      # set -e does not apply in a subshell whose status is tested (the || below): chain the last steps.
      go build -trimpath -ldflags "$ld" -o "$dir.tmp/" "${pkgs[@]}" && mv "$dir.tmp"/* "$dir/" && rmdir "$dir.tmp"
    ) >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "building Kubernetes $version failed (log: $log)."; }
  fi
  ln -sfn "$dir" "$SOPHIA_CACHE/bin/kubernetes"
}

# NVIDIA's k8s-device-plugin (the lab's device plugin image, role nvidia_plugin), built as NVIDIA's Makefile does:
# inside its own module, so that its own go.sum vouches for its dependencies (it requires a pseudo-version of
# nvidia-container-toolkit that the checksum database here does not answer for). Its commands (4th column) link
# go-nvml, which opens libnvidia-ml.so with dlopen when it runs, so they need cgo (CGO_ENABLED=1 and gcc, for this
# build alone) and the Makefile's linker flags (NVML's symbols resolve at run time, on a GPU host). The binaries
# link glibc dynamically: scripts/build-images.sh packages them on the lab's Debian base image.
build_nvidia_device_plugin() {
  local name=$1 module=$2 version=$3 cmds=${4//,/ } dir="$SOPHIA_CACHE/bin/$1-$3" wrap="$SOPHIA_CACHE/go-wrappers/$1-$3"
  local log="$SOPHIA_CACHE/go-$1-$3.log" missing=() pkgs=() c src
  for c in $cmds; do [ -x "$dir/$c" ] || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v go >/dev/null || die "Go is needed to build $name $version; none is on PATH."
    command -v gcc >/dev/null || die "gcc is needed to build $name $version (cgo): run scripts/setup.sh apt."
    step "building $name $version (${missing[*]}) with cgo from the Go module proxy (once; cached in $dir)"
    local ld="-s -w '-extldflags=-Wl,--export-dynamic -Wl,--unresolved-symbols=ignore-in-object-files'"
    ld="$ld -X $module/internal/info.version=$version"
    for c in "${missing[@]}"; do pkgs+=("./cmd/$c"); done
    rm -rf "$wrap"; mkdir -p "$wrap" "$dir"
    # A chain, not set -e (which does not apply in a subshell whose status is tested with ||); the binaries go to
    # a scratch folder first, so that a build cut short never leaves one that looks complete.
    (
      src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
        && [ -n "$src" ] && cp -r "$src/." "$wrap/" && chmod -R u+w "$wrap" && cd "$wrap" \
        && rm -rf "$dir.tmp" && mkdir -p "$dir.tmp" \
        && CGO_ENABLED=1 go build -trimpath -ldflags "$ld" -o "$dir.tmp/" "${pkgs[@]}" \
        && mv "$dir.tmp"/* "$dir/" && rmdir "$dir.tmp"
    ) >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "building $name $version failed (log: $log)."; }
  fi
  ln -sfn "$dir" "$SOPHIA_CACHE/bin/$name"
}

# 6. Images ----------------------------------------------------------------------------------------
ensure_images() {
  "$ROOT/scripts/build-images.sh"
}

t0=$(date +%s)
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(disk apt engine venv go images)
for s in "${steps[@]}"; do
  case "$s" in
    disk) check_disk ;;
    apt) ensure_apt_packages ;;
    engine) ensure_engine ;;
    venv) ensure_venv ;;
    go) ensure_go_tools ;;
    images) ensure_images ;;
    *) die "unknown set-up step '$s' (steps: disk apt engine venv go images)" ;;
  esac
done
step "set-up ($(IFS=' '; echo "${steps[*]}")) done in $(($(date +%s) - t0))s (cache: $SOPHIA_CACHE)"
