#!/usr/bin/env bash
# The test command's body (run by `make test` after set-up): every quality gate, in order, each timed.
#   changelog lint -> collection build -> ansible-test sanity (on the built collection) -> ansible-lint
#   (production profile) -> molecule scenarios -> pytest (unit + integration), whose summary line closes the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
export PATH="$ROOT/.venv/bin:$SOPHIA_CACHE/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$SOPHIA_COLLECTIONS"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
declare -a TIMES=()
gate() {
  local name=$1 t0 rc=0; shift
  printf '\n=== %s\n' "$name"
  t0=$(date +%s)
  "$@" || rc=$?
  TIMES+=("$name $(($(date +%s) - t0))s")
  if [ $rc -ne 0 ]; then
    printf '\n=== FAILED: %s (exit %d)\n' "$name" "$rc" >&2
    exit $rc
  fi
}

changelog_lint() { antsibull-changelog lint; }

build_collection() {
  ansible-galaxy collection build --force --output-path "$WORK/dist" . >/dev/null
  ls "$WORK"/dist/sophia_ai-platform-*.tar.gz
}

sanity() {
  # ansible-test wants the collection at .../ansible_collections/NAMESPACE/NAME: test exactly what ships.
  local dest="$WORK/ac/ansible_collections/sophia_ai/platform"
  mkdir -p "$dest"
  tar -xzf "$WORK"/dist/sophia_ai-platform-*.tar.gz -C "$dest"
  # Local Python only (no test containers can be pulled here); ansible-test keeps its own requirement
  # venvs under ~/.ansible/test, so later runs are quick.
  (cd "$dest" && ansible-test sanity --venv --python 3.11 --requirements --color no)
}

lint() { ansible-lint --profile production --offline; }

molecule_scenarios() {
  local scenarios
  scenarios=$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | sort)
  if [ -z "$scenarios" ]; then
    echo "no molecule scenarios yet (each role brings one under molecule/<role>/)"
    return 0
  fi
  local s t0 times=()
  for s in $scenarios; do
    t0=$(date +%s)
    molecule test -s "$(basename "$s")"
    times+=("$(basename "$s") $(($(date +%s) - t0))s")
  done
  printf '\n=== molecule scenario times: %s\n' "$(IFS=,; echo "${times[*]}")"
}

# --durations: the slowest tests in every run, to keep an eye on the CI time.
unit_and_integration() { pytest --durations=30 tests/unit tests/integration; }

gate "changelog lint" changelog_lint
gate "collection build" build_collection
gate "ansible-test sanity" sanity
gate "ansible-lint (production profile)" lint
gate "molecule" molecule_scenarios
printf '\n=== gate times: %s\n' "$(IFS=,; echo "${TIMES[*]}")"
gate "pytest (unit + integration)" unit_and_integration
