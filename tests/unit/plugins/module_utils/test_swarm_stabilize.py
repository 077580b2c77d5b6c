# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/_swarm_stabilize.py: role swarm_stabilize's plan and summary.

The inputs are swarm_audit's fact shapes (services: name, stack, gpu, criticality; nodes: id, hostname,
generic_resources), written out small here; the role's end-to-end tests run it on a real Swarm.
"""

from __future__ import annotations

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_stabilize as stab

SERVICES = [
    {"name": "sophia_mcp-gong", "stack": "sophia", "gpu": None, "criticality": "critical"},
    {"name": "sophia_mcp-asana", "stack": "sophia", "gpu": None, "criticality": "non-critical"},
    {"name": "sophia_mcp-embeddings", "stack": "sophia", "gpu": {"kinds": {"NVIDIA-GPU": 1}}, "criticality": "critical"},
    {"name": "sophia_mcp-figma", "stack": "sophia", "gpu": None, "criticality": None},
    {"name": "other", "stack": None, "gpu": None, "criticality": "non-critical"},
]
NODES = [
    {"id": "m1", "hostname": "manager", "generic_resources": {}},
    {"id": "w1", "hostname": "worker1", "generic_resources": {"NVIDIA-GPU": 4}},
    {"id": "w2", "hostname": "worker2", "generic_resources": None},
]
DEFAULTS = {
    "gpu": {"limits": {"cpus": 2.0, "memory": "8G"}, "update_config": {"order": "stop-first"}},
    "critical": {"limits": {"cpus": 1.0, "memory": "512M"}},
    "non_critical": {"limits": {"cpus": 0.5, "memory": "256M"}},
}
HEALTH = {"test": ["CMD", "mcp-healthcheck"], "interval": "10s"}


def by_name(result):
    return {s["name"]: s for s in result["services"]}


def test_classes_settings_and_gpu_pinning():
    result = stab.plan(SERVICES, {}, DEFAULTS, HEALTH, "sophia", {"gpu": "true"}, True, ["update_config.failure_action"],
                       NODES, ["NVIDIA-GPU"])
    plan = by_name(result)
    assert set(plan) == {"sophia_mcp-gong", "sophia_mcp-asana", "sophia_mcp-embeddings", "sophia_mcp-figma"}
    assert plan["sophia_mcp-gong"]["class"] == "critical"
    assert plan["sophia_mcp-asana"]["class"] == "non_critical"
    assert plan["sophia_mcp-figma"]["class"] == "critical", "no criticality label counts as critical"
    assert plan["sophia_mcp-embeddings"]["class"] == "gpu"
    assert plan["sophia_mcp-embeddings"]["placement_constraints"] == ["node.labels.gpu==true"]
    assert plan["sophia_mcp-gong"]["placement_constraints"] == []
    assert plan["sophia_mcp-asana"]["settings"] == {"healthcheck": HEALTH, "limits": {"cpus": 0.5, "memory": "256M"}}
    assert plan["sophia_mcp-gong"]["enforce"] == ["update_config.failure_action"]
    assert result["gpu_nodes"] == [{"id": "w1", "hostname": "worker1"}]
    assert result["unknown"] == [] and result["bad_entries"] == []


START_FIRST = {"gpu": {"update_config": {"order": "start-first", "failure_action": "rollback"},
                       "rollback_config": {"order": "start-first"}}}


def test_gpu_services_update_start_first_where_a_gpu_node_has_room():
    """4 GPUs on worker1, one taken by embeddings: a second task fits, so start-first is set even over the
    engine's default stop-first (enforced)."""
    plan = by_name(stab.plan(SERVICES, {}, START_FIRST, HEALTH, "sophia", {"gpu": "true"}, True,
                             ["update_config.failure_action"], NODES, ["NVIDIA-GPU"]))["sophia_mcp-embeddings"]
    assert plan["settings"]["update_config"]["order"] == "start-first"
    assert plan["enforce"] == ["update_config.failure_action", "update_config.order", "rollback_config.order"]
    assert plan["notes"] == []


def test_gpu_services_stay_stop_first_where_no_gpu_node_has_room():
    services = SERVICES + [{"name": "sophia_mcp-whisper", "stack": "sophia", "gpu": {"kinds": {"NVIDIA-GPU": 3}},
                            "criticality": "critical", "replicas": 1}]
    plan = by_name(stab.plan(services, {}, START_FIRST, HEALTH, "sophia", {"gpu": "true"}, True, [], NODES,
                             ["NVIDIA-GPU"]))
    for name, needs in (("sophia_mcp-embeddings", 1), ("sophia_mcp-whisper", 3)):
        assert plan[name]["settings"]["update_config"]["order"] == "stop-first"
        assert plan[name]["settings"]["rollback_config"]["order"] == "stop-first"
        assert "update_config.order" not in plan[name]["enforce"]
        assert plan[name]["notes"][0] == ("update_config.order: stop-first, as no GPU node has room for a second "
                                          f"task's NVIDIA-GPU (needs {needs}, 0 free)")
    assert stab.gpu_room(services, NODES, ["NVIDIA-GPU"]) == {"NVIDIA-GPU": 0}


