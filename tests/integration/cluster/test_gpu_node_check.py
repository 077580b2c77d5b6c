"""gpu_node_check in cluster mode against the lab cluster (real kube-apiserver v1.34.4, scheduler, controllers).

The GPU nodes are kwok nodes advertising ``nvidia.com/gpu`` with GPU Feature Discovery labels, plus the real
node ``sophia-lab-agent`` whose 4 GPUs are a status patch (no GPU exists here); nothing the lab runs is mocked.
The module runs through ansible-playbook, and through the module_utils entry point its main() calls
(``connect`` + ``run_cluster_check``) where a test needs many runs. The lab is shared: runs are retried while
the API server restarts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kubernetes
import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError
from ansible_collections.sophia_ai.platform.plugins.module_utils._gpu_cluster import run_cluster_check
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect
from ansible_collections.sophia_ai.platform.plugins.modules.gpu_node_check import argument_spec

from .lab import GPU_NODES, lab_cluster, wait_for

pytestmark = pytest.mark.integration

KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
AGENT = "sophia-lab-agent"


def params(**overrides) -> dict:
    """The module's parameters with their defaults, as AnsibleModule would pass them."""
    values = {name: spec.get("default") for name, spec in argument_spec().items()}
    values.update(mode="cluster", **overrides)
    return values


def check(kubeconfig: str, attempts: int = 30, **overrides) -> dict:
    """One run of the module's cluster-mode work; retried while a restarting API server refuses connections."""
    for attempt in range(attempts):
        client = connect(params(kubeconfig=kubeconfig, **overrides))
        try:
            return run_cluster_check(params(kubeconfig=kubeconfig, **overrides), client)
        except ApiError as exc:
            if "could not reach" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(2)
        finally:
            client.close()
    raise AssertionError("not reached")


