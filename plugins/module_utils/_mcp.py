# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small MCP client for probing servers, written with the Python standard library only.

It speaks JSON-RPC 2.0 over the two HTTP transports of the Model Context Protocol:

- streamable HTTP (protocol 2025-03-26 and later): every client message is a POST to one URL; the reply is
  either one JSON object or an SSE stream that carries it; the server may hand out an ``Mcp-Session-Id``
  that later requests send back;
- the older HTTP+SSE transport (protocol 2024-11-05): a GET opens an SSE stream whose first ``endpoint``
  event names the URL to POST messages to; the replies come back on the stream.

``probe(options)`` runs ``initialize`` (version negotiation), ``notifications/initialized``, ``tools/list``
(every page) and optionally one ``tools/call``, times each step, and retries the whole exchange until an
overall deadline. Every failure is an :class:`McpError` whose message says what failed, where, and what to
do, and whose ``details`` carry ``reason`` (a stable keyword), ``url``, ``step`` and, where they apply,
``status``, ``body``, ``code``. The module (plugins/modules/mcp_probe.py) only calls ``probe``.

The parsing and checking helpers (``SseDecoder``, ``check_reply``, ``negotiate``, ``check_initialize``,
``map_exception``, ``http_error``, ``read_reply``) are pure so that unit tests drive them with replies captured
from the real sample server.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

CLIENT_INFO = {"name": "sophia_ai.platform.mcp_probe", "version": "0.1.0"}

# Protocol revisions reached through the initialize handshake, oldest to newest (the official SDK 2.3.0
# negotiates the same set; its 2026-07-28 revision drops initialize for a per-request envelope).
SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

TRANSPORTS = ("auto", "streamable_http", "sse")
ACCEPT_POST = "application/json, text/event-stream"
# Headers the probe sets itself; a user's headers option may not override them.
RESERVED_HEADERS = ("accept", "content-type", "content-length", "mcp-session-id", "mcp-protocol-version")
# Streamable HTTP answers that mean "this URL speaks the old HTTP+SSE transport" (MCP spec, backwards
# compatibility): the auto transport then opens an SSE stream on the same URL.
FALLBACK_STATUSES = (404, 405)
RETRYABLE_STATUSES = (408, 425, 429, 500, 502, 503, 504)
SNIPPET_CHARS = 200
MAX_BODY = 8 * 1024 * 1024
MAX_PAGES = 100


# --------------------------------------------------------------------------------------------------- errors


class McpError(ApiError):
    """An MCP server could not be probed. ``retryable`` says whether a later attempt may succeed."""

    reason = "mcp"
    retryable = False

    def __init__(self, msg, **details):
        retryable = details.pop("retryable", None)
        details.setdefault("reason", self.reason)
        super().__init__(msg, **details)
        if retryable is not None:
            self.retryable = retryable

    def again(self, msg, **more):
        """The same kind of error with another message and more details (used to add context on the way up)."""
        details = dict(self.details, **more)
        details["retryable"] = self.retryable
        return type(self)(msg, **details)


class McpConnectionError(McpError):
    """No TCP connection (refused, unreachable, DNS) or the connection dropped before the reply."""

    reason = "connection_error"
    retryable = True


class McpTlsError(McpError):
    """The TLS handshake failed (certificate verification, protocol mismatch)."""

    reason = "tls_error"


class McpTimeoutError(McpError):
    """No (complete) reply within the request timeout or the overall deadline."""

    reason = "timeout"
    retryable = True


class McpHttpError(McpError):
    """The server answered with an HTTP status that is not a reply (3xx, 4xx, 5xx)."""

    reason = "http_status"


class McpNotMcpError(McpError):
    """The server answered, but not with MCP: HTML, plain JSON, text, a malformed JSON-RPC message."""

    reason = "not_mcp"


class McpRpcError(McpError):
    """The server answered a request with a JSON-RPC error object."""

    reason = "jsonrpc_error"


class McpVersionError(McpError):
    """The server chose a protocol version this client does not speak."""

    reason = "unsupported_protocol_version"


class McpToolsError(McpError):
    """tools/list lacks tools the caller expects, or the tool to call is not offered."""

    reason = "tools_missing"


class McpToolCallError(McpError):
    """tools/call returned a result with isError true."""

    reason = "tool_error"


# ------------------------------------------------------------------------------------------- pure helpers


def snippet(data, limit=SNIPPET_CHARS):
    """The start of a reply body as one line of text, for error messages."""
    if isinstance(data, bytes):
        data = data[: limit * 4].decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", data or "").strip()
    return text if len(text) <= limit else text[:limit] + "..."


