# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of the MCP probe client (plugins/module_utils/_mcp.py) on replies captured from the real sample server.

The captures are under fixtures/mcp/ (README.md there says how they were taken). ``Captured`` replays one of
them through the same interface as ``http.client.HTTPResponse`` (status, reason, getheader, read, readline):
the bytes are the server's, only the socket is missing. The exceptions fed to ``map_exception`` are the types
the standard library raises, built directly because unit tests open no connections. The retry loop is driven
with a fake clock and a fake attempt, since its subject is the timing, not the network.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import ssl
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _mcp
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "mcp"
URL = "http://127.0.0.1:18931/mcp"


def read_capture(name):
    """The raw bytes of a capture. Each is kept as one JSON string (NAME.json) so that its CRLF line endings
    survive: the repository's text files use LF only."""
    return json.loads((FIXTURES / f"{name}.json").read_text())["capture"].encode("latin-1")


class Captured:
    """A captured ``curl -i`` reply with the read interface of http.client.HTTPResponse."""

    def __init__(self, name):
        raw = read_capture(name)
        head, dummy, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        assert version.startswith("HTTP/")
        self.status = int(status)
        self.reason = reason[0] if reason else ""
        self.headers = {}
        for line in lines[1:]:
            key, dummy, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        self.body = body
        self._stream = io.BytesIO(body)

    def getheader(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def read(self, amt=None):
        return self._stream.read(amt)

    def readline(self, limit=-1):
        return self._stream.readline(limit)

    def json(self):
        return json.loads(self.body)


def options(**changes):
    base = {"url": URL, "transport": "auto", "expected_tools": [], "call_tool": None, "headers": {}, "timeout": 10.0,
            "deadline": 30.0, "retry_delay": 1.0, "validate_certs": True, "ca_path": None,
            "protocol_version": _mcp.LATEST_VERSION}
    base.update(changes)
    return base


# ------------------------------------------------------------------------------------------------------ SSE


def test_sse_stream_of_the_sdk_transport_decodes_to_endpoint_then_replies():
    events = _mcp.decode_sse(Captured("sse_stream.http").body.decode())
    assert [e["event"] for e in events] == ["endpoint", "message", "message", "message"]
    assert events[0]["data"].startswith("/messages/?session_id=")
    replies = [json.loads(e["data"]) for e in events[1:]]
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[0]["result"]["serverInfo"] == {"name": "mcp-sse", "version": "1.0.0"}
    assert replies[2]["result"]["structuredContent"] == {"result": "probe"}


@pytest.mark.parametrize("text, expected", [
    ("data: a\n\n", [{"event": "message", "data": "a", "id": None}]),
    ("data:a\r\n\r\n", [{"event": "message", "data": "a", "id": None}]),
    ("data:  two spaces\n\n", [{"event": "message", "data": " two spaces", "id": None}]),
    ("event: endpoint\ndata: /m?s=1\n\n", [{"event": "endpoint", "data": "/m?s=1", "id": None}]),
    ("data: line1\ndata: line2\n\n", [{"event": "message", "data": "line1\nline2", "id": None}]),
    (": ping - 2026-11-26\n\ndata: x\nid: 7\n\n", [{"event": "message", "data": "x", "id": "7"}]),
    ("event: nodata\n\ndata: y\n\n", [{"event": "message", "data": "y", "id": None}]),
    ("retry: 3000\ndata: z", [{"event": "message", "data": "z", "id": None}]),
    ("data\n\n", [{"event": "message", "data": "", "id": None}]),
    ("", []),
])
def test_sse_decoder_follows_the_event_stream_rules(text, expected):
    assert _mcp.decode_sse(text) == expected


def test_events_are_read_incrementally_and_the_hook_runs_before_each_read():
    calls = []
    stream = io.BytesIO(Captured("stateful_initialize.http").body)
    events = list(_mcp.iter_events(stream.readline, lambda: calls.append(1)))
    assert len(events) == 1 and json.loads(events[0]["data"])["id"] == 1
    assert len(calls) == 4  # event line, data line, blank line, end of stream


def test_reply_from_events_skips_server_notifications_and_requests():
    stream = (
        'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}\n\n'
        'event: message\ndata: {"jsonrpc":"2.0","id":"srv-1","method":"ping"}\n\n'
        + Captured("stateful_initialize.http").body.decode()
    )
    result = _mcp.reply_from_events(_mcp.decode_sse(stream), 1, URL, "initialize")
    assert result["serverInfo"]["name"] == "mcp-stateful"


def test_reply_from_events_without_a_reply_is_not_mcp():
    with pytest.raises(_mcp.McpNotMcpError, match="ended the SSE stream without a reply to tools/list"):
        _mcp.reply_from_events(_mcp.decode_sse('event: endpoint\ndata: /x\n\n'), 2, URL, "tools/list")


# ------------------------------------------------------------------------------------- POST replies (read_reply)


@pytest.mark.parametrize("name, request_id, server, session", [
    ("stateless_initialize.http", 1, "mcp-capture", None),
    ("stateful_initialize.http", 1, "mcp-stateful", True),
])
def test_initialize_replies_in_json_and_sse_framing(name, request_id, server, session):
    resp = Captured(name)
    result = _mcp.read_reply(resp, request_id, URL, "initialize")
    facts = _mcp.check_initialize(result, "2025-11-25", URL)
    assert facts["server"] == {"name": server, "version": "1.0.0"}
    assert facts["protocol_version"] == "2025-11-25"
    assert set(facts["capabilities"]) == {"prompts", "resources", "tools"}
    assert facts["instructions"].startswith("Sample MCP service")
    assert bool(resp.getheader("Mcp-Session-Id")) is bool(session)


@pytest.mark.parametrize("name, request_id, check", [
    ("stateless_tools_list.http", 2, lambda r: _mcp.tools_page(r, URL) == (["echo", "add", "server_info"], None)),
    ("stateless_call_echo.http", 3, lambda r: _mcp.tool_call_summary(r) == {
        "is_error": False, "text": "probe", "structured_content": {"result": "probe"}}),
    ("stateless_call_unknown_tool.http", 3, lambda r: _mcp.tool_call_summary(r) == {
        "is_error": True, "text": "Unknown tool: nope"}),
])
def test_captured_results(name, request_id, check):
    assert check(_mcp.read_reply(Captured(name), request_id, URL, "step"))


@pytest.mark.parametrize("name, request_id, session, error, fragments, details", [
    ("stateless_method_not_found.http", 4, False, _mcp.McpRpcError,
     ["JSON-RPC error -32601: Method not found", "nope/nothing"], {"code": -32601, "reason": "jsonrpc_error"}),
    ("stateless_initialized_notification.http", 9, False, _mcp.McpNotMcpError,
     ["HTTP 202 and no body"], {"reason": "not_mcp"}),
    ("readyz_get.http", 1, False, _mcp.McpNotMcpError,
     ['not JSON-RPC 2.0 (no "jsonrpc": "2.0"; keys: hostname, name, status, version)', "status\": \"ready"],
     {"reason": "not_mcp"}),
    ("readyz_post.http", 1, False, _mcp.McpHttpError,
     ["HTTP 405 Method Not Allowed: Method Not Allowed", "check the path"], {"status": 405, "reason": "http_status"}),
    ("sse_post_to_stream_url.http", 1, False, _mcp.McpHttpError, ["HTTP 405"], {"status": 405}),
    ("stateful_unknown_session.http", 2, True, _mcp.McpHttpError,
     ["HTTP 404 Not Found: JSON-RPC error -32600: Session not found", "new attempt starts a new session"],
     {"status": 404, "reason": "session_expired"}),
    ("stateful_missing_session.http", 2, False, _mcp.McpHttpError,
     ["HTTP 400 Bad Request: JSON-RPC error -32600: Bad Request: Missing session ID", "refused the request"],
     {"status": 400, "reason": "http_status"}),
])
def test_captured_failures(name, request_id, session, error, fragments, details):
    with pytest.raises(error) as caught:
        _mcp.read_reply(Captured(name), request_id, URL, "tools/list", session=session)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert details.items() <= caught.value.details.items()


def test_an_expired_session_is_retryable_a_missing_one_is_not():
    expired = _mcp.http_error(404, "Not Found", "application/json", Captured("stateful_unknown_session.http").body,
                              URL, "tools/list", session=True)
    missing = _mcp.http_error(400, "Bad Request", "application/json", Captured("stateful_missing_session.http").body,
                              URL, "tools/list")
    assert expired.retryable and not missing.retryable


# ---------------------------------------------------------------------------------- JSON-RPC and "not MCP"


HTML_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>"


@pytest.mark.parametrize("body, ctype, fragments", [
    (HTML_502, "text/html", ["an HTML page (content-type text/html)", "502 Bad Gateway", "Check the URL's path"]),
    ("<!doctype html><p>hi</p>", "", ["HTML page (content-type none)"]),
    ("ok", "text/plain", ["not JSON (content-type text/plain", "'ok'"]),
    ('{"jsonrpc": "2.0", "id": 1, "res', "application/json", ["not JSON", "Unterminated string"]),
])
def test_bodies_that_are_not_json(body, ctype, fragments):
    with pytest.raises(_mcp.McpNotMcpError) as caught:
        _mcp.parse_json(body.encode(), ctype, URL, "initialize")
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("message, error, fragment", [
    ([Captured("stateless_call_echo.http").json()], _mcp.McpNotMcpError, "not a JSON-RPC 2.0 message (a list"),
    ({"status": "ok"}, _mcp.McpNotMcpError, "keys: status"),
    ({"jsonrpc": "1.0", "id": 1, "result": {}}, _mcp.McpNotMcpError, 'no "jsonrpc": "2.0"'),
    ({"jsonrpc": "2.0", "id": 7, "result": {}}, _mcp.McpNotMcpError, "for id 7, but the request's id was 1"),
    ({"jsonrpc": "2.0", "id": 1}, _mcp.McpNotMcpError, "result is missing or not an object"),
    ({"jsonrpc": "2.0", "id": 1, "result": [1]}, _mcp.McpNotMcpError, "result is missing or not an object"),
    ({"jsonrpc": "2.0", "id": 1, "error": "boom"}, _mcp.McpNotMcpError, "malformed JSON-RPC error object"),
    ({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}, _mcp.McpRpcError,
     "JSON-RPC error -32700: Parse error"),
])
def test_check_reply_rejects_what_is_not_a_response(message, error, fragment):
    with pytest.raises(error, match=None) as caught:
        _mcp.check_reply(message, 1, URL, "initialize")
    assert fragment in str(caught.value)


def test_is_response_to_tells_replies_from_server_messages():
    reply = Captured("stateless_initialize.http").json()
    assert _mcp.is_response_to(reply, 1)
    assert not _mcp.is_response_to(reply, 2)
    assert not _mcp.is_response_to({"jsonrpc": "2.0", "id": 1, "method": "ping"}, 1)
    assert _mcp.is_response_to({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "x"}}, 5)


