# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""swarm_audit's pure layer (facts, placement, findings, report) and the client layer's error mapping.

The API replies are real: captured from the host engine's single-node Swarm with the sample stack (``lab``), a
real two-node Swarm (``multi``) and its worker (``worker``); fixtures/swarm/README.md says how. Variants that
no real engine here can produce (a second node without GPUs beside the lab node, a drained or down node, an
ingress clash the engine refuses to create ...) are derived copies made inside the tests; each says what it
changed and why. Nothing here talks to an engine except the connect test to a socket path that does not exist.
The last tests check the module file: its documented options are its argument spec.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.doc_fragments import _docker_connection

from ansible_collections.sophia_ai.platform.plugins.module_utils import _docker_client as dc
from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_audit as sa
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError, PlatformError
from ansible_collections.sophia_ai.platform.plugins.modules import swarm_audit

FIXTURES = Path(__file__).parent / "fixtures" / "swarm"
KINDS = ("info", "nodes", "services", "tasks", "networks")
# A minute after the lab capture: every failed task of the fixture is less than 6 minutes old.
NOW = sa.parse_time("2026-11-26T03:03:00Z")


def load(name: str) -> dict:
    raw = {kind: json.loads((FIXTURES / name / f"{kind}.json").read_text()) for kind in KINDS}
    raw["api_version"] = "1.41"
    return raw


def audit(raw, **options):
    return sa.build_audit(raw, options, NOW)


def raw_service(raw, name):
    return next(s for s in raw["services"] if s["Spec"]["Name"] == name)


def service(result, name):
    return next(s for s in result["services"] if s["name"] == name)


def findings(result, check, service_name=None):
    return [f for f in result["findings"] if f["check"] == check
            and (service_name is None or f["service"] == service_name)]


def second_node(raw, hostname="cpu-1", labels=None, resources=True):
    """A copy of the lab's only node as another node without generic resources (the lab has a single node)."""
    node = copy.deepcopy(raw["nodes"][0])
    node["ID"] = "cpu1cpu1cpu1cpu1cpu1cpu1c"
    node["Description"]["Hostname"] = hostname
    node["Spec"] = {"Role": "worker", "Availability": "active", "Labels": labels or {}}
    node.pop("ManagerStatus", None)
    node["Status"]["Addr"] = "10.0.0.9"
    if not resources:
        node["Description"]["Resources"].pop("GenericResources", None)
    return node


@pytest.fixture
def lab():
    return load("lab")


@pytest.fixture
def multi():
    return load("multi")


# ------------------------------------------------------------------------------------------------ helpers


@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T03:02:21.278662404Z", "2026-11-26T03:02:21.278662+00:00"),
    ("2026-11-26T03:02:21Z", "2026-11-26T03:02:21+00:00"),
    ("2026-11-26T05:02:21.5+02:00", "2026-11-26T05:02:21.500000+02:00"),
])
def test_parse_time_reads_docker_timestamps(text, expected):
    assert sa.parse_time(text).isoformat() == expected


@pytest.mark.parametrize("text", ["", None, "0001-01-01T00:00:00Z", "yesterday"])
def test_parse_time_gives_none_for_unset_or_unreadable(text):
    assert sa.parse_time(text) is None


def test_generic_resources_counts_named_as_one_and_discrete_by_value(lab, multi):
    assert sa.generic_resources(lab["nodes"][0]["Description"]["Resources"]["GenericResources"]) == {"NVIDIA-GPU": 4}
    worker = next(n for n in multi["nodes"] if n["Spec"]["Role"] == "worker")
    assert sa.generic_resources(worker["Description"]["Resources"]["GenericResources"]) == {"NVIDIA-GPU": 2}
    assert sa.generic_resources(None) == {}


@pytest.mark.parametrize("params, key", [
    ({"task_window": -1}, "task_window"),
    ({"min_critical_replicas": 0}, "min_critical_replicas"),
    ({"gpu_resource_kinds": []}, "gpu_resource_kinds"),
    ({"report_name": "../x"}, "report_name"),
    ({"report_name": ".hidden"}, "report_name"),
])
def test_bad_options_are_refused_naming_the_option(params, key):
    with pytest.raises(InputError) as err:
        sa.options_from(params)
    assert err.value.details["key"] == key and key in str(err.value)


# ------------------------------------------------------------------------------------------------ facts


def test_swarm_facts_of_the_lab(lab):
    swarm = audit(lab)["swarm"]
    assert swarm == {
        "id": "4o5n4elkmqgqbbbggbjzliwh5", "created": "2026-11-26T02:59:09.313997785Z", "managers": 1, "workers": 0,
        "default_addr_pool": ["10.0.0.0/8"], "subnet_size": 24, "data_path_port": 4789, "is_manager": True,
        "node_id": "2fze2obn2qpmklrjc50r72att", "node_addr": "127.0.0.1", "engine_name": "vm",
        "engine_version": "20.10.24+dfsg1", "api_version": "1.41", "task_history_retention_limit": 5, "leader": "vm"}


