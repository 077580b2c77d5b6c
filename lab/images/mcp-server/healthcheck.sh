#!/bin/bash
# Health command for the sample MCP server (installed as mcp-healthcheck): exit 0 when /healthz (or the given path)
# answers 200 on 127.0.0.1:$MCP_PORT, else 1 with the reason on stderr.
#   mcp-healthcheck [PATH]
# Plain bash (/dev/tcp), no Python: Docker runs it in every container with a health check every few seconds, and
# on the lab's two cores a Python start per check (importing urllib) across 28 containers whose checks fall in the
# same second timed checks out (dockerd: "Health check ... context deadline exceeded"), so Swarm replaced healthy
# tasks.
path=${1:-/healthz}
port=${MCP_PORT:-8080}
if ! exec 3<>"/dev/tcp/127.0.0.1/$port"; then
  echo "http://127.0.0.1:$port$path: connection refused" >&2
  exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
if ! read -r -t 3 proto status rest <&3; then
  echo "http://127.0.0.1:$port$path: no answer within 3 s" >&2
  exit 1
fi
exec 3<&-
if [ "$status" != 200 ]; then
  echo "http://127.0.0.1:$port$path: $proto $status ${rest%$'\r'}" >&2
  exit 1
fi
exit 0
