#!/usr/bin/env bash
# Build context of the AWX / Automation Controller execution environment (execution-environment.yml).
#
# Stages, next to a copy of execution-environment.yml and its requirement files:
#   collections/sophia_ai-platform.tar.gz   this checkout, built by `ansible-galaxy collection build`
#   bin/kubectl, bin/kompose                 the binaries scripts/setup.sh built from Go source, at the versions
#                                            requirements/go-tools.txt pins (kubernetes, kompose)
# then runs `ansible-builder create` and prints the context directory (last line). No image is built here (no
# container registry is reachable); build it elsewhere with
#   podman build --build-arg EE_BASE_IMAGE=<image> -t sophia-platform-ee <context>
#
# Usage: scripts/ee.sh [OUT]   (default OUT: $SOPHIA_CACHE/ee; the context is OUT/context, the staging OUT/src)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
step() { printf 'ee: %s\n' "$*" >&2; }
die() { printf 'ee: ERROR: %s\n' "$*" >&2; exit 1; }

OUT=${1:-$SOPHIA_CACHE/ee}
SRC="$OUT/src"
CONTEXT="$OUT/context"

command -v ansible-builder >/dev/null || die "ansible-builder is not on PATH: run 'make setup' (it is in" \
  "requirements/requirements.txt), or put $ROOT/.venv/bin on PATH."

# NAME -> VERSION from requirements/go-tools.txt (the one place the versions live)
go_tool_version() {
  local version
  version=$(awk -v n="$1" '$1 == n { print $3 }' "$ROOT/requirements/go-tools.txt")
  [ -n "$version" ] || die "requirements/go-tools.txt has no line for '$1' (NAME MODULE VERSION ...): the" \
    "execution environment takes its $2 from there."
  printf '%s' "$version"
}
kompose_version=$(go_tool_version kompose kompose)
kubernetes_version=$(go_tool_version kubernetes kubectl)
kompose_bin="$SOPHIA_CACHE/bin/kompose-$kompose_version"
kubectl_bin="$SOPHIA_CACHE/bin/kubernetes-$kubernetes_version/kubectl"
for bin in "$kompose_bin" "$kubectl_bin"; do
  [ -x "$bin" ] || die "$bin is missing: scripts/setup.sh builds it from Go source at the version" \
    "requirements/go-tools.txt pins; run 'make setup' (or 'scripts/setup.sh go') first."
done

rm -rf "$SRC" "$CONTEXT"
mkdir -p "$SRC/requirements" "$SRC/collections" "$SRC/bin"
cp "$ROOT/execution-environment.yml" "$SRC/"
cp "$ROOT/requirements/ee-python.txt" "$ROOT/requirements/ee-collections.yml" "$SRC/requirements/"

step "building the collection tarball"
ansible-galaxy collection build --force --output-path "$SRC/dist" "$ROOT" >/dev/null
tarballs=("$SRC"/dist/sophia_ai-platform-*.tar.gz)
[ ${#tarballs[@]} -eq 1 ] && [ -f "${tarballs[0]}" ] || die "ansible-galaxy collection build left no single" \
  "sophia_ai-platform-*.tar.gz in $SRC/dist."
mv "${tarballs[0]}" "$SRC/collections/sophia_ai-platform.tar.gz"
rmdir "$SRC/dist"
cp "$kompose_bin" "$SRC/bin/kompose"
cp "$kubectl_bin" "$SRC/bin/kubectl"

step "ansible-builder create (kubectl $kubernetes_version, kompose $kompose_version)"
(cd "$SRC" && ansible-builder create --file execution-environment.yml --context "$CONTEXT" \
  --output-filename Containerfile >/dev/null)
printf '%s\n' "$CONTEXT"