def test_gpu_services_with_a_host_mode_port_stay_stop_first():
    services = [dict(s, ports=[{"target": 9000, "published": 9000, "protocol": "tcp", "mode": "host"}])
                if s["name"] == "sophia_mcp-embeddings" else s for s in SERVICES]
    plan = by_name(stab.plan(services, {}, START_FIRST, HEALTH, "sophia", {"gpu": "true"}, True, [], NODES,
                             ["NVIDIA-GPU"]))["sophia_mcp-embeddings"]
    assert plan["settings"]["update_config"]["order"] == "stop-first" and plan["enforce"] == []
    assert plan["notes"][0] == ("update_config.order: stop-first, as the service publishes 9000/tcp in host mode "
                                "(a second task on the same node cannot bind it)")
    ingress = [dict(s, ports=[{"target": 9000, "published": 9000, "protocol": "tcp", "mode": "ingress"}])
               for s in SERVICES]
    plan = by_name(stab.plan(ingress, {}, START_FIRST, HEALTH, "sophia", {"gpu": "true"}, True, [], NODES,
                             ["NVIDIA-GPU"]))["sophia_mcp-embeddings"]
    assert plan["settings"]["update_config"]["order"] == "start-first"


def test_an_order_named_by_the_service_entry_is_left_alone():
    entries = {"mcp-embeddings": {"update_config": {"order": "stop-first"}}}
    plan = by_name(stab.plan(SERVICES, entries, START_FIRST, HEALTH, "sophia", {"gpu": "true"}, True, [], NODES,
                             ["NVIDIA-GPU"]))["sophia_mcp-embeddings"]
    assert plan["settings"]["update_config"]["order"] == "stop-first"
    assert plan["enforce"] == ["rollback_config.order"] and plan["notes"] == []


def test_an_entry_overrides_its_class_by_short_or_full_name():
    entries = {"mcp-asana": {"class": "critical", "limits": {"memory": "1G"}, "enforce": ["healthcheck"]},
               "sophia_mcp-gong": {"skip": True},
               "mcp-figma": {"healthcheck": {"test": "true"}}}
    plan = by_name(stab.plan(SERVICES, entries, DEFAULTS, HEALTH, "sophia", {"gpu": "true"}, True,
                             ["update_config.failure_action"]))
    assert plan["sophia_mcp-asana"]["class"] == "critical"
    assert plan["sophia_mcp-asana"]["settings"]["limits"] == {"cpus": 1.0, "memory": "1G"}
    assert plan["sophia_mcp-asana"]["enforce"] == ["update_config.failure_action", "healthcheck"]
    assert plan["sophia_mcp-gong"]["skip"] is True
    assert plan["sophia_mcp-figma"]["settings"]["healthcheck"] == {"test": "true", "interval": "10s"}
    assert "settings" in plan["sophia_mcp-embeddings"] and DEFAULTS["gpu"]["limits"]["memory"] == "8G", \
        "the defaults passed in are never modified"


def test_unknown_names_bad_entries_and_gpu_nodes_are_reported():
    entries = {"mcp-nope": {}, "mcp-gong": {"class": "urgent"}, "mcp-asana": {"limit": {}}, "mcp-figma": "x"}
    result = stab.plan(SERVICES, entries, DEFAULTS, HEALTH, "sophia", nodes=NODES, gpu_nodes=["worker2", "ghost"])
    assert result["unknown"] == ["mcp-nope"]
    assert any("mcp-gong.class" in e and "urgent" in e for e in result["bad_entries"])
    assert any("mcp-asana.limit" in e for e in result["bad_entries"])
    assert any("mcp-figma" in e and "dict" in e for e in result["bad_entries"])
    assert result["gpu_nodes"] == [{"id": "w2", "hostname": "worker2"}]
    assert result["unknown_gpu_nodes"] == ["ghost"]


def test_all_stacks_when_none_is_named_and_no_pinning_when_off():
    plan = by_name(stab.plan(SERVICES, {}, DEFAULTS, None, "", {"gpu": "true"}, False))
    assert "other" in plan and plan["sophia_mcp-embeddings"]["placement_constraints"] == []
    assert "healthcheck" not in plan["other"]["settings"]


@pytest.mark.parametrize("outcome, bucket", [
    ({"service": "a", "skipped": True}, "skipped"),
    ({"service": "a", "changed": True, "state": "converged", "changes": [{"path": "limits.cpus"}]}, "changed"),
    ({"service": "a", "changed": True, "state": "none", "changes": []}, "changed"),
    ({"service": "a", "changed": False, "state": "none"}, "unchanged"),
    ({"service": "a", "changed": True, "state": "rolled_back", "detail": "rollback completed"}, "failed"),
    ({"service": "a", "state": "error", "detail": "boom"}, "failed"),
    ({"service": "a", "changed": True, "state": "timeout", "detail": "x"}, "failed"),
])
def test_summary_buckets(outcome, bucket):
    result = stab.summarize([outcome])
    for key in ("changed", "unchanged", "failed", "skipped"):
        assert bool(result[key]) == (key == bucket), key
    if bucket == "failed":
        assert result["failed"][0]["state"] == outcome["state"]
