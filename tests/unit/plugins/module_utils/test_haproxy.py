# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of the HAProxy runtime API helper (plugins/module_utils/_haproxy.py) on replies captured from a real
HAProxy 2.6 (fixtures/haproxy/, README.md there says how).

``Replay`` answers runtime API commands with those captures and records the commands that change state; it stands
in for the socket only (the real socket is exercised by tests/integration/traffic/). The drain wait is driven with
a fake clock. ``RuntimeApi`` itself is tested against a unix socket served by the test, replaying a capture.
"""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError, PlatformError

FIXTURES = Path(__file__).parent / "fixtures" / "haproxy"


def capture(name):
    return (FIXTURES / name).read_text()


def servers(backend, state="all-servers-state.txt", stat_file="all-stat.txt"):
    return _haproxy.servers_from(backend, _haproxy.parse_servers_state(capture(state)), _haproxy.parse_stat(capture(stat_file)))


def by_name(backend, name, **files):
    return next(s for s in servers(backend, **files) if s["name"] == name)


def with_sessions(stat_text, backend, server, count):
    """A captured ``show stat`` with one server's ``scur`` column set to ``count`` (captures have idle servers)."""
    lines = stat_text.splitlines(keepends=True)
    header = lines[0][2:].split(",")
    col = header.index("scur")
    out = []
    for line in lines:
        fields = line.split(",")
        if fields[:2] == [backend, server]:
            fields[col] = str(count)
        out.append(",".join(fields))
    return "".join(out)


class Replay:
    """Runtime API stand-in: answers from captures, records state-changing commands (empty line = success)."""

    def __init__(self, answers, refuse=None):
        self.answers = {key: list(value) if isinstance(value, list) else [value] for key, value in answers.items()}
        self.refuse = refuse or {}
        self.sent = []

    def command(self, line):
        if line in self.refuse:
            return capture(self.refuse[line])
        if line.startswith(("set ", "shutdown ")):
            self.sent.append(line)
            return "\n"
        queue = self.answers[line]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def run(self, line):
        _haproxy.check_reply(line, self.command(line))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


# --------------------------------------------------------------------------------------------------- parsing


def test_servers_state_rows_have_typed_fields():
    rows = _haproxy.parse_servers_state(capture("all-servers-state.txt"))
    assert [(r["be_name"], r["srv_name"]) for r in rows] == [
        ("mcp-gong", "swarm"), ("mcp-gong", "k3s"),
        ("mcp-slack", "swarm"), ("mcp-slack", "k3s"), ("mcp-slack", "k3s-2"), ("mcp-slack", "nocheck"),
        ("mcp-slack", "spare"), ("mcp-slack", "maint"),
        ("mcp-linear", "swarm-1"), ("mcp-linear", "swarm-2"), ("mcp-linear", "k3s"),
    ]
    spare = rows[6]
    assert (spare["srv_admin_state"], spare["srv_uweight"], spare["srv_port"], spare["srv_addr"]) == (5, 10, 18941, "127.0.0.1")


def test_stat_rows_and_backends():
    rows = _haproxy.parse_stat(capture("all-stat.txt"))
    assert _haproxy.list_backends(rows) == ["mcp-gong", "mcp-linear", "mcp-slack"]
    k3s = next(r for r in rows if r["pxname"] == "mcp-slack" and r["svname"] == "k3s")
    assert (k3s["status"], k3s["check_status"], k3s["last_chk"]) == ("DOWN", "L4CON", "Connection refused")


@pytest.mark.parametrize("name, reason", [
    ("error-cant-find-backend.txt", "unknown_service"),
    ("error-unknown-command.txt", "unknown_command"),
    ("error-permission-denied.txt", "permission_denied"),
])
def test_servers_state_error_replies(name, reason):
    with pytest.raises(ApiError) as err:
        _haproxy.parse_servers_state(capture(name), "show servers state nope")
    assert err.value.details["reason"] == reason


def test_stat_reply_that_is_not_csv():
    with pytest.raises(ApiError) as err:
        _haproxy.parse_stat(capture("error-permission-denied.txt"))
    assert err.value.details["reason"] == "permission_denied"


