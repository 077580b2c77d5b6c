# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic recorder: MCP requests at a fixed rate to every service, one JSON line per request, and a summary.

Written with the Python standard library only, so it runs wherever the collection's modules run, and as a
command (the phase playbooks start it through the ``sophia_ai.platform.traffic_recorder`` module)::

    python -m ansible_collections.sophia_ai.platform.plugins.module_utils._recorder run \\
        --target gong=http://127.0.0.1:9005/mcp --rate 50 --out traffic.jsonl [--duration 60] [--pid-file F]
    python -m ansible_collections.sophia_ai.platform.plugins.module_utils._recorder summary traffic.jsonl

**Load.** Open loop: request ``i`` of a service is due at ``phase + i / rate`` seconds after the start (the
phases spread the services evenly over one interval), whatever happened to earlier requests, so slow replies
do not lower the offered rate. A dispatcher thread hands each due request to a pool of worker threads that
grows on demand up to ``max_in_flight``; a request that finds no free worker within ``max_lag`` seconds of its
due time is not sent and is written with outcome ``skipped`` (the schedule could not be kept: the summary says
so, and such requests count neither as served nor as failed). Every request is sent once, never retried, on a
new connection (as a new client would, and so that each request is routed by a front door on its own).

**MCP.** Each target is initialised once (``initialize`` then ``notifications/initialized``, with the session
id the server hands out, if any), then every request is one cheap call (``tools/call echo`` by default, or
``ping``). A request that a server answers HTTP 404 while it carries a session id counts as failed with outcome
``session_lost``, and the client re-initialises at once, as the MCP specification says (the line tells how:
``reinit``). Replies are read with :mod:`._mcp` (JSON or SSE-framed).

**Lines.** One JSON object per line: a ``start`` record (configuration, wall time), one ``request`` record per
scheduled request, written when it completes, and a ``stop`` record. A request record has ``ts`` (ISO 8601 UTC
of sending), ``t`` (monotonic seconds since the start record), ``service``, ``seq`` (its index in the
schedule), ``outcome`` (see ``OUTCOMES``), ``latency_ms``, ``status`` (HTTP), ``backend`` (the value of the
response header ``backend_header`` that a front door sets to the server that answered; null when absent),
``lag_ms`` (sending time minus due time), and on failure ``step`` and ``error``. Lines are flushed every
``flush_interval`` seconds and at the end.

**Summary.** :func:`summarize` reads the records and returns, per service and overall, requests, failures by
outcome, availability (ok / sent), p50 / p95 / p99 latency of the successful requests, the longest failure
streak and a downtime estimate, per time window; :func:`summary_text` turns it into a few lines.

**Control.** :func:`start`, :func:`stop` and :func:`status` run the recorder as a detached process for the
module: a JSON configuration file (mode 0600, it may hold headers with credentials), a pid file the recorder
writes once it records, and a log file, all next to the output file.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import errno
import hashlib
import heapq
import http.client
import importlib
import json
import math
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._mcp import (
    ACCEPT_POST,
    LATEST_VERSION,
    MAX_BODY,
    RESERVED_HEADERS,
    SUPPORTED_VERSIONS,
    McpConnectionError,
    McpError,
    McpHttpError,
    McpNotMcpError,
    McpRpcError,
    McpTimeoutError,
    McpTlsError,
    check_initialize,
    http_error,
    initialize_params,
    read_reply,
    rpc_notification,
    rpc_request,
    snippet,
    ssl_context,
)

MODULE = "ansible_collections.sophia_ai.platform.plugins.module_utils._recorder"
CLIENT_INFO = {"name": "sophia_ai.platform.traffic_recorder", "version": "0.1.0"}
METHODS = ("tools/call", "ping")
# Outcomes of a request; "http_<code>" stands for every HTTP status that is not a reply (http_503, ...).
OUTCOMES = ("ok", "http_<code>", "timeout", "refused", "reset", "dns", "unreachable", "connection_error", "tls",
            "not_mcp", "rpc_error", "tool_error", "session_lost", "client_error", "skipped")
NOT_SENT = "skipped"
DEFAULTS = {
    "rate": 10.0,
    "duration": None,
    "timeout": 2.0,
    "method": "tools/call",
    "tool": "echo",
    "arguments": {"text": "traffic_recorder"},
    "backend_header": "X-Sophia-Backend",
    "headers": {},
    "max_in_flight": None,
    "max_lag": 1.0,
    "flush_interval": 1.0,
    "validate_certs": True,
    "ca_path": None,
    "protocol_version": LATEST_VERSION,
    "append": False,
    "pid_file": None,
}
MAX_RATE = 10000.0
MAX_IN_FLIGHT = 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
START_WAIT = 15.0


# ------------------------------------------------------------------------------------------- configuration


