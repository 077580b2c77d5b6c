#!/bin/sh
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Entry point of the multi-node Swarm lab's node image (sophia-platform/swarm-node, scripts/swarm-lab.sh):
# one Docker Engine (Debian's docker.io) per node container. Docker-in-Docker without --privileged, which these
# machines refuse (../shared/notes/lab-facts.md): the node container gets the capability set from there.
#
#   /sophia-lab/                  bind-mounted from the host ($SOPHIA_CACHE/lab/swarm/<node>/, 0700):
#     docker.sock                 the engine's second socket, for the controller on the host: root:root 0660
#                                 (--group root: the image's own docker group id names another group on the host)
#     dockerd.log                 the engine's log, one line per start (set aside as dockerd.log.1 past 10 MB)
#   /var/lib/docker               a Docker volume of the outer engine (not overlay: the inner overlay2 needs that)
#
# Settings (environment): SOPHIA_STORAGE_DRIVER (overlay2; vfs is the slow fallback). Arguments go to dockerd
# (scripts/swarm-lab.sh passes the GPU node's --node-generic-resource flags this way).
set -eu

STATE=/sophia-lab
mkdir -p "$STATE"
# One log across restarts (a start that fails stays at its tail), set aside past 10 MB.
if [ "$(stat -c %s "$STATE/dockerd.log" 2>/dev/null || echo 0)" -gt 10485760 ]; then
  mv -f "$STATE/dockerd.log" "$STATE/dockerd.log.1"
fi
echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) sophia-swarm-node: starting dockerd (storage driver ${SOPHIA_STORAGE_DRIVER:-overlay2}) $*" >>"$STATE/dockerd.log"

# As the upstream dind script does: AppArmor and friends look for securityfs.
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
  mount -t securityfs none /sys/kernel/security 2>/dev/null || true
fi

# cgroup v1 without a cgroup namespace: /proc/self/cgroup shows this container's cgroup as the host sees it
# (/docker/<id>). Nest the inner containers under it, so that the outer engine's limits and `docker stats` of the
# node container cover the node's workloads too, instead of siblings at the top of the host's hierarchy.
parent=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
if [ -n "$parent" ] && [ "$parent" != / ]; then
  set -- --cgroup-parent "$parent" "$@"
fi

exec dockerd \
  --storage-driver "${SOPHIA_STORAGE_DRIVER:-overlay2}" \
  --host unix:///var/run/docker.sock --host "unix://$STATE/docker.sock" --group root \
  --log-opt max-size=10m --log-opt max-file=2 \
  "$@" >>"$STATE/dockerd.log" 2>&1