def test_node_facts_of_the_lab_and_the_two_node_swarm(lab, multi):
    (node,) = audit(lab)["nodes"]
    assert node["hostname"] == "vm" and node["role"] == "manager" and node["leader"] is True
    assert node["availability"] == "active" and node["state"] == "ready" and node["addr"] == "127.0.0.1"
    assert node["labels"] == {"gpu": "true"} and node["generic_resources"] == {"NVIDIA-GPU": 4}
    assert node["nano_cpus"] == 2_000_000_000 and node["memory_bytes"] > 1 << 30
    assert node["engine_version"] == "20.10.24+dfsg1" and node["platform"] == {"os": "linux", "arch": "x86_64"}
    result = audit(multi)
    assert (result["swarm"]["managers"], result["swarm"]["workers"]) == (1, 1)
    worker = next(n for n in result["nodes"] if n["role"] == "worker")
    assert worker["leader"] is False and worker["addr"] == "10.231.0.2"
    assert worker["labels"] == {"gpu": "true", "zone": "b"} and worker["generic_resources"] == {"NVIDIA-GPU": 2}


def test_facts_of_a_fully_specified_sample_service(lab):
    gong = service(audit(lab), "sophia_mcp-gong")
    assert gong == {
        "id": gong["id"], "name": "sophia_mcp-gong", "version": gong["version"], "stack": "sophia",
        "image": "sophia-platform/mcp-server:8950e4d13a90", "image_digest": None, "mode": "replicated",
        "replicas": 1, "replicas_desired": 1, "replicas_running": 1, "criticality": "critical",
        "healthcheck": {"test": ["CMD", "mcp-healthcheck"], "interval_s": 10, "timeout_s": 3, "retries": 3,
                        "start_period_s": 15},
        "limits": {"cpus": 0.5, "memory_bytes": 256 << 20}, "reservations": {"cpus": None, "memory_bytes": 64 << 20},
        "gpu": None, "generic_resources": {},
        "placement": {"constraints": [], "preferences": [], "max_replicas_per_node": None},
        "update_config": {"parallelism": 1, "delay_s": 10, "failure_action": "rollback", "monitor_s": 0,
                          "max_failure_ratio": 0, "order": "stop-first"},
        "rollback_config": None,
        "restart_policy": {"condition": "any", "delay_s": 5, "max_attempts": 0, "window_s": None},
        "endpoint_mode": "dnsrr", "ports": [{"target": 9005, "published": 9005, "protocol": "tcp", "mode": "host"}],
        "networks": ["sophia_sophia-mcp"], "secrets": ["mcp_api_key"], "configs": ["sophia_mcp_common"],
        "labels": {"com.docker.stack.image": "sophia-platform/mcp-server:8950e4d13a90",
                   "com.docker.stack.namespace": "sophia", "sophia.ai/criticality": "critical"},
        "restarts_in_window": 0, "updated": gong["updated"], "update_state": None}
    assert isinstance(gong["version"], int) and gong["version"] > 0


@pytest.mark.parametrize("name, criticality, health, limits, gpu, constraints", [
    # no sophia.ai/criticality label in the stack file: the default, as compose_convert's
    ("sophia_mcp-whisper", "critical", False, None, {"NVIDIA-GPU": 1}, ["node.labels.gpu == true"]),
    ("sophia_mcp-reranker", "non-critical", False, {"cpus": 0.5, "memory_bytes": 256 << 20}, {"NVIDIA-GPU": 1},
     ["node.labels.gpu == true"]),
    ("sophia_mcp-codegen", "critical", True, None, None, []),
    ("sophia_mcp-asana", "non-critical", False, None, None, []),
    ("audit-fixture-crashing", "non-critical", False, None, None, []),
])
def test_facts_of_sample_services_table(lab, name, criticality, health, limits, gpu, constraints):
    facts = service(audit(lab), name)
    assert facts["criticality"] == criticality
    assert (facts["healthcheck"] is not None) is health
    assert facts["limits"] == limits
    assert facts["gpu"] == ({"kinds": gpu} if gpu else None)
    assert facts["placement"]["constraints"] == constraints


def test_whole_lab_counts(lab):
    result = audit(lab)
    assert len(result["services"]) == 30
    assert sum(1 for s in result["services"] if s["stack"] == "sophia") == 28
    assert {s["name"] for s in result["services"] if s["gpu"]} == {
        "sophia_mcp-embeddings", "sophia_mcp-llm-gateway", "sophia_mcp-reranker", "sophia_mcp-whisper"}
    assert all(s["endpoint_mode"] == "dnsrr" for s in result["services"] if s["stack"] == "sophia")


