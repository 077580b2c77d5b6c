# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The front_door role through ansible-playbook, in its lab daemon mode (no systemd on these machines), in front of
two real sample MCP servers (containers of sophia-platform/mcp-server:lab on the local engine).

Check mode on a fresh directory, converge twice (the second run must change nothing), check mode after it, the
role's own MCP probe through the front door, a configuration that ``haproxy -c`` rejects, and a reload (a new
service added) that keeps a switch traffic_switch made. The systemd mode needs systemd, which these machines lack.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy

from .frontdoor import Backend, FrontDoor, Load, free_ports, mcp_call, run_playbook, stats, task_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def service(name, port, swarm_port, k3s_port):
    return {"name": name, "port": port, "servers": [
        {"name": "swarm", "address": "127.0.0.1", "port": swarm_port, "weight": 100},
        {"name": "k3s", "address": "127.0.0.1", "port": k3s_port, "weight": 0}]}


@pytest.fixture(scope="module")
def role(engine, tmp_path_factory):
    port_a, port_b, gong, slack = free_ports(4)
    backends = {}
    front_door = None
    try:
        for key, port in (("a", port_a), ("b", port_b)):
            backends[key] = Backend(engine, f"sophia-frontdoor-{key}-{port}", f"mcp-frontdoor-{key}", port)
        for backend in backends.values():
            backend.wait()
        front_door = FrontDoor(tmp_path_factory.mktemp("front-door-role"), [service("mcp-gong", gong, port_a, port_b)])
        runs = {"check_fresh": front_door.converge(check=True, diff=True)}
        runs["check_fresh_dir_exists"] = front_door.dir.exists()
        runs["first"] = front_door.converge()
        runs["second"] = front_door.converge()
        runs["check_after"] = front_door.converge(check=True)
        yield front_door, runs, {"a": port_a, "b": port_b, "gong": gong, "slack": slack}
    finally:
        if front_door:
            front_door.stop()
        for backend in backends.values():
            backend.remove()


def test_check_mode_on_a_fresh_host_creates_nothing(role):
    front_door, runs, ports = role
    rc, out = runs["check_fresh"]
    assert rc == 0, out["stderr"][-3000:]
    assert stats(out)["failures"] == 0
    assert stats(out)["changed"] >= 2  # directory and configuration predicted
    assert not runs["check_fresh_dir_exists"]


def test_converge_twice_second_run_changes_nothing(role):
    front_door, runs, ports = role
    rc, first = runs["first"]
    assert rc == 0, first["stderr"][-3000:]
    assert stats(first)["changed"] >= 3  # directory, configuration, daemon started
    rc, second = runs["second"]
    assert rc == 0, second["stderr"][-3000:]
    assert stats(second)["changed"] == 0
    assert stats(second)["failures"] == 0
    rc, check = runs["check_after"]
    assert rc == 0 and stats(check)["changed"] == 0


def test_the_role_probes_every_service_over_mcp(role):
    front_door, runs, ports = role
    probes = task_results(runs["second"][1], "Ask every service over MCP through the front door (one task, eight at a time)")
    assert len(probes) == 1 and not probes[0].get("failed")
    items = probes[0]["results"]
    assert [(i["url"], i["ok"], i["server"]["name"], i["tools"]) for i in items] == [
        (f"http://127.0.0.1:{ports['gong']}/mcp", True, "mcp-frontdoor-a", ["echo", "add", "server_info"])]


def test_daemon_socket_and_configuration(role):
    front_door, runs, ports = role
    pid = front_door.pid()
    assert Path(f"/proc/{pid}/exe").resolve() == Path("/usr/sbin/haproxy")
    assert stat.S_IMODE(os.stat(front_door.socket).st_mode) == 0o600
    assert stat.S_IMODE(front_door.config.stat().st_mode) == 0o640
    assert stat.S_IMODE(front_door.dir.stat().st_mode) == 0o700
    text = front_door.config.read_text()
    assert f"stats socket {front_door.socket} mode 0600 level admin expose-fd listeners" in text
    assert f"server-state-file {front_door.state_file}" in text
    assert "option httpchk GET /readyz" in text
    assert mcp_call(ports["gong"]) == (True, "swarm", "mcp-frontdoor-a")
    assert front_door.weights("mcp-gong") == {"swarm": 100, "k3s": 0}