class SseDecoder:
    """Server-sent events decoder (WHATWG "event stream interpretation"), fed one line at a time.

    ``feed(line)`` returns a finished event ``{"event": type, "data": text, "id": id}`` at the blank line
    that ends it, else None. Comments (``: ping``) and ``retry`` are skipped; an event without data is
    dropped, as the standard says.
    """

    def __init__(self):
        self._data = []
        self._event = ""
        self._id = None

    def feed(self, line):
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self):
        event = None
        if self._data:
            event = {"event": self._event or "message", "data": "\n".join(self._data), "id": self._id}
        self._data = []
        self._event = ""
        return event


def decode_sse(text):
    """Every event in a complete SSE body (a stream that ends without a blank line still ends its event)."""
    decoder = SseDecoder()
    events = []
    for line in text.splitlines() + [""]:
        event = decoder.feed(line)
        if event:
            events.append(event)
    return events


def rpc_request(method, params, request_id):
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def rpc_notification(method, params=None):
    message = {"jsonrpc": "2.0", "method": method}
    if params:
        message["params"] = params
    return message


def initialize_params(protocol_version):
    return {"protocolVersion": protocol_version, "capabilities": {}, "clientInfo": dict(CLIENT_INFO)}


def parse_json(body, content_type, url, step):
    """The JSON value of a reply body; HTML, text and broken JSON raise McpNotMcpError naming what came back."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    ctype = (content_type or "").split(";")[0].strip().lower()
    looks_html = ctype in ("text/html", "application/xhtml+xml") or text.lstrip()[:1] == "<"
    if looks_html:
        raise McpNotMcpError(
            "%s answered %s with an HTML page (content-type %s), not MCP: %r. Check the URL's path "
            "(the sample servers serve MCP at /mcp) and whether a proxy answered instead of the MCP server."
            % (url, step, ctype or "none", snippet(text)),
            url=url, step=step, content_type=ctype, body=snippet(text))
    try:
        return json.loads(text)
    except ValueError as exc:
        raise McpNotMcpError(
            "%s answered %s with a body that is not JSON (content-type %s: %s): %r; not an MCP endpoint?"
            % (url, step, ctype or "none", exc, snippet(text)),
            url=url, step=step, content_type=ctype, body=snippet(text)) from None


def is_response_to(message, request_id):
    """Whether a JSON-RPC message is the response to ``request_id`` (server requests and notifications are not)."""
    if not isinstance(message, dict) or "method" in message:
        return False
    return message.get("id") == request_id or ("error" in message and message.get("id") is None)


def check_reply(message, request_id, url, step):
    """The ``result`` of a JSON-RPC 2.0 response to ``request_id``; anything else raises a clear McpError."""
    if not isinstance(message, dict):
        raise McpNotMcpError(
            "%s answered %s with JSON that is not a JSON-RPC 2.0 message (a %s: %r); not an MCP endpoint?"
            % (url, step, type(message).__name__, snippet(json.dumps(message))),
            url=url, step=step, body=snippet(json.dumps(message)))
    if message.get("jsonrpc") != "2.0":
        raise McpNotMcpError(
            "%s answered %s with JSON that is not JSON-RPC 2.0 (no \"jsonrpc\": \"2.0\"; keys: %s): %r; "
            "this URL serves something else than MCP (a health or status endpoint?)"
            % (url, step, ", ".join(sorted(message)) or "none", snippet(json.dumps(message))),
            url=url, step=step, body=snippet(json.dumps(message)))
    if "error" in message:
        error = message["error"]
        if not isinstance(error, dict) or not isinstance(error.get("code"), int) or "message" not in error:
            raise McpNotMcpError(
                "%s answered %s with a malformed JSON-RPC error object: %r" % (url, step, snippet(json.dumps(error))),
                url=url, step=step, body=snippet(json.dumps(message)))
        extra = {"data": error["data"]} if "data" in error else {}
        raise McpRpcError(
            "%s answered %s with JSON-RPC error %s: %s%s"
            % (url, step, error["code"], error["message"],
               " (data: %s)" % snippet(json.dumps(error["data"])) if "data" in error else ""),
            url=url, step=step, code=error["code"], error_message=error["message"], **extra)
    if message.get("id") != request_id:
        raise McpNotMcpError(
            "%s answered %s with a JSON-RPC response for id %r, but the request's id was %r"
            % (url, step, message.get("id"), request_id), url=url, step=step)
    if not isinstance(message.get("result"), dict):
        raise McpNotMcpError(
            "%s answered %s with a JSON-RPC response whose result is missing or not an object: %r"
            % (url, step, snippet(json.dumps(message))), url=url, step=step, body=snippet(json.dumps(message)))
    return message["result"]


def negotiate(offered, answered, url, supported=SUPPORTED_VERSIONS):
    """The protocol version to use: the server's answer, if this client speaks it (MCP lifecycle, initialize)."""
    if answered in supported:
        return answered
    raise McpVersionError(
        "%s answered initialize with protocol version %r, which this client does not support (we offered %r; "
        "supported: %s). Upgrade the collection, or pin the server to one of the supported versions."
        % (url, answered, offered, ", ".join(supported)),
        url=url, step="initialize", offered=offered, answered=answered, supported=list(supported))