@pytest.mark.parametrize("name, reason, words", [
    ("error-no-such-server.txt", "unknown_server", "No such server"),
    ("error-no-such-backend.txt", "unknown_service", "No such backend"),
    ("error-weight-range.txt", "command_failed", "between 0 and 256"),
    ("error-permission-denied.txt", "permission_denied", "level admin"),
    ("error-unknown-command.txt", "unknown_command", "Unknown command"),
])
def test_refused_commands(name, reason, words):
    with pytest.raises(ApiError) as err:
        _haproxy.check_reply("set server mcp-gong/k3s weight 1", capture(name))
    assert err.value.details["reason"] == reason
    assert words in str(err.value)
    assert "set server mcp-gong/k3s weight 1" in str(err.value)


@pytest.mark.parametrize("name", ["reply-100-k3s.txt", "reply-0-swarm.txt", "reply-drain-swarm.txt"])
def test_accepted_commands(name):
    assert capture(name) == "\n"
    _haproxy.check_reply("set server x/y weight 1", capture(name))


# --------------------------------------------------------------------------------------------------- servers


@pytest.mark.parametrize("backend, name, files, expected", [
    ("mcp-gong", "swarm", {"state": "gong-servers-state.txt", "stat_file": "gong-stat.txt"},
     {"side": "swarm", "admin_state": "ready", "op_state": "running", "effective_weight": 100, "healthy": True, "status": "UP"}),
    ("mcp-gong", "k3s", {"state": "gong-servers-state.txt", "stat_file": "gong-stat.txt"},
     {"side": "k3s", "admin_state": "ready", "op_state": "running", "effective_weight": 0, "weight": 0, "healthy": True}),
    ("mcp-gong", "swarm", {"state": "gong-switched-servers-state.txt", "stat_file": "gong-stat.txt"},
     {"admin_state": "drain", "weight": 0, "initial_weight": 100, "effective_weight": 0, "healthy": True}),
    ("mcp-gong", "k3s", {"state": "gong-switched-servers-state.txt", "stat_file": "gong-stat.txt"},
     {"admin_state": "ready", "weight": 100, "initial_weight": 0, "effective_weight": 100}),
    ("mcp-slack", "k3s", {}, {"op_state": "stopped", "healthy": False, "status": "DOWN",
                              "health_problem": "its health checks mark it down"}),
    ("mcp-slack", "k3s-2", {}, {"op_state": "stopped", "healthy": False, "status": "DOWN"}),
    ("mcp-slack", "nocheck", {}, {"side": None, "op_state": "running", "healthy": False, "status": "no check",
                                  "health_problem": "it has no health check (its server line lacks 'check')"}),
    ("mcp-slack", "spare", {}, {"admin_state": "maint", "effective_weight": 0, "healthy": False,
                                "health_problem": "it is in maintenance, so its health checks are paused"}),
    ("mcp-slack", "maint", {}, {"admin_state": "maint", "weight": 10, "effective_weight": 0, "healthy": False}),
    ("mcp-linear", "k3s", {"state": "linear-going-down-servers-state.txt", "stat_file": "linear-going-down-stat.txt"},
     {"op_state": "running", "status": "UP 2/3", "healthy": False, "health_problem": "its last health check failed"}),
    ("mcp-linear", "swarm-2", {}, {"side": "swarm", "effective_weight": 50, "healthy": True}),
])
def test_server_records(backend, name, files, expected):
    server = by_name(backend, name, **files)
    assert {key: server[key] for key in expected} == expected


def test_a_check_in_progress_keeps_the_last_completed_status():
    """Captured mid-check: srv_check_result is 0 (reset), show stat says "* L7OK"; the server is healthy."""
    files = {"state": "gong-check-in-progress-servers-state.txt", "stat_file": "gong-check-in-progress-stat.txt"}
    row = next(r for r in _haproxy.parse_servers_state(capture(files["state"])) if r["srv_name"] == "swarm")
    assert (row["srv_check_result"], row["srv_check_status"]) == (0, 15)
    server = by_name("mcp-gong", "swarm", **files)
    assert server["healthy"] is True
    assert {k: server["check"][k] for k in ("passed", "in_progress", "status")} == {"passed": True, "in_progress": True, "status": "L7OK"}
    assert _haproxy.describe(server) == "status UP, check L7OK (Layer7 check passed)"
    api = Replay({"show servers state mcp-gong": capture(files["state"]), "show stat": capture(files["stat_file"])})
    result = _haproxy.switch(api, {"service": "mcp-gong", "weights": {"swarm": 150}}, check_mode=True)
    assert result["commands"] == ["set server mcp-gong/swarm weight 150"]