def test_a_configuration_haproxy_rejects_is_not_installed(role):
    front_door, runs, ports = role
    before = hashlib.sha256(front_door.config.read_bytes()).hexdigest()
    pid = front_door.pid()
    rc, out = front_door.converge(front_door_check_interval="bogus")
    assert rc != 0
    failed = task_results(out, "Write the HAProxy configuration (checked with haproxy -c before it replaces the old one)")[0]
    assert failed["failed"] is True
    assert "failed to validate" in failed["msg"]
    # haproxy -c says why (2.6 names the inter option 'agent-inter' here)
    assert "unexpected character 'b'" in failed["stderr"] and "Fatal errors found in configuration" in failed["stderr"]
    assert hashlib.sha256(front_door.config.read_bytes()).hexdigest() == before
    assert front_door.pid() == pid
    assert mcp_call(ports["gong"])[0] is True


def test_a_reload_keeps_the_switch(role):
    """traffic_switch saves the state file; a config change (a new service) reloads haproxy, which loads it.
    Under steady load: the reload passes the listening sockets to the new process, so no request fails."""
    front_door, runs, ports = role
    rc, out = front_door.switch(service="mcp-gong", to="k3s")
    assert rc == 0, out["stderr"][-3000:]
    old_pid = front_door.pid()
    grown = FrontDoor(front_door.work, front_door.services + [service("mcp-slack", ports["slack"], ports["a"], ports["b"])])
    try:
        with Load(ports["gong"], rate=50, workers=4) as load:
            rc, out = grown.converge()
            time.sleep(0.5)
        assert rc == 0, out["stderr"][-3000:]
        assert load.failures() == [], f"requests failed during the reload: {load.summary()} {load.failures()[:5]}"
        assert len(load.records) >= 50
        assert stats(out)["changed"] == 2  # configuration and the reload handler
        assert grown.pid() != old_pid
        deadline = time.monotonic() + 10
        while Path(f"/proc/{old_pid}").exists() and time.monotonic() < deadline:  # -sf: the old process finishes
            time.sleep(0.1)
        assert not Path(f"/proc/{old_pid}").exists()
        assert grown.weights("mcp-gong") == {"swarm": 0, "k3s": 100}
        assert grown.servers_state("mcp-gong")["swarm"]["srv_admin_state"] == 8  # still drained
        assert grown.weights("mcp-slack") == {"swarm": 100, "k3s": 0}
        assert [mcp_call(ports["gong"]) for dummy in range(4)] == [(True, "k3s", "mcp-frontdoor-b")] * 4
        assert mcp_call(ports["slack"]) == (True, "swarm", "mcp-frontdoor-a")
        rc, out = grown.converge()
        assert rc == 0 and stats(out)["changed"] == 0
    finally:
        front_door.services = grown.services


def test_the_production_configuration_passes_haproxy_check(repo, tmp_path):
    """systemd mode cannot run here (no systemd): its configuration - the role's defaults, Debian's user, group,
    socket and syslog - is rendered from the role's template and must pass ``haproxy -c``."""
    role_dir = repo / "roles" / "front_door"
    dest = tmp_path / "haproxy.cfg"
    # the hold's Lua action and map go to tmp_path (the defaults put them under /etc/haproxy); task variables, as
    # the play's vars_files (the role's defaults) take precedence over play variables
    hold = {"front_door_hold_lua_path": str(tmp_path / "sophia_hold.lua"),
            "front_door_hold_map": str(tmp_path / "sophia-held.map")}
    play = {"name": "Production configuration", "hosts": "localhost", "gather_facts": False,
            "vars_files": [str(role_dir / "defaults" / "main.yml")],
            "vars": {"front_door_services": [service("mcp-gong", 19005, 9005, 30905)]},
            "tasks": [
                {"name": "Render the hold", "vars": hold, "ansible.builtin.template": {
                    "src": str(role_dir / "templates" / "sophia_hold.lua.j2"),
                    "dest": hold["front_door_hold_lua_path"], "mode": "0644"}},
                {"name": "The hold map", "ansible.builtin.copy": {
                    "dest": hold["front_door_hold_map"], "content": "", "mode": "0644"}},
                {"name": "Render", "vars": hold, "ansible.builtin.template": {
                    "src": str(role_dir / "templates" / "haproxy.cfg.j2"), "dest": str(dest), "mode": "0600",
                    "validate": "/usr/sbin/haproxy -c -f %s"}}]}
    rc, out = run_playbook(tmp_path, [play])
    assert rc == 0, out["stderr"][-3000:] + str(task_results(out, "Render"))
    text = dest.read_text()
    for line in ("user haproxy", "group haproxy", "log /dev/log local0",
                 "stats socket /run/haproxy/admin.sock mode 0660 group haproxy level admin expose-fd listeners",
                 "server-state-file /var/lib/haproxy/server-state", "bind 0.0.0.0:19005",
                 "server swarm 127.0.0.1:9005 weight 100 check", "server k3s 127.0.0.1:30905 weight 0 check",
                 f"lua-load {tmp_path / 'sophia_hold.lua'}", "http-request lua.sophia_hold 30000"):
        assert line in text


