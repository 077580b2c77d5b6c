# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of the traffic recorder (plugins/module_utils/_recorder.py): summary, scheduling maths, outcomes.

The summary is checked against a hand-written recording (fixtures/recorder/two_services.jsonl, its README says
what it holds) twice: against figures worked out by hand for that file, and against a count done here line by
line, independently of the summary's code. The exceptions fed to ``classify`` are the types the standard
library and ``_mcp`` raise, built directly because unit tests open no connections. The process helpers run on
real child processes of the test.
"""

from __future__ import annotations

import collections
import errno
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _mcp, _recorder
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "recorder" / "two_services.jsonl"


@pytest.fixture(name="summary")
def fixture_summary():
    return _recorder.summarize_file(str(FIXTURE), window=1.0)


def raw_requests(path):
    """The request lines, read without the recorder's code."""
    with open(path, encoding="utf-8") as stream:
        return [r for r in (json.loads(line) for line in stream if line.strip()) if r["kind"] == "request"]


# ------------------------------------------------------------------------------------------------ summary


def test_summary_matches_an_independent_count(summary):
    lines = raw_requests(FIXTURE)
    for service in ("a", "b", None):
        mine = [r for r in lines if service is None or r["service"] == service]
        sent = [r for r in mine if r["outcome"] != "skipped"]
        failures = collections.Counter(r["outcome"] for r in sent if r["outcome"] != "ok")
        group = summary["overall"] if service is None else summary["services"][service]
        assert group["requests"] == len(sent)
        assert group["ok"] == sum(1 for r in sent if r["outcome"] == "ok")
        assert group["failed"] == sum(failures.values())
        assert group["outcomes"] == dict(failures)
        assert group["skipped"] == len(mine) - len(sent)
        assert group["availability"] == pytest.approx(group["ok"] / len(sent), abs=1e-6)
        windows = summary["windows"] if service is None else group["windows"]
        assert sum(w["requests"] for w in windows) == len(sent)
        assert sum(w["failed"] for w in windows) == sum(failures.values())


@pytest.mark.parametrize("service, expected", [
    ("a", {"requests": 8, "ok": 6, "failed": 2, "skipped": 0, "availability": 0.75,
           "outcomes": {"refused": 1, "reset": 1}, "backends": {"k3s": 2, "swarm": 4},
           "latency_ms": {"p50": 3.0, "p95": 6.0, "p99": 6.0, "max": 6.0, "mean": 3.5}, "downtime_s": 1.0}),
    ("b", {"requests": 7, "ok": 6, "failed": 1, "skipped": 1, "availability": 0.857143,
           "outcomes": {"timeout": 1}, "backends": {"swarm": 6},
           "latency_ms": {"p50": 30.0, "p95": 60.0, "p99": 60.0, "max": 60.0, "mean": 35.0}, "downtime_s": 0.5}),
])
def test_summary_per_service_by_hand(summary, service, expected):
    group = summary["services"][service]
    for key, value in expected.items():
        assert group[key] == (pytest.approx(value, abs=1e-4) if key == "downtime_s" else value), key


def test_summary_overall_by_hand(summary):
    overall = summary["overall"]
    assert (overall["requests"], overall["ok"], overall["failed"], overall["skipped"]) == (15, 12, 3, 1)
    assert overall["availability"] == 0.8
    assert overall["outcomes"] == {"refused": 1, "reset": 1, "timeout": 1}
    # twelve successful latencies 1..6 and 10..60 ms: nearest rank 6 of 12 is 6 ms, ranks 12 for p95 and p99
    assert overall["latency_ms"]["p50"] == 6.0 and overall["latency_ms"]["p99"] == 60.0
    assert overall["downtime_s"] == pytest.approx(1.5, abs=1e-4)  # a: 1.0001 -> 2.0001; b: 3.7601 -> +0.5 s
    streak = overall["longest_failure_streak"]
    assert streak["service"] == "a" and streak["requests"] == 2
    assert streak["from_t"] == pytest.approx(1.0001, abs=1e-4) and streak["to_t"] == pytest.approx(2.0001, abs=1e-4)
    assert streak["outcomes"] == {"refused": 1, "reset": 1}
    assert summary["duration_s"] == 4.3 and summary["runs"] == 1 and summary["complete"] is True
    assert overall["rate_per_s"] == round(15 / 4.3, 3)
    assert summary["services"]["a"]["rate_per_s"] == round(8 / 4.3, 3)
    assert list(summary["services"]) == ["a", "b"]