def parse_targets(text, source="targets"):
    """Targets from a file's text: a JSON object ``{name: url}``, a JSON list of ``{name, url}``, or lines
    ``name=url`` / ``name: url`` / ``name url`` (blank lines and ``#`` comments skipped)."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise InputError("%s is not valid JSON: %s" % (source, exc), object="targets") from None
        if isinstance(data, list):
            try:
                return dict((item["name"], item["url"]) for item in data)
            except (TypeError, KeyError):
                raise InputError("%s: a JSON list of targets must hold objects with name and url" % source,
                                 object="targets") from None
        return data
    targets = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([^\s=:]+)\s*(?:=|:\s|\s)\s*(\S+)$", line)
        if not match:
            raise InputError("%s line %d is not 'name=url': %r" % (source, number, line), object="targets")
        targets[match.group(1)] = match.group(2)
    return targets


def parse_target_arg(value):
    """One ``--target name=url`` argument."""
    name, sep, url = value.partition("=")
    if not sep or not name or not url:
        raise InputError("--target %r is not name=url" % value, object="targets")
    return name.strip(), url.strip()


def default_in_flight(rate, services, timeout):
    """Workers needed so that every request may wait its whole timeout without delaying the schedule."""
    return int(min(MAX_IN_FLIGHT, max(4, math.ceil(rate * services * timeout) + 2)))


def _positive(config, key, allow_none=False, upper=None):
    value = config.get(key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise InputError("%s must be a positive number, got %r" % (key, value), object=key)
    if upper is not None and value > upper:
        raise InputError("%s must be at most %s, got %r" % (key, upper, value), object=key)


def check_config(options):
    """A complete, validated recorder configuration from ``options`` (unknown keys refused, defaults filled)."""
    unknown = sorted(set(options) - set(DEFAULTS) - {"targets", "out"})
    if unknown:
        raise InputError("unknown recorder option(s): %s" % ", ".join(unknown), object="config")
    config = dict(DEFAULTS)
    config.update((key, value) for key, value in options.items() if value is not None)
    targets = config.get("targets")
    if not isinstance(targets, dict) or not targets:
        raise InputError("targets must name at least one service and its MCP URL (name -> url)", object="targets")
    for name, url in targets.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InputError("target name %r must be letters, digits, '.', '_' or '-'" % (name,), object="targets")
        try:
            parts = urlsplit(url if isinstance(url, str) else "")
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid:
            raise InputError("target %s: %r is not an http:// or https:// URL with a host" % (name, url),
                             object="targets", service=name)
    config["targets"] = dict((str(k), str(v)) for k, v in sorted(targets.items()))
    if not config.get("out"):
        raise InputError("out (the JSON lines file to write) is required", object="out")
    config["out"] = os.path.abspath(config["out"])
    if config.get("pid_file"):
        config["pid_file"] = os.path.abspath(config["pid_file"])
    _positive(config, "rate", upper=MAX_RATE)
    _positive(config, "duration", allow_none=True)
    for key in ("timeout", "max_lag", "flush_interval"):
        _positive(config, key)
    for key in ("rate", "timeout", "max_lag", "flush_interval"):
        config[key] = float(config[key])
    if config["duration"] is not None:
        config["duration"] = float(config["duration"])
    if config["method"] not in METHODS:
        raise InputError("method must be one of %s, got %r" % (", ".join(METHODS), config["method"]),
                         object="method")
    if config["method"] == "tools/call" and not config.get("tool"):
        raise InputError("method tools/call needs a tool name", object="tool")
    if not isinstance(config["arguments"], dict):
        raise InputError("arguments must be an object, got %r" % (config["arguments"],), object="arguments")
    if config["protocol_version"] not in SUPPORTED_VERSIONS:
        raise InputError("protocol_version %r is not one of %s"
                         % (config["protocol_version"], ", ".join(SUPPORTED_VERSIONS)), object="protocol_version")
    if config["max_in_flight"] is None:
        config["max_in_flight"] = default_in_flight(config["rate"], len(targets), config["timeout"])
    if (isinstance(config["max_in_flight"], bool) or not isinstance(config["max_in_flight"], int)
            or not 1 <= config["max_in_flight"] <= MAX_IN_FLIGHT):
        raise InputError("max_in_flight must be an integer from 1 to %d, got %r"
                         % (MAX_IN_FLIGHT, config["max_in_flight"]), object="max_in_flight")
    headers = config["headers"]
    if not isinstance(headers, dict):
        raise InputError("headers must be an object of header names and values", object="headers")
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            raise InputError("header %r is set by the recorder itself; remove it from headers" % name,
                             object="headers")
        if not HEADER_NAME_RE.match(name) or re.search(r"[\r\n]", str(value)):
            raise InputError("header %r is not a valid single HTTP header line" % name, object="headers")
    if config["backend_header"] and not HEADER_NAME_RE.match(config["backend_header"]):
        raise InputError("backend_header %r is not an HTTP header name" % config["backend_header"],
                         object="backend_header")
    if config["ca_path"] and not os.access(config["ca_path"], os.R_OK):
        raise InputError("ca_path %s cannot be read" % config["ca_path"], object="ca_path")
    return config


def public_config(config):
    """The configuration as the start record and the module show it: header values masked."""
    shown = dict(config)
    shown["headers"] = dict((name, "********") for name in config.get("headers") or {})
    return shown


# --------------------------------------------------------------------------------------- scheduling maths


def phases(services, rate):
    """Offset of each service's first request: the services spread evenly over one interval (1 / rate)."""
    return [index / (rate * services) for index in range(services)]


def due_offset(phase, rate, seq):
    """Seconds after the start at which request ``seq`` of a service is due (from the index: no drift)."""
    return phase + seq / rate


def requests_due(phase, rate, duration):
    """How many requests of a service fall due in ``[0, duration)``."""
    if duration <= phase:
        return 0
    count = int(math.ceil((duration - phase) * rate - 1e-9))
    return max(count, 0)


def late_threshold(rate):
    """A request sent later than this after its due time (seconds) counts as late: the next one was already due
    (at least 50 ms, so that a scheduler hiccup at a high rate is not reported as a broken schedule)."""
    return max(1.0 / rate, 0.05)


# ----------------------------------------------------------------------------------------------- outcomes


class Failure(Exception):
    """A request that did not get an ok reply: ``outcome`` keyword, HTTP ``status``, ``backend``, ``step``."""

    def __init__(self, outcome, error, status=None, backend=None, step=None):
        super().__init__(error)
        self.outcome = outcome
        self.error = error
        self.status = status
        self.backend = backend
        self.step = step


def classify(exc):
    """The outcome keyword for an exception raised while sending a request or reading its reply."""
    if isinstance(exc, McpHttpError):
        if exc.details.get("reason") == "session_expired":
            return "session_lost"
        return "http_%s" % exc.details.get("status")
    if isinstance(exc, McpNotMcpError) and "ended the SSE stream" in str(exc):
        return "reset"  # the server closed an SSE-framed reply before the response: cut off, not another protocol
    table = ((McpTimeoutError, "timeout"), (McpNotMcpError, "not_mcp"), (McpRpcError, "rpc_error"),
             (McpTlsError, "tls"))
    for kind, outcome in table:
        if isinstance(exc, kind):
            return outcome
    if isinstance(exc, McpConnectionError):
        return {"connection_refused": "refused", "dns_error": "dns"}.get(exc.details.get("reason"), "reset")
    if isinstance(exc, McpError):
        return exc.details.get("reason") or "client_error"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.IncompleteRead)):
        return "reset"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, http.client.HTTPException):
        return "not_mcp"
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable"
        if exc.errno == errno.ECONNREFUSED:
            return "refused"
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return "reset"
        return "connection_error"
    return "client_error"


def _error_text(exc):
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, McpError):
        text = "%s: %s" % (type(exc).__name__, text)
    return snippet(text, 160)


