#!/usr/bin/env bash
# Shared settings and helpers for the set-up scripts (sourced, not run).
# shellcheck disable=SC2034
SOPHIA_CACHE=${SOPHIA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sophia-platform}
# One ansible_collections tree per checkout, so that two clones on one machine do not fight over it.
SOPHIA_COLLECTIONS="$SOPHIA_CACHE/collections/$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
export SOPHIA_CACHE SOPHIA_COLLECTIONS

step() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