def test_none_healthcheck_counts_as_none(lab):
    # derived: the stack's `healthcheck: {disable: true}` arrives as Test ["NONE"]
    raw_service(lab, "sophia_mcp-gong")["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = {"Test": ["NONE"]}
    result = audit(lab)
    assert service(result, "sophia_mcp-gong")["healthcheck"] is None
    assert findings(result, "no_healthcheck", "sophia_mcp-gong")[0]["severity"] == "error"


def test_global_mode_job_modes_and_spread_preferences(multi):
    result = audit(multi)
    agent = service(result, "agent")
    assert agent["mode"] == "global" and agent["replicas"] is None
    assert agent["placement"]["preferences"] == ["spread=node.labels.zone"]
    assert agent["update_config"]["failure_action"] == "rollback" and agent["restart_policy"] is None
    # derived: a replicated job (the API's ReplicatedJob mode); no engine here runs one for us
    raw_service(multi, "web-a")["Spec"]["Mode"] = {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert service(audit(multi), "web-a")["mode"] == "replicated-job"


def test_ingress_ports_come_from_the_endpoint(multi):
    assert service(audit(multi), "ingress-a")["ports"] == [
        {"target": 80, "published": 8081, "protocol": "tcp", "mode": "ingress"}]


def test_older_engine_without_service_status_counts_tasks(lab):
    # derived: API < 1.41 returns no ServiceStatus; running tasks are counted from the task list instead
    for item in lab["services"]:
        item.pop("ServiceStatus")
    result = audit(lab)
    assert service(result, "sophia_mcp-gong")["replicas_running"] == 1
    assert service(result, "sophia_mcp-gong")["replicas_desired"] == 1
    assert service(result, "audit-fixture-crashing")["replicas_running"] == 0
    assert findings(result, "replicas_short", "audit-fixture-crashing")


# ------------------------------------------------------------------------------------------------ tasks


def test_failed_and_restarted_tasks_in_the_window(lab):
    result = audit(lab)
    tasks = result["tasks"]
    assert len(tasks) == 7
    assert [t["timestamp"] for t in tasks] == sorted((t["timestamp"] for t in tasks), reverse=True)
    crashed = [t for t in tasks if t["service"] == "audit-fixture-crashing"]
    assert len(crashed) == 3
    assert all(t["state"] == "failed" and t["exit_code"] == 3 and t["error"] == "task: non-zero exit (3)"
               and t["desired_state"] == "shutdown" and t["node"] == "vm" and t["slot"] == 1 for t in crashed)
    assert sorted(t["state"] for t in tasks if t["service"] == "audit-fixture-unhealthy") == ["complete"] * 3
    rejected = next(t for t in tasks if t["service"] == "sophia_mcp-whisper")
    assert rejected["state"] == "rejected" and rejected["exit_code"] is None
    assert rejected["error"] == "assigned node no longer meets constraints"
    assert service(result, "audit-fixture-crashing")["restarts_in_window"] == 3
    assert service(result, "sophia_mcp-gong")["restarts_in_window"] == 0
    failing = findings(result, "tasks_failing", "audit-fixture-crashing")[0]
    assert failing["tasks"] == 3 and "3 failed or restarted tasks" in failing["msg"]


@pytest.mark.parametrize("window, count", [(3600, 7), (60, 6), (40, 4), (0, 0)])
def test_task_window_bounds_what_is_reported(lab, window, count):
    assert len(audit(lab, task_window=window)["tasks"]) == count


def test_running_tasks_are_not_reported(lab):
    assert all(t["state"] != "running" for t in audit(lab)["tasks"])


# ------------------------------------------------------------------------------------------------ placement


NODE = {"id": "abc123", "hostname": "gpu-1", "role": "worker", "addr": "10.0.0.7", "labels": {"gpu": "true"},
        "engine_labels": {"zone": "b"}, "platform": {"os": "linux", "arch": "x86_64"}}


@pytest.mark.parametrize("constraint, admitted", [
    ("node.labels.gpu == true", True),
    ("node.labels.gpu==TRUE", True),          # values compare case-insensitively, as in swarmkit
    ("node.labels.gpu != true", False),
    ("node.labels.GPU == true", False),       # label names are case-sensitive: a missing label is ""
    ("node.labels.missing != x", True),
    ("node.labels.missing == ", True),
    ("node.role == worker", True),
    ("node.role != manager", True),
    ("NODE.ROLE == manager", False),          # keys are case-insensitive
    ("node.hostname == gpu-1", True),
    ("node.hostname != gpu-1", False),
    ("node.id == abc123", True),
    ("node.platform.os == linux", True),
    ("node.platform.arch == aarch64", False),
    ("engine.labels.zone == b", True),
    ("engine.labels.zone != b", False),
    ("node.ip == 10.0.0.0/24", True),
    ("node.ip != 10.0.0.7", False),
])
def test_constraints_are_evaluated_as_swarmkit_does(constraint, admitted):
    assert sa.admits([constraint], NODE) == (admitted, [])


@pytest.mark.parametrize("constraint", ["node.labels.gpu", "node.foo == bar", "9bad == x"])
def test_constraints_we_cannot_evaluate_are_reported_and_admit(constraint):
    assert sa.admits([constraint], NODE) == (True, [constraint])


def test_all_constraints_must_hold():
    assert sa.admits(["node.labels.gpu == true", "node.role == worker"], NODE) == (True, [])
    assert sa.admits(["node.labels.gpu == true", "node.role == manager"], NODE) == (False, [])


# ------------------------------------------------------------------------------------------------ findings


def test_every_finding_names_its_object_and_has_a_fix(lab, multi):
    for raw in (lab, multi):
        result = audit(raw)
        assert result["findings"]
        for finding in result["findings"]:
            assert set(finding) >= {"check", "severity", "service", "node", "msg", "fix"}
            assert finding["severity"] in sa.SEVERITIES and finding["check"] in sa.CHECKS
            assert (finding["service"] is None) != (finding["node"] is None)
            assert (finding["service"] or finding["node"]) in finding["msg"] and finding["fix"]


def test_lab_findings_by_check(lab):
    summary = audit(lab, stacks=["sophia"])["summary"]
    assert summary["services"] == 28 and summary["services_with_healthcheck"] == 13
    assert summary["by_check"] == {"no_healthcheck": 15, "no_limits": 13, "no_reservations": 13,
                                   "no_rollback_on_failure": 18, "single_replica_critical": 15, "tasks_failing": 1}
    assert summary["by_severity"] == {"error": 21, "warning": 54, "info": 0}
    assert sum(summary["by_check"].values()) == summary["findings"] == 75


@pytest.mark.parametrize("name, check, severity, wanted", [
    ("sophia_mcp-github", "no_healthcheck", "error", "no health check"),           # critical
    ("sophia_mcp-asana", "no_healthcheck", "warning", "no health check"),          # non-critical
    ("sophia_mcp-codegen", "no_limits", "warning", "no CPU and no memory limit"),
    ("sophia_mcp-codegen", "no_reservations", "warning", "reserves no CPU and no memory"),
    ("sophia_mcp-whisper", "no_reservations", "warning", "(only NVIDIA-GPU x1)"),
    ("sophia_mcp-gong", "single_replica_critical", "error", "runs 1 replica; wanted at least 2"),
    ("sophia_mcp-codegen", "no_rollback_on_failure", "warning", "has no update_config"),
    ("audit-fixture-crashing", "replicas_short", "error", "runs 0 of 1 desired tasks"),
    ("audit-fixture-crashing", "tasks_failing", "warning", "in the last 3600s"),
])
def test_findings_on_the_real_lab(lab, name, check, severity, wanted):
    (finding,) = findings(audit(lab), check, name)
    assert finding["severity"] == severity and wanted in finding["msg"] and finding["node"] is None


@pytest.mark.parametrize("name, check", [
    ("sophia_mcp-gong", "no_healthcheck"), ("sophia_mcp-gong", "no_limits"), ("sophia_mcp-gong", "no_reservations"),
    ("sophia_mcp-gong", "no_rollback_on_failure"), ("sophia_mcp-gong", "no_restart_policy"),
    ("sophia_mcp-reranker", "single_replica_critical"),      # non-critical
    ("sophia_mcp-whisper", "gpu_unpinned"),                  # pinned to gpu=true; the only node has GPUs
    ("audit-fixture-crashing", "single_replica_critical"),   # non-critical
])
def test_no_finding_where_the_service_is_right(lab, name, check):
    assert findings(audit(lab), check, name) == []


def test_min_critical_replicas_and_scaling(lab):
    assert findings(audit(lab, min_critical_replicas=1), "single_replica_critical") == []
    # derived: gong scaled to 2 replicas (its spec only; ServiceStatus follows)
    gong = raw_service(lab, "sophia_mcp-gong")
    gong["Spec"]["Mode"]["Replicated"]["Replicas"] = 2
    gong["ServiceStatus"].update(DesiredTasks=2, RunningTasks=2)
    result = audit(lab)
    assert findings(result, "single_replica_critical", "sophia_mcp-gong") == []
    # ... which, on a single node, two host-mode tasks on port 9005 cannot share
    (clash,) = findings(result, "port_clash", "sophia_mcp-gong")
    assert clash["services"] == ["sophia_mcp-gong"] and "2 replicas but only 1 active node" in clash["msg"]


def test_scaled_to_zero_is_info_not_single_replica(multi):
    result = audit(multi)
    (zero,) = findings(result, "scaled_to_zero", "web-a")
    assert zero["severity"] == "info"
    assert findings(result, "single_replica_critical") == []


def test_no_restart_policy_none_set_and_condition_none(multi, lab):
    (unset,) = findings(audit(multi), "no_restart_policy", "web-a")
    assert unset["severity"] == "warning" and "sets no restart_policy" in unset["msg"]
    # derived: condition none (`restart_policy: {condition: none}` in a stack file)
    raw_service(lab, "sophia_mcp-gong")["Spec"]["TaskTemplate"]["RestartPolicy"] = {"Condition": "none"}
    (none,) = findings(audit(lab), "no_restart_policy", "sophia_mcp-gong")
    assert none["severity"] == "error" and "condition none" in none["msg"]


def test_failure_action_pause_is_no_rollback(lab):
    # derived: update_config present but failure_action pause
    raw_service(lab, "sophia_mcp-gong")["Spec"]["UpdateConfig"]["FailureAction"] = "pause"
    (finding,) = findings(audit(lab), "no_rollback_on_failure", "sophia_mcp-gong")
    assert "failure_action pause" in finding["msg"] and "rollback" in finding["fix"]


def test_partial_limits_name_what_is_missing(lab):
    # derived: gong with a CPU limit only
    raw_service(lab, "sophia_mcp-gong")["Spec"]["TaskTemplate"]["Resources"]["Limits"].pop("MemoryBytes")
    (finding,) = findings(audit(lab), "no_limits", "sophia_mcp-gong")
    assert "no memory limit" in finding["msg"] and "cpus 0.5" in finding["msg"]


def test_invalid_criticality_is_audited_as_critical(lab):
    # derived: a label value that is neither critical nor non-critical
    raw_service(lab, "sophia_mcp-asana")["Spec"]["Labels"]["sophia.ai/criticality"] = "high"
    result = audit(lab)
    assert findings(result, "criticality_label_invalid", "sophia_mcp-asana")[0]["severity"] == "warning"
    assert findings(result, "single_replica_critical", "sophia_mcp-asana")
    assert findings(result, "no_healthcheck", "sophia_mcp-asana")[0]["severity"] == "error"


def test_critical_label_option_and_container_labels(lab):
    # derived: the label under another name, and only on the containers (a stack's service-level `labels:`)
    gong = raw_service(lab, "sophia_mcp-gong")
    gong["Spec"]["Labels"].pop("sophia.ai/criticality")
    gong["Spec"]["TaskTemplate"]["ContainerSpec"]["Labels"]["tier"] = "non-critical"
    assert service(audit(lab, critical_label="tier"), "sophia_mcp-gong")["criticality"] == "non-critical"
    assert service(audit(lab), "sophia_mcp-gong")["criticality"] == "critical"


def test_gpu_unpinned_on_the_real_two_node_swarm(multi):
    result = audit(multi)
    (finding,) = findings(result, "gpu_unpinned")
    manager = next(n for n in result["nodes"] if n["role"] == "manager")
    assert finding["service"] == "gpu-unpinned" and finding["severity"] == "error"
    assert finding["nodes"] == ["vm"] and manager["id"][:12] in finding["msg"]
    assert "no constraints" in finding["msg"] and "node.labels.gpu == true" in finding["fix"]
    # gpu-pinned (node.labels.gpu==true) and gpu-role-pinned (node.role != manager) admit only the GPU worker


@pytest.mark.parametrize("constraints, unpinned", [
    ([], True),                                   # no constraint: the GPU-less node is admitted
    (["node.labels.gpu == true"], False),         # the sample's pin
    (["node.labels.gpu != false"], True),         # a missing label is "", which is != false
    (["node.hostname == vm"], False),
    (["node.role == worker"], True),              # the copy is a worker without GPUs
])
def test_gpu_unpinned_with_a_node_without_gpus(lab, constraints, unpinned):
    # derived: the lab's node plus a copy of it as "cpu-1", without labels or generic resources
    lab["nodes"].append(second_node(lab, resources=False))
    raw_service(lab, "sophia_mcp-whisper")["Spec"]["TaskTemplate"]["Placement"] = {"Constraints": constraints}
    found = findings(audit(lab), "gpu_unpinned", "sophia_mcp-whisper")
    assert bool(found) is unpinned
    if unpinned:
        assert found[0]["nodes"] == ["cpu-1"] and "cpu-1" in found[0]["msg"]


def test_a_node_with_another_gpu_kind_still_counts_as_without(lab):
    # derived: the second node advertises GPU, the whisper service reserves NVIDIA-GPU
    node = second_node(lab)
    node["Description"]["Resources"]["GenericResources"] = [{"DiscreteResourceSpec": {"Kind": "GPU", "Value": 8}}]
    lab["nodes"].append(node)
    raw_service(lab, "sophia_mcp-whisper")["Spec"]["TaskTemplate"]["Placement"] = {}
    assert findings(audit(lab), "gpu_unpinned", "sophia_mcp-whisper")[0]["nodes"] == ["cpu-1"]


def test_placement_unsatisfiable_and_unevaluated(lab):
    # derived: constraints that no node satisfies, and one this audit cannot evaluate
    raw_service(lab, "sophia_mcp-gong")["Spec"]["TaskTemplate"]["Placement"] = {
        "Constraints": ["node.labels.gpu == false"]}
    raw_service(lab, "sophia_mcp-slack")["Spec"]["TaskTemplate"]["Placement"] = {"Constraints": ["node.foo == bar"]}
    result = audit(lab)
    (unsat,) = findings(result, "placement_unsatisfiable")
    assert unsat["service"] == "sophia_mcp-gong" and unsat["severity"] == "error"
    (skipped,) = findings(result, "constraint_unevaluated")
    assert skipped["service"] == "sophia_mcp-slack" and "node.foo == bar" in skipped["msg"]


def test_host_port_clash_on_the_real_two_node_swarm(multi):
    clashes = findings(audit(multi), "port_clash")
    assert [c["services"] for c in clashes] == [["web-a", "web-b"]]
    assert clashes[0]["port"] == "8080/tcp" and "host / host mode" in clashes[0]["msg"]
    # apart-a (node.role==manager) and apart-b (node.role==worker) share 8082 but never a node: no clash


@pytest.mark.parametrize("mode, protocol, clash", [
    ("host", "tcp", True),      # one node: both land on it
    ("ingress", "tcp", True),   # ingress publishes on every node
    ("host", "udp", False),     # another protocol is another port
])
def test_port_clash_derived_on_the_lab(lab, mode, protocol, clash):
    # derived: slack publishes gong's port 9005 (the engine refuses ingress clashes at create time)
    slack = raw_service(lab, "sophia_mcp-slack")
    for ports in (slack["Spec"]["EndpointSpec"]["Ports"], slack["Endpoint"]["Ports"]):
        ports[0].update(PublishedPort=9005, PublishMode=mode, Protocol=protocol)
    found = findings(audit(lab), "port_clash")
    assert bool(found) is clash
    if clash:
        assert found[0]["services"] == ["sophia_mcp-gong", "sophia_mcp-slack"] and found[0]["port"] == "9005/tcp"
        assert ("every node" in found[0]["msg"]) is (mode == "ingress")


def test_port_clash_with_a_service_outside_the_audited_stacks(lab):
    # derived: the crashing fixture service (no stack) publishes 9005 in host mode
    crashing = raw_service(lab, "audit-fixture-crashing")
    crashing["Spec"]["EndpointSpec"] = {"Mode": "vip", "Ports": [
        {"Protocol": "tcp", "TargetPort": 9005, "PublishedPort": 9005, "PublishMode": "host"}]}
    result = audit(lab, stacks=["sophia"])
    assert all(s["stack"] == "sophia" for s in result["services"])
    (clash,) = findings(result, "port_clash")
    assert clash["service"] == "sophia_mcp-gong" and clash["services"] == ["audit-fixture-crashing", "sophia_mcp-gong"]


@pytest.mark.parametrize("availability, state, severity, wanted", [
    ("drain", "ready", "warning", "availability is drain"),
    ("pause", "ready", "warning", "availability is pause"),
    ("active", "down", "error", "is down"),
    ("active", "disconnected", "error", "is disconnected"),
])
def test_node_unavailable(lab, availability, state, severity, wanted):
    # derived: the lab node drained, paused, down or disconnected (draining the shared lab would stop its stack)
    lab["nodes"][0]["Spec"]["Availability"] = availability
    lab["nodes"][0]["Status"]["State"] = state
    (finding,) = findings(audit(lab), "node_unavailable")
    assert finding["node"] == "vm" and finding["service"] is None
    assert finding["severity"] == severity and wanted in finding["msg"]


def test_findings_are_sorted_errors_first(lab):
    severities = [f["severity"] for f in audit(lab)["findings"]]
    assert severities == sorted(severities, key=sa.SEVERITIES.index)


def test_stacks_filter_keeps_tasks_of_the_stack_only(lab):
    result = audit(lab, stacks=["sophia"])
    assert {t["service"] for t in result["tasks"]} == {"sophia_mcp-whisper"}
    assert audit(lab, stacks=["nope"])["services"] == []


# ------------------------------------------------------------------------------------------------ report


def document(raw, generated="2026-11-26T03:03:00Z"):
    options = sa.options_from({})
    return sa.report_document(audit(raw), generated, "swarm-audit", options)


def test_markdown_report_sections_and_rows(lab):
    text = sa.render_markdown(document(lab))
    assert text.startswith("# Swarm audit: swarm-audit\n\nGenerated: 2026-11-26T03:03:00Z\n")
    for heading in ("## Findings", "## Nodes", "## Services", "## Failed or restarted tasks in the last 3600s"):
        assert "\n%s\n" % heading in text
    assert "30 services on 1 node:" in text
    assert "| error | replicas_short | audit-fixture-crashing |" in text
    assert "| sophia_mcp-gong | sophia | replicated | 1/1 | critical | CMD mcp-healthcheck |" in text
    assert "| vm | 2fze2obn2qpm | manager | active | ready | yes | 127.0.0.1 |" in text


def test_markdown_escapes_pipes(lab):
    # derived: a health command with a shell pipe
    raw_service(lab, "sophia_mcp-gong")["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] = [
        "CMD-SHELL", "curl -f localhost | grep ok"]
    assert "curl -f localhost \\| grep ok" in sa.render_markdown(document(lab))


def test_json_report_round_trips(lab):
    doc = document(lab)
    parsed = json.loads(sa.render_json(doc))
    assert parsed["generated_at"] == "2026-11-26T03:03:00Z" and parsed["report"] == "swarm-audit"
    assert parsed["summary"] == doc["summary"] and len(parsed["services"]) == 30
    assert parsed["options"]["task_window"] == 3600


def write(raw, report_dir, generated="2026-11-26T03:03:00Z", **kwargs):
    return sa.write_report(audit(raw), str(report_dir), "swarm-audit", sa.options_from({}), generated, **kwargs)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_report_written_then_unchanged_when_only_the_time_differs(lab, tmp_path):
    report_dir = tmp_path / "reports" / "phase1"
    first = write(lab, report_dir)
    assert first["changed"] is True
    md, js = report_dir / "swarm-audit.md", report_dir / "swarm-audit.json"
    assert mode(report_dir) == 0o755 and mode(md) == 0o644 and mode(js) == 0o644
    assert sorted(os.listdir(report_dir)) == ["swarm-audit.json", "swarm-audit.md"]  # no temporary file left
    before = (md.read_bytes(), js.read_bytes(), md.stat().st_mtime_ns)
    second = write(lab, report_dir, generated="2026-11-26T04:00:00Z")
    assert second["changed"] is False
    assert (md.read_bytes(), js.read_bytes(), md.stat().st_mtime_ns) == before


def test_report_rewritten_when_the_swarm_changed(lab, tmp_path):
    write(lab, tmp_path)
    raw_service(lab, "sophia_mcp-gong")["ServiceStatus"]["RunningTasks"] = 0  # derived: gong lost its task
    again = write(lab, tmp_path, generated="2026-11-26T04:00:00Z", want_diff=True)
    assert again["changed"] is True
    assert "Generated: 2026-11-26T04:00:00Z" in (tmp_path / "swarm-audit.md").read_text()
    assert json.loads((tmp_path / "swarm-audit.json").read_text())["generated_at"] == "2026-11-26T04:00:00Z"
    row = "| sophia_mcp-gong | sophia | replicated | %s |"
    assert row % "0/1" in again["diff"]["after"] and row % "1/1" in again["diff"]["before"]


def test_report_check_mode_writes_nothing(lab, tmp_path):
    report_dir = tmp_path / "new"
    result = write(lab, report_dir, check_mode=True, want_diff=True)
    assert result["changed"] is True and not report_dir.exists()
    assert result["diff"]["before"] == "" and result["diff"]["after"].startswith("# Swarm audit")


def test_report_mode_is_repaired(lab, tmp_path):
    write(lab, tmp_path)
    os.chmod(tmp_path / "swarm-audit.json", 0o600)
    result = write(lab, tmp_path, want_diff=True)
    assert result["changed"] is True and "diff" not in result
    assert mode(tmp_path / "swarm-audit.json") == 0o644


def test_report_replaces_a_corrupt_json(lab, tmp_path):
    write(lab, tmp_path)
    (tmp_path / "swarm-audit.json").write_text("{not json")
    assert write(lab, tmp_path)["changed"] is True
    assert json.loads((tmp_path / "swarm-audit.json").read_text())["report"] == "swarm-audit"


def test_report_dir_that_is_a_file_is_refused(lab, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError) as err:
        write(lab, target)
    assert str(target) in str(err.value) and err.value.details["key"] == "report_dir"


# ------------------------------------------------------------------------------------------------ runner


class FakeClient:
    """Stands in for DockerClient with the captured replies (the runner's contract: read_swarm, api_calls, close)."""

    def __init__(self, raw, fail=None):
        self.raw, self.fail, self.closed, self.hosts = raw, fail, False, []
        self.api_calls = 6

    def read_swarm(self, host):
        self.hosts.append(host)
        if self.fail:
            raise self.fail
        return self.raw

    def close(self):
        self.closed = True


def test_run_audit_result_without_report(lab):
    client = FakeClient(lab)
    result = sa.run_audit({"docker_host": "unix:///x.sock"}, lambda params: client, now=NOW)
    assert client.hosts == ["unix:///x.sock"] and client.closed
    assert result["changed"] is False and result["api_calls"] == 6 and "report" not in result
    assert set(result) >= {"swarm", "nodes", "services", "tasks", "findings", "summary", "seconds", "msg"}
    assert result["msg"] == "30 services on 1 node: 24 errors, 63 warnings, 0 info"
    assert isinstance(result["seconds"], float)


def test_run_audit_with_report_and_check_mode(lab, tmp_path):
    params = {"docker_host": "unix:///x.sock", "report_dir": str(tmp_path / "r"), "report_name": "before",
              "stacks": ["sophia"]}
    checked = sa.run_audit(params, lambda p: FakeClient(lab), check_mode=True, want_diff=True, now=NOW)
    assert checked["changed"] is True and "would be written" in checked["msg"] and not (tmp_path / "r").exists()
    assert checked["diff"]["after_header"].endswith("/r/before.md")
    written = sa.run_audit(params, lambda p: FakeClient(lab), now=NOW)
    assert written["changed"] is True and written["report"]["markdown"] == str(tmp_path / "r" / "before.md")
    again = sa.run_audit(params, lambda p: FakeClient(lab), now=NOW + timedelta(seconds=5))
    assert again["changed"] is False and again["msg"].endswith("unchanged")


def test_run_audit_closes_the_client_on_error(lab):
    client = FakeClient(lab, fail=ApiError("boom"))
    with pytest.raises(ApiError):
        sa.run_audit({}, lambda params: client, now=NOW)
    assert client.closed


# ------------------------------------------------------------------------------------------------ client layer


def test_worker_is_refused_with_the_fix():
    info = json.loads((FIXTURES / "worker" / "info.json").read_text())
    with pytest.raises(ApiError) as err:
        dc.check_swarm_member(info, "unix:///w.sock")
    message = str(err.value)
    assert "unix:///w.sock" in message and "forjnj67lmm00bwll39ktbtdl" in message
    assert "is a worker: run swarm_audit against a manager (docker node ls --filter role=manager)" in message
    assert "10.231.0.1:2377" in message and err.value.details["reason"] == "not_manager"


@pytest.mark.parametrize("state, reason, wanted", [
    ("inactive", "not_in_swarm", "is not in a Swarm (LocalNodeState inactive)"),
    ("pending", "not_in_swarm", "LocalNodeState pending"),
    ("locked", "locked", "docker swarm unlock"),
])
def test_engine_outside_a_swarm_is_refused(state, reason, wanted):
    # derived from the worker's /info: the states a node is in before joining, while joining, or locked
    info = json.loads((FIXTURES / "worker" / "info.json").read_text())
    info["Swarm"]["LocalNodeState"] = state
    with pytest.raises(ApiError) as err:
        dc.check_swarm_member(info, "tcp://10.0.0.5:2376")
    assert wanted in str(err.value) and "tcp://10.0.0.5:2376" in str(err.value)
    assert err.value.details["reason"] == reason


def test_manager_info_passes(lab):
    dc.check_swarm_member(lab["info"], "unix:///var/run/docker.sock")


def test_a_workers_503_reply_is_mapped_to_the_fix():
    docker = pytest.importorskip("docker")
    import requests

    reply = json.loads((FIXTURES / "worker" / "nodes-error.json").read_text())
    response = requests.Response()
    response.status_code = reply["status"]
    response.url = "http+docker://localhost/v1.41/nodes"
    exc = docker.errors.APIError("503 Server Error", response=response, explanation=reply["body"]["message"])
    err = dc.api_error("unix:///w.sock", exc)
    assert err.details["reason"] == "not_manager" and "docker node ls --filter role=manager" in str(err)


@pytest.mark.parametrize("params, key", [
    ({"client_cert": "/x.pem"}, "tls"),
    ({"tls": True, "client_cert": "/x.pem"}, "client_cert"),
    ({"tls": True, "ca_path": "/nonexistent/ca.pem"}, "ca_path"),
])
def test_tls_options_are_checked(params, key):
    with pytest.raises(InputError) as err:
        dc.connect(dict(params, docker_host="tcp://127.0.0.1:2376"))
    assert err.value.details["key"] == key and "tcp://127.0.0.1:2376" in str(err.value)


def test_connect_to_a_socket_that_does_not_exist(tmp_path):
    host = "unix://%s/nonexistent.sock" % tmp_path
    with pytest.raises(ApiError) as err:
        dc.connect({"docker_host": host})
    assert str(err.value).startswith("Cannot connect to the Docker engine at %s" % host)
    assert err.value.details == {"docker_host": host, "reason": "unreachable"}


def test_errors_are_platform_errors():
    assert issubclass(ApiError, PlatformError) and issubclass(InputError, PlatformError)


# ------------------------------------------------------------------------------------------------ module file
# (here rather than in tests/unit/plugins/modules/: two test files of one basename cannot both be collected)

DOC = yaml.safe_load(swarm_audit.DOCUMENTATION)
# The Docker connection options are documented once, in the doc fragment both Docker modules extend.
DOC["options"].update(yaml.safe_load(_docker_connection.ModuleDocFragment.DOCUMENTATION)["options"])
SPEC = swarm_audit.argument_spec()


def test_documented_options_are_the_spec():
    assert sorted(DOC["options"]) == sorted(SPEC)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_option_type_default_and_aliases_match(name):
    doc, spec = DOC["options"][name], SPEC[name]
    assert doc["type"] == spec["type"]
    assert doc.get("default") == spec.get("default")
    assert doc.get("aliases", []) == spec.get("aliases", [])
    assert doc.get("elements") == spec.get("elements")


def test_returned_facts_are_documented():
    returned = yaml.safe_load(swarm_audit.RETURN)
    assert set(returned) == {"msg", "swarm", "nodes", "services", "tasks", "findings", "summary", "report",
                             "api_calls", "seconds"}


def test_examples_use_the_fqcn():
    examples = yaml.safe_load(swarm_audit.EXAMPLES)
    assert all("sophia_ai.platform.swarm_audit" in task or "ansible.builtin.debug" in task for task in examples)
    assert any(task.get("check_mode") is True for task in examples)


def test_gpu_network_alone_only_where_the_gpu_task_is_alone_in_a_network_on_its_node(lab):
    """The lab's GPU services share the stack's network with every other service on the one node: no finding.
    Without the other services' tasks, mcp-whisper's task is alone in that network there, and it updates
    stop-first: the finding names the service, the node and the network; start-first clears it."""
    assert findings(audit(lab), "gpu_network_alone") == []
    whisper = raw_service(lab, "sophia_mcp-whisper")
    alone = copy.deepcopy(lab)
    alone["tasks"] = [t for t in lab["tasks"] if t["ServiceID"] == whisper["ID"]]
    (finding,) = findings(audit(alone), "gpu_network_alone")
    node = lab["nodes"][0]["Description"]["Hostname"]
    assert finding["service"] == "sophia_mcp-whisper" and finding["node"] == node
    assert finding["network"] == "sophia_sophia-mcp" and finding["severity"] == "warning"
    assert "assigned node no longer meets constraints" in finding["msg"] and "start-first" in finding["fix"]
    raw_service(alone, "sophia_mcp-whisper")["Spec"]["UpdateConfig"] = {"Order": "start-first"}
    assert findings(audit(alone), "gpu_network_alone") == []