# ---------------------------------------------------------------------------------------------- MCP client


class Target:
    """One service: its URL, its MCP session (id, negotiated version) and whether it is initialised."""

    def __init__(self, name, url, config, context):
        self.name = name
        self.url = url
        self.parts = urlsplit(url)
        self.path = (self.parts.path or "/") + ("?" + self.parts.query if self.parts.query else "")
        self.config = config
        self.context = context
        self.lock = threading.Lock()
        self.init_lock = threading.Lock()
        self.ready = False
        self.session_id = None
        self.protocol_version = None
        self.inits = 0
        self.ids = iter(range(1, 1 << 62))
        self.id_lock = threading.Lock()

    def next_id(self):
        with self.id_lock:
            return next(self.ids)

    def snapshot(self):
        with self.lock:
            return self.ready, self.session_id, self.protocol_version

    def headers(self, session_id, protocol_version):
        headers = dict(self.config["headers"])
        headers.update({"Content-Type": "application/json", "Accept": ACCEPT_POST})
        if session_id:
            headers["Mcp-Session-Id"] = session_id
        if protocol_version:
            headers["MCP-Protocol-Version"] = protocol_version
        return headers

    def post(self, message, step, session_id, protocol_version, now=time.monotonic):
        """POST one JSON-RPC message; ``(result, status, backend, session header)``; raises Failure."""
        timeout = self.config["timeout"]
        deadline = now() + timeout
        status = backend = None
        if self.parts.scheme == "https":
            conn = http.client.HTTPSConnection(self.parts.hostname, self.parts.port, timeout=timeout,
                                               context=self.context)
        else:
            conn = http.client.HTTPConnection(self.parts.hostname, self.parts.port, timeout=timeout)
        body = json.dumps(message, separators=(",", ":")).encode()

        sockets = []

        def before_read():
            left = deadline - now()
            if left <= 0:
                raise McpTimeoutError("%s did not answer %s within %s s" % (self.url, step, timeout))
            sockets[0].settimeout(left)

        try:
            conn.request("POST", self.path, body=body, headers=self.headers(session_id, protocol_version))
            sockets.append(conn.sock)  # kept: http.client drops conn.sock when the reply says Connection: close
            before_read()
            resp = conn.getresponse()
            status = resp.status
            if self.config["backend_header"]:
                backend = resp.getheader(self.config["backend_header"])
            session_header = resp.getheader("Mcp-Session-Id")
            before_read()
            if "id" not in message:
                data = resp.read(MAX_BODY)
                if status < 200 or status >= 300:
                    raise http_error(status, resp.reason, resp.getheader("Content-Type"), data, self.url, step,
                                     session=bool(session_id))
                return None, status, backend, session_header
            result = read_reply(resp, message["id"], self.url, step, before_read, session=bool(session_id))
            return result, status, backend, session_header
        except Exception as exc:  # pylint: disable=broad-except
            raise Failure(classify(exc), _error_text(exc), status, backend, step) from None
        finally:
            conn.close()

    def initialize(self):
        """initialize + notifications/initialized; sets the session. Returns its milliseconds; raises Failure."""
        started = time.monotonic()
        offered = self.config["protocol_version"]
        params = initialize_params(offered)
        params["clientInfo"] = dict(CLIENT_INFO)
        message = rpc_request("initialize", params, self.next_id())
        result, dummy, dummy2, session = self.post(message, "initialize", None, None)
        try:
            facts = check_initialize(result, offered, self.url)
        except McpError as exc:
            raise Failure(classify(exc), _error_text(exc), step="initialize") from None
        version = facts["protocol_version"]
        self.post(rpc_notification("notifications/initialized"), "notifications/initialized", session, version)
        with self.lock:
            self.session_id = session
            self.protocol_version = version
            self.ready = True
            self.inits += 1
        return round((time.monotonic() - started) * 1000.0, 3)

    def ensure_ready(self):
        """Initialise unless done; one initialisation at a time per target. Returns its ms or None."""
        if self.snapshot()[0]:
            return None
        if not self.init_lock.acquire(timeout=self.config["timeout"]):
            raise Failure("timeout", "waited %s s for another request's initialize" % self.config["timeout"],
                          step="initialize")
        try:
            if self.snapshot()[0]:
                return None
            return self.initialize()
        finally:
            self.init_lock.release()

    def forget(self, session_id):
        """The server no longer knows ``session_id``: the next request (or a re-initialisation) starts anew."""
        with self.lock:
            if self.session_id == session_id:
                self.ready = False
                self.session_id = None

    def call_message(self):
        if self.config["method"] == "ping":
            return {"jsonrpc": "2.0", "id": self.next_id(), "method": "ping"}
        params = {"name": self.config["tool"], "arguments": self.config["arguments"]}
        return rpc_request("tools/call", params, self.next_id())

    def call(self):
        """One scheduled request (initialising first where needed). Returns the record's outcome fields."""
        fields = {}
        try:
            init_ms = self.ensure_ready()
            if init_ms is not None:
                fields["init_ms"] = init_ms
        except Failure as failure:
            return dict(fields, **_failed(failure))
        dummy, session_id, version = self.snapshot()
        message = self.call_message()
        started = time.monotonic()
        try:
            result, status, backend, dummy2 = self.post(message, self.config["method"], session_id, version)
            if result.get("isError"):
                raise Failure("tool_error", snippet(json.dumps(result.get("content")), 160), status, backend,
                              self.config["method"])
        except Failure as failure:
            fields.update(_failed(failure), latency_ms=_ms(time.monotonic() - started))
            if failure.outcome == "session_lost":
                self.forget(session_id)
                try:
                    self.ensure_ready()
                    fields["reinit"] = "ok"
                except Failure as again:
                    fields["reinit"] = again.outcome
            return fields
        fields.update(outcome="ok", latency_ms=_ms(time.monotonic() - started), status=status, backend=backend)
        return fields


def _ms(seconds):
    return round(seconds * 1000.0, 3)


def _failed(failure):
    return {"outcome": failure.outcome, "status": failure.status, "backend": failure.backend,
            "step": failure.step, "error": failure.error}


# ------------------------------------------------------------------------------------------------- writer


