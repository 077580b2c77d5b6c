#!/usr/bin/env bash
# The test command's body (run by `make test` after set-up): every quality gate, in order, each timed.
#   changelog lint -> collection build -> ansible-test sanity (on the built collection) -> ansible-lint
#   (production profile) -> pytest (unit) -> the other molecule scenarios (two chains side by side), with the
#   k3s_install molecule scenario running beside these four -> pytest (integration), whose summary line closes the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
export PATH="$ROOT/.venv/bin:$SOPHIA_CACHE/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$SOPHIA_COLLECTIONS"

WORK=$(mktemp -d)
BESIDE_PIDS=()
kill_tree() { local child; for child in $(pgrep -P "$1"); do kill_tree "$child"; done; kill "$1" 2>/dev/null || true; }
cleanup() { # a gate that fails ends the run: first stop what runs beside it (molecule and its playbooks)
  local pid
  for pid in "${BESIDE_PIDS[@]}"; do kill_tree "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
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
  ansible-galaxy collection build --force --output-path "$WORK/dist" . >/dev/null && ls "$WORK"/dist/sophia_ai-platform-*.tar.gz
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

# Molecule scenarios that need neither the lab cluster nor a Swarm (their nodes are containers of their own, on a
# network of their own) and spend most of their time waiting on `docker exec`: they run in the background beside
# sanity, ansible-lint, the unit tests and the other molecule scenarios (molecule_beside), their output kept in a
# file and printed after.
BESIDE=(k3s_install)

molecule_beside_start() {
  local s
  for s in "${BESIDE[@]}"; do
    [ -f "molecule/$s/molecule.yml" ] || continue
    ( t0=$(date +%s); rc=0; molecule test -s "$s" >"$WORK/molecule-$s.log" 2>&1 || rc=$?
      echo "$rc $(($(date +%s) - t0))" >"$WORK/molecule-$s.done" ) &
    BESIDE_PIDS+=($!)
  done
}

molecule_beside() {
  wait "${BESIDE_PIDS[@]}" 2>/dev/null || true
  BESIDE_PIDS=()
  local s rc secs failed=()
  for s in "${BESIDE[@]}"; do
    [ -f "molecule/$s/molecule.yml" ] || continue
    printf '\n=== molecule %s (ran beside the gates above)\n' "$s"
    cat "$WORK/molecule-$s.log"
    read -r rc secs <"$WORK/molecule-$s.done"
    printf '\n=== molecule %s: %ss%s\n' "$s" "$secs" "$([ "$rc" -eq 0 ] || echo " FAILED (exit $rc)")"
    [ "$rc" -eq 0 ] || failed+=("$s")
  done
  [ ${#failed[@]} -eq 0 ]
}

# The other scenarios form chains that share nothing: the ones whose instance is the lab cluster (mcp_deploy,
# nvidia_plugin: one after the other, they share it) and the one whose instance is the multi-node Swarm lab
# (swarm_stabilize, Docker-in-Docker nodes). Most of either chain is waiting (rollouts, update monitors, health
# checks), so the chains run side by side, each scenario's output kept in a file and printed after.
SWARM_CHAIN=(swarm_stabilize)

run_chain() { # run_chain NAME SCENARIO...: one after the other; a line "SCENARIO RC SECONDS" each in $WORK/chain-NAME
  local name=$1 s t0 rc; shift
  : >"$WORK/chain-$name"
  for s in "$@"; do
    t0=$(date +%s); rc=0
    molecule test -s "$s" >"$WORK/molecule-$s.log" 2>&1 || rc=$?
    echo "$s $rc $(($(date +%s) - t0))" >>"$WORK/chain-$name"
  done
}

molecule_scenarios() {
  local all s lab=() swarm=()
  all=$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -r -n1 basename | sort \
        | grep -v -x -F -f <(printf '%s\n' "${BESIDE[@]}") || true)
  if [ -z "$all" ]; then
    echo "no molecule scenarios yet (each role brings one under molecule/<role>/)"
    return 0
  fi
  for s in $all; do
    if printf '%s\n' "${SWARM_CHAIN[@]}" | grep -q -x -F "$s"; then swarm+=("$s"); else lab+=("$s"); fi
  done
  # gate() runs this function as `"$@" || rc=$?`, where bash ignores `set -e`: every scenario's exit status is
  # checked here, or a failed scenario other than the last would pass the gate.
  local pids=() scenario rc secs times=() failed=()
  run_chain swarm "${swarm[@]}" & pids+=($!); BESIDE_PIDS+=($!)
  run_chain lab "${lab[@]}" & pids+=($!); BESIDE_PIDS+=($!)
  wait "${pids[@]}" || true
  BESIDE_PIDS=("${BESIDE_PIDS[@]:0:${#BESIDE_PIDS[@]}-2}")
  for s in "${lab[@]}" "${swarm[@]}"; do
    printf '\n=== molecule %s\n' "$s"
    cat "$WORK/molecule-$s.log"
  done
  while read -r scenario rc secs; do
    times+=("$scenario ${secs}s$([ "$rc" -eq 0 ] || echo " FAILED")")
    [ "$rc" -eq 0 ] || failed+=("$scenario")
  done < <(cat "$WORK/chain-lab" "$WORK/chain-swarm")
  printf '\n=== molecule scenario times (lab-cluster chain beside the Swarm-lab chain): %s\n' "$(IFS=,; echo "${times[*]}")"
  if [ "$(cat "$WORK/chain-lab" "$WORK/chain-swarm" | wc -l)" -ne $(( ${#lab[@]} + ${#swarm[@]} )) ]; then
    echo "=== a molecule chain ended before all its scenarios ran" >&2
    return 1
  fi
  if [ ${#failed[@]} -ne 0 ]; then
    printf '=== molecule scenarios that failed: %s\n' "${failed[*]}" >&2
    return 1
  fi
}

unit() { pytest -q tests/unit; }

# --durations: the slowest tests in every run, to keep an eye on the CI time.
integration() { pytest --durations=30 tests/integration; }

gate "changelog lint" changelog_lint
gate "collection build" build_collection
molecule_beside_start
gate "ansible-test sanity" sanity
gate "ansible-lint (production profile)" lint
gate "pytest (unit)" unit
gate "molecule" molecule_scenarios
gate "molecule (beside)" molecule_beside
printf '\n=== gate times: %s\n' "$(IFS=,; echo "${TIMES[*]}")"
gate "pytest (integration)" integration
