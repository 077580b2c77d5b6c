# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/_swarm_service.py (swarm_service_update's planning and rollout reading).

Service specs are the real ones the lab engine returned for the sample stack (fixtures/swarm/lab/services.json,
captured from the Docker API); where a test needs another shape it derives a copy and says what changed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_service as svc
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

SERVICES = json.loads((Path(__file__).parent / "fixtures" / "swarm" / "lab" / "services.json").read_text())
STABILISE = {
    "healthcheck": {"test": ["CMD", "mcp-healthcheck"], "interval": "10s", "timeout": "5s", "retries": 3,
                    "start_period": "20s"},
    "limits": {"cpus": 0.5, "memory": "256M"},
    "reservations": {"cpus": 0.05, "memory": "64M"},
    "restart_policy": {"condition": "any", "delay": "5s", "max_attempts": 0},
    "update_config": {"parallelism": 1, "delay": "5s", "failure_action": "rollback", "monitor": "15s",
                      "order": "stop-first"},
}


def spec(name):
    return copy.deepcopy(next(s["Spec"] for s in SERVICES if s["Spec"]["Name"] == name))


def paths(changes):
    return [c["path"] for c in changes]


@pytest.mark.parametrize("value, expected", [
    ("10s", 10 * svc.NS_PER_S), ("1m30s", 90 * svc.NS_PER_S), ("500ms", 500_000_000), ("2h", 7200 * svc.NS_PER_S),
    (90, 90 * svc.NS_PER_S), (0.5, 500_000_000), ("15", 15 * svc.NS_PER_S), ("0s", 0),
])
def test_durations(value, expected):
    assert svc.parse_duration(value, "x") == expected


@pytest.mark.parametrize("value", ["10 sec", "abc", "", "10s5", -1, True])
def test_bad_durations_name_the_key(value):
    with pytest.raises(InputError, match="healthcheck.interval"):
        svc.parse_duration(value, "healthcheck.interval")


@pytest.mark.parametrize("value, expected", [
    ("256M", 268435456), ("1G", 1073741824), ("1.5G", 1610612736), ("512MiB", 536870912), ("64m", 67108864),
    (1048576, 1048576), ("100", 100),
])
def test_memory(value, expected):
    assert svc.parse_memory(value, "x") == expected


@pytest.mark.parametrize("path, value, shown", [
    ("limits.memory", 268435456, "256M"), ("limits.cpus", 500_000_000, 0.5), ("healthcheck.interval", 10 ** 10, "10s"),
    ("update_config.monitor", 500_000_000, "500ms"), ("restart_policy.window", 120 * svc.NS_PER_S, "2m"),
])
def test_values_are_shown_in_the_options_units(path, value, shown):
    assert svc.format_value(path, value) == shown