def check_initialize(result, offered, url):
    """Server facts from an ``initialize`` result, after negotiating the version."""
    info = result.get("serverInfo")
    missing = [key for key, kind in (("protocolVersion", str), ("capabilities", dict), ("serverInfo", dict))
               if not isinstance(result.get(key), kind)]
    if not missing and not isinstance(info.get("name"), str):
        missing.append("serverInfo.name")
    if missing:
        raise McpNotMcpError(
            "%s answered initialize with a JSON-RPC result that is not an MCP InitializeResult (missing or "
            "malformed: %s): %r" % (url, ", ".join(missing), snippet(json.dumps(result))),
            url=url, step="initialize", body=snippet(json.dumps(result)))
    version = negotiate(offered, result["protocolVersion"], url)
    server = {"name": info["name"], "version": str(info.get("version", ""))}
    if isinstance(info.get("title"), str):
        server["title"] = info["title"]
    return {
        "protocol_version": version,
        "server": server,
        "capabilities": result["capabilities"],
        "instructions": result.get("instructions") if isinstance(result.get("instructions"), str) else None,
    }


def tools_page(result, url):
    """``(names, next_cursor)`` of one ``tools/list`` result."""
    tools = result.get("tools")
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise McpNotMcpError(
            "%s answered tools/list with a result that is not an MCP ListToolsResult (\"tools\" must be a list of "
            "objects with a name): %r" % (url, snippet(json.dumps(result))),
            url=url, step="tools/list", body=snippet(json.dumps(result)))
    cursor = result.get("nextCursor")
    return [t["name"] for t in tools], (cursor if isinstance(cursor, str) and cursor else None)


def missing_tools(expected, names):
    """The expected tool names not offered, in the order asked."""
    offered = set(names)
    return [name for name in expected if name not in offered]


def tool_call_summary(result):
    """``tools/call`` result reduced to what a probe reports: isError, the text content, structuredContent."""
    texts = [c.get("text", "") for c in result.get("content") or [] if isinstance(c, dict) and c.get("type") == "text"]
    summary = {"is_error": bool(result.get("isError", False)), "text": "\n".join(texts)}
    if "structuredContent" in result:
        summary["structured_content"] = result["structuredContent"]
    return summary


def http_error(status, reason, content_type, body, url, step, location=None, session=False):
    """McpHttpError for a non-2xx answer, with the status, a body snippet and what to do."""
    text = snippet(body)
    if "json" in (content_type or ""):
        try:
            rpc = json.loads(body.decode("utf-8", "replace") if isinstance(body, bytes) else body)
            if isinstance(rpc, dict) and isinstance(rpc.get("error"), dict) and "message" in rpc["error"]:
                text = "JSON-RPC error %s: %s" % (rpc["error"].get("code"), rpc["error"]["message"])
        except ValueError:
            pass
    if status == 404 and session:
        hint = ("the server no longer knows the session (restarted, or another replica answered): a new attempt "
                "starts a new session")
    elif status in (401, 403):
        hint = "the server wants credentials: pass them in the headers option (for example Authorization)"
    elif status in FALLBACK_STATUSES:
        hint = ("no MCP endpoint at this URL and method: check the path (the sample servers serve /mcp) and the "
                "transport (sse for servers that only speak the older HTTP+SSE transport)")
    elif 300 <= status < 400:
        hint = "redirected to %s: probe that URL instead" % (location or "an unnamed location")
    elif status in RETRYABLE_STATUSES:
        hint = "the server or a proxy in front of it is not ready or failing; retried until the deadline"
    else:
        hint = "the server refused the request"
    return McpHttpError(
        "%s answered %s with HTTP %s %s: %s (%s)" % (url, step, status, reason or "", text or "empty body", hint),
        url=url, step=step, status=status, body=text,
        retryable=status in RETRYABLE_STATUSES or (status == 404 and session),
        reason="session_expired" if status == 404 and session else McpHttpError.reason)