def test_summary_windows_by_hand(summary):
    table = [(w["t"], w["requests"], w["ok"], w["failed"], w["skipped"], w["p50_ms"], w["outcomes"])
             for w in summary["windows"]]
    assert table == [
        (0.0, 4, 4, 0, 0, 2.0, {}),
        (1.0, 4, 2, 2, 0, 30.0, {"refused": 1, "reset": 1}),
        (2.0, 3, 3, 0, 1, 4.0, {}),
        (3.0, 4, 3, 1, 0, 6.0, {"timeout": 1}),
        (4.0, 0, 0, 0, 0, None, {}),  # the run lasts until the stop record at 4.3 s
    ]
    assert summary["windows"][1]["availability"] == 0.5 and summary["windows"][4]["availability"] is None
    assert [w["failed"] for w in summary["services"]["a"]["windows"]] == [0, 2, 0, 0, 0]
    wide = _recorder.summarize_file(str(FIXTURE), window=2.0)
    assert [(w["t"], w["requests"], w["failed"]) for w in wide["windows"]] == [(0.0, 8, 2), (2.0, 7, 1), (4.0, 0, 0)]


def test_schedule_not_kept_is_reported(summary):
    schedule = summary["schedule"]
    # one request skipped; b's seq 6 went out 510 ms late, more than one interval (500 ms)
    assert schedule == {"kept": False, "skipped": 1, "late": 1, "lag_p99_ms": 510.0, "lag_max_ms": 510.0}


def test_summary_text(summary):
    text = _recorder.summary_text(summary)
    lines = text.splitlines()
    assert lines[0].startswith(str(FIXTURE) + ": 2 service(s), 4.3 s: 15 requests, 3 failed (refused 1, reset 1, ")
    assert "availability 80.000%" in lines[0] and "schedule NOT kept (1 skipped, 1 late" in lines[0]
    assert lines[1].startswith("  a: 8 requests, 2 failed (refused 1, reset 1), availability 75.000%, p50 3.0 ms")
    assert "longest failure streak 2 request(s) / 1.00 s from t=1.0 s" in lines[1]
    assert "backends k3s 2, swarm 4" in lines[1]
    assert "1 not sent (schedule not kept)" in lines[2]
    assert lines[3] == ("  windows with failures (1 s): t=1 s a 2/2 failed (refused 1, reset 1); t=2 s b 0/1 failed; "
                        "t=3 s b 1/2 failed (timeout 1)")


def test_cut_file_without_stop_record(tmp_path):
    """A recorder killed mid-write: the cut line is counted, the run is flagged incomplete, the rest summarised."""
    lines = FIXTURE.read_text().splitlines()[:-1]
    lines[-1] = lines[-1][:40]
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = _recorder.summarize_file(str(path))
    assert summary["bad_lines"] == 1 and summary["complete"] is False
    assert summary["overall"]["requests"] == 14 and summary["overall"]["failed"] == 2
    assert "recording not stopped cleanly" in _recorder.summary_text(summary)


def test_two_runs_appended(tmp_path):
    """Two runs in one file (append): each run's times count from its own start record."""
    text = FIXTURE.read_text()
    second = text.replace("2026-01-05T10:00:0", "2026-01-05T10:00:1")  # the same run again, 10 s later
    path = tmp_path / "two.jsonl"
    path.write_text(text + second)
    summary = _recorder.summarize_file(str(path), window=5.0)
    assert summary["runs"] == 2 and summary["complete"] is True
    assert summary["overall"]["requests"] == 30 and summary["overall"]["failed"] == 6
    assert summary["duration_s"] == pytest.approx(8.6)
    assert [w["requests"] for w in summary["windows"]] == [15, 0, 15]
    assert summary["overall"]["downtime_s"] == pytest.approx(3.0, abs=1e-3)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    summary = _recorder.summarize_file(str(empty))
    assert summary["overall"]["requests"] == 0 and summary["overall"]["availability"] is None
    assert summary["complete"] is False
    _recorder.summary_text(summary)
    with pytest.raises(InputError, match="cannot read the recording"):
        _recorder.summarize_file(str(tmp_path / "missing.jsonl"))
    with pytest.raises(InputError, match="window"):
        _recorder.summarize_file(str(FIXTURE), window=0)


@pytest.mark.parametrize("values, pct, expected", [
    ([], 50, None),
    ([7.0], 99, 7.0),
    ([1, 2, 3, 4], 50, 2),
    ([1, 2, 3, 4], 75, 3),
    ([1, 2, 3, 4], 76, 4),
    (list(range(1, 101)), 95, 95),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 1001)), 99, 990),
    (list(range(1, 11)), 100, 10),
])
def test_percentile_nearest_rank(values, pct, expected):
    assert _recorder.percentile(values, pct) == expected