def iso(epoch):
    """ISO 8601 UTC with microseconds and a Z."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text):
    """Epoch seconds of an ``iso()`` string."""
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


class Writer:
    """Appends JSON lines from many threads; flushes every ``interval`` seconds and on close (with fsync)."""

    def __init__(self, path, append, interval, now=time.monotonic):
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            raise InputError("the directory of out %s does not exist" % path, object="out")
        self.stream = open(path, "a" if append else "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self.lock = threading.Lock()
        self.interval = interval
        self.now = now
        self.flushed = now()
        self.lines = 0

    def write(self, record):
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.lock:
            self.stream.write(line)
            self.lines += 1
            if self.now() - self.flushed >= self.interval:
                self._flush()

    def maybe_flush(self):
        with self.lock:
            if self.now() - self.flushed >= self.interval:
                self._flush()

    def flush(self):
        with self.lock:
            self._flush()

    def _flush(self):
        self.stream.flush()
        self.flushed = self.now()

    def close(self):
        with self.lock:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()


# ------------------------------------------------------------------------------------------------ recorder


class Pool:
    """Worker threads, at most ``size`` requests in flight; a thread is started when all are busy."""

    def __init__(self, size, handler):
        self.size = size
        self.handler = handler
        self.slots = threading.Semaphore(size)
        self.jobs = queue.Queue()
        self.lock = threading.Lock()
        self.threads = []
        self.in_flight = 0
        self.peak = 0

    def submit(self, job, wait):
        """Hand ``job`` to a worker, waiting up to ``wait`` seconds for a free slot; False when none freed."""
        acquired = self.slots.acquire(timeout=wait) if wait > 0 else self.slots.acquire(blocking=False)
        if not acquired:
            return False
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.in_flight > len(self.threads):
                thread = threading.Thread(target=self._work, name="recorder-%d" % len(self.threads), daemon=True)
                self.threads.append(thread)
                thread.start()
        self.jobs.put(job)
        return True

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                self.handler(*job)
            finally:
                with self.lock:
                    self.in_flight -= 1
                self.slots.release()

    def close(self, timeout):
        """Let the requests in flight finish (up to ``timeout`` s); returns how many were abandoned."""
        for dummy in self.threads:
            self.jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0))
        with self.lock:
            return self.in_flight


class Recorder:
    """Runs the open-loop schedule over every target until ``stop`` is set or the duration has passed."""

    def __init__(self, config, stop=None, log=None):
        self.config = config
        self.stop = stop or threading.Event()
        self.log = log or (lambda text: None)
        https = any(urlsplit(url).scheme == "https" for url in config["targets"].values())
        context = ssl_context(config["validate_certs"], config["ca_path"]) if https else None
        self.targets = [Target(name, url, config, context) for name, url in config["targets"].items()]
        self.writer = None
        self.mono0 = self.wall0 = None
        self.sent = self.skipped = 0
        self.count_lock = threading.Lock()
        self.warned_skip = False

    def _record(self, target, seq, due, sent_at, fields):
        record = {"kind": "request", "ts": iso(self.wall0 + (sent_at - self.mono0)),
                  "t": round(sent_at - self.mono0, 6), "service": target.name, "seq": seq,
                  "outcome": fields.pop("outcome"), "latency_ms": fields.pop("latency_ms", None),
                  "status": fields.pop("status", None), "backend": fields.pop("backend", None),
                  "lag_ms": _ms(sent_at - (self.mono0 + due))}
        record.update((key, value) for key, value in fields.items() if value is not None)
        self.writer.write(record)

    def _request(self, index, seq, due):
        target = self.targets[index]
        sent_at = time.monotonic()
        try:
            fields = target.call()
        except Exception as exc:  # pylint: disable=broad-except
            fields = {"outcome": "client_error", "error": _error_text(exc)}
        if "latency_ms" not in fields:
            fields["latency_ms"] = _ms(time.monotonic() - sent_at)
        with self.count_lock:
            self.sent += 1
        self._record(target, seq, due, sent_at, fields)

    def _skip(self, index, seq, due):
        with self.count_lock:
            self.skipped += 1
        if not self.warned_skip:
            self.warned_skip = True
            self.log("schedule not kept: no free worker within max_lag %s s (max_in_flight %d); requests that "
                     "cannot be sent in time are written as skipped" % (self.config["max_lag"],
                                                                        self.config["max_in_flight"]))
        target = self.targets[index]
        self._record(target, seq, due, self.mono0 + due, {"outcome": NOT_SENT, "latency_ms": None})

    def run(self):
        """Record until stopped; returns the stop record."""
        config = self.config
        self.writer = Writer(config["out"], config["append"], config["flush_interval"])
        self.wall0, self.mono0 = time.time(), time.monotonic()
        start = {"kind": "start", "ts": iso(self.wall0), "t": 0.0, "pid": os.getpid()}
        start.update(public_config(config))
        self.writer.write(start)
        self.writer.flush()
        pool = Pool(config["max_in_flight"], self._request)
        rate, duration = config["rate"], config["duration"]
        heap = [(phase, index, 0, phase) for index, phase in enumerate(phases(len(self.targets), rate))]
        heapq.heapify(heap)
        reason = "stopped"
        try:
            while not self.stop.is_set():
                due, index, seq, phase = heap[0]
                if duration is not None and due >= duration:
                    reason = "duration"
                    break
                wait = self.mono0 + due - time.monotonic()
                if wait > 0:
                    self.stop.wait(min(wait, 0.25))
                    self.writer.maybe_flush()
                    continue
                heapq.heapreplace(heap, (due_offset(phase, rate, seq + 1), index, seq + 1, phase))
                allowed = config["max_lag"] - (time.monotonic() - (self.mono0 + due))
                if not pool.submit((index, seq, due), allowed):
                    self._skip(index, seq, due)
            abandoned = pool.close(config["timeout"] + 5.0)
            end = time.monotonic()
            record = {"kind": "stop", "ts": iso(self.wall0 + end - self.mono0), "t": round(end - self.mono0, 6),
                      "reason": reason, "sent": self.sent, "skipped": self.skipped, "abandoned": abandoned,
                      "peak_in_flight": pool.peak,
                      "initializations": dict((target.name, target.inits) for target in self.targets)}
            self.writer.write(record)
            return record
        finally:
            self.writer.close()


# ------------------------------------------------------------------------------------------------- summary


def load_records(path):
    """``(records, bad_lines)`` of a JSON lines file; a line cut short (a killed writer) is counted, not fatal."""
    records, bad = [], 0
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict) and record.get("kind") in ("start", "request", "stop"):
                    records.append(record)
                else:
                    bad += 1
    except OSError as exc:
        raise InputError("cannot read the recording %s: %s" % (path, exc.strerror or exc), object="out",
                         file=path) from None
    return records, bad


def percentile(values, pct):
    """Nearest-rank percentile of a sorted list (None when empty)."""
    if not values:
        return None
    rank = max(1, int(math.ceil(pct / 100.0 * len(values) - 1e-9)))
    return values[min(rank, len(values)) - 1]


def _latency(values):
    values = sorted(values)
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "max": values[-1], "mean": round(sum(values) / len(values), 3)}


def _streaks(requests):
    """Failure streaks of one service's sent requests sorted by time: ``[(first, last_index, end_at)]``.

    A streak runs from its first failed request to the next successful one (that is when the service was seen
    serving again), or, when no success follows in the same run, one interval past its last failure (the time
    between two runs appended to one file is not known, so it is never counted).
    """
    streaks, start = [], None
    for position, request in enumerate(requests):
        if start is not None and request["run"] != requests[start]["run"]:
            last = requests[position - 1]
            streaks.append((start, position - 1, last["at"] + last["interval"]))
            start = None
        if request["outcome"] != "ok":
            if start is None:
                start = position
            continue
        if start is not None:
            streaks.append((start, position - 1, request["at"]))
            start = None
    if start is not None:
        last = requests[-1]
        streaks.append((start, len(requests) - 1, last["at"] + last["interval"]))
    return streaks


def _group(requests, duration, origin):
    """Figures for one service (or all): ``requests`` are this group's request records, sorted by time."""
    sent = [r for r in requests if r["outcome"] != NOT_SENT]
    ok = [r for r in sent if r["outcome"] == "ok"]
    outcomes = collections.Counter(r["outcome"] for r in sent if r["outcome"] != "ok")
    backends = collections.Counter(r["backend"] for r in sent if r.get("backend"))
    return {
        "requests": len(sent),
        "ok": len(ok),
        "failed": len(sent) - len(ok),
        "skipped": len(requests) - len(sent),
        "availability": round(len(ok) / float(len(sent)), 6) if sent else None,
        "outcomes": dict(sorted(outcomes.items())),
        "latency_ms": _latency([r["latency_ms"] for r in ok if r.get("latency_ms") is not None]),
        "backends": dict(sorted(backends.items())),
        "rate_per_s": round(len(sent) / duration, 3) if duration else None,
        "first_t": round(sent[0]["at"] - origin, 6) if sent else None,
        "last_t": round(sent[-1]["at"] - origin, 6) if sent else None,
    }