@pytest.mark.parametrize("backend, name, text", [
    ("mcp-slack", "k3s", "status DOWN, check L4CON (Layer4 connection problem), last check: Connection refused"),
    ("mcp-slack", "k3s-2", "status DOWN, check L7STS 503 (Layer7 wrong status), last check: Service Unavailable"),
    ("mcp-slack", "swarm", "status UP, check L7OK 200 (Layer7 check passed)"),
    ("mcp-slack", "spare", "status MAINT, no check result"),
])
def test_describe_names_status_check_and_last_result(backend, name, text):
    assert _haproxy.describe(by_name(backend, name)) == text


@pytest.mark.parametrize("name, side", [("swarm", "swarm"), ("swarm-2", "swarm"), ("k3s", "k3s"), ("k3s-10", "k3s"),
                                        ("k3sx", None), ("swarmy-1", None), ("blue", None)])
def test_side_of(name, side):
    assert _haproxy.side_of(name) == side


# --------------------------------------------------------------------------------------------------- planning


@pytest.mark.parametrize("backend, options, expected", [
    ("mcp-gong", {"to": "k3s"}, {"swarm": 0, "k3s": 100}),
    ("mcp-gong", {"to": "swarm"}, {"swarm": 100, "k3s": 0}),
    ("mcp-gong", {"to": "split", "split": 25}, {"swarm": 75, "k3s": 25}),
    ("mcp-gong", {"to": "split", "split": 0}, {"swarm": 100, "k3s": 0}),
    ("mcp-gong", {"weights": {"swarm": 0, "k3s": 100}}, {"swarm": 0, "k3s": 100}),
    ("mcp-gong", {"weights": {"k3s": "30"}}, {"k3s": 30}),
    # two swarm servers, one k3s: per-server weights keep the sides' shares (140:60 = 70:30)
    ("mcp-linear", {"to": "split", "split": 30}, {"swarm-1": 70, "swarm-2": 70, "k3s": 60}),
    ("mcp-linear", {"to": "split", "split": 99}, {"swarm-1": 1, "swarm-2": 1, "k3s": 198}),
    ("mcp-linear", {"to": "k3s"}, {"swarm-1": 0, "swarm-2": 0, "k3s": 100}),
    ("mcp-linear", {"weights": {"swarm": 10, "swarm-2": 40}}, {"swarm-1": 10, "swarm-2": 40}),
    # servers of no side get 0 when the whole service moves
    ("mcp-slack", {"to": "swarm"}, {"swarm": 100, "k3s": 0, "k3s-2": 0, "nocheck": 0, "spare": 0, "maint": 0}),
    ("mcp-slack", {"to": "split", "split": 50}, {"swarm": 100, "k3s": 50, "k3s-2": 50, "nocheck": 0, "spare": 0, "maint": 0}),
])
def test_desired_weights(backend, options, expected):
    assert _haproxy.desired_weights(backend, servers(backend), **options) == expected


@pytest.mark.parametrize("options, reason, words", [
    ({"weights": {"blue": 10}}, "unknown_server", "no server or side named blue (servers: swarm, k3s)"),
    ({"weights": {"k3s": 300}}, "bad_weight", "weights.k3s must be an integer between 0 and 256, got 300"),
    ({"weights": {"k3s": "lots"}}, "bad_weight", "got 'lots'"),
    ({"weights": {"k3s": 2.5}}, "bad_weight", "got 2.5"),
    ({"to": "split", "split": None}, "bad_split", "split"),
    ({"to": "split", "split": 101}, "bad_split", "101"),
])
def test_desired_weights_errors(options, reason, words):
    with pytest.raises(InputError) as err:
        _haproxy.desired_weights("mcp-gong", servers("mcp-gong"), **options)
    assert err.value.details["reason"] == reason
    assert words in str(err.value)


def test_a_side_without_servers_is_named():
    only_swarm = [s for s in servers("mcp-gong") if s["name"] == "swarm"]
    with pytest.raises(InputError) as err:
        _haproxy.desired_weights("mcp-gong", only_swarm, to="k3s")
    assert err.value.details["reason"] == "no_side"
    assert "backend mcp-gong has no k3s server" in str(err.value)


GONG = {"state": "gong-servers-state.txt", "stat_file": "gong-stat.txt"}
GONG_SWITCHED = {"state": "gong-switched-servers-state.txt", "stat_file": "gong-stat.txt"}


