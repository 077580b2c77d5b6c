# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the sample MCP server (lab/images/mcp-server/server.py, official ``mcp`` SDK) in another SDK transport mode.

The sample image serves streamable HTTP in stateless mode with JSON replies. The probe must also handle what
other real servers do, all with the same tools, from the same SDK:

``python sdk_server.py MODE HOST PORT [CERT KEY]``

- ``sse``: the SDK's older HTTP+SSE transport (GET ``/sse`` opens the stream, its ``endpoint`` event names
  where to POST; replies come back on the stream).
- ``stateful``: streamable HTTP at ``/mcp`` with sessions (``Mcp-Session-Id``) and SSE-framed replies.
- ``tls``: the sample's own mode (stateless, JSON replies) over HTTPS with the given certificate and key.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import uvicorn

SAMPLE = Path(__file__).resolve().parents[3] / "lab" / "images" / "mcp-server" / "server.py"


def load_sample():
    """Import the sample server module (its tools and routes) without running its main()."""
    spec = importlib.util.spec_from_file_location("sophia_sample_mcp_server", SAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    mode, host, port = argv[0], argv[1], int(argv[2])
    os.environ.setdefault("MCP_SERVER_NAME", f"mcp-{mode}")
    server = load_sample().mcp
    if mode == "sse":
        server.run("sse", host=host, port=port)
    elif mode == "stateful":
        server.run("streamable-http", host=host, port=port, stateless_http=False, json_response=False)
    elif mode == "tls":
        app = server.streamable_http_app(stateless_http=True, json_response=True, host=host)
        uvicorn.run(app, host=host, port=port, ssl_certfile=argv[3], ssl_keyfile=argv[4], log_level="warning")
    else:
        raise SystemExit(f"unknown mode {mode!r}: sse, stateful or tls")


if __name__ == "__main__":
    main(sys.argv[1:])
