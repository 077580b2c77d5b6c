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
  MCP_DATA_DIR        optional directory (a volume): the service keeps memories there, one JSON file
                      each, written atomically (tools remember / recall / memory_count, listed only
                      when it is set), read on each call - a stateful service, whose data must move
                      with it
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
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
DATA_DIR = os.environ.get("MCP_DATA_DIR", "")
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


def _memory_path(key: str) -> str:
    if not DATA_DIR:
        raise ValueError("this service keeps no memories (MCP_DATA_DIR is not set)")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", key) or key.startswith("."):
        raise ValueError("a key is 1-128 letters, digits, '_', '.' or '-' and does not start with '.'")
    return os.path.join(DATA_DIR, "memories", f"{key}.json")


def remember(key: str, value: str) -> dict[str, str | bool]:
    """Keep ``value`` under ``key`` in the service's volume (written atomically and synced before the answer)."""
    path = _memory_path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"key": key, "value": value, "at": time.time(), "by": socket.gethostname()}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return {"key": key, "stored": True, "by": NAME}


def recall(key: str) -> dict[str, str | bool | None]:
    """The value kept under ``key`` (``found`` false when there is none)."""
    try:
        with open(_memory_path(key), encoding="utf-8") as handle:
            return {"key": key, "found": True, "value": json.load(handle)["value"], "by": NAME}
    except FileNotFoundError:
        return {"key": key, "found": False, "value": None, "by": NAME}


def memory_count() -> dict[str, int | str]:
    """How many memories the service's volume holds."""
    folder = os.path.join(DATA_DIR, "memories") if DATA_DIR else ""
    names = os.listdir(folder) if folder and os.path.isdir(folder) else []
    return {"count": sum(1 for n in names if n.endswith(".json") and not n.startswith(".")), "by": NAME}


if DATA_DIR:  # only a stateful service lists its memory tools
    for _tool in (remember, recall, memory_count):
        mcp.tool()(_tool)


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