# ------------------------------------------------------------------------------------- scheduling maths


@pytest.mark.parametrize("services, rate, expected", [
    (1, 50.0, [0.0]),
    (4, 10.0, [0.0, 0.025, 0.05, 0.075]),
    (2, 2.0, [0.0, 0.25]),
])
def test_phases_spread_services_over_one_interval(services, rate, expected):
    assert _recorder.phases(services, rate) == pytest.approx(expected)


def test_merged_schedule_is_evenly_spaced():
    """28 services at 5 requests/s: the merged due times are 1 / 140 s apart, none drifts after 10 minutes."""
    rate, phases = 5.0, _recorder.phases(28, 5.0)
    times = sorted(_recorder.due_offset(phase, rate, seq) for phase in phases for seq in range(3000))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) == pytest.approx(1 / 140.0, rel=1e-6) and max(gaps) == pytest.approx(1 / 140.0, rel=1e-6)
    assert _recorder.due_offset(phases[27], rate, 2999) == pytest.approx(599.8 + 27 / 140.0, abs=1e-9)


@pytest.mark.parametrize("phase, rate, duration, expected", [
    (0.0, 50.0, 3.0, 150),
    (0.01, 50.0, 3.0, 150),  # the last at 2.99 s
    (0.5, 1.0, 3.0, 3),  # 0.5, 1.5, 2.5
    (0.0, 1.0, 3.0, 3),  # 0, 1, 2 (3.0 is not before the end)
    (3.0, 1.0, 3.0, 0),
    (0.0, 3.0, 1.0, 3),
    (0.0, 0.5, 10.0, 5),
])
def test_requests_due(phase, rate, duration, expected):
    assert _recorder.requests_due(phase, rate, duration) == expected
    due = [_recorder.due_offset(phase, rate, seq) for seq in range(expected + 1)]
    assert all(t < duration for t in due[:expected]) and due[expected] >= duration - 1e-9


@pytest.mark.parametrize("rate, services, timeout, expected", [
    (10.0, 1, 2.0, 22),
    (50.0, 2, 2.0, 202),
    (0.5, 1, 1.0, 4),  # at least 4
    (100.0, 28, 5.0, 1024),  # at most 1024
])
def test_default_in_flight(rate, services, timeout, expected):
    assert _recorder.default_in_flight(rate, services, timeout) == expected


@pytest.mark.parametrize("rate, expected", [(1.0, 1.0), (10.0, 0.1), (50.0, 0.05), (1000.0, 0.05)])
def test_late_threshold(rate, expected):
    assert _recorder.late_threshold(rate) == expected


# ------------------------------------------------------------------------------------------------ outcomes


def _http(status, session):
    return _mcp.http_error(status, "x", "application/json", b"{}", "http://h/mcp", "tools/call", session=session)


@pytest.mark.parametrize("exc, expected", [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "reset"),
    (http.client.RemoteDisconnected("Remote end closed connection without response"), "reset"),
    (http.client.IncompleteRead(b"par", 10), "reset"),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), "reset"),
    (socket.timeout("timed out"), "timeout"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
    (OSError(errno.EACCES, "Permission denied"), "connection_error"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls"),
    (http.client.BadStatusLine("SSH-2.0-OpenSSH_9.2"), "not_mcp"),
    (_http(503, False), "http_503"),
    (_http(404, False), "http_404"),
    (_http(404, True), "session_lost"),
    (_mcp.McpNotMcpError("html"), "not_mcp"),
    (_mcp.McpNotMcpError("http://h/mcp ended the SSE stream without a reply to ping"), "reset"),
    (_mcp.McpRpcError("rpc"), "rpc_error"),
    (_mcp.McpTimeoutError("slow"), "timeout"),
    (_mcp.McpVersionError("v"), "unsupported_protocol_version"),
    (ValueError("bug"), "client_error"),
])
def test_classify(exc, expected):
    assert _recorder.classify(exc) == expected


# --------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("text, expected", [
    ('{"gong": "http://h:9005/mcp", "slack": "http://h:9006/mcp"}',
     {"gong": "http://h:9005/mcp", "slack": "http://h:9006/mcp"}),
    ('[{"name": "gong", "url": "http://h:9005/mcp"}]', {"gong": "http://h:9005/mcp"}),
    ("# fleet\ngong=http://h:9005/mcp\n\nslack: http://h:9006/mcp\nlinear   http://h:9007/mcp\n",
     {"gong": "http://h:9005/mcp", "slack": "http://h:9006/mcp", "linear": "http://h:9007/mcp"}),
])
def test_parse_targets(text, expected):
    assert _recorder.parse_targets(text) == expected


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('[{"name": "gong"}]', "objects with name and url"),
    ("gong", "line 1 is not 'name=url'"),
])
def test_parse_targets_errors(text, message):
    with pytest.raises(InputError, match=message):
        _recorder.parse_targets(text)