def map_exception(exc, url, step, wait_s=None, limit=None):
    """The McpError for a socket, TLS or HTTP-layer exception raised while talking to ``url`` during ``step``.

    ``wait_s`` is how long the request could wait and ``limit`` what set that (the timeout or the deadline).
    """
    if isinstance(exc, McpError):
        return exc
    parts = urlsplit(url)
    where = "%s:%s" % (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    plain = parts.scheme == "http"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return McpTlsError(
            "TLS certificate of %s could not be verified during %s: %s. Set ca_path to the CA certificate that "
            "signed it (or validate_certs=false, lab only)" % (where, step, getattr(exc, "verify_message", None) or exc),
            url=url, step=step, tls_error=str(getattr(exc, "verify_message", None) or exc))
    if isinstance(exc, ssl.SSLError):
        hint = (" - is the server speaking plain HTTP? then use an http:// URL"
                if "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc) else "")
        return McpTlsError("TLS handshake with %s failed during %s: %s%s" % (where, step, exc, hint),
                           url=url, step=step, tls_error=str(exc))
    if isinstance(exc, socket.timeout):
        waited = " within %.3g s" % wait_s if wait_s is not None else ""
        if limit:
            waited += " (%s)" % limit
        return McpTimeoutError("%s did not answer %s%s (timed out: %s)" % (url, step, waited, exc),
                               url=url, step=step)
    if isinstance(exc, socket.gaierror):
        return McpConnectionError(
            "cannot resolve host %r of %s (DNS): %s" % (parts.hostname, url, exc.strerror or exc),
            url=url, step=step, reason="dns_error")
    if isinstance(exc, ConnectionRefusedError):
        return McpConnectionError(
            "connection refused by %s (%s): nothing listens on that port (yet); is the server running and the "
            "port published?" % (where, url), url=url, step=step, reason="connection_refused")
    if isinstance(exc, (ConnectionError, http.client.IncompleteRead, http.client.RemoteDisconnected)):
        hint = " (a TLS server reached with http://? use https://)" if plain else ""
        return McpConnectionError("%s closed the connection during %s before a complete reply: %s%s"
                                  % (where, step, exc or type(exc).__name__, hint), url=url, step=step)
    if isinstance(exc, http.client.HTTPException):
        hint = " (a TLS server reached with http://? use https://)" if plain else ""
        return McpNotMcpError("%s did not answer %s with HTTP: %s: %s%s"
                              % (where, step, type(exc).__name__, snippet(str(exc)), hint), url=url, step=step)
    if isinstance(exc, OSError):
        return McpConnectionError("cannot reach %s (%s) during %s: %s" % (where, url, step, exc.strerror or exc),
                                  url=url, step=step)
    raise exc


def check_options(options):
    """Validate the probe options before any network traffic; raises InputError."""
    parts = urlsplit(options["url"] or "")
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number or out of range
        valid = False
    if not valid:
        raise InputError("url %r is not an http:// or https:// URL with a host (and a valid port)" % options["url"],
                         object="url")
    for key in ("timeout", "deadline"):
        if options[key] is None or options[key] <= 0:
            raise InputError("%s must be a positive number of seconds, got %r" % (key, options[key]), object=key)
    if options["retry_delay"] is None or options["retry_delay"] < 0:
        raise InputError("retry_delay must be zero or more seconds, got %r" % options["retry_delay"],
                         object="retry_delay")
    if options["transport"] not in TRANSPORTS:
        raise InputError("transport must be one of %s, got %r" % (", ".join(TRANSPORTS), options["transport"]),
                         object="transport")
    if options["protocol_version"] not in SUPPORTED_VERSIONS:
        raise InputError("protocol_version %r is not one this client speaks: %s"
                         % (options["protocol_version"], ", ".join(SUPPORTED_VERSIONS)), object="protocol_version")
    for name, value in (options.get("headers") or {}).items():
        if name.lower() in RESERVED_HEADERS:
            raise InputError("header %r is set by the probe itself; remove it from headers" % name, object="headers")
        if re.search(r"[\r\n]", "%s%s" % (name, value)) or not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
            raise InputError("header %r has a name or value that is not a valid single HTTP header line" % name,
                             object="headers")
    ca_path = options.get("ca_path")
    if ca_path and not os.access(ca_path, os.R_OK):
        raise InputError("ca_path %s cannot be read" % ca_path, object="ca_path")


def ssl_context(validate_certs, ca_path=None):
    """The TLS context: system trust store, or only ``ca_path`` when given, or no verification at all."""
    if not validate_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_path or None)
    except (OSError, ssl.SSLError) as exc:
        raise InputError("ca_path %s is not a readable PEM CA certificate: %s" % (ca_path, exc), object="ca_path")


# ----------------------------------------------------------------------------------------- reading replies


def iter_events(readline, before_read=None):
    """SSE events from a line reader; ``before_read()`` runs before each blocking read (it sets the timeout)."""
    decoder = SseDecoder()
    while True:
        if before_read:
            before_read()
        line = readline(MAX_BODY)
        if not line:
            event = decoder.feed("")
            if event:
                yield event
            return
        event = decoder.feed(line)
        if event:
            yield event


def reply_from_events(events, request_id, url, step):
    """The response to ``request_id`` among SSE ``message`` events (others: server requests, notifications)."""
    for event in events:
        if event["event"] != "message":
            continue
        message = parse_json(event["data"], "application/json", url, step)
        if is_response_to(message, request_id):
            return check_reply(message, request_id, url, step)
        if isinstance(message, dict) and "method" in message:
            continue  # a server notification or request (progress, logging, ping): not ours to answer here
        check_reply(message, request_id, url, step)  # raises: a message that is not JSON-RPC at all
    raise McpNotMcpError("%s ended the SSE stream without a reply to %s" % (url, step), url=url, step=step)


def read_reply(resp, request_id, url, step, before_read=None, session=False):
    """The ``result`` of a streamable HTTP POST's response ``resp`` (an http.client.HTTPResponse or alike)."""
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if resp.status < 200 or resp.status >= 300:
        raise http_error(resp.status, resp.reason, ctype, resp.read(MAX_BODY), url, step,
                         location=resp.getheader("Location"), session=session)
    if ctype == "text/event-stream":
        return reply_from_events(iter_events(resp.readline, before_read), request_id, url, step)
    body = resp.read(MAX_BODY)
    if resp.status == 202 or not body.strip():
        raise McpNotMcpError("%s answered %s with HTTP %s and no body, where a JSON-RPC reply was due"
                             % (url, step, resp.status), url=url, step=step, status=resp.status)
    if ctype and ctype != "application/json" and not ctype.endswith("+json") and ctype != "text/html":
        raise McpNotMcpError(
            "%s answered %s with content-type %s, neither application/json nor text/event-stream: %r"
            % (url, step, ctype, snippet(body)), url=url, step=step, content_type=ctype, body=snippet(body))
    return check_reply(parse_json(body, ctype, url, step), request_id, url, step)


# ------------------------------------------------------------------------------------------------ transport


class _Clock:
    """The overall deadline and the per-request timeout: each blocking call gets what is left of both."""

    def __init__(self, timeout, deadline, now=time.monotonic):
        self.now = now
        self.timeout = timeout
        self.started = now()
        self.deadline_at = self.started + deadline

    def remaining(self):
        return self.deadline_at - self.now()

    def until(self):
        """The time by which a request started now must be answered."""
        return min(self.now() + self.timeout, self.deadline_at)

    def left(self, until, url, step):
        left = until - self.now()
        if left <= 0:
            raise McpTimeoutError("%s did not answer %s in time (timeout %s s per request, %.3g s left of the "
                                  "deadline)" % (url, step, self.timeout, max(self.remaining(), 0)),
                                  url=url, step=step)
        return left


class _Http:
    """Connections to one URL's origin with the probe's TLS settings and headers; maps errors to McpError."""

    def __init__(self, url, headers, context, clock):
        self.url = url
        self.parts = urlsplit(url)
        self.headers = dict(headers or {})
        self.context = context
        self.clock = clock

    def path(self, url=None):
        parts = urlsplit(url or self.url)
        return (parts.path or "/") + ("?" + parts.query if parts.query else "")

    def open(self, method, url, body, headers, step, until):
        """Send one request; returns ``(connection, socket, response)``; the caller closes the connection."""
        parts = urlsplit(url)
        wait = self.clock.left(until, url, step)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=wait, context=self.context)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=wait)
        try:
            conn.connect()
            sock = conn.sock
            conn.request(method, self.path(url), body=body, headers=dict(self.headers, **headers))
            sock.settimeout(self.clock.left(until, url, step))
            return conn, sock, conn.getresponse()
        except Exception as exc:  # pylint: disable=broad-except
            conn.close()
            limit = ("the timeout option" if until < self.clock.deadline_at
                     else "what was left of the %.3g s deadline" % (self.clock.deadline_at - self.clock.started))
            raise map_exception(exc, url, step, wait, limit) from None

    def guard(self, sock, until, url, step):
        """A ``before_read`` hook: each read waits no longer than what is left until ``until``."""
        def before_read():
            sock.settimeout(self.clock.left(until, url, step))
        return before_read