@pytest.mark.parametrize("files, desired, drain, commands, raised, lowered", [
    # the captured switch, in the captured order: the new side first, then the old one to 0 and drain
    (GONG, {"swarm": 0, "k3s": 100}, True,
     ["set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0", "set server mcp-gong/swarm state drain"],
     ["k3s"], ["swarm"]),
    (GONG, {"swarm": 0, "k3s": 100}, False,
     ["set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0", "shutdown sessions server mcp-gong/swarm"],
     ["k3s"], ["swarm"]),
    (GONG, {"swarm": 100, "k3s": 0}, True, [], [], []),
    (GONG, {"swarm": 50, "k3s": 50}, True,
     ["set server mcp-gong/swarm weight 50", "set server mcp-gong/k3s weight 50"], ["k3s"], []),
    (GONG_SWITCHED, {"swarm": 0, "k3s": 100}, True, [], [], []),
    (GONG_SWITCHED, {"swarm": 100, "k3s": 0}, True,
     ["set server mcp-gong/swarm weight 100", "set server mcp-gong/swarm state ready",
      "set server mcp-gong/k3s weight 0", "set server mcp-gong/k3s state drain"], ["swarm"], ["k3s"]),
])
def test_plan_switch(files, desired, drain, commands, raised, lowered):
    plan = _haproxy.plan_switch("mcp-gong", servers("mcp-gong", **files), desired, drain)
    assert (plan["commands"], plan["raised"], plan["lowered"]) == (commands, raised, lowered)


def test_plan_diff_shows_effective_weights_and_states():
    plan = _haproxy.plan_switch("mcp-gong", servers("mcp-gong", **GONG), {"swarm": 0, "k3s": 100})
    assert plan["before"] == {"swarm": {"weight": 100, "state": "ready"}, "k3s": {"weight": 0, "state": "ready"}}
    assert plan["after"] == {"swarm": {"weight": 0, "state": "drain"}, "k3s": {"weight": 100, "state": "ready"}}


def test_plan_refuses_to_leave_no_server():
    with pytest.raises(InputError) as err:
        _haproxy.plan_switch("mcp-gong", servers("mcp-gong", **GONG), {"swarm": 0})
    assert err.value.details["reason"] == "no_traffic"


# --------------------------------------------------------------------------------------------------- runner


def replay(state, stat_text, after_state=None):
    answers = {"show servers state mcp-gong": [capture(state)] + ([capture(after_state)] if after_state else []),
               "show servers state mcp-slack": capture("slack-servers-state.txt"),
               "show servers state mcp-linear": capture("linear-going-down-servers-state.txt"),
               "show servers state nope": capture("error-cant-find-backend.txt"),
               "show servers state": capture(after_state or state),
               "show stat": stat_text}
    return Replay(answers)