def _downtime(requests, origin):
    """``(longest streak, intervals)`` of one service's sent requests sorted by time."""
    longest, intervals = None, []
    for first, last, end in _streaks(requests):
        begin = requests[first]["at"]
        intervals.append((begin, end))
        streak = {"requests": last - first + 1, "seconds": round(end - begin, 6), "from_t": round(begin - origin, 6),
                  "to_t": round(end - origin, 6),
                  "outcomes": dict(sorted(collections.Counter(r["outcome"] for r in requests[first:last + 1]).items()))}
        if longest is None or (streak["requests"], streak["seconds"]) > (longest["requests"], longest["seconds"]):
            longest = streak
    return longest, intervals


def _union(intervals):
    total, end = 0.0, None
    for begin, finish in sorted(intervals):
        if end is None or begin > end:
            total += finish - begin
            end = finish
        elif finish > end:
            total += finish - end
            end = finish
    return round(total, 6)


def _windows(requests, origin, window, count):
    buckets = [[] for dummy in range(count)]
    for request in requests:
        index = min(int((request["at"] - origin) // window), count - 1)
        buckets[max(index, 0)].append(request)
    windows = []
    for index, bucket in enumerate(buckets):
        sent = [r for r in bucket if r["outcome"] != NOT_SENT]
        ok = sorted(r["latency_ms"] for r in sent if r["outcome"] == "ok" and r.get("latency_ms") is not None)
        failed = collections.Counter(r["outcome"] for r in sent if r["outcome"] != "ok")
        windows.append({"t": round(index * window, 6), "requests": len(sent), "ok": len(ok),
                        "failed": len(sent) - len(ok), "skipped": len(bucket) - len(sent),
                        "availability": round(len(ok) / float(len(sent)), 6) if sent else None,
                        "p50_ms": percentile(ok, 50), "p99_ms": percentile(ok, 99),
                        "outcomes": dict(sorted(failed.items()))})
    return windows


def _runs(records):
    """Request records with absolute times ``at`` and the interval of their run; runs with their durations."""
    runs, requests, current = [], [], None
    for record in records:
        kind = record["kind"]
        if kind == "start":
            current = {"base": parse_iso(record["ts"]) - float(record.get("t") or 0.0),
                       "rate": float(record.get("rate") or 0) or None, "end_t": 0.0, "stopped": False,
                       "targets": record.get("targets") or {}, "start": record}
            runs.append(current)
        elif kind == "request":
            if current is None:  # no start record: a file cut at its head; derive the run from the line itself
                current = {"base": parse_iso(record["ts"]) - float(record["t"]), "rate": None, "end_t": 0.0,
                           "stopped": False, "targets": {}, "start": None}
                runs.append(current)
            request = dict(record)
            request["run"] = len(runs)
            request["at"] = current["base"] + float(record["t"])
            request["interval"] = 1.0 / current["rate"] if current["rate"] else 0.0
            request["late_s"] = late_threshold(current["rate"]) if current["rate"] else 0.05
            requests.append(request)
            current["end_t"] = max(current["end_t"], float(record["t"]))
        elif kind == "stop" and current is not None:
            current["end_t"] = max(current["end_t"], float(record["t"]))
            current["stopped"] = True
            current["stop"] = record
    return runs, requests


def summarize(records, window=1.0, bad_lines=0):
    """The summary of a recording's records (see the module docstring); pure."""
    if not window or window <= 0:
        raise InputError("window must be a positive number of seconds, got %r" % (window,), object="window")
    runs, requests = _runs(records)
    requests.sort(key=lambda r: (r["at"], r["service"], r["seq"]))
    origin = runs[0]["base"] if runs else 0.0
    duration = round(sum(run["end_t"] for run in runs), 6)
    span = max([r["at"] for r in requests] + [run["base"] + run["end_t"] for run in runs] + [origin]) - origin
    count = max(1, int(math.ceil(span / window - 1e-9)))
    names = []
    for run in runs:
        names.extend(name for name in run["targets"] if name not in names)
    names.extend(sorted(set(r["service"] for r in requests) - set(names)))
    services, intervals, longest = {}, [], None
    for name in names:
        mine = [r for r in requests if r["service"] == name]
        figures = _group(mine, duration, origin)
        streak, spans = _downtime([r for r in mine if r["outcome"] != NOT_SENT], origin)
        figures["longest_failure_streak"] = streak
        figures["downtime_s"] = _union(spans)
        figures["windows"] = _windows(mine, origin, window, count)
        services[name] = figures
        intervals.extend(spans)
        if streak and (longest is None or (streak["requests"], streak["seconds"])
                       > (longest["requests"], longest["seconds"])):
            longest = dict(streak, service=name)
    overall = _group(requests, duration, origin)
    overall["rate_per_s"] = round(overall["requests"] / duration, 3) if duration else None
    overall["longest_failure_streak"] = longest
    overall["downtime_s"] = _union(intervals)
    lags = sorted(r["lag_ms"] for r in requests if r["outcome"] != NOT_SENT and r.get("lag_ms") is not None)
    late = sum(1 for r in requests if r["outcome"] != NOT_SENT and (r.get("lag_ms") or 0) > r["late_s"] * 1000.0)
    schedule = {"kept": overall["skipped"] == 0 and late == 0, "skipped": overall["skipped"], "late": late,
                "lag_p99_ms": percentile(lags, 99), "lag_max_ms": lags[-1] if lags else None}
    return {
        "runs": len(runs),
        "complete": bool(runs) and all(run["stopped"] for run in runs),
        "started": iso(origin) if runs else None,
        "duration_s": duration,
        "window_s": float(window),
        "rate": runs[-1]["rate"] if runs else None,
        "bad_lines": bad_lines,
        "overall": overall,
        "services": services,
        "windows": _windows(requests, origin, window, count),
        "schedule": schedule,
    }


def summarize_file(path, window=1.0):
    records, bad = load_records(path)
    summary = summarize(records, window, bad)
    summary["file"] = path
    return summary


def _pct(value):
    return "n/a" if value is None else "%.3f%%" % (value * 100.0)


def _num(value, unit=" ms"):
    return "n/a" if value is None else "%.1f%s" % (value, unit)


def _outcomes(outcomes):
    return ", ".join("%s %d" % item for item in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])))