def _post_json(message):
    return json.dumps(message, separators=(",", ":")).encode()


class StreamableHttp:
    """MCP streamable HTTP transport: one POST per message, JSON or SSE-framed replies, optional session."""

    name = "streamable_http"

    def __init__(self, http):
        self.http = http
        self.url = http.url
        self.session_id = None
        self.protocol_version = None

    def open(self, steps):
        """Nothing to open: streamable HTTP starts with the initialize POST."""

    def _headers(self):
        headers = {"Content-Type": "application/json", "Accept": ACCEPT_POST}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def request(self, message, step):
        until = self.http.clock.until()
        conn, sock, resp = self.http.open("POST", self.url, _post_json(message), self._headers(), step, until)
        try:
            if step == "initialize" and resp.getheader("Mcp-Session-Id"):
                self.session_id = resp.getheader("Mcp-Session-Id")
            return read_reply(resp, message["id"], self.url, step, self.http.guard(sock, until, self.url, step),
                              session=bool(self.session_id) and step != "initialize")
        except McpError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise map_exception(exc, self.url, step, self.http.clock.timeout) from None
        finally:
            conn.close()

    def notify(self, message, step):
        until = self.http.clock.until()
        conn, dummy, resp = self.http.open("POST", self.url, _post_json(message), self._headers(), step, until)
        try:
            body = resp.read(MAX_BODY)
            if resp.status < 200 or resp.status >= 300:
                raise http_error(resp.status, resp.reason, resp.getheader("Content-Type"), body, self.url, step,
                                 session=bool(self.session_id))
        except McpError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise map_exception(exc, self.url, step, self.http.clock.timeout) from None
        finally:
            conn.close()

    def close(self):
        """End the session the server handed out (DELETE, best effort: a server may answer 405)."""
        if not self.session_id or self.http.clock.remaining() <= 0:
            return
        until = min(self.http.clock.until(), self.http.clock.now() + 2)
        try:
            conn, dummy, resp = self.http.open("DELETE", self.url, None, self._headers(), "session delete", until)
            resp.read(MAX_BODY)
            conn.close()
        except McpError:
            pass