@pytest.mark.parametrize("backend, options, unhealthy, words", [
    ("mcp-slack", {"to": "k3s"}, ["k3s", "k3s-2"],
     ["refusing to move traffic of mcp-slack to k3s, k3s-2",
      "mcp-slack/k3s: its health checks mark it down (status DOWN, check L4CON (Layer4 connection problem), last check: Connection refused)",
      "mcp-slack/k3s-2: its health checks mark it down (status DOWN, check L7STS 503 (Layer7 wrong status), last check: Service Unavailable)",
      "Nothing was changed"]),
    ("mcp-slack", {"weights": {"maint": 20}}, ["maint"], ["mcp-slack/maint: it is in maintenance, so its health checks are paused"]),
    ("mcp-slack", {"weights": {"nocheck": 20}}, ["nocheck"], ["mcp-slack/nocheck: it has no health check"]),
    ("mcp-linear", {"to": "split", "split": 10}, ["k3s"], ["mcp-linear/k3s: its last health check failed (status UP 2/3, check L7STS 503"]),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_switch_refuses_unhealthy_targets(backend, options, unhealthy, words, check_mode):
    api = replay("gong-servers-state.txt", capture("all-stat.txt") if backend == "mcp-slack" else capture("linear-going-down-stat.txt"))
    with pytest.raises(ApiError) as err:
        _haproxy.switch(api, dict(options, service=backend), check_mode=check_mode)
    for text in words:
        assert text in str(err.value)
    assert err.value.details["reason"] == "unhealthy_target"
    assert [s["name"] for s in err.value.details["unhealthy"]] == unhealthy
    assert api.sent == []


def test_switch_waits_for_health_up_to_health_timeout():
    """With health_timeout the gate reads the backend again until the target passes (here: the second read)."""
    api = replay("gong-servers-state.txt", capture("gong-stat.txt"))
    api.answers["show servers state mcp-linear"] = [capture("linear-going-down-servers-state.txt"),
                                                    capture("all-servers-state.txt").replace(
                                                        "7 mcp-linear 3 k3s 127.0.0.1 0 0 0 0", "7 mcp-linear 3 k3s 127.0.0.1 2 0 0 0")
                                                    .replace(" 17 2 0 6 0 0 0 - 18943", " 15 3 3 6 0 0 0 - 18943")]
    clock = Clock()
    result = _haproxy.switch(api, {"service": "mcp-linear", "to": "k3s", "health_timeout": 5}, check_mode=True,
                             clock=clock, sleep=clock.sleep)
    assert result["changed"] is True
    assert 0 < clock.now < 5


def test_switch_health_timeout_runs_out():
    clock = Clock()
    api = replay("gong-servers-state.txt", capture("all-stat.txt"))
    with pytest.raises(ApiError) as err:
        _haproxy.switch(api, {"service": "mcp-slack", "to": "k3s", "health_timeout": 2}, clock=clock, sleep=clock.sleep)
    assert err.value.details["reason"] == "unhealthy_target"
    assert clock.now >= 2


def test_switch_check_mode_sends_nothing():
    api = replay("gong-servers-state.txt", capture("gong-stat.txt"))
    result = _haproxy.switch(api, {"service": "mcp-gong", "to": "k3s"}, check_mode=True)
    assert result["changed"] is True
    assert result["weights"] == {"swarm": 0, "k3s": 100}
    assert result["commands"] == ["set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0",
                                  "set server mcp-gong/swarm state drain"]
    assert result["diff"]["before"]["servers"]["swarm"] == {"weight": 100, "state": "ready"}
    assert api.sent == []


def test_switch_applies_drains_and_saves_state(tmp_path):
    api = replay("gong-servers-state.txt", capture("gong-stat.txt"), after_state="gong-switched-servers-state.txt")
    state_file = tmp_path / "server-state"
    result = _haproxy.switch(api, {"service": "mcp-gong", "to": "k3s", "state_file": str(state_file)})
    assert api.sent == ["set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0",
                        "set server mcp-gong/swarm state drain"]
    assert result["changed"] is True
    assert result["weights"] == {"swarm": 0, "k3s": 100}
    assert result["drain"]["complete"] is True and result["drain"]["servers"] == ["swarm"]
    assert result["state_file"] == str(state_file)
    assert state_file.read_text() == capture("gong-switched-servers-state.txt")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert result["warnings"] == []


def test_switch_without_state_file_warns():
    api = replay("gong-servers-state.txt", capture("gong-stat.txt"), after_state="gong-switched-servers-state.txt")
    result = _haproxy.switch(api, {"service": "mcp-gong", "to": "k3s"})
    assert result["state_file"] is None
    assert any("a reload or restart returns to the configured weights" in w for w in result["warnings"])


def test_switch_is_idempotent():
    api = replay("gong-switched-servers-state.txt", capture("gong-stat.txt"))
    result = _haproxy.switch(api, {"service": "mcp-gong", "to": "k3s", "state_file": "/nonexistent/x"})
    assert result["changed"] is False
    assert result["commands"] == []
    assert result["msg"] == "mcp-gong: weights already hold (swarm=0, k3s=100)"
    assert api.sent == []


def test_switch_names_the_backends_when_the_service_is_unknown():
    api = replay("gong-servers-state.txt", capture("all-stat.txt"))
    with pytest.raises(ApiError) as err:
        _haproxy.switch(api, {"service": "nope", "to": "k3s"})
    assert err.value.details["reason"] == "unknown_service"
    assert "HAProxy has no backend nope (backends: mcp-gong, mcp-linear, mcp-slack)" in str(err.value)


def test_switch_reports_how_far_it_got_when_haproxy_refuses():
    api = replay("gong-servers-state.txt", capture("gong-stat.txt"))
    api.refuse["set server mcp-gong/swarm weight 0"] = "error-permission-denied.txt"
    with pytest.raises(ApiError) as err:
        _haproxy.switch(api, {"service": "mcp-gong", "to": "k3s"})
    assert err.value.details["applied"] == ["set server mcp-gong/k3s weight 100"]
    assert "after 1 of 3 commands had been applied" in str(err.value)


def test_drain_waits_for_sessions_to_end():
    busy = with_sessions(capture("gong-stat.txt"), "mcp-gong", "swarm", 3)
    api = Replay({"show stat": [busy, busy, capture("gong-stat.txt")]})
    clock = Clock()
    result = _haproxy.wait_drained(api, "mcp-gong", ["swarm"], 10, clock, clock.sleep)
    assert result == {"servers": ["swarm"], "complete": True, "sessions_left": {}, "waited_s": 0.2}


def test_drain_gives_up_at_the_timeout():
    busy = with_sessions(capture("gong-stat.txt"), "mcp-gong", "swarm", 2)
    clock = Clock()
    result = _haproxy.wait_drained(Replay({"show stat": busy}), "mcp-gong", ["swarm"], 1.0, clock, clock.sleep)
    assert result["complete"] is False
    assert result["sessions_left"] == {"swarm": 2}
    assert result["waited_s"] == pytest.approx(1.0)


def test_switch_warns_when_drain_times_out():
    busy = with_sessions(capture("gong-stat.txt"), "mcp-gong", "swarm", 1)
    api = replay("gong-servers-state.txt", busy, after_state="gong-switched-servers-state.txt")
    clock = Clock()
    result = _haproxy.switch(api, {"service": "mcp-gong", "to": "k3s", "drain_timeout": 0.5, "state_file": None},
                             clock=clock, sleep=clock.sleep)
    assert result["drain"]["complete"] is False
    assert any("sessions still open on drained servers after 0.5 s: swarm 1" in w for w in result["warnings"])


# --------------------------------------------------------------------------------------------------- client


@pytest.fixture
def unix_server(tmp_path):
    """A unix socket that answers each connection's one command line with a capture, as haproxy does, then closes."""
    path = str(tmp_path / "admin.sock")
    received = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)

    def serve():
        while True:
            try:
                conn, dummy = listener.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline()
                received.append(line)
                conn.sendall(capture("all-stat.txt").encode() if line == b"show stat\n" else capture("error-no-such-server.txt").encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, received
    listener.close()


def test_runtime_api_over_a_unix_socket(unix_server):
    path, received = unix_server
    api = _haproxy.RuntimeApi(path, timeout=2)
    assert api.command("show stat") == capture("all-stat.txt")
    with pytest.raises(ApiError) as err:
        api.run("set server mcp-gong/nope weight 1")
    assert err.value.details["reason"] == "unknown_server"
    assert received == [b"show stat\n", b"set server mcp-gong/nope weight 1\n"]


@pytest.mark.parametrize("address, reason", [
    ("/nonexistent/admin.sock", "socket_missing"),
    ("tcp://127.0.0.1:1", "socket_refused"),
])
def test_runtime_api_connection_errors(address, reason):
    with pytest.raises(ApiError) as err:
        _haproxy.RuntimeApi(address, timeout=1).command("show stat")
    assert err.value.details["reason"] == reason


def test_runtime_api_rejects_a_malformed_tcp_address():
    with pytest.raises(InputError):
        _haproxy.RuntimeApi("tcp://nowhere", timeout=1).command("show stat")


def test_save_state_failure_in_a_missing_directory(tmp_path):
    api = Replay({"show servers state": capture("gong-servers-state.txt")})
    with pytest.raises(PlatformError) as err:
        _haproxy.save_state(api, str(tmp_path / "missing" / "server-state"))
    assert err.value.details["reason"] == "state_file"
    assert "a reload of haproxy would undo it" in str(err.value)


def test_saved_state_of_backends_whose_servers_changed_is_dropped():
    """The real state file: mcp-gong switched to K3s (swarm drained, weight 0). A configuration back to Swarm only
    must not keep swarm drained; backends with the same servers keep their saved state (the switch holds)."""
    text = (FIXTURES / "all-servers-state.txt").read_text()
    backends = {line.split()[1] for line in text.splitlines() if line[:1].isdigit() and len(line.split()) > 3}
    same = [{"name": b, "servers": [{"name": line.split()[3]} for line in text.splitlines()
                                    if line[:1].isdigit() and len(line.split()) > 3 and line.split()[1] == b]}
            for b in backends]
    assert _haproxy.prune_server_state(text, same) == text if text.endswith("\n") else text + "\n"
    swarm_only = [dict(s, servers=[{"name": "swarm"}]) if s["name"] == "mcp-gong" else s for s in same]
    pruned = _haproxy.prune_server_state(text, swarm_only)
    assert " mcp-gong " not in pruned and " mcp-slack 1 swarm " in pruned
    assert pruned.splitlines()[:2] == text.splitlines()[:2], "the version and header lines stay"
    assert [line for line in _haproxy.prune_server_state(text, []).splitlines() if line] == text.splitlines()[:2]
    assert _haproxy.prune_server_state("", same) == ""


# --------------------------------------------------------------------------------------------------- hold

HOLD_MAP = "/etc/haproxy/sophia-held.map"


class MapReplay(Replay):
    """Replay that also answers the hold map's commands with the captures (hold-*.txt) and records add / del."""

    def __init__(self, answers, held=False):
        super().__init__(answers)
        self.held = held

    def command(self, line):
        if line == f"show map {HOLD_MAP}":
            return capture("hold-show-held.txt" if self.held else "hold-show-empty.txt")
        if line.startswith("show map "):
            return capture("hold-show-unknown-map.txt")
        if line.startswith("add map "):
            self.sent.append(line)
            self.held = True
            return capture("hold-add.txt")
        if line.startswith("del map "):
            self.sent.append(line)
            was, self.held = self.held, False
            return capture("hold-del.txt" if was else "hold-del-missing.txt")
        return super().command(line)


def hold_replay(stat_text=None, held=False):
    return MapReplay({"show servers state mcp-gong": capture("gong-servers-state.txt"),
                      "show stat": stat_text or capture("gong-stat.txt")}, held=held)


def test_parse_map_of_the_captures():
    assert _haproxy.parse_map(capture("hold-show-empty.txt")) == {}
    assert _haproxy.parse_map(capture("hold-show-held.txt")) == {"mcp-gong": "1764161000"}


def test_hold_adds_the_backend_and_waits_for_its_servers_to_finish():
    busy = with_sessions(capture("gong-stat.txt"), "mcp-gong", "swarm", 2)
    api = hold_replay()
    api.answers["show stat"] = [busy, busy, busy, capture("gong-stat.txt")]  # read_backend's, then the wait's
    clock = Clock()
    result = _haproxy.hold(api, "mcp-gong", HOLD_MAP, 10, clock, clock.sleep, now=lambda: 1764161000.5)
    assert api.sent == [f"add map {HOLD_MAP} mcp-gong 1764161000"]
    assert result["changed"] is True and result["since"] == "1764161000"
    assert result["drain"] == {"servers": ["swarm", "k3s"], "complete": True, "sessions_left": {}, "waited_s": 0.2}


def test_hold_already_in_place_is_kept():
    api = hold_replay(held=True)
    result = _haproxy.hold(api, "mcp-gong", HOLD_MAP, 10)
    assert api.sent == [] and result["changed"] is False and result["since"] == "1764161000"


def test_hold_says_when_the_drain_does_not_finish():
    api = hold_replay(with_sessions(capture("gong-stat.txt"), "mcp-gong", "k3s", 1))
    clock = Clock()
    result = _haproxy.hold(api, "mcp-gong", HOLD_MAP, 1.0, clock, clock.sleep)
    assert result["drain"]["complete"] is False and result["drain"]["sessions_left"] == {"k3s": 1}


def test_release_removes_the_backend_once():
    api = hold_replay(held=True)
    assert _haproxy.release(api, "mcp-gong", HOLD_MAP) is True
    assert _haproxy.release(api, "mcp-gong", HOLD_MAP) is False
    assert api.sent == [f"del map {HOLD_MAP} mcp-gong"]


def test_a_front_door_without_the_hold_is_named():
    api = hold_replay()
    with pytest.raises(ApiError) as err:
        _haproxy.hold(api, "mcp-gong", "/etc/haproxy/other.map")
    assert err.value.details["reason"] == "hold_unsupported"
    assert "front_door_hold" in str(err.value)
    assert api.sent == []


def test_hold_of_an_unknown_backend_changes_nothing():
    api = MapReplay({"show servers state nope": capture("error-cant-find-backend.txt"), "show stat": capture("all-stat.txt")})
    with pytest.raises(ApiError) as err:
        _haproxy.hold(api, "nope", HOLD_MAP)
    assert err.value.details["reason"] == "unknown_service"
    assert api.sent == []
