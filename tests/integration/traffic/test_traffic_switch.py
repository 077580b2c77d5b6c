# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""traffic_switch against a real HAProxy (Debian's 2.6, started by the front_door role in lab daemon mode) in front of
real sample MCP servers (three containers of sophia-platform/mcp-server:lab on the local engine).

Two services: ``mcp-traffic`` (``swarm`` = container a, ``k3s`` = container b) and ``mcp-kill`` (``swarm`` = a,
``k3s`` = container c, which one test kills). The module always runs through ansible-playbook. The load is a
simple client loop (tests/integration/traffic/frontdoor.py ``Load``): MCP ``tools/call`` on a new connection each,
never retried; the traffic recorder of issue #4 replaces it later.
"""

from __future__ import annotations

import statistics
import time

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils._haproxy import switch

from .frontdoor import Backend, FrontDoor, Load, free_ports, mcp_call, task_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(engine, tmp_path_factory):
    port_a, port_b, port_c, traffic, kill = free_ports(5)
    backends = {}
    front_door = None
    try:
        for key, port in (("a", port_a), ("b", port_b), ("c", port_c)):
            backends[key] = Backend(engine, f"sophia-traffic-{key}-{port}", f"mcp-traffic-{key}", port)
        for backend in backends.values():
            backend.wait()
        front_door = FrontDoor(tmp_path_factory.mktemp("front-door"), [
            {"name": "mcp-traffic", "port": traffic, "servers": [
                {"name": "swarm", "address": "127.0.0.1", "port": port_a, "weight": 100},
                {"name": "k3s", "address": "127.0.0.1", "port": port_b, "weight": 0}]},
            {"name": "mcp-kill", "port": kill, "servers": [
                {"name": "swarm", "address": "127.0.0.1", "port": port_a, "weight": 100},
                {"name": "k3s", "address": "127.0.0.1", "port": port_c, "weight": 0}]},
        ])
        rc, out = front_door.converge()
        assert rc == 0, out["stderr"][-3000:]
        yield front_door, backends, {"mcp-traffic": traffic, "mcp-kill": kill}
    finally:
        if front_door:
            front_door.stop()
        for backend in backends.values():
            backend.remove()


def only(out):
    results = task_results(out, "Switch traffic")
    assert len(results) == 1, out
    return results[0]


def test_check_mode_diff_apply_and_idempotence(lab):
    front_door, backends, ports = lab
    front_door.reset("mcp-traffic", {"swarm": 100, "k3s": 0})

    rc, out = front_door.switch(check=True, diff=True, service="mcp-traffic", to="k3s")
    result = only(out)
    assert rc == 0 and result["changed"] is True
    assert result["diff"]["before"]["servers"] == {"swarm": {"weight": 100, "state": "ready"}, "k3s": {"weight": 0, "state": "ready"}}
    assert result["diff"]["after"]["servers"] == {"swarm": {"weight": 0, "state": "drain"}, "k3s": {"weight": 100, "state": "ready"}}
    assert front_door.weights("mcp-traffic") == {"swarm": 100, "k3s": 0}, "check mode changed HAProxy"

    rc, out = front_door.switch(service="mcp-traffic", to="k3s")
    result = only(out)
    assert rc == 0 and result["changed"] is True
    assert result["weights"] == {"swarm": 0, "k3s": 100}
    assert result["drain"]["complete"] is True
    state = front_door.servers_state("mcp-traffic")
    assert (state["k3s"]["srv_uweight"], state["swarm"]["srv_uweight"], state["swarm"]["srv_admin_state"]) == (100, 0, 8)
    with open(front_door.state_file, encoding="utf-8") as saved:
        assert " mcp-traffic 2 k3s 127.0.0.1 2 0 100 0 " in saved.read()

    answers = [mcp_call(ports["mcp-traffic"]) for dummy in range(10)]
    assert answers == [(True, "k3s", "mcp-traffic-b")] * 10

    for check in (False, True):
        rc, out = front_door.switch(check=check, service="mcp-traffic", weights={"swarm": 0, "k3s": 100})
        result = only(out)
        assert rc == 0 and result["changed"] is False, result
        assert result["commands"] == []


def test_switch_under_steady_load_loses_no_request(lab, record_property):
    """Four switches through ansible-playbook, then four through the module's runner in-process (what a benchmark
    or a phase playbook's own loop sees without ansible-playbook's start-up), all under 50 requests per second."""
    front_door, backends, ports = lab
    front_door.reset("mcp-traffic", {"swarm": 100, "k3s": 0})
    names = {"swarm": "mcp-traffic-a", "k3s": "mcp-traffic-b"}
    moves = []
    with Load(ports["mcp-traffic"], rate=50, workers=4) as load:
        time.sleep(1.5)
        for target in ("k3s", "swarm", "k3s", "swarm"):
            start = time.monotonic()
            rc, out = front_door.switch(service="mcp-traffic", to=target)
            end = time.monotonic()
            assert rc == 0 and only(out)["changed"] is True, out["stderr"][-2000:]
            moves.append(("ansible-playbook", target, start, end))
            time.sleep(1.0)
        for target in ("k3s", "swarm", "k3s", "swarm"):
            start = time.monotonic()
            result = switch(front_door.api, {"service": "mcp-traffic", "to": target, "state_file": front_door.state_file})
            end = time.monotonic()
            assert result["changed"] is True and result["drain"]["complete"] is True
            moves.append(("runner", target, start, end))
            time.sleep(1.0)
    summary = load.summary()
    failures = load.failures()
    assert failures == [], f"{len(failures)} of {summary['requests']} requests failed: {failures[:5]}"
    assert summary["requests"] >= 400
    assert all(name == names[backend] for dummy, dummy2, ok, backend, name in load.records), "X-Sophia-Backend names another server"
    switch_s = {"ansible-playbook": [], "runner": []}
    for index, (how, target, start, end) in enumerate(moves):
        until = moves[index + 1][2] if index + 1 < len(moves) else float("inf")
        after = [r for r in load.records if end < r[0] < until]
        assert after and all(r[3] == target for r in after), f"requests after the switch to {target} reached another backend"
        old = [r[0] for r in load.records if start <= r[0] < until and r[3] != target]
        switch_s[how].append((max(old) - start) if old else 0.0)
    report = dict(summary, switch_s_median={how: round(statistics.median(values), 3) for how, values in switch_s.items()})
    record_property("switch_under_load", report)
    print(f"\nswitch under load: {report}")
    # from the call until every new request reaches the new backend, without ansible-playbook's start-up
    assert max(switch_s["runner"]) < 1.0, switch_s


def test_switch_towards_an_unready_backend_is_refused(lab):
    front_door, backends, ports = lab
    front_door.reset("mcp-traffic", {"swarm": 100, "k3s": 0})
    backends["b"].ready(False)
    try:
        front_door.wait_status("mcp-traffic", "k3s", "DOWN")
        rc, out = front_door.switch(service="mcp-traffic", to="split", split=50)
        result = only(out)
        assert rc != 0 and result["failed"] is True
        assert result["reason"] == "unhealthy_target"
        assert "refusing to move traffic of mcp-traffic to k3s" in result["msg"]
        assert "mcp-traffic/k3s: its health checks mark it down (status DOWN, check L7STS 503 (Layer7 wrong status), " \
               "last check: Service Unavailable)" in result["msg"]
        assert front_door.weights("mcp-traffic") == {"swarm": 100, "k3s": 0}
    finally:
        backends["b"].ready(True)
        front_door.wait_status("mcp-traffic", "k3s", "UP")


def test_killed_backend_is_detected_and_failures_in_the_window_are_counted(lab, record_property):
    front_door, backends, ports = lab
    rc, out = front_door.switch(service="mcp-kill", to="split", split=50)
    assert rc == 0, out["stderr"][-2000:]
    assert only(out)["weights"] == {"swarm": 50, "k3s": 50}
    with Load(ports["mcp-kill"], rate=50, workers=4) as load:
        time.sleep(1.0)
        killed = time.monotonic()
        backends["c"].container.kill()
        detected = front_door.wait_status("mcp-kill", "k3s", "DOWN", timeout=15)
        time.sleep(1.5)
    window = [r for r in load.records if killed <= r[0] <= detected]
    failures = load.failures()
    report = {"detection_s": round(detected - killed, 3), "requests": len(load.records), "in_window": len(window),
              "failed": len(failures), "failed_in_window": len([r for r in failures if killed <= r[0] <= detected]),
              "errors": sorted({r[4] for r in failures})}
    record_property("kill_detection", report)
    print(f"\nkilled backend: {report}")
    # inter 1s, fall 2: down after two failed checks, the first at most one interval after the kill (+ slack for
    # a loaded 2-core machine)
    assert report["detection_s"] <= 4.0
    assert all(killed - 0.2 <= r[0] <= detected + 0.5 for r in failures), f"failures outside the detection window: {failures}"
    assert [r for r in load.records if r[0] > detected + 0.5 and r[3] != "swarm"] == []
    assert len(load.records) >= 100

    # Towards the dead backend: refused, naming the check that failed; back to Swarm: allowed.
    rc, out = front_door.switch(service="mcp-kill", to="k3s")
    result = only(out)
    assert rc != 0 and result["reason"] == "unhealthy_target"
    assert "mcp-kill/k3s: its health checks mark it down (status DOWN, check L4CON (Layer4 connection problem), " \
           "last check: Connection refused)" in result["msg"]
    rc, out = front_door.switch(service="mcp-kill", to="swarm")
    assert rc == 0 and only(out)["weights"] == {"swarm": 100, "k3s": 0}