# ------------------------------------------------------------------------------------- version negotiation


@pytest.mark.parametrize("name, offered, negotiated", [
    ("stateless_initialize.http", "2025-11-25", "2025-11-25"),
    ("stateless_initialize_2024-11-05.http", "2024-11-05", "2024-11-05"),
    ("stateless_initialize_unknown_offer.http", "2025-06-18", "2025-11-25"),  # a counter-offer we speak
])
def test_negotiation_accepts_any_supported_answer(name, offered, negotiated):
    facts = _mcp.check_initialize(Captured(name).json()["result"], offered, URL)
    assert facts["protocol_version"] == negotiated


@pytest.mark.parametrize("answered", ["2026-07-28", "1999-01-01", "", None, 20251125])
def test_negotiation_refuses_versions_we_do_not_speak_naming_both(answered):
    with pytest.raises(_mcp.McpVersionError) as caught:
        _mcp.negotiate("2025-11-25", answered, URL)
    msg = str(caught.value)
    assert "protocol version %r" % (answered,) in msg
    assert "we offered '2025-11-25'" in msg
    assert "supported: 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25" in msg
    assert caught.value.details["reason"] == "unsupported_protocol_version"
    assert not caught.value.retryable


def test_supported_versions_match_the_sdk_handshake_versions():
    version = pytest.importorskip("mcp_types.version")
    assert _mcp.SUPPORTED_VERSIONS == version.HANDSHAKE_PROTOCOL_VERSIONS
    assert _mcp.LATEST_VERSION == version.LATEST_HANDSHAKE_VERSION


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r.pop("serverInfo"), "serverInfo"),
    (lambda r: r.pop("protocolVersion"), "protocolVersion"),
    (lambda r: r.update(capabilities=[]), "capabilities"),
    (lambda r: r["serverInfo"].pop("name"), "serverInfo.name"),
])
def test_initialize_result_that_is_not_mcp(mutate, fragment):
    result = Captured("stateless_initialize.http").json()["result"]
    mutate(result)
    with pytest.raises(_mcp.McpNotMcpError, match="not an MCP InitializeResult") as caught:
        _mcp.check_initialize(result, "2025-11-25", URL)
    assert fragment in str(caught.value)