def _figures(group):
    text = "%d requests, %d failed" % (group["requests"], group["failed"])
    if group["outcomes"]:
        text += " (%s)" % _outcomes(group["outcomes"])
    latency = group["latency_ms"]
    text += ", availability %s, p50 %s, p95 %s, p99 %s" % (
        _pct(group["availability"]), _num(latency["p50"]), _num(latency["p95"]), _num(latency["p99"]))
    if group["skipped"]:
        text += ", %d not sent (schedule not kept)" % group["skipped"]
    return text


def summary_text(summary, max_windows=10):
    """A few lines for people: overall, one line per service, the windows with failures."""
    overall = summary["overall"]
    head = "%s%d service(s), %.1f s: %s, downtime %.2f s" % (
        "%s: " % summary["file"] if summary.get("file") else "", len(summary["services"]), summary["duration_s"],
        _figures(overall), overall["downtime_s"])
    schedule = summary["schedule"]
    if schedule["kept"]:
        head += "; schedule kept"
    else:
        head += "; schedule NOT kept (%d skipped, %d late, max lag %s)" % (
            schedule["skipped"], schedule["late"], _num(schedule["lag_max_ms"]))
    if not summary["complete"]:
        head += "; recording not stopped cleanly (no stop record)"
    if summary.get("bad_lines"):
        head += "; %d unreadable line(s)" % summary["bad_lines"]
    lines = [head]
    for name, group in summary["services"].items():
        line = "  %s: %s" % (name, _figures(group))
        streak = group["longest_failure_streak"]
        if streak:
            line += ", longest failure streak %d request(s) / %.2f s from t=%.1f s" % (
                streak["requests"], streak["seconds"], streak["from_t"])
        if group["backends"]:
            line += ", backends %s" % ", ".join("%s %d" % kv for kv in group["backends"].items())
        lines.append(line)
    failing = []
    for name, group in summary["services"].items():
        for window in group["windows"]:
            if window["failed"] or window["skipped"]:
                failing.append((window["t"], name, window))
    failing.sort(key=lambda item: (item[0], item[1]))
    if failing:
        shown = []
        for start, name, window in failing[:max_windows]:
            why = " (%s)" % _outcomes(window["outcomes"]) if window["outcomes"] else ""
            shown.append("t=%g s %s %d/%d failed%s" % (start, name, window["failed"], window["requests"], why))
        more = " ... and %d more" % (len(failing) - max_windows) if len(failing) > max_windows else ""
        lines.append("  windows with failures (%g s): %s%s" % (summary["window_s"], "; ".join(shown), more))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ detached process control


def paths(out, pid_file=None):
    """The files of one recorder: output, pid, configuration and log."""
    out = os.path.abspath(out)
    return {"out": out, "pid_file": os.path.abspath(pid_file) if pid_file else out + ".pid",
            "config_file": out + ".config.json", "log_file": out + ".log"}


