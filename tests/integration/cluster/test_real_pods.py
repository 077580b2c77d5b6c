"""Proof tests on the lab cluster's real node: real pods of the sample MCP image, Services, readiness, rollouts.

Real: the kubelet, kube-proxy (iptables) and containerd on this machine run the containers; Services are
reached at their ClusterIP from the host through kube-proxy's rules, so every request crosses a real Service.
Stand-in: the node's nvidia.com/gpu capacity is a status patch and the `nvidia` runtime handler runs runc
(no GPU exists here).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
import uuid

import kubernetes
import pytest
from mcp import Client

from .lab import wait_for

pytestmark = pytest.mark.integration

REAL_NODE = {"sophia.ai/lab-node": "real"}


def mcp_deployment(name, labels, env=None, replicas=1, **pod_extra):
    env = {"MCP_SERVER_NAME": name, "MCP_PORT": "9005", **(env or {})}
    container = {
        "name": "mcp",
        "image": "sophia-platform/mcp-server:lab",
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"containerPort": 9005}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9005}, "periodSeconds": 1, "failureThreshold": 1},
    }
    container.update(pod_extra.pop("container", {}))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **labels}},
                "spec": {"nodeSelector": REAL_NODE, "containers": [container], **pod_extra},
            },
            **pod_extra.pop("deployment", {}),
        },
    }


def service(name, selector):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": 9005, "targetPort": 9005}]},
    }


def available(api, namespace, name):
    dep = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    st = dep.status
    return (
        st.observed_generation == dep.metadata.generation
        and (st.updated_replicas or 0) == dep.spec.replicas
        and (st.available_replicas or 0) == dep.spec.replicas
        and (st.replicas or 0) == dep.spec.replicas
    )


def cluster_ip(api, namespace, name):
    return kubernetes.client.CoreV1Api(api).read_namespaced_service(name, namespace).spec.cluster_ip


def get_json(url):
    with urllib.request.urlopen(url, timeout=3) as resp:
        return json.loads(resp.read())


def service_answers(url):
    """Wait until kube-proxy has programmed the new Service (it syncs its rules shortly after the endpoints)."""

    def answers():
        try:
            return get_json(url)
        except OSError:
            return None

    return wait_for(answers, timeout=30, what=f"{url} to answer through the Service")


def test_agent_is_a_real_gpu_node(api):
    node = kubernetes.client.CoreV1Api(api).read_node("sophia-lab-agent")
    assert node.metadata.labels["gpu"] == "true"
    assert node.status.node_info.kubelet_version == "v1.34.4"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert node.status.allocatable["nvidia.com/gpu"] == "4"


def test_mcp_server_pod_behind_a_service_completes_initialize(api, namespace):
    kubernetes.utils.create_from_dict(api, mcp_deployment("mcp-gong", {}), namespace=namespace)
    kubernetes.utils.create_from_dict(api, service("mcp-gong", {"app": "mcp-gong"}), namespace=namespace)
    wait_for(lambda: available(api, namespace, "mcp-gong"), timeout=90, what="mcp-gong to be available")
    base = f"http://{cluster_ip(api, namespace, 'mcp-gong')}:9005"
    service_answers(f"{base}/healthz")
    url = f"{base}/mcp"

    async def talk():
        async with Client(url, mode="legacy") as client:
            tools = await client.list_tools()
            return client.server_info.name, client.protocol_version, sorted(t.name for t in tools.tools)

    name, protocol, tools = asyncio.run(talk())
    assert name == "mcp-gong"
    assert protocol
    assert tools == ["add", "echo", "server_info"]


def test_failing_readiness_keeps_a_pod_out_of_the_service(api, namespace):
    gate = {"gate": "g"}
    kubernetes.utils.create_from_dict(api, mcp_deployment("good", gate), namespace=namespace)
    # MCP_READY_FILE names a file that never exists: /readyz answers 503 for ever, /healthz stays 200
    kubernetes.utils.create_from_dict(api, mcp_deployment("bad", gate, env={"MCP_READY_FILE": "/nonexistent"}), namespace=namespace)
    kubernetes.utils.create_from_dict(api, service("gate", gate), namespace=namespace)
    wait_for(lambda: available(api, namespace, "good"), timeout=90, what="the ready pod")
    core = kubernetes.client.CoreV1Api(api)
    bad = wait_for(
        lambda: next((p for p in core.list_namespaced_pod(namespace, label_selector="app=bad").items
                      if p.status.phase == "Running" and p.status.pod_ip), None),
        timeout=90, what="the unready pod to run",
    )
    time.sleep(3)  # several failed probes later it is still not ready
    bad = core.read_namespaced_pod(bad.metadata.name, namespace)
    assert [c.ready for c in bad.status.container_statuses] == [False]
    slices = kubernetes.client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector="kubernetes.io/service-name=gate").items
    ready_ips = {a for s in slices for e in (s.endpoints or []) if e.conditions.ready for a in e.addresses}
    assert bad.status.pod_ip not in ready_ips
    assert len(ready_ips) == 1
    url = f"http://{cluster_ip(api, namespace, 'gate')}:9005/healthz"
    service_answers(url)
    answered_by = {get_json(url)["name"] for _attempt in range(20)}
    assert answered_by == {"good"}


def test_rolling_update_with_zero_failed_requests(api, namespace):
    dep = mcp_deployment(
        "roll", {}, replicas=2, env={"MCP_SERVER_VERSION": "1.0.0"},
        terminationGracePeriodSeconds=20,
        # stay in the Service until kube-proxy has dropped the endpoint, then stop
        container={"lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}},
    )
    dep["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    dep["spec"]["minReadySeconds"] = 2
    kubernetes.utils.create_from_dict(api, dep, namespace=namespace)
    kubernetes.utils.create_from_dict(api, service("roll", {"app": "roll"}), namespace=namespace)
    wait_for(lambda: available(api, namespace, "roll"), timeout=90, what="roll to be available")
    url = f"http://{cluster_ip(api, namespace, 'roll')}:9005/healthz"
    service_answers(url)

    results: list[str] = []
    stop = threading.Event()

    def loop():
        deadline = time.monotonic() + 240  # bounded: stops by itself
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                results.append(get_json(url)["version"])
            except Exception as exc:  # pylint: disable=broad-except
                results.append(f"FAILED: {exc!r}")
            time.sleep(0.05)

    client = threading.Thread(target=loop, daemon=True)
    client.start()
    time.sleep(2)
    kubernetes.client.AppsV1Api(api).patch_namespaced_deployment("roll", namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "mcp", "env": [{"name": "MCP_SERVER_NAME", "value": "roll"},
                                               {"name": "MCP_PORT", "value": "9005"},
                                               {"name": "MCP_SERVER_VERSION", "value": "2.0.0"}]}]}}}})
    wait_for(lambda: available(api, namespace, "roll"), timeout=180, what="the rollout to finish")
    time.sleep(8)  # past the old pods' preStop window
    stop.set()
    client.join(timeout=10)
    failures = [r for r in results if r.startswith("FAILED")]
    assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:3]}"
    assert len(results) > 100
    assert results[0] == "1.0.0" and results[-1] == "2.0.0"


def test_gpu_pod_with_runtime_class_nvidia_runs_on_the_agent(api, namespace):
    name = f"gpu-{uuid.uuid4().hex[:6]}"
    dep = mcp_deployment(name, {}, runtimeClassName="nvidia",
                         container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
    dep["spec"]["template"]["spec"]["nodeSelector"] = {"gpu": "true", **REAL_NODE}
    kubernetes.utils.create_from_dict(api, dep, namespace=namespace)
    wait_for(lambda: available(api, namespace, name), timeout=90, what="the GPU pod to be ready")
    pod = kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={name}").items[0]
    assert pod.spec.node_name == "sophia-lab-agent"
    assert pod.spec.runtime_class_name == "nvidia"
    assert pod.status.container_statuses[0].ready