def playbook(tmp_path: Path, kubeconfig: str, tasks: list[dict], *extra: str) -> dict:
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"name": "gpu_node_check cluster mode", "hosts": "localhost", "gather_facts": False,
                                 "module_defaults": {"sophia_ai.platform.gpu_node_check": {"kubeconfig": kubeconfig}},
                                 "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(play), *extra],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.stdout.lstrip().startswith("{"), res.stdout[-3000:] + res.stderr[-3000:]
    return {t["task"]["name"]: t["hosts"]["localhost"] for t in json.loads(res.stdout)["plays"][0]["tasks"]}


def gpu_nodes_from_the_api(api) -> dict:
    nodes = kubernetes.client.CoreV1Api(api).list_node(label_selector="gpu=true").items
    return {n.metadata.name: int(n.status.allocatable.get("nvidia.com/gpu", "0")) for n in nodes}


def test_playbook_reports_kwok_nodes_and_the_real_agent(tmp_path, lab_kubeconfig, api):
    tasks = [
        {"name": "check", "sophia_ai.platform.gpu_node_check": {"mode": "cluster", "min_gpu_nodes": GPU_NODES}},
        {"name": "check mode", "sophia_ai.platform.gpu_node_check": {"mode": "cluster"}, "check_mode": True},
        {"name": "too few", "sophia_ai.platform.gpu_node_check": {"mode": "cluster", "min_gpu_nodes": 100000},
         "ignore_errors": True},
        {"name": "too few, report only", "sophia_ai.platform.gpu_node_check": {
            "mode": "cluster", "min_gpu_nodes": 100000, "fail_on_check": False}},
        {"name": "no device plugin", "sophia_ai.platform.gpu_node_check": {
            "mode": "cluster", "require_device_plugin": True,
            "device_plugin_selector": f"sophia.ai/none={uuid.uuid4().hex[:8]}"}, "ignore_errors": True},
    ]
    results = playbook(tmp_path, lab_kubeconfig, tasks)
    expected = gpu_nodes_from_the_api(api)
    res = results["check"]
    assert not res.get("failed"), res
    assert res["changed"] is False and res["failed_checks"] == []
    by_name = {node["name"]: node for node in res["nodes"]}
    assert {name: node["allocatable"] for name, node in by_name.items()} == expected
    assert AGENT in by_name and by_name[AGENT]["allocatable"] == 4 and by_name[AGENT]["gfd_labels"] == {}
    kwok = [node for name, node in by_name.items() if name.startswith("kwok-gpu-")]
    assert len(kwok) >= GPU_NODES
    for node in kwok:
        assert node["ready"] is True and node["allocatable"] in (1, 8)
        assert node["product"] in ("NVIDIA-GH200-480GB", "NVIDIA-H100-80GB-HBM3")
        assert node["gfd_labels"]["nvidia.com/gpu.count"] == str(node["capacity"])
        assert {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"} in node["taints"]
    assert res["totals"]["allocatable"] == sum(expected.values()) and res["totals"]["gpu_nodes"] == len(expected)
    assert res["api_calls"] == 3  # nodes, pods, daemonsets: one page each at this size
    assert results["check mode"]["changed"] is False and not results["check mode"].get("failed")
    too_few = results["too few"]
    assert too_few["failed"] is True
    assert f"cluster: check min_gpu_nodes failed: seen {len(expected)} nodes match gpu=true, wanted >= 100000" in too_few["msg"]
    report = results["too few, report only"]
    assert not report.get("failed") and [f["check"] for f in report["failed_checks"]] == ["min_gpu_nodes"]
    plugin = results["no device plugin"]
    assert plugin["failed"] is True and [f["check"] for f in plugin["failed_checks"]] == ["require_device_plugin"]


def gpu_pod(name: str, gpus: int, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "tolerations": [KWOK_TOLERATION],
                     "containers": [{"name": "inference", "image": "sophia-platform/mcp-server:lab",
                                     "imagePullPolicy": "Never",
                                     "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}}


def test_a_pod_requesting_gpus_changes_requested_and_the_ratio(lab_kubeconfig, api, namespace):
    before = check(lab_kubeconfig)
    node = next(n for n in before["nodes"] if n["allocatable"] == 8 and n["free"] >= 3)
    kubernetes.utils.create_from_dict(api, gpu_pod("llm", 3, node["name"]), namespace=namespace)
    core = kubernetes.client.CoreV1Api(api)
    wait_for(lambda: core.read_namespaced_pod("llm", namespace).status.phase == "Running", what="the GPU pod to run")
    after = check(lab_kubeconfig)
    row = next(n for n in after["nodes"] if n["name"] == node["name"])
    assert row["requested"] == node["requested"] + 3 and row["gpu_pods"] == node["gpu_pods"] + 1
    assert row["free"] == node["free"] - 3 and row["allocation_ratio"] == round(row["requested"] / 8, 4)
    totals = after["totals"]
    assert totals["requested"] == before["totals"]["requested"] + 3
    assert totals["allocation_ratio"] == round(totals["requested"] / totals["allocatable"], 4)
    core.delete_namespaced_pod("llm", namespace, grace_period_seconds=0)
    wait_for(lambda: check(lab_kubeconfig)["totals"]["requested"] == before["totals"]["requested"],
             what="the deleted pod's GPUs to be free again")


def test_a_ready_device_plugin_daemonset_passes_require_device_plugin(lab_kubeconfig, api, namespace):
    """A DaemonSet labelled like the device plugin (stand-in image: no GPU here) on every gpu=true node."""
    label = {"app.kubernetes.io/name": f"plugin-{namespace}"}
    pod_spec = {"nodeSelector": {"gpu": "true"}, "tolerations": [KWOK_TOLERATION],
                "containers": [{"name": "stand-in", "image": "sophia-platform/mcp-server:lab", "imagePullPolicy": "Never"}]}
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "nvidia-device-plugin", "labels": label},
                 "spec": {"selector": {"matchLabels": label},
                          "template": {"metadata": {"labels": label}, "spec": pod_spec}}}
    kubernetes.utils.create_from_dict(api, daemonset, namespace=namespace)
    options = {"require_device_plugin": True, "device_plugin_namespace": namespace,
               "device_plugin_selector": f"app.kubernetes.io/name=plugin-{namespace}"}

    def passed():
        result = check(lab_kubeconfig, **options)
        return result if not result["failed_checks"] else None

    result = wait_for(passed, timeout=90, what="every device plugin pod to be ready")
    plugin = result["device_plugin"]
    assert plugin["found"] is True and plugin["desired"] == plugin["ready"] == result["totals"]["gpu_nodes"]


def test_api_calls_are_one_paginated_list_per_kind(lab_kubeconfig):
    result = check(lab_kubeconfig, api_page_size=2)
    gpu_nodes = result["totals"]["gpu_nodes"]
    # ceil(nodes / 2) pages of nodes, and at least one page each of pods and daemonsets
    assert result["api_calls"] >= math.ceil(gpu_nodes / 2) + 2
    assert check(lab_kubeconfig)["api_calls"] == 3


def scaled_check(repo, kubeconfig: str, nodes: int, tries: int = 3) -> dict:
    """Scale the kwok GPU nodes, then check; again when another user of the shared lab reset the count meanwhile."""
    for attempt in range(tries):
        try:
            lab_cluster(repo, "nodes", str(nodes))
        except AssertionError:
            if attempt == tries - 1:
                raise
            continue
        result = check(kubeconfig)
        if result["totals"]["gpu_nodes"] > nodes:  # the kwok nodes plus the real agent
            return result
    raise AssertionError(f"the lab did not keep {nodes} kwok GPU nodes long enough for one check")


@pytest.mark.slow
def test_api_calls_stay_under_ten_as_the_node_count_grows(repo, lab_kubeconfig):
    try:
        calls = {nodes: scaled_check(repo, lab_kubeconfig, nodes)["api_calls"] for nodes in (20, 600)}
    finally:
        lab_cluster(repo, "nodes", str(GPU_NODES))
    # 21 nodes: one page of each kind; 601 nodes: two pages of nodes (limit 500)
    assert calls == {20: 3, 600: 4}