# ----------------------------------------------------------------------------------------------- tools


def test_tools_pages_and_missing_tools():
    result = Captured("stateless_tools_list.http").json()["result"]
    names, cursor = _mcp.tools_page(dict(result, nextCursor="page-2"), URL)
    assert cursor == "page-2"
    assert _mcp.missing_tools(["gong_calls", "echo", "slack_post"], names) == ["gong_calls", "slack_post"]
    assert _mcp.missing_tools(["add", "echo"], names) == []
    with pytest.raises(_mcp.McpNotMcpError, match="not an MCP ListToolsResult"):
        _mcp.tools_page({"tools": [{"description": "no name"}]}, URL)


# ------------------------------------------------------------------------------------------ error mapping


@pytest.mark.parametrize("exc, cls, reason, retryable, fragments", [
    (ConnectionRefusedError(111, "Connection refused"), _mcp.McpConnectionError, "connection_refused", True,
     ["connection refused by 127.0.0.1:18931", "nothing listens on that port"]),
    (socket.gaierror(-2, "Name or service not known"), _mcp.McpConnectionError, "dns_error", True,
     ["cannot resolve host '127.0.0.1'", "(DNS): Name or service not known"]),
    (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), _mcp.McpTlsError,
     "tls_error", False, ["TLS certificate of 127.0.0.1:18931 could not be verified", "Set ca_path"]),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), _mcp.McpTlsError, "tls_error", False,
     ["TLS handshake with 127.0.0.1:18931 failed", "use an http:// URL"]),
    (socket.timeout("timed out"), _mcp.McpTimeoutError, "timeout", True, ["did not answer initialize within 2.5 s"]),
    (http.client.RemoteDisconnected("Remote end closed connection without response"), _mcp.McpConnectionError,
     "connection_error", True, ["closed the connection during initialize", "use https://"]),
    (ConnectionResetError(104, "Connection reset by peer"), _mcp.McpConnectionError, "connection_error", True,
     ["closed the connection"]),
    (http.client.BadStatusLine("\x15\x03\x01\x00\x02\x02\n"), _mcp.McpNotMcpError, "not_mcp", False,
     ["did not answer initialize with HTTP: BadStatusLine"]),
    (OSError(113, "No route to host"), _mcp.McpConnectionError, "connection_error", True,
     ["cannot reach 127.0.0.1:18931", "No route to host"]),
])
def test_map_exception(exc, cls, reason, retryable, fragments):
    err = _mcp.map_exception(exc, URL, "initialize", 2.5)
    assert isinstance(err, cls)  # the leaf classes do not inherit from each other
    assert err.details["reason"] == reason
    assert err.retryable is retryable
    assert err.details["url"] == URL and err.details["step"] == "initialize"
    for fragment in fragments:
        assert fragment in str(err)


