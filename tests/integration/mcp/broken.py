# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deliberately broken (and a few odd but valid) MCP servers, written with the standard library only.

One threaded HTTP server on 127.0.0.1, one behaviour per path:

=========================  =====================================================================================
``/status/500``            HTTP 500 with a text body
``/status/503``            HTTP 503 with an HTML page, as a proxy with no backend answers
``/auth/mcp``              HTTP 401 unless ``Authorization: Bearer <TOKEN>``; with it, a valid MCP server
``/json``                  HTTP 200 ``{"status": "ok"}``: JSON, but not JSON-RPC
``/html``                  HTTP 200, an HTML page
``/version/<v>/mcp``       a valid MCP server that answers ``initialize`` with protocol version ``<v>``
``/pages/mcp``             a valid MCP server whose ``tools/list`` comes in three pages (cursor pagination)
``/rpc-error/mcp``         answers ``initialize`` with a JSON-RPC error object
``/tool-error/mcp``        a valid MCP server whose tool ``fail`` returns ``isError: true``
``/hang``                  accepts the request and never answers (until the server stops)
=========================  =====================================================================================

The valid parts speak streamable HTTP with JSON replies, as the MCP specification describes it.
"""

from __future__ import annotations

import http.server
import json
import threading

TOKEN = "s3cret-token-for-tests"
HTML = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome</h1></body></html>\n"
PAGES = {None: (["echo"], "p2"), "p2": (["add"], "p3"), "p3": (["server_info"], None)}


def mini_mcp(message, version, name="broken-but-valid", paged=False):
    """A JSON-RPC reply of a tiny MCP server; None for a notification."""
    if "id" not in message:
        return None
    method, params = message.get("method"), message.get("params") or {}
    if method == "initialize":
        result = {"protocolVersion": version, "capabilities": {"tools": {}},
                  "serverInfo": {"name": name, "version": "0.0.1"}}
    elif method == "tools/list":
        if paged:
            names, cursor = PAGES[params.get("cursor")]
        else:
            names, cursor = ["echo", "fail"], None
        result = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in names]}
        if cursor:
            result["nextCursor"] = cursor
    elif method == "tools/call" and params.get("name") == "fail":
        result = {"content": [{"type": "text", "text": "the tool failed on purpose"}], "isError": True}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": json.dumps(params.get("arguments"))}], "isError": False}
    else:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "Method not found"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="application/json", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _mcp(self, version, **kwargs):
        length = int(self.headers.get("Content-Length") or 0)
        message = json.loads(self.rfile.read(length) or b"{}")
        reply = mini_mcp(message, version, **kwargs)
        if reply is None:
            self._send(202, "")
        else:
            self._send(200, json.dumps(reply))

    def do_GET(self):  # noqa: N802 (http.server's name)
        self._route()

    def do_POST(self):  # noqa: N802 (http.server's name)
        self._route()

    def _route(self):
        path = self.path.split("?")[0]
        if path == "/hang":
            self.server.stopping.wait()
            return
        if path == "/status/500":
            return self._send(500, "Internal Server Error: the backend crashed", "text/plain")
        if path == "/status/503":
            return self._send(503, "<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>",
                              "text/html")
        if path == "/json":
            return self._send(200, json.dumps({"status": "ok"}))
        if path == "/html":
            return self._send(200, HTML, "text/html")
        if path == "/auth/mcp":
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                return self._send(401, json.dumps({"error": "invalid_token", "error_description": "missing or bad token"}),
                                  headers={"WWW-Authenticate": 'Bearer realm="mcp"'})
            return self._mcp("2025-11-25", name="auth-server")
        if path.startswith("/version/") and path.endswith("/mcp"):
            return self._mcp(path.split("/")[2])
        if path == "/pages/mcp":
            return self._mcp("2025-06-18", paged=True)
        if path == "/tool-error/mcp":
            return self._mcp("2025-11-25")
        if path == "/rpc-error/mcp":
            return self._send(200, json.dumps({"jsonrpc": "2.0", "id": 1,
                                               "error": {"code": -32603, "message": "Internal error: database down"}}))
        return self._send(404, "not found", "text/plain")


class BrokenServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.shutdown()
        self.server_close()
