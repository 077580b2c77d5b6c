"""The sample stack (examples/) has the shape of the production fleet that every later issue relies on.

Pure checks on the committed YAML: no engine needed. ``docker stack config`` acceptance is in the
integration tests.
"""

from __future__ import annotations

import re

import pytest
import yaml

STACK = "examples/sophia-mcp-stack.yml"
COMPOSE = "examples/sophia-mcp-compose.yml"


@pytest.fixture(scope="module")
def stack(repo):
    return yaml.safe_load((repo / STACK).read_text())


@pytest.fixture(scope="module")
def compose(repo):
    return yaml.safe_load((repo / COMPOSE).read_text())


def _gpu_reservation(svc):
    return (svc.get("deploy", {}).get("resources", {}).get("reservations", {}) or {}).get("generic_resources", [])


def test_stack_is_compose_3_8_for_docker_stack_deploy(stack):
    assert stack["version"] == "3.8"
    assert len(stack["services"]) == 28


def test_gong_is_on_9005(stack):
    ports = stack["services"]["mcp-gong"]["ports"]
    assert ports == [{"target": 9005, "published": 9005, "protocol": "tcp", "mode": "host"}]


def test_every_service_runs_the_sample_image_with_its_own_name_and_port(stack):
    ports = set()
    for name, svc in stack["services"].items():
        assert re.fullmatch(r"mcp-[a-z0-9-]+", name), name
        assert svc["image"] == "sophia-platform/mcp-server:${MCP_IMAGE_TAG:-lab}"
        assert svc["environment"]["MCP_SERVER_NAME"] == name
        port = int(svc["environment"]["MCP_PORT"])
        assert svc["ports"][0]["target"] == svc["ports"][0]["published"] == port
        # no IPVS on the lab machines: host-mode ports and DNS round robin, never the ingress mesh / VIPs
        assert svc["ports"][0]["mode"] == "host"
        assert svc["deploy"]["endpoint_mode"] == "dnsrr"
        ports.add(port)
    assert len(ports) == 28, "each service publishes a port of its own"


def test_gpu_services_reserve_a_swarm_generic_resource_and_are_placed_on_gpu_nodes(stack):
    gpu = {n: s for n, s in stack["services"].items() if _gpu_reservation(s)}
    assert sorted(gpu) == ["mcp-embeddings", "mcp-llm-gateway", "mcp-reranker", "mcp-whisper"]
    for name, svc in gpu.items():
        assert _gpu_reservation(svc) == [{"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}], name
        assert svc["deploy"]["placement"]["constraints"] == ["node.labels.gpu == true"], name
    for name, svc in stack["services"].items():
        if name not in gpu:
            assert "placement" not in svc["deploy"], name


def test_some_services_lack_health_checks_and_limits_for_phase_1_to_add(stack):
    services = stack["services"].values()
    with_hc = [s for s in services if "healthcheck" in s]
    with_limits = [s for s in services if "limits" in s["deploy"].get("resources", {})]
    assert 0 < len(with_hc) < 28
    assert 0 < len(with_limits) < 28
    for svc in with_hc:
        assert svc["healthcheck"]["test"] == ["CMD", "mcp-healthcheck"]


def test_criticality_labels_on_most_services_and_some_left_to_the_default(stack):
    values = [s["deploy"].get("labels", {}).get("sophia.ai/criticality") for s in stack["services"].values()]
    assert set(values) == {"critical", "non-critical", None}
    assert values.count(None) < 14 < values.count("critical") + values.count("non-critical")


def test_network_secret_and_config(stack):
    assert stack["networks"]["sophia-mcp"]["driver"] == "overlay"
    assert stack["secrets"] == {"mcp_api_key": {"external": True}}
    assert stack["configs"]["mcp_common"] == {"file": "./config/mcp-common.yml"}
    users = [n for n, s in stack["services"].items() if s.get("secrets")]
    assert users and all(s["configs"][0]["source"] == "mcp_common" for s in stack["services"].values())


def test_companion_uses_compose_spec_gpu_devices(compose, stack):
    assert "version" not in compose
    devices = {
        name: svc["deploy"]["resources"]["reservations"]["devices"]
        for name, svc in compose["services"].items()
        if "devices" in svc.get("deploy", {}).get("resources", {}).get("reservations", {})
    }
    assert sorted(devices) == ["mcp-embeddings", "mcp-llm-gateway", "mcp-reranker", "mcp-whisper"]
    assert all(d[0]["driver"] == "nvidia" and "gpu" in d[0]["capabilities"] for d in devices.values())
    # the same services, images and ports as in the stack file
    for name, svc in compose["services"].items():
        assert svc["image"] == "sophia-platform/mcp-server:lab"
        for key in ("MCP_SERVER_NAME", "MCP_PORT"):
            assert svc["environment"][key] == stack["services"][name]["environment"][key], (name, key)