def test_map_exception_lets_programming_errors_through():
    with pytest.raises(KeyError):
        _mcp.map_exception(KeyError("bug"), URL, "initialize")


@pytest.mark.parametrize("status, retryable, fragment", [
    (401, False, "pass them in the headers option"),
    (403, False, "pass them in the headers option"),
    (404, False, "check the path"),
    (500, True, "retried until the deadline"),
    (502, True, "retried until the deadline"),
    (503, True, "retried until the deadline"),
    (429, True, "retried until the deadline"),
    (418, False, "refused the request"),
    (307, False, "redirected to http://other/mcp"),
])
def test_http_error_statuses(status, retryable, fragment):
    err = _mcp.http_error(status, "Reason", "text/plain", b"  some\n body  ", URL, "initialize",
                          location="http://other/mcp")
    assert err.retryable is retryable
    assert fragment in str(err)
    assert "HTTP %d Reason: some body" % status in str(err)
    assert err.details["status"] == status and err.details["body"] == "some body"


def test_http_error_body_snippet_is_bounded():
    err = _mcp.http_error(500, "Internal Server Error", "text/html", b"<p>" + b"x" * 5000, URL, "initialize")
    assert len(err.details["body"]) == _mcp.SNIPPET_CHARS + 3


# ------------------------------------------------------------------------------------------ options, TLS