def good(**changes):
    options = {"targets": {"gong": "http://127.0.0.1:9005/mcp"}, "out": "/tmp/x.jsonl"}
    options.update(changes)
    return options


def test_check_config_fills_defaults():
    config = _recorder.check_config(good(rate=50, headers={"Authorization": "Bearer t"}))
    assert config["rate"] == 50.0 and config["timeout"] == 2.0 and config["max_in_flight"] == 102
    assert config["method"] == "tools/call" and config["tool"] == "echo"
    assert config["backend_header"] == "X-Sophia-Backend" and config["duration"] is None
    assert _recorder.public_config(config)["headers"] == {"Authorization": "********"}


@pytest.mark.parametrize("changes, message", [
    ({"targets": {}}, "at least one service"),
    ({"targets": {"gong": "ftp://h/mcp"}}, "not an http:// or https:// URL"),
    ({"targets": {"gong": "http://h:99999/mcp"}}, "not an http:// or https:// URL"),
    ({"targets": {"bad name": "http://h/mcp"}}, "letters, digits"),
    ({"out": ""}, "out"),
    ({"rate": 0}, "rate must be a positive number"),
    ({"rate": 20000}, "rate must be at most"),
    ({"timeout": -1}, "timeout must be a positive number"),
    ({"duration": 0}, "duration must be a positive number"),
    ({"method": "tools/list"}, "method must be one of"),
    ({"tool": ""}, "needs a tool name"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"headers": {"Mcp-Session-Id": "x"}}, "set by the recorder itself"),
    ({"headers": {"X-A": "b\r\nX-Evil: 1"}}, "not a valid single HTTP header line"),
    ({"backend_header": "bad header"}, "not an HTTP header name"),
    ({"protocol_version": "2023-01-01"}, "protocol_version"),
    ({"colour": "blue"}, "unknown recorder option"),
])
def test_check_config_errors(changes, message):
    with pytest.raises(InputError, match=message):
        _recorder.check_config(good(**changes))


def test_options_from_command_line(tmp_path):
    targets = tmp_path / "targets"
    targets.write_text("gong=http://127.0.0.1:9005/mcp\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"rate": 5, "targets": {"slack": "http://127.0.0.1:9006/mcp"}, "timeout": 1}))
    args = _recorder._parser().parse_args([
        "run", "--config", str(config), "--targets", str(targets), "--target", "linear=http://127.0.0.1:9007/mcp",
        "--rate", "25", "--out", str(tmp_path / "o.jsonl"), "--method", "ping", "--header", "Authorization: Bearer x",
        "--arguments", '{"text": "hi"}'])
    options = _recorder.check_config(_recorder.options_from_args(args))
    assert sorted(options["targets"]) == ["gong", "linear", "slack"]
    assert options["rate"] == 25.0 and options["timeout"] == 1.0 and options["method"] == "ping"
    assert options["headers"] == {"Authorization": "Bearer x"} and options["arguments"] == {"text": "hi"}


# ---------------------------------------------------------------------------------------------- processes


def test_alive_tells_running_dead_and_zombie_processes():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert _recorder.alive(child.pid)
        # between fork and exec the child's command line is still its parent's: wait for the exec
        deadline = time.monotonic() + 10
        while not _recorder.alive(child.pid, marker="time.sleep(30)") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _recorder.alive(child.pid, marker="time.sleep(30)")
        assert not _recorder.alive(child.pid, marker="something-else")
    finally:
        child.kill()
    deadline = time.monotonic() + 10
    while _recorder.alive(child.pid) and time.monotonic() < deadline:  # killed, not yet reaped: a zombie
        time.sleep(0.02)
    assert not _recorder.alive(child.pid)
    child.wait()
    assert not _recorder.alive(child.pid) and not _recorder.alive(None)


def test_status_ignores_a_stale_pid_file(tmp_path):
    out = tmp_path / "t.jsonl"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (tmp_path / "t.jsonl.pid").write_text("%d\n" % child.pid)
    files, pid, stored = _recorder.status(str(out))
    assert pid is None and stored is None
    assert files == {"out": str(out), "pid_file": str(out) + ".pid", "config_file": str(out) + ".config.json",
                     "log_file": str(out) + ".log"}
    # a live process whose command line does not name the configuration is not the recorder either
    (tmp_path / "t.jsonl.pid").write_text("%d\n" % os.getpid())
    assert _recorder.status(str(out))[1] is None
