"""Cluster mode of gpu_node_check: GPU capacity, effective requests, allocation and checks (pure).

The objects are real: captured from the lab cluster (fixtures/gpu_cluster/README.md). Failing variants are
derived inside the tests and say what was changed. Nothing here talks to an API server (that is
tests/integration/cluster/test_gpu_node_check.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _gpu_cluster as gc
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "gpu_cluster"
GPU = "nvidia.com/gpu"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def nodes():
    return [load("node-kwok-gpu-0001"), load("node-kwok-gpu-0004"), load("node-sophia-lab-agent")]


@pytest.fixture
def pods():
    return [load("pod-llm-with-init"), load("pod-too-big-pending")]


@pytest.fixture
def daemonset():
    return load("daemonset-stand-in-device-plugin")


@pytest.mark.parametrize("value, number", [
    ("8", 8), (8, 8), (None, 0), ("", 0), ("500m", 0.5), ("1k", 1000), ("1Ki", 1024), ("2Gi", 2 * 2 ** 30),
    ("1e3", 1000), ("0", 0),
])
def test_quantities(value, number):
    assert gc.parse_quantity(value) == number


def test_a_bad_quantity_is_an_input_error():
    with pytest.raises(InputError, match="not a Kubernetes quantity"):
        gc.parse_quantity("eight")


def container(name, gpus=None, requests=None, sidecar=False):
    spec = {"name": name, "resources": {}}
    if gpus is not None:
        spec["resources"]["limits"] = {GPU: str(gpus)}
    if requests is not None:
        spec["resources"]["requests"] = {GPU: str(requests)}
    if sidecar:
        spec["restartPolicy"] = "Always"
    return spec


# (id, containers, init containers, overhead, effective request)
REQUESTS = [
    ("one-container-limit-only", [container("a", 2)], [], None, 2),
    ("requests-win-over-limits", [container("a", 4, requests=4)], [], None, 4),
    ("containers-add-up", [container("a", 1), container("b", 2)], [], None, 3),
    ("no-gpu", [container("a")], [], None, 0),
    ("init-larger-than-app", [container("a", 1)], [container("i", 4)], None, 4),
    ("init-smaller-than-app", [container("a", 3)], [container("i", 2)], None, 3),
    ("sidecar-adds-to-app", [container("a", 2)], [container("s", 1, sidecar=True)], None, 3),
    ("init-after-sidecar-adds-the-sidecar", [container("a", 1)],
     [container("s", 1, sidecar=True), container("i", 4)], None, 5),
    ("init-before-sidecar-does-not", [container("a", 1)],
     [container("i", 4), container("s", 1, sidecar=True)], None, 4),
    ("overhead-adds", [container("a", 1)], [], {GPU: "1"}, 2),
]


@pytest.mark.parametrize("containers, inits, overhead, effective", [r[1:] for r in REQUESTS],
                         ids=[r[0] for r in REQUESTS])
def test_effective_request_follows_the_scheduler_rule(containers, inits, overhead, effective):
    spec = {"containers": containers, "initContainers": inits}
    if overhead:
        spec["overhead"] = overhead
    assert gc.pod_request({"spec": spec}, GPU) == effective


def test_the_real_pod_with_an_init_container_and_a_sidecar_requests_five(pods):
    """init 5 > app 2 + sidecar 1: the scheduler reserves 5 (the node's allocated figure would say the same)."""
    assert gc.pod_request(pods[0], GPU) == 5


def test_summary_of_the_lab_objects(nodes, pods, daemonset):
    summary = gc.summarize(nodes, pods, [daemonset])
    by_name = {row["name"]: row for row in summary["nodes"]}
    assert list(by_name) == ["kwok-gpu-0001", "kwok-gpu-0004", "sophia-lab-agent"]
    h100 = by_name["kwok-gpu-0004"]
    assert (h100["capacity"], h100["allocatable"], h100["requested"], h100["free"], h100["allocation_ratio"],
            h100["gpu_pods"]) == (8, 8, 5, 3, 0.625, 1)
    assert h100["ready"] is True and h100["product"] == "NVIDIA-H100-80GB-HBM3"
    assert h100["taints"] == [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
    assert h100["gfd_labels"][f"{GPU}.count"] == "8" and h100["gfd_labels"][f"{GPU}.present"] == "true"
    assert all(key.startswith("nvidia.com/") for key in h100["gfd_labels"])
    agent = by_name["sophia-lab-agent"]
    assert (agent["allocatable"], agent["requested"], agent["gfd_labels"], agent["taints"]) == (4, 0, {}, [])
    assert summary["totals"] == {
        "gpu_nodes": 3, "ready_nodes": 3, "nodes_advertising_gpus": 3, "capacity": 13, "allocatable": 13,
        "requested": 5, "free": 8, "allocation_ratio": round(5 / 13, 4), "gpu_pods": 1,
        "pending_requested": 16, "pending_pods": 1,
    }
    assert summary["device_plugin"] == {
        "found": True, "desired": 9, "ready": 9,
        "daemonsets": [{"name": "nvidia-device-plugin", "namespace": "gpu-fixture2", "desired": 9, "current": 9,
                        "ready": 9, "available": 9, "updated": 9}],
    }
    assert gc.check_cluster(summary, {"min_gpu_nodes": 3, "min_total_gpus": 13, "require_device_plugin": True}) == []


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_pods_that_ended_hold_no_gpu(nodes, pods, phase):
    """pod-llm-with-init with status.phase Running->Succeeded/Failed (kwok never ends a pod by itself)."""
    ended = copy.deepcopy(pods[0])
    ended["status"]["phase"] = phase
    summary = gc.summarize(nodes, [ended], [])
    assert summary["totals"]["requested"] == 0 and summary["totals"]["gpu_pods"] == 0


def not_ready(node):
    """Ready condition status True->False, reason KubeletNotReady (a node whose kubelet stopped posting)."""
    node = copy.deepcopy(node)
    for cond in node["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond.update(status="False", reason="KubeletNotReady", message="container runtime is down")
    return node


def no_gpu_resource(node):
    """nvidia.com/gpu removed from capacity and allocatable (no device plugin registered on the node)."""
    node = copy.deepcopy(node)
    del node["status"]["capacity"][GPU]
    del node["status"]["allocatable"][GPU]
    return node


# (id, node transform applied to kwok-gpu-0001, checks, check, seen contains, wanted contains)
NODE_FAILURES = [
    ("not-ready", not_ready, {}, "require_ready", "Ready=KubeletNotReady: container runtime is down", "Ready=True"),
    ("no-gpu-resource", no_gpu_resource, {}, "require_gpu_resource", "nvidia.com/gpu allocatable 0 (capacity 0)",
     "allocatable >= 1"),
]


@pytest.mark.parametrize("transform, checks, check, seen, wanted", [r[1:] for r in NODE_FAILURES],
                         ids=[r[0] for r in NODE_FAILURES])
def test_node_failures_name_the_node_the_check_and_the_values(nodes, transform, checks, check, seen, wanted):
    nodes[0] = transform(nodes[0])
    (failure,) = gc.check_cluster(gc.summarize(nodes, [], []), checks)
    assert (failure["node"], failure["check"]) == ("kwok-gpu-0001", check)
    assert seen in failure["seen"] and wanted in failure["wanted"] and failure["fix"]
    for part in ("node kwok-gpu-0001", check, seen, wanted):
        assert part in failure["msg"]


def test_node_checks_can_be_turned_off(nodes):
    nodes = [not_ready(no_gpu_resource(nodes[0]))]
    assert gc.check_cluster(gc.summarize(nodes, [], []), {"require_ready": False, "require_gpu_resource": False}) == []


@pytest.mark.parametrize("checks, check, seen, wanted", [
    ({"min_gpu_nodes": 4, "gpu_node_selector": "gpu=true"}, "min_gpu_nodes", "3 nodes match gpu=true", ">= 4"),
    ({"min_total_gpus": 14}, "min_total_gpus", "13 allocatable nvidia.com/gpu", ">= 14"),
], ids=["too-few-nodes", "too-few-gpus"])
def test_cluster_wide_minimums(nodes, checks, check, seen, wanted):
    (failure,) = gc.check_cluster(gc.summarize(nodes, [], []), checks)
    assert (failure["node"], failure["check"], failure["seen"], failure["wanted"]) == (None, check, seen, wanted)
    assert failure["msg"].startswith(f"cluster: check {check} failed: seen {seen}, wanted {wanted}")


def half_ready(ds):
    """status.numberReady 9->4 (five device plugin pods crash-looping)."""
    ds = copy.deepcopy(ds)
    ds["status"]["numberReady"] = 4
    return ds


def scheduled_nowhere(ds):
    """status.desiredNumberScheduled and every count 9->0 (node selector matching no node)."""
    ds = copy.deepcopy(ds)
    for key in ("desiredNumberScheduled", "currentNumberScheduled", "numberReady", "numberAvailable",
                "updatedNumberScheduled"):
        ds["status"][key] = 0
    return ds


@pytest.mark.parametrize("daemonsets, seen", [
    (lambda ds: [], "no DaemonSet matches kube-system/app.kubernetes.io/name=nvidia-device-plugin"),
    (lambda ds: [half_ready(ds)], "DaemonSet gpu-fixture2/nvidia-device-plugin: 4 of 9 pods ready"),
    (lambda ds: [scheduled_nowhere(ds)], "DaemonSet gpu-fixture2/nvidia-device-plugin: 0 of 0 pods ready"),
], ids=["missing", "half-ready", "scheduled-nowhere"])
def test_device_plugin_failures(nodes, daemonset, daemonsets, seen):
    checks = {"require_device_plugin": True, "device_plugin_namespace": "kube-system",
              "device_plugin_selector": "app.kubernetes.io/name=nvidia-device-plugin"}
    (failure,) = gc.check_cluster(gc.summarize(nodes, [], daemonsets(daemonset)), checks)
    assert (failure["check"], failure["seen"]) == ("require_device_plugin", seen)
    assert not gc.check_cluster(gc.summarize(nodes, [], daemonsets(daemonset)), {})  # off by default


def test_many_failures_are_listed_up_to_a_limit_in_msg(nodes):
    many = []
    for i in range(25):
        node = not_ready(nodes[0])
        node["metadata"]["name"] = f"kwok-gpu-{i:04d}"
        many.append(node)
    summary = gc.summarize(many, [], [])
    failures = gc.check_cluster(summary, {})
    assert len(failures) == 25
    msg = gc.failure_message(gc.summary_line(summary, failures), failures)
    assert msg.count("check require_ready failed") == gc.MAX_LISTED and msg.endswith("and 5 more (see failed_checks)")


class FakeLister:
    """Stands in for _k8s_client.K8sClient: returns the captured objects and records each list call."""

    def __init__(self, objects):
        self.objects = objects
        self.calls = []

    @property
    def api_calls(self):
        return len(self.calls)

    def list_all(self, api_version, kind, namespace=None, label_selector=None, field_selector=None, limit=500):
        self.calls.append((api_version, kind, namespace, label_selector, field_selector, limit))
        return self.objects[kind]


def test_run_cluster_check_lists_each_kind_once(nodes, pods, daemonset):
    lister = FakeLister({"nodes": nodes, "pods": pods, "daemonsets": [daemonset]})
    params = {"gpu_node_selector": "gpu=true", "device_plugin_namespace": "kube-system",
              "device_plugin_selector": "app.kubernetes.io/name=nvidia-device-plugin", "api_page_size": 250,
              "min_gpu_nodes": 5}
    result = gc.run_cluster_check(params, lister)
    assert lister.calls == [
        ("v1", "nodes", None, "gpu=true", None, 250),
        ("v1", "pods", None, None, "status.phase!=Succeeded,status.phase!=Failed", 250),
        ("apps/v1", "daemonsets", "kube-system", "app.kubernetes.io/name=nvidia-device-plugin", None, 250),
    ]
    assert result["api_calls"] == 3 and result["changed"] is False
    assert [f["check"] for f in result["failed_checks"]] == ["min_gpu_nodes"]
    assert result["summary"] == ("3 GPU nodes (3 Ready), 13 of 13 nvidia.com/gpu allocatable, 5 requested "
                                 "(allocation 38.5%), device plugin 9/9 ready: 1 failed check")
    assert result["msg"].startswith(result["summary"] + ": cluster: check min_gpu_nodes failed")
