# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local stand-in for the Lambda Cloud API: the real API cannot be reached from here (no outbound network, and
no account), so the inventory plugin is tested against this server, which replays answers of the shape that
Lambda's OpenAPI description (version 1.10.0) documents.

What is taken from that description: ``GET /api/v1/instances`` → ``{"data": [...]}`` with the instances' fields
(tests/unit/plugins/module_utils/fixtures/lambda_cloud/instances.json: three GH200 servers, H100 agents, A10
machines, in three regions, in the states active, booting, unhealthy, terminating and terminated); Bearer or basic
auth; a refused key → 401 ``{"error": {"code": "global/invalid-api-key", ...}}``; an inactive account → 403
``global/account-inactive``. What is assumed: the bodies of 429 and 500 answers (the description documents none;
we send the same ``{"error": {...}}`` shape), ``Retry-After`` on some 429s and not on others, and pagination
(version 1 does not page; the plugin follows ``next_page_token``, ``next_cursor`` and ``Link: rel="next"``, so
scenarios here page in each of those ways).

Each scenario is a path prefix: ``http://127.0.0.1:PORT/<scenario>/api/v1/instances``. Every request is recorded
(scenario, path, query, whether the key was right, time) for the tests to count and time.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURE = (Path(__file__).resolve().parents[2] / "unit" / "plugins" / "module_utils" / "fixtures" / "lambda_cloud"
           / "instances.json")
# Shaped like a real key (secret_<name>_<hex>.<secret>); made up for these tests.
VALID_KEY = "secret_sophia-inventory_7f3c2a9e5b1d4c8fa0e6b2d9c4f1a3e7.Q9vX2mR8kL5tN1pZwY4c"
INVALID_KEY = {"code": "global/invalid-api-key", "message": "API key was invalid, expired, or deleted.",
               "suggestion": "Check your API key or create a new one, then try again."}
INACTIVE = {"code": "global/account-inactive", "message": "Your account is inactive.",
            "suggestion": "Make sure you have verified your email address and have a valid payment method. "
                          "Contact Support if problems continue."}
RATE_LIMITED = {"code": "global/rate-limited", "message": "Too many requests."}  # assumed shape
INTERNAL = {"code": "global/internal-error", "message": "Internal server error."}  # assumed shape


def instances():
    return json.loads(FIXTURE.read_text())["data"]


class FakeLambdaApi:
    """The server, run in a thread; ``url(scenario)`` is a base_url for the plugin."""

    def __init__(self):
        self.requests = []
        self.counters = {}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # pylint: disable=redefined-builtin
                return

            def do_GET(self):  # pylint: disable=invalid-name
                api.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def url(self, scenario):
        return "http://127.0.0.1:%d/%s/api/v1" % (self.port, scenario)

    def reset(self):
        with self._lock:
            self.requests.clear()
            self.counters.clear()

    def seen(self, scenario):
        return [r for r in self.requests if r["scenario"] == scenario]

    # --- answers -------------------------------------------------------------------------------------------------

    @staticmethod
    def _send(handler, status, body, headers=None, content_type="application/json"):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(raw)

    @staticmethod
    def _authorised(handler):
        auth = handler.headers.get("Authorization", "")
        if auth == "Bearer " + VALID_KEY:
            return True
        if auth.startswith("Basic "):
            try:
                user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                return False
            return user == VALID_KEY
        return False

    def handle(self, handler):
        parts = urlsplit(handler.path)
        segments = parts.path.strip("/").split("/")
        scenario = segments[0] if segments else ""
        rest = "/" + "/".join(segments[1:])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        ok_key = self._authorised(handler)
        with self._lock:
            count = self.counters.get(scenario, 0) + 1
            self.counters[scenario] = count
            self.requests.append({"scenario": scenario, "path": rest, "query": query, "key_ok": ok_key,
                                  "at": time.monotonic()})
        if rest != "/api/v1/instances":
            return self._send(handler, 404, {"error": {"code": "global/not-found",
                                                       "message": "The requested resource was not found."}})
        if scenario == "echo-key":  # a misbehaving API that echoes the credentials: the plugin must redact them
            return self._send(handler, 401, {"error": dict(INVALID_KEY, message="API key %s was invalid"
                                                           % handler.headers.get("Authorization", ""))})
        if not ok_key:
            return self._send(handler, 401, {"error": INVALID_KEY})
        data = instances()
        if scenario == "forbidden":
            return self._send(handler, 403, {"error": INACTIVE})
        if scenario == "ratelimited" and count <= 2:
            return self._send(handler, 429, {"error": RATE_LIMITED}, {"Retry-After": "1"})
        if scenario == "ratelimited-date" and count <= 1:
            return self._send(handler, 429, {"error": RATE_LIMITED},
                              {"Retry-After": formatdate(time.time() + 2, usegmt=True)})
        if scenario == "ratelimited-bare" and count <= 1:
            return self._send(handler, 429, {"error": RATE_LIMITED})
        if scenario == "always429":
            return self._send(handler, 429, {"error": RATE_LIMITED}, {"Retry-After": "1"})
        if scenario == "longwait":
            return self._send(handler, 429, {"error": RATE_LIMITED}, {"Retry-After": "3600"})
        if scenario == "flaky500" and count <= 1:
            return self._send(handler, 500, {"error": INTERNAL})
        if scenario == "always500":
            return self._send(handler, 500, {"error": INTERNAL})
        if scenario == "notjson":
            return self._send(handler, 200, b"<html><body>Welcome to nginx!</body></html>",
                              content_type="text/html")
        if scenario == "slow" and count <= 1:
            time.sleep(3)
        if scenario == "paged":  # next_page_token / page_token, 4 a page
            start = int(query.get("page_token", "0") or 0)
            body = {"data": data[start:start + 4]}
            if start + 4 < len(data):
                body["next_page_token"] = str(start + 4)
            return self._send(handler, 200, body)
        if scenario == "cursor":  # next_cursor / cursor, 5 a page, opaque cursors
            start = int(base64.b64decode(query["cursor"]).decode()) if "cursor" in query else 0
            body = {"data": data[start:start + 5]}
            if start + 5 < len(data):
                body["next_cursor"] = base64.b64encode(str(start + 5).encode()).decode()
            return self._send(handler, 200, body)
        if scenario in ("link", "link-elsewhere"):  # Link: <...>; rel="next", 6 a page
            start = int(query.get("offset", "0"))
            headers = {}
            if start + 6 < len(data):
                target = ("/link/api/v1/instances?offset=%d" % (start + 6) if scenario == "link"
                          else "http://collector.invalid/steal?offset=%d" % (start + 6))
                headers["Link"] = '<%s>; rel="next"' % target
            return self._send(handler, 200, {"data": data[start:start + 6]}, headers)
        if scenario == "loop":
            return self._send(handler, 200, {"data": data[:2], "next_page_token": "again"})
        return self._send(handler, 200, {"data": data})