def read_pid(pid_file):
    try:
        with open(pid_file, encoding="utf-8") as stream:
            return int(stream.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def alive(pid, marker=None):
    """Whether process ``pid`` runs (a zombie does not); with ``marker``, also whether its command line holds it
    (so that a recycled pid is not taken for the recorder)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as stream:
            if stream.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
        if marker:
            with open("/proc/%d/cmdline" % pid, "rb") as stream:
                return marker.encode() in stream.read()
    except OSError:
        pass
    return True


def status(out, pid_file=None):
    """``(files, pid or None when not running, stored configuration or None)``."""
    files = paths(out, pid_file)
    pid = read_pid(files["pid_file"])
    running = alive(pid, files["config_file"])
    stored = None
    try:
        with open(files["config_file"], encoding="utf-8") as stream:
            stored = json.load(stream)
    except (OSError, ValueError):
        pass
    return files, (pid if running else None), stored


def _source(name):
    """The source text of one of this collection's module_utils, also from a zip (AnsiballZ)."""
    module = importlib.import_module(name)
    loader = getattr(module, "__loader__", None)
    text = loader.get_source(name) if loader is not None and hasattr(loader, "get_source") else None
    if text is None:
        with open(module.__file__, encoding="utf-8") as stream:
            text = stream.read()
    return text


def runtime_dir(base):
    """A directory that lets ``python -m`` import the recorder without the collection installed (the module
    runs from a temporary zip that is gone once it returns): this file, ``_mcp`` and ``_errors``, content-keyed."""
    package = MODULE.rsplit(".", 1)[0]
    names = ("_recorder", "_mcp", "_errors")
    sources = dict((name, _source(package + "." + name)) for name in names)
    key = hashlib.sha256("".join(sources[name] for name in names).encode()).hexdigest()[:12]
    root = os.path.join(base, ".traffic_recorder", key)
    target = os.path.join(root, *package.split("."))
    if not os.path.isfile(os.path.join(target, "_recorder.py")):
        os.makedirs(target, exist_ok=True)
        parts = package.split(".")
        for depth in range(1, len(parts) + 1):
            init = os.path.join(root, *parts[:depth], "__init__.py")
            if not os.path.exists(init):
                with open(init, "w", encoding="utf-8"):
                    pass
        for name in names:
            temp = os.path.join(target, "%s.py.%d" % (name, os.getpid()))
            with open(temp, "w", encoding="utf-8") as stream:
                stream.write(sources[name])
            os.replace(temp, os.path.join(target, name + ".py"))
    return root


def _write_private(path, data):
    temp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1, sort_keys=True)
    os.replace(temp, path)


def _log_tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return "".join(stream.readlines()[-lines:]).strip()
    except OSError:
        return ""


def launch(config, python=None, wait=START_WAIT):
    """Start the recorder as a detached process; returns its pid once it records (its pid file names it)."""
    files = paths(config["out"], config.get("pid_file"))
    config = dict(config, pid_file=files["pid_file"])
    base = os.path.dirname(files["out"])
    if not os.path.isdir(base):
        raise InputError("the directory of out %s does not exist" % files["out"], object="out")
    root = runtime_dir(base)
    _write_private(files["config_file"], config)
    try:
        os.unlink(files["pid_file"])
    except OSError:
        pass
    argv = [python or sys.executable, "-m", MODULE, "run", "--config", files["config_file"],
            "--pid-file", files["pid_file"]]
    env = dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1")
    with open(files["log_file"], "ab") as log:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,  # pylint: disable=consider-using-with
                                stderr=subprocess.STDOUT, close_fds=True, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if read_pid(files["pid_file"]) == proc.pid:
            return proc.pid
        if proc.poll() is not None:
            raise PlatformError("the traffic recorder exited at once (exit code %s): %s"
                                % (proc.returncode, _log_tail(files["log_file"]) or "no output"),
                                object="recorder", log_file=files["log_file"])
        time.sleep(0.05)
    proc.kill()
    raise PlatformError("the traffic recorder did not start recording within %s s: %s"
                        % (wait, _log_tail(files["log_file"]) or "no output"), object="recorder",
                        log_file=files["log_file"])


def terminate(pid, marker, wait):
    """SIGTERM, then SIGKILL after ``wait`` seconds; returns "terminated" or "killed"."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "terminated"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not alive(pid, marker):
            return "terminated"
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "terminated"
    while alive(pid, marker):
        time.sleep(0.05)
    return "killed"


def _comparable(config):
    return json.loads(json.dumps(config, sort_keys=True))


def start(options, check_mode=False, python=None):
    """Ensure a recorder with exactly this configuration runs. Returns the module's result."""
    config = check_config(options)
    files, pid, stored = status(config["out"], config.get("pid_file"))
    config["pid_file"] = files["pid_file"]
    result = dict(files, running=True, config=public_config(config))
    if pid and stored is not None and _comparable(stored) == _comparable(config):
        return dict(result, changed=False, pid=pid, msg="traffic recorder already running (pid %s), writing %s"
                    % (pid, files["out"]))
    if check_mode:
        what = "restart the traffic recorder (pid %s runs with other settings)" % pid if pid else \
            "start the traffic recorder"
        return dict(result, changed=True, pid=None, replaced_pid=pid, msg="would %s, writing %s"
                    % (what, files["out"]))
    if pid:
        terminate(pid, files["config_file"], config["timeout"] + 10.0)
    new = launch(config, python)
    return dict(result, changed=True, pid=new, replaced_pid=pid, msg="traffic recorder started (pid %s)%s, %s "
                "request(s)/s to each of %d service(s), writing %s"
                % (new, " in place of pid %s" % pid if pid else "", config["rate"], len(config["targets"]),
                   files["out"]))


def _with_summary(result, window, service_windows=True):
    if os.path.exists(result["out"]):
        summary = summarize_file(result["out"], window)
        text = summary_text(summary)
        if not service_windows:  # a long recording of many services: keep the result small (overall windows stay)
            for group in summary["services"].values():
                group.pop("windows")
        result.update(summary=summary, summary_text=text)
    else:
        result.update(summary=None, summary_text=None)
    return result


def stop(out, pid_file=None, window=1.0, stop_timeout=30.0, check_mode=False, service_windows=True):
    """Ensure no recorder writes ``out``; returns the module's result with the recording's summary."""
    files, pid, dummy = status(out, pid_file)
    result = dict(files, running=False, pid=pid)
    if not pid:
        result.update(changed=False, msg="traffic recorder not running")
    elif check_mode:
        result.update(changed=True, running=True, msg="would stop the traffic recorder (pid %s)" % pid)
    else:
        how = terminate(pid, files["config_file"], stop_timeout)
        result.update(changed=True, msg="traffic recorder (pid %s) %s" % (pid, how))
        if how == "killed":
            result["warning"] = ("the recorder did not exit within stop_timeout %s s after SIGTERM and was killed; "
                                 "the last requests may be missing from %s" % (stop_timeout, files["out"]))
    result = _with_summary(result, window, service_windows)
    if result["summary_text"]:
        result["msg"] += "; " + result["summary_text"].splitlines()[0]
    return result