def test_booleans_given_as_strings_turn_the_hold_and_redispatch_off(repo, tmp_path):
    """An AWX survey (awx/controller.json) or ``-e`` passes booleans as the strings "true"/"false"; argument
    validation does not convert role variables in place, so the template must read them with ``| bool``."""
    role_dir = repo / "roles" / "front_door"
    dest = tmp_path / "haproxy.cfg"
    play = {"name": "Survey booleans", "hosts": "localhost", "gather_facts": False,
            "vars_files": [str(role_dir / "defaults" / "main.yml")],
            "vars": {"front_door_services": [service("mcp-gong", 19005, 9005, 30905)]},
            "tasks": [{"name": "Render", "vars": {"front_door_hold": "false", "front_door_redispatch": "false"},
                       "ansible.builtin.template": {"src": str(role_dir / "templates" / "haproxy.cfg.j2"),
                                                    "dest": str(dest), "mode": "0600"}}]}
    rc, out = run_playbook(tmp_path, [play])
    assert rc == 0, out["stderr"][-3000:] + str(task_results(out, "Render"))
    text = dest.read_text()
    assert "lua-load" not in text and "lua.sophia_hold" not in text and "redispatch" not in text
    assert "server swarm 127.0.0.1:9005 weight 100 check" in text


def held_call(port, out):
    """One MCP call on a new connection; ``out`` gets (status, X-Sophia-Backend, X-Sophia-Held-Ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/mcp", body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                      "params": {"name": "server_info", "arguments": {}}}),
                     headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        resp = conn.getresponse()
        resp.read()
        out.extend([resp.status, resp.getheader("X-Sophia-Backend"), resp.getheader("X-Sophia-Held-Ms")])
    finally:
        conn.close()


def test_the_hold_pauses_new_requests_and_sends_them_where_the_weights_say_on_release(role):
    """front_door_hold under steady load (50 requests/s, never retried): while mcp-gong is held no request reaches a
    server and none fails; the weights move to k3s during the hold, and every held request is answered by k3s once
    released (what bluegreen_cutover does around a stateful service's data copy)."""
    front_door, runs, ports = role
    front_door.reset("mcp-gong", {"swarm": 100, "k3s": 0})
    text = front_door.config.read_text()
    hold_map = str(front_door.dir / "sophia-held.map")
    assert f"lua-load {front_door.dir / 'sophia_hold.lua'}" in text
    assert "http-request lua.sophia_hold 30000" in text

    def served():
        return {name: int(front_door.status("mcp-gong", name)["stot"]) for name in ("swarm", "k3s")}

    # When the hold begins: the moment HAProxy has taken the map entry (the reply to `add map`), not when hold()
    # returns - it also waits for the requests already at a server to finish, and by then all 8 workers can be
    # waiting in held requests, leaving none to start later in the window checked below.
    added = []
    run_command = front_door.api.run

    def run_and_note(line):
        run_command(line)
        if line.startswith("add map"):
            added.append(time.monotonic())

    front_door.api.run = run_and_note
    single = []
    try:
        with Load(ports["gong"], rate=50, workers=8) as load:
            time.sleep(1.0)
            held = _haproxy.hold(front_door.api, "mcp-gong", hold_map, drain_timeout=5)
            held_at = added[0]
            before = served()
            probe = threading.Thread(target=held_call, args=(ports["gong"], single))
            probe.start()
            time.sleep(2.0)
            during = served()
            for command in ("set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0"):
                front_door.api.run(command)
            released_at = time.monotonic()
            assert _haproxy.release(front_door.api, "mcp-gong", hold_map) is True
            probe.join(10)
            time.sleep(1.0)
    finally:
        front_door.api.run = run_command
        _haproxy.release(front_door.api, "mcp-gong", hold_map)
        front_door.reset("mcp-gong", {"swarm": 100, "k3s": 0})
    assert held["changed"] is True and held["drain"]["complete"] is True, held
    assert during == before, (before, during)  # nothing reached a server while held
    assert load.failures() == [], load.failures()[:5]
    waited = [r for r in load.records if held_at + 0.05 < r[0] < released_at - 0.05]
    assert waited, load.summary()
    assert all(r[1] >= released_at - 0.01 and r[3] == "k3s" for r in waited), waited[:5]
    assert max(r[1] - r[0] for r in waited) >= 1.5
    assert single[0] == 200 and single[1] == "k3s" and int(single[2]) >= 1500, single
    assert _haproxy.held_backends(front_door.api, hold_map) == {}
