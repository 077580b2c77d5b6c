"""Health command for the sample MCP server: exit 0 when /healthz (or the given path) answers 200.

Usage: mcp-healthcheck [PATH]   (PATH defaults to /healthz; the port comes from MCP_PORT)
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    url = f"http://127.0.0.1:{os.environ.get('MCP_PORT', '8080')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback only
            return 0 if resp.status == 200 else 1
    except Exception as exc:  # pylint: disable=broad-except
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
