# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_swarm_hold.py: when an update leaves a Swarm service without a task, and when the front door's
hold of its requests may end.

Services and tasks are the lab Swarm's (fixtures/swarm/lab/, real ``docker`` API replies); servers are the captured
HAProxy 2.6 replies (fixtures/haproxy/). :class:`FrontDoorHold` talks to the runtime API stand-in of
test_haproxy.py (captured replies; the real socket, Swarm and front door are exercised by
tests/integration/swarm_stabilize/test_phase1_multinode.py), with a fake clock.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy, _swarm_hold
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError
from test_haproxy import HOLD_MAP, Clock, MapReplay, capture, hold_replay, servers  # pylint: disable=import-error

LAB = Path(__file__).parent / "fixtures" / "swarm" / "lab"
SERVICES = {s["Spec"]["Name"]: s for s in json.loads((LAB / "services.json").read_text())}
TASKS = json.loads((LAB / "tasks.json").read_text())


def tasks_of(name):
    return [t for t in TASKS if t["ServiceID"] == SERVICES[name]["ID"]]


def spec_with(name, **update):
    spec = copy.deepcopy(SERVICES[name]["Spec"])
    spec["UpdateConfig"] = {**(spec.get("UpdateConfig") or {}), **update}
    return spec


def test_a_stop_first_update_of_a_single_replica_service_leaves_a_gap():
    # mcp-gong: one replica, the stack's stop-first update config; mcp-asana has none (the engine's stop-first)
    assert _swarm_hold.gap_expected(SERVICES["sophia_mcp-gong"]["Spec"], tasks_of("sophia_mcp-gong"))
    assert _swarm_hold.gap_expected(SERVICES["sophia_mcp-asana"]["Spec"], tasks_of("sophia_mcp-asana"))


@pytest.mark.parametrize("update", [{"Order": "start-first"}])
def test_a_start_first_update_leaves_no_gap(update):
    assert not _swarm_hold.gap_expected(spec_with("sophia_mcp-gong", **update), tasks_of("sophia_mcp-gong"))


def test_other_running_tasks_cover_the_update_unless_all_go_at_once():
    tasks = tasks_of("sophia_mcp-gong")
    three = [dict(tasks[0], ID=f"task{i}") for i in range(3)]  # the running task, three times (three replicas)
    assert not _swarm_hold.gap_expected(spec_with("sophia_mcp-gong", Parallelism=1), three)
    assert _swarm_hold.gap_expected(spec_with("sophia_mcp-gong", Parallelism=3), three)
    assert _swarm_hold.gap_expected(spec_with("sophia_mcp-gong", Parallelism=0), three)  # 0: all at once


def test_a_service_with_no_running_task_has_nothing_to_hold():
    # the audit fixture's crashing service: every task failed
    crashing = SERVICES["audit-fixture-crashing"]
    assert not _swarm_hold.gap_expected(crashing["Spec"], [t for t in TASKS if t["ServiceID"] == crashing["ID"]])


def test_the_backend_is_the_service_name_without_its_stack():
    assert _swarm_hold.backend_of(SERVICES["sophia_mcp-gong"]) == "mcp-gong"
    assert _swarm_hold.backend_of(SERVICES["audit-fixture-crashing"]) == "audit-fixture-crashing"


def test_the_servers_carry_the_seconds_since_their_last_change():
    gong = servers("mcp-gong", "gong-servers-state.txt", "gong-stat.txt")
    assert [s["last_change_s"] for s in gong] == [1, 1]


def test_the_hold_ends_when_the_new_task_runs_and_a_server_came_back_since_the_update():
    gong = servers("mcp-gong", "gong-servers-state.txt", "gong-stat.txt")  # swarm weight 100 UP, changed 1 s ago
    assert _swarm_hold.release_reason(0.2, gong, 5.0, False, 5.0, 25) == "back"
    # a server up since before the update (changed 1 s ago, the update sent 0.5 s ago) may be the stopped task's
    assert _swarm_hold.release_reason(0.2, gong, 0.5, False, 0.5, 25) is None
    # ... unless it has stayed healthy for STAYED_UP_S since the new task came up: the old task is gone, so the
    # front door's checks meanwhile reached the new one (a restart quicker than the front door's fall)
    assert _swarm_hold.release_reason(2.9, gong, 0.5, False, 3.5, 25) is None
    assert _swarm_hold.release_reason(3.0, gong, 0.5, False, 3.5, 25) == "stayed_up"
    # the new task does not run yet
    assert _swarm_hold.release_reason(None, gong, 5.0, False, 5.0, 25) is None


def test_a_rollout_that_ended_with_a_healthy_server_ends_the_hold():
    gong = servers("mcp-gong", "gong-servers-state.txt", "gong-stat.txt")
    assert _swarm_hold.release_reason(None, gong, 0.5, True, 0.5, 25) == "rollout_done"


def test_only_servers_with_weight_count():
    # after a switch to K3s: swarm drained (weight 0), k3s weight 100 and UP
    switched = servers("mcp-gong", "gong-switched-servers-state.txt", "linear-going-down-stat.txt")
    swarm_only = [s for s in switched if s["name"] == "swarm"]
    assert swarm_only[0]["effective_weight"] == 0
    assert _swarm_hold.release_reason(9.0, swarm_only, 60.0, True, 5.0, 25) is None
    assert _swarm_hold.release_reason(0.2, switched, 60.0, True, 5.0, 25) == "back"


