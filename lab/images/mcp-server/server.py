"""Sample MCP server for the sophia_ai.platform lab and tests.

One image serves every sample service of the fleet: the name, port and version
come from the environment. Built with the official ``mcp`` Python SDK, served
over streamable HTTP in the SDK's stateless mode (any replica can answer any
request, which is what a Swarm or Kubernetes Service in front of it needs).

Environment:
  MCP_SERVER_NAME     server name reported in ``initialize`` (default: mcp-sample)
  MCP_SERVER_VERSION  server version reported in ``initialize`` (default: image version)
  MCP_PORT            TCP port to listen on (default: 8080)
  MCP_HOST            address to bind (default: 0.0.0.0)
  MCP_READY_FILE      optional path; while that file is absent /readyz answers 503
                      (lets tests make a replica unready without killing it)
"""

from __future__ import annotations

import os
import socket
import time

from mcp.server import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

IMAGE_VERSION = "1.0.0"
NAME = os.environ.get("MCP_SERVER_NAME", "mcp-sample")
VERSION = os.environ.get("MCP_SERVER_VERSION", IMAGE_VERSION)
PORT = int(os.environ.get("MCP_PORT", "8080"))
HOST = os.environ.get("MCP_HOST", "0.0.0.0")
READY_FILE = os.environ.get("MCP_READY_FILE", "")
STARTED = time.time()

mcp = MCPServer(NAME, version=VERSION, instructions=f"Sample MCP service {NAME} of the sophia lab fleet.")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def server_info() -> dict[str, str | float]:
    """Say which service, version and replica answered."""
    return {"name": NAME, "version": VERSION, "hostname": socket.gethostname(), "uptime_s": round(time.time() - STARTED, 3)}


def _state() -> dict:
    return {"name": NAME, "version": VERSION, "hostname": socket.gethostname()}


@mcp.custom_route("/healthz", methods=["GET"])
async def healthz(_request: Request) -> JSONResponse:
    """Liveness: the process serves HTTP."""
    return JSONResponse({"status": "ok", **_state()})


@mcp.custom_route("/readyz", methods=["GET"])
async def readyz(_request: Request) -> JSONResponse:
    """Readiness: ready unless MCP_READY_FILE is set and the file is missing."""
    if READY_FILE and not os.path.exists(READY_FILE):
        return JSONResponse({"status": "not-ready", **_state()}, status_code=503)
    return JSONResponse({"status": "ready", **_state()})


def main() -> None:
    mcp.run("streamable-http", host=HOST, port=PORT, stateless_http=True, json_response=True)


if __name__ == "__main__":
    main()
