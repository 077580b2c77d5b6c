# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_convert's output applied to the lab cluster: a GPU service lands on a GPU node and becomes Ready
through the probes made from its healthcheck; a service whose constraints no node meets stays Pending with the
scheduler's reason.

Real: the API server, the scheduler, the kubelet and containerd of the real node ``sophia-lab-agent`` (the GPU
pod runs the sample MCP image there), kompose and the conversion. Stand-in: the node's ``nvidia.com/gpu``
capacity and the ``nvidia`` runtime handler (runc) are the lab's (no GPU exists here). The kwok GPU nodes carry
the ``kwok.x-k8s.io/node=fake:NoSchedule`` taint, so the GPU service is pinned to the real node with a Swarm
``node.hostname`` constraint (which the conversion turns into a node selector).
"""

from __future__ import annotations

import time

import kubernetes
import pytest
import urllib3
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert

from .lab import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STACK = """
services:
  gpu-infer:
    image: sophia-platform/mcp-server:lab
    pull_policy: never
    environment: {MCP_SERVER_NAME: gpu-infer, MCP_PORT: "9005"}
    ports: [{target: 9005, published: 9005, mode: host}]
    healthcheck: {test: ["CMD", "mcp-healthcheck"], interval: 2s, timeout: 3s, retries: 3, start_period: 10s}
    deploy:
      labels: {sophia.ai/criticality: non-critical}
      placement:
        constraints: [node.hostname == sophia-lab-agent]
      resources:
        reservations:
          generic_resources:
            - discrete_resource_spec: {kind: NVIDIA-GPU, value: 1}
  nowhere:
    image: sophia-platform/mcp-server:lab
    pull_policy: never
    environment: {MCP_SERVER_NAME: nowhere, MCP_PORT: "9006"}
    deploy:
      placement:
        constraints: [node.labels.zone == no-such-zone]
"""


def retrying(call, attempts=30, delay=2.0):
    """The lab is shared and may be restarted by another engineer: retry while the API server is away."""
    for attempt in range(attempts):
        try:
            return call()
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:  # API server restarting
            last = exc
        except kubernetes.client.ApiException as exc:
            if exc.status and exc.status < 500:
                raise
            last = exc
        if attempt < attempts - 1:
            time.sleep(delay)
    raise AssertionError("lab API server unreachable: %s" % last)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    (root / "stack.yml").write_text(STACK)
    return root


def _apply(api, namespace, dest):
    for path in sorted(dest.glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        retrying(lambda o=obj: kubernetes.utils.create_from_dict(api, o, namespace=namespace))


def _pods(api, namespace, service):
    core = kubernetes.client.CoreV1Api(api)
    return retrying(lambda: core.list_namespaced_pod(namespace, label_selector="io.kompose.service=%s" % service).items)


def test_gpu_service_lands_on_a_gpu_node_and_the_unplaceable_one_stays_pending(api, namespace, converted):
    dest = converted / ("out-" + namespace)
    result = _compose_convert.run({"src": [str(converted / "stack.yml")], "dest": str(dest), "namespace": namespace})
    assert result["services"]["gpu-infer"]["gpus"] == 1
    assert result["services"]["gpu-infer"]["node_selector"] == {"kubernetes.io/hostname": "sophia-lab-agent", "gpu": "true"}
    _apply(api, namespace, dest)

    def ready_gpu_pod():
        for pod in _pods(api, namespace, "gpu-infer"):
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if pod.status.phase == "Running" and conditions.get("Ready") == "True":
                return pod
        return None

    pod = wait_for(ready_gpu_pod, timeout=180, interval=1, what="the GPU pod to be Running and Ready")
    node = retrying(lambda: kubernetes.client.CoreV1Api(api).read_node(pod.spec.node_name))
    assert node.metadata.labels.get("gpu") == "true"
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 1
    assert pod.spec.runtime_class_name == "nvidia"
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert pod.metadata.labels["sophia.ai/criticality"] == "non-critical"
    assert pod.spec.containers[0].readiness_probe._exec.command == ["mcp-healthcheck"]

    def pending_reason():
        for pending in _pods(api, namespace, "nowhere"):
            for cond in pending.status.conditions or []:
                if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                    return pending, cond
        return None

    pending, cond = wait_for(pending_reason, timeout=120, interval=1, what="the scheduler to report the unplaceable pod")
    assert pending.status.phase == "Pending"
    assert "didn't match Pod's node affinity/selector" in cond.message, cond.message
    assert pending.spec.node_selector == {"zone": "no-such-zone"}


FIXTURES = "tests/unit/plugins/module_utils/fixtures/compose/"


@pytest.mark.parametrize("src, params", [
    ("examples/sophia-mcp-stack.yml", {}),
    ("examples/sophia-mcp-compose.yml", {"gpus_per_node": 4}),
    (FIXTURES + "gpu.yml", {}),
    (FIXTURES + "healthcheck.yml", {}),
    (FIXTURES + "placement.yml", {}),
    (FIXTURES + "rollout.yml", {}),
    (FIXTURES + "secrets-configs.yml", {}),
    (FIXTURES + "volumes.yml", {"storage_class": "local-path"}),
    (FIXTURES + "ports.yml", {}),
    (FIXTURES + "criticality.yml", {"labels": {"app.kubernetes.io/part-of": "sophia"}, "annotations": {"a/b": "c"}}),
])
def test_every_manifest_is_accepted_by_the_api_server(lab_kubeconfig, namespace, repo, tmp_path, src, params):
    """The module's own checks against the lab: the API server's OpenAPI schema (with its enumerations) and a
    server-side dry run (dryRun=All) of each file, nothing persisted."""
    dest = tmp_path / "out"
    result = _compose_convert.run(dict({"src": [str(repo / src)], "dest": str(dest), "namespace": namespace,
                                        "kubeconfig": lab_kubeconfig, "validate": {"cache_dir": str(tmp_path / "cache")}},
                                       **params))
    assert result["files"] and sorted(p.name for p in dest.glob("*.yaml")) == result["files"]
    validation = result["validation"]
    assert validation["schema_source"] == "server" and validation["objects"] == len(result["files"])
    n = len(result["files"])
    assert validation["server_dry_run"] == {"objects": n, "accepted": n, "skipped": 0, "namespaces_missing": [],
                                            "api_calls": 1 + n}