def test_a_service_without_anything_gets_everything_and_keeps_the_rest():
    current = spec("sophia_mcp-asana")  # no health check, no resources, engine-default update config
    assert "Healthcheck" not in current["TaskTemplate"]["ContainerSpec"]
    new, changes = svc.plan_update(current, svc.normalise(STABILISE), only_missing=True,
                                   enforce=["update_config.failure_action"])
    assert set(paths(changes)) >= {"healthcheck.test", "limits.cpus", "limits.memory", "reservations.cpus",
                                   "reservations.memory", "update_config.failure_action"}
    assert new["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] == ["CMD", "mcp-healthcheck"]
    assert new["TaskTemplate"]["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 268435456}
    assert new["UpdateConfig"]["FailureAction"] == "rollback"
    # The stack gave it no update config (the API returns none): every key is filled.
    assert "UpdateConfig" not in current and new["UpdateConfig"]["Monitor"] == 15 * svc.NS_PER_S
    # What the stack set stays: the restart policy's condition and delay.
    assert new["TaskTemplate"]["RestartPolicy"]["Delay"] == current["TaskTemplate"]["RestartPolicy"]["Delay"]
    assert "restart_policy.delay" not in paths(changes)
    # Nothing outside the named sections moves: env, configs, networks, ports, labels.
    for key in ("Env", "Configs", "Image", "Labels"):
        assert new["TaskTemplate"]["ContainerSpec"].get(key) == current["TaskTemplate"]["ContainerSpec"].get(key)
    assert new["TaskTemplate"]["Networks"] == current["TaskTemplate"]["Networks"]
    assert new["EndpointSpec"] == current["EndpointSpec"] and new["Labels"] == current["Labels"]
    assert current == spec("sophia_mcp-asana"), "the input spec must not be modified"
    # A second plan over the result changes nothing: the module sends nothing on a rerun.
    again, second = svc.plan_update(new, svc.normalise(STABILISE), only_missing=True,
                                    enforce=["update_config.failure_action"])
    assert second == [] and again == new


def test_only_missing_keeps_the_update_config_keys_the_stack_set():
    current = spec("sophia_mcp-ai-memory")  # update_config: delay 10s, failure_action rollback, no monitor
    new, changes = svc.plan_update(current, svc.normalise(STABILISE), only_missing=True,
                                   enforce=["update_config.failure_action"])
    assert new["UpdateConfig"]["Delay"] == 10 * svc.NS_PER_S
    assert [c for c in changes if c["path"].startswith("update_config")] == [
        {"path": "update_config.monitor", "before": None, "after": "15s"}]


def test_a_gpu_service_keeps_its_gpu_reservation():
    current = spec("sophia_mcp-embeddings")
    generic = current["TaskTemplate"]["Resources"]["Reservations"]["GenericResources"]
    assert generic[0]["DiscreteResourceSpec"]["Kind"] == "NVIDIA-GPU"
    new, changes = svc.plan_update(current, svc.normalise({"reservations": {"cpus": 0.5, "memory": "2G"}}))
    assert new["TaskTemplate"]["Resources"]["Reservations"]["GenericResources"] == generic
    assert "reservations.cpus" in paths(changes)


def test_only_missing_keeps_a_health_check_the_service_has_and_enforce_replaces_it():
    current = spec("sophia_mcp-notion")
    have = current["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    wanted = svc.normalise({"healthcheck": {"test": "curl -f localhost", "interval": "30s"}})
    new, changes = svc.plan_update(current, wanted, only_missing=True)
    assert changes == [] and new["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == have
    new, changes = svc.plan_update(current, wanted, only_missing=True, enforce=["healthcheck"])
    assert new["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] == ["CMD-SHELL", "curl -f localhost"]
    assert "healthcheck.test" in paths(changes)


def test_without_only_missing_given_keys_win_and_others_stay():
    current = spec("sophia_mcp-ai-memory")  # limits 0.5 CPU / 256M, reservations 64M
    new, changes = svc.plan_update(current, svc.normalise({"limits": {"memory": "512M"}}))
    assert paths(changes) == ["limits.memory"]
    assert changes[0]["before"] == "256M" and changes[0]["after"] == "512M"
    assert new["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"] == 500_000_000


def test_placement_constraints_are_added_once():
    current = spec("sophia_mcp-embeddings")
    have = current["TaskTemplate"]["Placement"].get("Constraints", [])
    assert "node.labels.gpu==true" in [c.replace(" ", "") for c in have]
    assert svc.plan_update(current, svc.normalise({"placement_constraints": ["node.labels.gpu == true"]}))[1] == []
    plain = spec("sophia_mcp-asana")
    new, changes = svc.plan_update(plain, svc.normalise({"placement_constraints": ["node.labels.gpu==true"]}))
    assert new["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.gpu==true"]
    assert paths(changes) == ["placement_constraints"]


@pytest.mark.parametrize("wanted, key", [
    ({"healthcheck": {"interval": "10s"}}, "healthcheck.test"),
    ({"healthcheck": {"test": []}}, "healthcheck.test"),
    ({"healthcheck": {"test": "x", "colour": 1}}, "healthcheck.colour"),
    ({"limits": {"gpus": 1}}, "limits.gpus"),
    ({"limits": {"memory": "lots"}}, "limits.memory"),
    ({"rollback_config": {"failure_action": "rollback"}}, "rollback_config.failure_action"),
    ({"update_config": {"order": "sideways"}}, "update_config.order"),
    ({"restart_policy": {"condition": "always"}}, "restart_policy.condition"),
    ({"placement_constraints": ["gpu"]}, "placement_constraints"),
])
def test_bad_settings_are_refused_naming_the_key(wanted, key):
    with pytest.raises(InputError) as err:
        svc.normalise(wanted)
    assert err.value.details["key"] == key and key in err.value.msg


def test_diff_lists_each_change_before_and_after():
    changes = svc.plan_update(spec("sophia_mcp-asana"), svc.normalise({"limits": {"memory": "256M"}}))[1]
    assert svc.diff_text(changes) == ("limits.memory: None\n", "limits.memory: 256M\n")


# -- rollouts: derived service/task dicts in the API's shape --------------------------------------------------

def service(state=None, replicas=2, message=None):
    out = {"ID": "s1", "Spec": {"Name": "x", "Mode": {"Replicated": {"Replicas": replicas}}}}
    if state:
        out["UpdateStatus"] = {"State": state, "Message": message or state, "StartedAt": "t1"}
    return out


def task(state, desired="running", slot=1, node="n1", err=None, ts="2026-11-26T00:00:00Z"):
    return {"Slot": slot, "NodeID": node, "DesiredState": desired,
            "Status": {"State": state, "Err": err, "Timestamp": ts}}


def test_classify_rollout_states():
    running = [task("running", slot=1), task("running", slot=2)]
    assert svc.classify_rollout(service("completed"), running)[0] == "converged"
    assert svc.classify_rollout(service("updating"), running)[0] == "updating"
    state, detail = svc.classify_rollout(
        service("rollback_completed", message="rollback completed"),
        running + [task("failed", desired="shutdown", err="task: non-zero exit (137): dockerexec: unhealthy container")])
    assert state == "rolled_back" and "unhealthy container" in detail
    assert svc.classify_rollout(service("paused", message="update paused due to failure"), running)[0] == "paused"


def test_a_short_service_names_the_pending_reason_and_the_down_node():
    nodes = [{"ID": "n1", "Status": {"State": "ready"}, "Spec": {"Availability": "active"},
              "Description": {"Hostname": "manager"}},
             {"ID": "n2", "Status": {"State": "down"}, "Spec": {"Availability": "active"},
              "Description": {"Hostname": "worker1"}}]
    tasks = [task("running", slot=1), task("pending", slot=2, node="", err="no suitable node (insufficient resources on 1 node)")]
    state, detail = svc.classify_rollout(service("completed"), tasks, nodes)
    assert state == "converging"
    assert "1 of 2" in detail and "insufficient resources" in detail and "node worker1 is down" in detail


class _FakeClient:
    """Stands in for the Docker API in the wait loop (the real engine is exercised by the integration tests)."""

    def __init__(self, states):
        self.states = list(states)

    def inspect_service(self, name):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return service(state, replicas=1) if state != "old" else {**service("completed", replicas=1),
                                                                  "UpdateStatus": {"State": "completed",
                                                                                   "StartedAt": "t0"}}

    def tasks(self, filters):
        return [task("running")]

    def nodes(self):
        return []


def test_wait_does_not_take_the_previous_updates_status_for_this_one():
    clock = iter(range(1000)).__next__
    result = svc.wait_rollout(_FakeClient(["old", "old", "updating", "completed"]), "x", timeout=100,
                              previous_update={"State": "completed", "StartedAt": "t0"}, clock=clock,
                              sleep=lambda s: None)
    assert result["state"] == "converged"
    stuck = svc.wait_rollout(_FakeClient(["old"]), "x", timeout=5, previous_update={"StartedAt": "t0"},
                             clock=iter(range(1000)).__next__, sleep=lambda s: None)
    assert stuck["state"] == "timeout" and "never started" in stuck["detail"]


ENFORCER_FIXTURE = Path(__file__).parent / "fixtures" / "swarm" / "enforcer-rejected-tasks.json"


def test_a_gpu_task_rejected_by_the_constraint_enforcer_is_recognised():
    """Real tasks from the multi-node lab: a GPU service alone in its network on the GPU node (the capture's
    two rejected tasks: the constraint enforcer's and the agent's missing network attachment)."""
    tasks = json.loads(ENFORCER_FIXTURE.read_text())
    enforcer = [t for t in tasks if t["Status"]["Err"] == svc.ENFORCER_REJECTION]
    other = [t for t in tasks if t["Status"]["Err"] != svc.ENFORCER_REJECTION]
    assert enforcer and enforcer[0]["GenericResources"], "the capture holds a GPU task the enforcer rejected"
    assert svc.rejected_by_enforcer(enforcer)
    assert not svc.rejected_by_enforcer(other), "another error is the new spec's own failure"
    no_gpu = [dict(enforcer[0], GenericResources=None)]
    assert not svc.rejected_by_enforcer(no_gpu), "a task without generic resources fails for its constraints"
    newer = dict(other[0], Status=dict(other[0]["Status"], Timestamp="2099-01-01T00:00:00Z"))
    assert not svc.rejected_by_enforcer(enforcer + [newer]), "only the latest failure counts"
    assert not svc.rejected_by_enforcer([task("running")])


def test_force_again_raises_force_update_and_keeps_the_spec():
    spec = {"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "i"}, "ForceUpdate": 3}}
    again = svc.force_again(spec)
    assert again["TaskTemplate"]["ForceUpdate"] == 4 and spec["TaskTemplate"]["ForceUpdate"] == 3
    assert again["TaskTemplate"]["ContainerSpec"] == spec["TaskTemplate"]["ContainerSpec"]
    assert svc.force_again({"Name": "y", "TaskTemplate": {}})["TaskTemplate"]["ForceUpdate"] == 1