class LegacySse:
    """MCP HTTP+SSE transport (protocol 2024-11-05): GET an event stream, POST to its ``endpoint``."""

    name = "sse"

    def __init__(self, http):
        self.http = http
        self.url = http.url
        self.endpoint = None
        self.protocol_version = None
        self._conn = None
        self._sock = None
        self._events = None
        self._until = None
        self._step_name = "connect (SSE GET)"

    def open(self, steps):
        started = self.http.clock.now()
        until = self.http.clock.until()
        self._until = until
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        self._conn, self._sock, resp = self.http.open("GET", self.url, None, headers, "connect (SSE GET)", until)
        step = "connect (SSE GET)"
        try:
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if resp.status != 200:
                raise http_error(resp.status, resp.reason, ctype, resp.read(MAX_BODY), self.url, step,
                                 location=resp.getheader("Location"))
            if ctype != "text/event-stream":
                body = resp.read(MAX_BODY)
                raise McpNotMcpError(
                    "%s answered the SSE GET with content-type %s, not an event stream: %r; this URL is not an "
                    "MCP HTTP+SSE endpoint (nor a streamable HTTP one, or its POST would have worked)"
                    % (self.url, ctype or "none", snippet(body)),
                    url=self.url, step=step, content_type=ctype, body=snippet(body))
            self._events = iter_events(resp.readline, self._before_read)
            for event in self._events:
                if event["event"] == "endpoint":
                    self.endpoint = self._check_endpoint(event["data"].strip(), step)
                    break
            else:
                raise McpNotMcpError("%s ended the SSE stream without an endpoint event" % self.url,
                                     url=self.url, step=step)
        except McpError:
            self.close()
            raise
        except Exception as exc:  # pylint: disable=broad-except
            self.close()
            raise map_exception(exc, self.url, step, self.http.clock.timeout) from None
        steps.append({"step": "connect", "latency_ms": _ms(self.http.clock.now() - started),
                      "endpoint": self.endpoint})

    def _before_read(self):
        self._sock.settimeout(self.http.clock.left(self._until, self.url, self._step_name))

    def _check_endpoint(self, data, step):
        endpoint = urljoin(self.url, data)
        mine, theirs = urlsplit(self.url), urlsplit(endpoint)
        if (mine.scheme, mine.hostname, mine.port) != (theirs.scheme, theirs.hostname, theirs.port):
            raise McpNotMcpError(
                "%s named an endpoint on another origin (%s); the probe does not send messages (or your headers) "
                "there" % (self.url, endpoint), url=self.url, step=step, endpoint=endpoint)
        return endpoint

    def _post(self, message, step):
        until = self.http.clock.until()
        headers = {"Content-Type": "application/json"}
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        conn, dummy, resp = self.http.open("POST", self.endpoint, _post_json(message), headers, step, until)
        try:
            body = resp.read(MAX_BODY)
            if resp.status < 200 or resp.status >= 300:
                raise http_error(resp.status, resp.reason, resp.getheader("Content-Type"), body, self.endpoint,
                                 step, session=resp.status == 404)
        except McpError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise map_exception(exc, self.endpoint, step, self.http.clock.timeout) from None
        finally:
            conn.close()
        return until

    def request(self, message, step):
        self._until = self._post(message, step)
        self._step_name = step
        try:
            return reply_from_events(self._events, message["id"], self.url, step)
        except McpError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise map_exception(exc, self.url, step, self.http.clock.timeout) from None

    def notify(self, message, step):
        self._post(message, step)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ------------------------------------------------------------------------------------------------ the probe


