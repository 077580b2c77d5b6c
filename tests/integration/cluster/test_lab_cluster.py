"""Proof tests of the lab cluster's control plane and its kwok GPU nodes.

Real: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from Go source (Kubernetes v1.34.4,
etcd 3.6.16), so scheduling decisions and their reasons are the upstream scheduler's. Stand-in: the GPU nodes
are kwok nodes (no GPU exists on these machines); kwok marks their pods Running without running them.
"""

from __future__ import annotations

import kubernetes
import pytest

from .lab import GPU_NODES, lab_cluster, wait_for

pytestmark = pytest.mark.integration

KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


def gpu_deployment(name: str, gpus: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"gpu": "true"},
                    "tolerations": [KWOK_TOLERATION],
                    "containers": [{
                        "name": "inference",
                        "image": "sophia-platform/mcp-server:lab",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    }],
                },
            },
        },
    }


def pods_of(api, namespace: str, app: str):
    return kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}").items


def test_control_plane_is_the_one_built_from_source(api):
    info = kubernetes.client.VersionApi(api).get_code()
    assert info.git_version == "v1.34.4"
    assert info.git_tree_state == "clean"


def test_gpu_nodes_advertise_gpus_and_feature_discovery_labels(api):
    nodes = kubernetes.client.CoreV1Api(api).list_node(label_selector="gpu=true,type=kwok").items
    assert len(nodes) >= GPU_NODES
    for node in nodes:
        assert int(node.status.allocatable["nvidia.com/gpu"]) in (1, 8)
        assert node.metadata.labels["nvidia.com/gpu.product"] in ("NVIDIA-GH200-480GB", "NVIDIA-H100-80GB-HBM3")
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"


def test_gpu_deployment_is_scheduled_onto_a_gpu_node(api, namespace):
    kubernetes.utils.create_from_dict(api, gpu_deployment("llm", 1), namespace=namespace)
    pod = wait_for(
        lambda: next((p for p in pods_of(api, namespace, "llm") if p.status.phase == "Running"), None),
        what="the GPU pod to run",
    )
    node = kubernetes.client.CoreV1Api(api).read_node(pod.spec.node_name)
    assert node.metadata.labels["gpu"] == "true"
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 1


def test_more_gpus_than_any_node_has_stays_pending_with_the_schedulers_reason(api, namespace):
    kubernetes.utils.create_from_dict(api, gpu_deployment("too-big", 16), namespace=namespace)

    def unschedulable():
        for pod in pods_of(api, namespace, "too-big"):
            for cond in pod.status.conditions or []:
                if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                    return pod, cond
        return None

    pod, cond = wait_for(unschedulable, what="the scheduler to give up on the pod")
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
    assert "Insufficient nvidia.com/gpu" in cond.message


def test_objects_survive_an_apiserver_restart(api, repo, namespace):
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "keep"}, "data": {"phase": "2"}})
    out = lab_cluster(repo, "restart-apiserver")
    assert out == ""  # the script reports on stderr; stdout stays empty
    got = wait_for(lambda: _try(lambda: core.read_namespaced_config_map("keep", namespace)), what="the API server")
    assert got.data == {"phase": "2"}


def _try(call):
    """The call's result, or None while the API server is still coming back (API or urllib3 errors)."""
    try:
        return call()
    except Exception:  # pylint: disable=broad-except
        return None


@pytest.mark.slow
def test_a_thousand_gpu_nodes_on_request(api, repo):
    core = kubernetes.client.CoreV1Api(api)
    try:
        lab_cluster(repo, "nodes", "1000")
        nodes = core.list_node(label_selector="type=kwok", limit=2000).items
        ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
        assert len(ready) == 1000
        # every fourth node is an 8x H100 host, the others GH200 hosts with one GPU
        assert sum(int(n.status.allocatable["nvidia.com/gpu"]) for n in nodes) == 250 * 8 + 750 * 1
    finally:
        lab_cluster(repo, "nodes", str(GPU_NODES))
    assert len(core.list_node(label_selector="type=kwok").items) == GPU_NODES