def read_summary(out, pid_file=None, window=1.0, service_windows=True):
    """The summary of ``out`` as it stands (the recorder may still write it)."""
    files, pid, dummy = status(out, pid_file)
    if not os.path.exists(files["out"]):
        raise InputError("no recording at %s (start the recorder first)" % files["out"], object="out")
    result = _with_summary(dict(files, changed=False, running=bool(pid), pid=pid), window, service_windows)
    result["msg"] = result["summary_text"].splitlines()[0]
    return result


# ----------------------------------------------------------------------------------------------- commands


def _parser():
    parser = argparse.ArgumentParser(prog="python -m " + MODULE, description="MCP traffic recorder")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="send MCP requests at a fixed rate and record each one")
    run.add_argument("--config", help="JSON file with the options below (flags given here override it)")
    run.add_argument("--targets", help="file: JSON {name: url} or lines name=url")
    run.add_argument("--target", action="append", default=[], metavar="NAME=URL", help="one service (repeatable)")
    run.add_argument("--rate", type=float, help="requests per second to each service (default 10)")
    run.add_argument("--out", help="the JSON lines file to write")
    run.add_argument("--duration", type=float, help="seconds to record (default: until SIGTERM or SIGINT)")
    run.add_argument("--pid-file", help="write the pid here while recording")
    run.add_argument("--timeout", type=float, help="seconds one request may take (default 2)")
    run.add_argument("--method", choices=METHODS, help="the request: tools/call (default) or ping")
    run.add_argument("--tool", help="tool to call (default echo)")
    run.add_argument("--arguments", help="the tool's arguments as JSON (default {\"text\": \"traffic_recorder\"})")
    run.add_argument("--header", action="append", default=[], metavar="NAME: VALUE", help="extra request header")
    run.add_argument("--backend-header", help="response header naming the backend that answered (X-Sophia-Backend)")
    run.add_argument("--max-in-flight", type=int, help="requests in flight at most (default: rate x services x "
                     "timeout + 2)")
    run.add_argument("--max-lag", type=float, help="a request not sent within this many seconds of its due time is "
                     "skipped (default 1)")
    run.add_argument("--flush-interval", type=float, help="seconds between flushes (default 1)")
    run.add_argument("--append", action="store_true", default=None, help="append to out instead of truncating it")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--ca-path", help="CA certificates (PEM) to trust for https targets")
    summary = commands.add_parser("summary", help="summarise a recording")
    summary.add_argument("file")
    summary.add_argument("--window", type=float, default=1.0, help="seconds per time window (default 1)")
    summary.add_argument("--json", action="store_true", help="print the JSON summary instead of the text")
    return parser


def options_from_args(args):
    """Recorder options from parsed ``run`` arguments (the --config file first, flags over it)."""
    options = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as stream:
                options = json.load(stream)
        except (OSError, ValueError) as exc:
            raise InputError("cannot read --config %s: %s" % (args.config, exc), object="config") from None
    targets = dict(options.get("targets") or {})
    if args.targets:
        try:
            with open(args.targets, encoding="utf-8") as stream:
                targets.update(parse_targets(stream.read(), args.targets))
        except OSError as exc:
            raise InputError("cannot read --targets %s: %s" % (args.targets, exc.strerror), object="targets") \
                from None
    targets.update(parse_target_arg(value) for value in args.target)
    options["targets"] = targets
    flags = {"rate": args.rate, "out": args.out, "duration": args.duration, "pid_file": args.pid_file,
             "timeout": args.timeout, "method": args.method, "tool": args.tool,
             "backend_header": args.backend_header, "max_in_flight": args.max_in_flight, "max_lag": args.max_lag,
             "flush_interval": args.flush_interval, "append": args.append, "ca_path": args.ca_path}
    options.update((key, value) for key, value in flags.items() if value is not None)
    if args.arguments is not None:
        try:
            options["arguments"] = json.loads(args.arguments)
        except ValueError as exc:
            raise InputError("--arguments is not JSON: %s" % exc, object="arguments") from None
    if args.insecure:
        options["validate_certs"] = False
    if args.header:
        headers = dict(options.get("headers") or {})
        for header in args.header:
            name, sep, value = header.partition(":")
            if not sep:
                raise InputError("--header %r is not 'Name: value'" % header, object="headers")
            headers[name.strip()] = value.strip()
        options["headers"] = headers
    return options


def _write_pid(path):
    temp = "%s.%d.tmp" % (path, os.getpid())
    with open(temp, "w", encoding="utf-8") as stream:
        stream.write("%d\n" % os.getpid())
    os.replace(temp, path)


def _remove_pid(path):
    if path and read_pid(path) == os.getpid():
        try:
            os.unlink(path)
        except OSError:
            pass


def command_run(args, out=sys.stdout, err=sys.stderr):
    config = check_config(options_from_args(args))
    stop_event = threading.Event()

    def handler(signum, frame):  # pylint: disable=unused-argument
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

    def log(text):
        err.write("traffic recorder: %s\n" % text)
        err.flush()

    recorder = Recorder(config, stop_event, log)
    log("%s request(s)/s to each of %s, writing %s" % (config["rate"], ", ".join(config["targets"]), config["out"]))
    failure = []

    def body():
        try:
            recorder.run()
        except Exception as exc:  # pylint: disable=broad-except
            failure.append(exc)

    thread = threading.Thread(target=body, name="recorder-dispatch")
    thread.start()
    try:
        while recorder.writer is None and thread.is_alive():
            time.sleep(0.01)
        if config["pid_file"] and recorder.writer is not None:
            _write_pid(config["pid_file"])
        while thread.is_alive():
            thread.join(0.2)
    finally:
        _remove_pid(config["pid_file"])
    if failure:
        raise failure[0]
    out.write(summary_text(summarize_file(config["out"])) + "\n")
    return 0


def command_summary(args, out=sys.stdout):
    summary = summarize_file(args.file, args.window)
    if args.json:
        out.write(json.dumps(summary, indent=1) + "\n")
    else:
        out.write(summary_text(summary) + "\n")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "summary":
            return command_summary(args)
    except PlatformError as exc:
        sys.stderr.write("error: %s\n" % exc)
        return 2
    _parser().print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