def _ms(seconds):
    return round(seconds * 1000.0, 3)


def _timed(clock, steps, name, call, **extra):
    started = clock.now()
    result = call()
    entry = {"step": name, "latency_ms": _ms(clock.now() - started)}
    entry.update(extra)
    steps.append(entry)
    return result


def exchange(transport, options, clock):
    """One attempt: initialize, initialized, tools/list (all pages), optionally tools/call. Returns facts."""
    url = transport.url
    steps = []
    transport.open(steps)
    offered = options["protocol_version"]
    result = _timed(clock, steps, "initialize",
                    lambda: transport.request(rpc_request("initialize", initialize_params(offered), 1), "initialize"))
    facts = check_initialize(result, offered, url)
    transport.protocol_version = facts["protocol_version"]
    _timed(clock, steps, "notifications/initialized",
           lambda: transport.notify(rpc_notification("notifications/initialized"), "notifications/initialized"))

    expected = list(options.get("expected_tools") or [])
    call = options.get("call_tool") or None
    names = []
    if "tools" in facts["capabilities"] or expected or call:
        started, cursor, pages = clock.now(), None, 0
        while True:
            params = {"cursor": cursor} if cursor else {}
            page, cursor = tools_page(transport.request(rpc_request("tools/list", params, pages + 2), "tools/list"),
                                      url)
            names.extend(page)
            pages += 1
            if not cursor:
                break
            if pages >= MAX_PAGES:
                raise McpNotMcpError("%s kept answering tools/list with a nextCursor after %d pages"
                                     % (url, pages), url=url, step="tools/list")
        steps.append({"step": "tools/list", "latency_ms": _ms(clock.now() - started), "pages": pages})

    missing = missing_tools(expected, names)
    if missing:
        raise McpToolsError(
            "%s does not offer the expected tool%s %s; it offers: %s"
            % (url, "s" if len(missing) > 1 else "", ", ".join(missing), ", ".join(sorted(names)) or "no tools"),
            url=url, step="tools/list", missing=missing, tools=names)

    tool_call = None
    if call:
        if call["name"] not in names:
            raise McpToolsError("%s does not offer the tool %s to call; it offers: %s"
                                % (url, call["name"], ", ".join(sorted(names)) or "no tools"),
                                url=url, step="tools/call", missing=[call["name"]], tools=names)
        params = {"name": call["name"], "arguments": call.get("arguments") or {}}
        result = _timed(clock, steps, "tools/call",
                        lambda: transport.request(rpc_request("tools/call", params, MAX_PAGES + 2), "tools/call"))
        tool_call = dict(tool_call_summary(result), name=call["name"])
        steps[-1]["is_error"] = tool_call["is_error"]
        if tool_call["is_error"] and call.get("fail_on_error", True):
            raise McpToolCallError("%s answered tools/call %s with isError true: %s"
                                   % (url, call["name"], snippet(tool_call["text"]) or "no text"),
                                   url=url, step="tools/call", tool_call=tool_call)
    facts.update(tools=names, tool_call=tool_call, steps=steps, transport=transport.name)
    return facts