@pytest.mark.parametrize("changes, fragment", [
    ({"url": "ftp://host/mcp"}, "not an http:// or https:// URL"),
    ({"url": "http:///mcp"}, "not an http:// or https:// URL"),
    ({"url": "http://host:99999/mcp"}, "with a host (and a valid port)"),
    ({"url": "http://host:port/mcp"}, "with a host (and a valid port)"),
    ({"timeout": 0}, "timeout must be a positive"),
    ({"deadline": -1}, "deadline must be a positive"),
    ({"retry_delay": -0.5}, "retry_delay must be zero or more"),
    ({"transport": "websocket"}, "transport must be one of auto, streamable_http, sse"),
    ({"protocol_version": "2026-07-28"}, "protocol_version '2026-07-28' is not one this client speaks"),
    ({"headers": {"Mcp-Session-Id": "x"}}, "set by the probe itself"),
    ({"headers": {"Authorization": "Bearer a\r\nX-Evil: 1"}}, "not a valid single HTTP header line"),
    ({"headers": {"Bad Name": "x"}}, "not a valid single HTTP header line"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path /nonexistent/ca.pem cannot be read"),
])
def test_check_options(changes, fragment):
    with pytest.raises(InputError) as caught:
        _mcp.check_options(options(**changes))
    assert fragment in str(caught.value)
    assert "Bearer" not in str(caught.value)


def test_ssl_context_modes(tmp_path):
    assert _mcp.ssl_context(False).verify_mode == ssl.CERT_NONE
    strict = _mcp.ssl_context(True)
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(InputError, match="not a readable PEM CA certificate"):
        _mcp.ssl_context(True, str(bad))


@pytest.mark.parametrize("endpoint, ok", [
    ("/messages/?session_id=abc", True),
    ("http://127.0.0.1:18932/messages/?session_id=abc", True),
    ("http://evil.example:18932/messages/", False),
    ("https://127.0.0.1:18932/messages/", False),
])
def test_sse_endpoint_must_stay_on_the_same_origin(endpoint, ok):
    clock = _mcp._Clock(10, 30)
    transport = _mcp.LegacySse(_mcp._Http("http://127.0.0.1:18932/sse", {}, None, clock))
    if ok:
        assert transport._check_endpoint(endpoint, "connect").startswith("http://127.0.0.1:18932/messages/")
    else:
        with pytest.raises(_mcp.McpNotMcpError, match="endpoint on another origin"):
            transport._check_endpoint(endpoint, "connect")


# -------------------------------------------------------------------------------------- retries, deadline


class FakeTime:
    def __init__(self):
        self.t = 1000.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


FACTS = {"server": {"name": "s", "version": "1"}, "protocol_version": "2025-11-25", "tools": [], "transport":
         "streamable_http", "steps": [{"step": "initialize", "latency_ms": 1.0}]}


@pytest.mark.parametrize("outcomes, deadline, attempts, raised", [
    (["ok"], 30, 1, None),
    (["refused", "refused", "ok"], 30, 3, None),
    (["timeout", "ok"], 30, 2, None),
    (["refused"] * 50, 5, 5, _mcp.McpConnectionError),  # 1 s per failed attempt: gives up at the deadline
    (["refused", "version"], 30, 2, _mcp.McpVersionError),  # not retried
    (["tls"], 30, 1, _mcp.McpTlsError),
])
def test_probe_retries_retryable_failures_until_the_deadline(monkeypatch, outcomes, deadline, attempts, raised):
    clock = FakeTime()
    errors = {
        "refused": lambda: _mcp.map_exception(ConnectionRefusedError(111, "refused"), URL, "initialize"),
        "timeout": lambda: _mcp.map_exception(socket.timeout("timed out"), URL, "initialize", 10),
        "version": lambda: _mcp.McpVersionError("bad version", url=URL),
        "tls": lambda: _mcp.McpTlsError("bad cert", url=URL),
    }
    seen = []

    def fake_attempt(opts, clk, context):
        seen.append(clk.remaining())
        outcome = outcomes[len(seen) - 1]
        if outcome == "ok":
            return dict(FACTS)
        raise errors[outcome]()

    monkeypatch.setattr(_mcp, "attempt", fake_attempt)

    def run():
        return _mcp.probe(options(deadline=deadline, retry_delay=1.0), now=clock.now, sleep=clock.sleep)

    if raised:
        with pytest.raises(raised) as caught:
            run()
        assert caught.value.details["attempts"] == attempts
        assert len(caught.value.details["failed_attempts"]) == min(attempts, 10)
        assert ("gave up at the deadline" in str(caught.value)) is caught.value.retryable
    else:
        facts = run()
        assert facts["attempts"] == attempts
        assert [f["attempt"] for f in facts["failed_attempts"]] == list(range(1, attempts))
        assert "attempt %d" % attempts in facts["msg"]
    assert len(seen) == attempts
    assert clock.t - 1000.0 <= deadline


def test_request_time_is_the_smaller_of_timeout_and_what_is_left():
    clock = FakeTime()
    budget = _mcp._Clock(10, 12, now=clock.now)
    assert budget.until() == 1010.0
    clock.sleep(5)
    assert budget.until() == 1012.0
    clock.sleep(8)
    with pytest.raises(_mcp.McpTimeoutError, match="in time"):
        budget.left(budget.until(), URL, "tools/list")


# ------------------------------------------------------------------------------------------------ probe_many

def test_probe_many_keeps_the_order_and_collects_each_failure():
    """probe_many's own logic (order, failures, shared options) over a stand-in for probe(); the real exchange with
    the SDK's servers is in tests/integration/mcp."""
    urls = ["http://10.0.0.%d:9005/mcp" % i for i in range(1, 6)]
    seen = []

    def fake(opts):
        seen.append((opts["url"], opts["deadline"]))
        if opts["url"].startswith("http://10.0.0.3"):
            raise _mcp.McpConnectionError("connection refused by 10.0.0.3:9005", reason="connection_refused",
                                          attempts=4)
        return {"url": opts["url"], "transport": "streamable_http", "elapsed_ms": 1.0}

    results, failed = _mcp.probe_many(options(deadline=7.0), urls, parallel=3, probe_fn=fake)
    assert [r["url"] for r in results] == urls and sorted(seen) == [(u, 7.0) for u in urls]
    assert [r["ok"] for r in results] == [True, True, False, True, True]
    assert failed == [results[2]] and failed[0]["reason"] == "connection_refused" and failed[0]["attempts"] == 4
    assert "connection refused by 10.0.0.3:9005" in failed[0]["msg"]


@pytest.mark.parametrize("urls, fragment", [
    ([], "urls is empty"),
    (["http://a:1/mcp", "http://b:1/mcp", "http://a:1/mcp"], "urls lists http://a:1/mcp more than once"),
])
def test_probe_many_refuses_bad_lists(urls, fragment):
    with pytest.raises(InputError, match=fragment):
        _mcp.probe_many(options(), urls, probe_fn=lambda opts: {})


def test_probe_many_checks_the_shared_options_once_before_probing():
    calls = []
    with pytest.raises(InputError, match="timeout"):
        _mcp.probe_many(options(timeout=0), ["http://a:1/mcp", "http://b:1/mcp"], probe_fn=calls.append)
    assert calls == []
