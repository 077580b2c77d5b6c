"""Proof tests for the lab cluster's add-ons: cluster DNS, volumes and NetworkPolicy enforcement, on real pods.

Everything here runs for real on the lab's real node: CoreDNS, the local-path provisioner and
kube-network-policies are pods built from Go source (lab/addons/), and the checks are made from inside pods by
a small probe (prober.py) that the test queries at the pod's IP.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import kubernetes
import pytest

from .lab import wait_for
from .test_real_pods import REAL_NODE, available, mcp_deployment, service

pytestmark = pytest.mark.integration

PROBER = (Path(__file__).parent / "prober.py").read_text()
STORAGE_DIR = Path(os.environ.get("SOPHIA_LAB_ROOT", "/var/lib/sophia-lab")) / "storage"


def prober_pod(name, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "nodeSelector": REAL_NODE,
            "containers": [{
                "name": "probe",
                "image": "sophia-platform/mcp-server:lab",
                "imagePullPolicy": "Never",
                "command": ["/opt/mcp/bin/python", "-c", PROBER],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
            }],
        },
    }


def start_prober(api, namespace, name, labels=None):
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, prober_pod(name, labels))

    def ready_ip():
        pod = core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        return pod.status.pod_ip if statuses and all(c.ready for c in statuses) else None

    ip = wait_for(ready_ip, timeout=90, what=f"probe pod {name} to be ready")

    def ask(**query):
        url = f"http://{ip}:8000/?" + "&".join(f"{k}={urllib.parse.quote(str(v), safe='')}" for k, v in query.items())
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    return ask


def serve_mcp(api, namespace, name, labels=None):
    kubernetes.utils.create_from_dict(api, mcp_deployment(name, labels or {}), namespace=namespace)
    kubernetes.utils.create_from_dict(api, service(name, {"app": name}), namespace=namespace)
    wait_for(lambda: available(api, namespace, name), timeout=90, what=f"{name} to be available")


def test_coredns_runs_at_the_cluster_dns_address(api):
    svc = kubernetes.client.CoreV1Api(api).read_namespaced_service("kube-dns", "kube-system")
    assert svc.spec.cluster_ip == "10.43.0.10"
    dep = kubernetes.client.AppsV1Api(api).read_namespaced_deployment("coredns", "kube-system")
    assert dep.status.ready_replicas == 1


def test_pods_reach_services_by_name(api, namespace):
    serve_mcp(api, namespace, "mcp-named")
    ask = start_prober(api, namespace, "dns-probe")
    cluster_ip = kubernetes.client.CoreV1Api(api).read_namespaced_service("mcp-named", namespace).spec.cluster_ip
    # the full name, the short name through the pod's search path, and the API server's Service
    assert ask(resolve=f"mcp-named.{namespace}.svc.cluster.local") == {"ok": True, "addresses": [cluster_ip]}
    assert ask(resolve="mcp-named") == {"ok": True, "addresses": [cluster_ip]}
    assert ask(resolve="kubernetes.default") == {"ok": True, "addresses": ["10.43.0.1"]}
    # a name that does not exist does not resolve (the resolver is not answering everything)
    assert ask(resolve=f"no-such-service.{namespace}.svc.cluster.local")["ok"] is False
    # and a request by name reaches the service
    reply = wait_for(lambda: (r := ask(url="http://mcp-named:9005/readyz")).get("ok") and r,
                     timeout=30, what="a request by name to mcp-named")
    assert reply["status"] == 200


def test_a_pvc_gets_a_local_path_volume_that_outlives_its_pod(api, namespace):
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    })

    def writer_pod(name, script):
        return {
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": REAL_NODE,
                "restartPolicy": "Never",
                "containers": [{
                    "name": "w", "image": "sophia-platform/mcp-server:lab", "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }

    def phase(name):
        return core.read_namespaced_pod(name, namespace).status.phase

    core.create_namespaced_pod(namespace, writer_pod("writer", "echo kept-across-pods > /data/proof"))
    assert wait_for(lambda: phase("writer") in ("Succeeded", "Failed") and phase("writer"),
                    timeout=120, what="the writer pod") == "Succeeded"
    pvc = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert pvc.status.phase == "Bound"
    assert pvc.spec.storage_class_name == "local-path"  # the default class filled in
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    host_dir = Path(pv.spec.host_path.path if pv.spec.host_path else pv.spec.local.path)
    assert host_dir.parent == STORAGE_DIR
    assert (host_dir / "proof").read_text() == "kept-across-pods\n"

    core.delete_namespaced_pod("writer", namespace)
    core.create_namespaced_pod(namespace, writer_pod("reader", "grep -qx kept-across-pods /data/proof"))
    assert wait_for(lambda: phase("reader") in ("Succeeded", "Failed") and phase("reader"),
                    timeout=120, what="the reader pod") == "Succeeded"

    # reclaim policy Delete: the claim's removal removes the volume and its directory on the node
    core.delete_namespaced_pod("reader", namespace)
    core.delete_namespaced_persistent_volume_claim("data", namespace)
    wait_for(lambda: not host_dir.exists(), timeout=120, what=f"{host_dir} to be removed")


def test_network_policy_is_enforced(api, namespace):
    serve_mcp(api, namespace, "mcp-guarded", {"tier": "guarded"})
    allowed = start_prober(api, namespace, "client-allowed", {"role": "frontend"})
    denied = start_prober(api, namespace, "client-denied", {"role": "other"})
    url = "http://mcp-guarded:9005/readyz"
    # without a policy both clients get through: the denial below is the policy's doing
    for ask in (allowed, denied):
        assert wait_for(lambda ask=ask: ask(url=url)["ok"], timeout=30, what="a request before the policy")

    kubernetes.client.NetworkingV1Api(api).create_namespaced_network_policy(namespace, {
        "metadata": {"name": "frontend-only"},
        "spec": {
            "podSelector": {"matchLabels": {"tier": "guarded"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                         "ports": [{"port": 9005, "protocol": "TCP"}]}],
        },
    })
    refused = wait_for(lambda: None if (r := denied(url=url, timeout=2))["ok"] else r,
                       timeout=30, what="the policy to block client-denied")
    assert "timed out" in refused["error"] or "refused" in refused["error"] or "unreachable" in refused["error"]
    # the allowed client keeps getting through, request after request
    assert all(allowed(url=url)["ok"] for attempt in range(10))
    # and removing the policy lets the other client in again
    kubernetes.client.NetworkingV1Api(api).delete_namespaced_network_policy("frontend-only", namespace)
    assert wait_for(lambda: denied(url=url)["ok"], timeout=30, what="the policy's removal to take effect")