def test_a_backend_with_no_healthy_server_is_held_until_the_timeout():
    slack = [s for s in servers("mcp-slack", "slack-servers-state.txt") if not s["healthy"]]
    assert slack and all(not s["healthy"] for s in slack)
    assert _swarm_hold.release_reason(9.0, slack, 60.0, True, 24.9, 25) is None
    assert _swarm_hold.release_reason(9.0, slack, 60.0, True, 25.0, 25) == "timeout"


def test_front_door_hold_holds_before_and_releases_once_the_new_task_runs():
    api = hold_replay()
    clock = Clock()
    holder = _swarm_hold.FrontDoorHold(api, "mcp-gong", HOLD_MAP, timeout=25, drain_timeout=5, clock=clock,
                                       sleep=clock.sleep, now=lambda: 1764161000.5)
    old = tasks_of("sophia_mcp-gong")
    holder.begin(old)
    assert api.sent == [f"add map {HOLD_MAP} mcp-gong 1764161000"] and holder.held
    clock.now += 0.5
    assert holder.poll(old, False) == _haproxy.POLL_INTERVAL * 2  # only the old task: keep holding
    preparing = [dict(old[0], ID="newtask", Status=dict(old[0]["Status"], State="preparing"))]
    assert holder.poll(preparing, False) == _haproxy.POLL_INTERVAL * 2  # no container yet: keep holding
    # the new task's container is up, its Docker health check not passed yet (Swarm: starting); the front door's
    # own checks passed: the captured servers changed 1 s ago, after the update
    new = old + [dict(old[0], ID="newtask", Status=dict(old[0]["Status"], State="starting"))]
    clock.now += 4.5
    assert holder.poll(new, False) is None
    assert not holder.held and api.sent[-1] == f"del map {HOLD_MAP} mcp-gong"
    report = holder.report()
    assert report["held"] is True and report["released"] == "back" and report["seconds"] == 5.0
    assert report["rounds"][0]["drain"]["complete"] is True
    holder.end()  # released already: nothing more is sent
    assert api.sent.count(f"del map {HOLD_MAP} mcp-gong") == 1


def test_settle_keeps_holding_after_the_rollout_until_the_timeout_and_end_releases_a_failed_update():
    # mcp-slack's servers whose checks fail (k3s: connection refused, k3s-2: 503), as the backend's only servers
    state = (Path(__file__).parent / "fixtures" / "haproxy" / "slack-servers-state.txt").read_text().splitlines()
    down = [line for line in state
            if len(line.split()) < 4 or line.startswith("#") or line.split()[3] in ("k3s", "k3s-2")]
    api = hold_replay()
    api.answers["show servers state mcp-gong"] = ["\n".join(down).replace("mcp-slack", "mcp-gong") + "\n"]
    clock = Clock()
    holder = _swarm_hold.FrontDoorHold(api, "mcp-gong", HOLD_MAP, timeout=3, clock=clock, sleep=clock.sleep)
    holder.begin([])
    holder.settle(lambda: [])
    assert holder.report()["released"] == "timeout" and 3.0 <= holder.report()["seconds"] < 3.3
    other = _swarm_hold.FrontDoorHold(hold_replay(), "mcp-gong", HOLD_MAP, clock=clock, sleep=clock.sleep)
    other.begin([])
    other.end("error")
    assert other.report()["released"] == "error" and not other.held


def test_a_server_that_never_went_down_is_released_once_it_stayed_up_after_the_new_task_came_up():
    # the captured show stat with mcp-gong's servers last changed 600 s ago: up since long before the update
    lines = (Path(__file__).parent / "fixtures" / "haproxy" / "gong-stat.txt").read_text().splitlines(keepends=True)
    column = lines[0].lstrip("# ").split(",").index("lastchg")
    for i, line in enumerate(lines):
        fields = line.split(",")
        if fields[0] == "mcp-gong" and fields[1] in ("swarm", "k3s"):
            fields[column] = "600"
            lines[i] = ",".join(fields)
    api = hold_replay("".join(lines))
    clock = Clock()
    holder = _swarm_hold.FrontDoorHold(api, "mcp-gong", HOLD_MAP, clock=clock, sleep=clock.sleep)
    old = tasks_of("sophia_mcp-gong")
    holder.begin(old)
    new = [dict(old[0], ID="newtask", Status=dict(old[0]["Status"], State="starting"))]
    clock.now += 0.5
    assert holder.poll(new, False) is not None  # the new task is up: its stay starts now
    clock.now += 2.0
    assert holder.poll(new, False) is not None and holder.held
    clock.now += 1.0
    assert holder.poll(new, False) is None
    assert holder.report()["released"] == "stayed_up" and holder.report()["seconds"] == 3.5


def test_a_service_without_a_front_door_backend_is_not_held_and_other_refusals_stop_the_update():
    # no published port, so no frontend: HAProxy has no backend of that name (captured reply)
    api = MapReplay({"show servers state nope": capture("error-cant-find-backend.txt"),
                     "show stat": capture("all-stat.txt")})
    holder = _swarm_hold.FrontDoorHold(api, "nope", HOLD_MAP)
    holder.begin([])
    assert not holder.held and api.sent == []
    assert holder.poll([], True) is None
    holder.end()
    assert holder.report()["held"] is False and "no backend nope" in holder.report()["skipped"]
    # a front door without the hold map refuses: the update is not sent (the module fails naming the cause)
    other = _swarm_hold.FrontDoorHold(hold_replay(), "mcp-gong", "/etc/haproxy/other.map")
    with pytest.raises(ApiError) as err:
        other.begin([])
    assert err.value.details["reason"] == "hold_unsupported"