def attempt(options, clock, context):
    """One probe attempt over the transport asked for; ``auto`` falls back to SSE on HTTP 404/405."""
    http = _Http(options["url"], options.get("headers"), context, clock)
    kinds = {"streamable_http": StreamableHttp, "sse": LegacySse}
    if options["transport"] != "auto":
        return _run(kinds[options["transport"]](http), options, clock)
    try:
        return _run(StreamableHttp(http), options, clock)
    except McpHttpError as exc:
        if exc.details.get("status") not in FALLBACK_STATUSES or exc.details.get("step") != "initialize":
            raise
        first = exc
    try:
        facts = _run(LegacySse(http), options, clock)
    except McpError as exc:
        raise exc.again("%s; transport auto: the streamable HTTP initialize POST was answered HTTP %s first, so "
                        "the older HTTP+SSE transport was tried and failed as above"
                        % (exc, first.details["status"])) from None
    facts["fallback"] = "streamable HTTP initialize answered HTTP %s" % first.details["status"]
    return facts


def _run(transport, options, clock):
    try:
        return exchange(transport, options, clock)
    finally:
        transport.close()


def probe(options, now=time.monotonic, sleep=time.sleep):
    """Probe the MCP server at ``options["url"]``, retrying retryable failures until ``deadline`` seconds.

    ``options`` has the module's option names (url, transport, expected_tools, call_tool, headers, timeout,
    deadline, retry_delay, validate_certs, ca_path, protocol_version). Returns the facts the module returns;
    raises InputError or McpError (with ``attempts``, ``elapsed_ms`` and ``failed_attempts`` in its details).
    """
    check_options(options)
    https = urlsplit(options["url"]).scheme == "https"
    context = ssl_context(options["validate_certs"], options.get("ca_path")) if https else None
    clock = _Clock(options["timeout"], options["deadline"], now)
    failures, attempts = [], 0
    while True:
        try:
            facts = attempt(options, clock, context)
        except McpError as exc:
            attempts += 1
            failures = (failures + [{"attempt": attempts, "reason": exc.details["reason"], "msg": str(exc)}])[-10:]
            left = clock.remaining()
            if exc.retryable and left > 0:
                sleep(min(options["retry_delay"], left))
                if clock.remaining() > 0:
                    continue
            elapsed = clock.now() - clock.started
            why = ("gave up at the deadline of %s s" % options["deadline"] if exc.retryable
                   else "not retried: another attempt would fail the same way")
            raise exc.again("%s [attempt %d, %.1f s; %s]" % (exc, attempts, elapsed, why),
                            attempts=attempts, elapsed_ms=_ms(elapsed), failed_attempts=failures) from None
        facts.update(url=options["url"], attempts=attempts + 1, failed_attempts=failures,
                     elapsed_ms=_ms(clock.now() - clock.started))
        facts["msg"] = summary(facts)
        return facts


def probe_many(options, urls, parallel=8, probe_fn=None):
    """Probe each of ``urls`` with the other ``options`` (as :func:`probe`), up to ``parallel`` at once, each with
    its own retries and deadline. Returns ``(results, failed)``: one result per URL in the order given (``ok``, the
    URL, and the probe's facts or the failure's ``msg`` and details), and the failed ones."""
    probe_fn = probe_fn or probe
    if not urls:
        raise InputError("urls is empty: name at least one MCP endpoint", key="urls", reason="bad_option")
    if len(set(urls)) != len(urls):
        twice = sorted({u for u in urls if urls.count(u) > 1})
        raise InputError("urls lists %s more than once" % ", ".join(twice), key="urls", reason="bad_option")
    check_options(dict(options, url=urls[0]))  # the shared options fail once, before anything is probed

    def one(url):
        try:
            return dict(probe_fn(dict(options, url=url)), ok=True)
        except (InputError, McpError) as exc:
            return dict(exc.details, url=url, ok=False, msg=str(exc))

    workers = max(1, min(int(parallel), len(urls)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, urls))
    return results, [r for r in results if not r["ok"]]


def summary(facts):
    """One line for the task's ``msg``."""
    server = facts["server"]
    done = ", ".join("%s %.1f ms" % (s["step"], s["latency_ms"]) for s in facts["steps"])
    return "MCP server %s %s at %s answered over %s (protocol %s, %d tools, attempt %d): %s" % (
        server["name"], server["version"], facts["url"], facts["transport"], facts["protocol_version"],
        len(facts["tools"]), facts["attempts"], done)
