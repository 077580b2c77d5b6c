"""Proof tests of the multi-node Swarm lab (scripts/swarm-lab.sh): three Docker Engines in containers, one Swarm.

Real: every node runs its own dockerd (Debian's docker.io), the Swarm scheduler places the sample stack's tasks,
the overlay network carries traffic between nodes, and the sample MCP server answers. Stand-in: the GPU node's
eight NVIDIA-GPU generic resources are fake ids (no GPU exists here); Swarm schedules on them all the same.
Lab constraint (no IPVS in this kernel): ports are published in host mode and services resolve each other by DNS
round robin (endpoint_mode dnsrr), so the tests reach a service at its task's node IP and by name over the overlay.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import stat
import urllib.request
import uuid
from pathlib import Path

import pytest

from .lab import swarm_lab_script, wait_for

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.integration

OVERLAY = "sophia-mcp"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "swarm-lab-test", "version": "1"}},
}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

# Runs inside a task container (the sample image's Python): resolve NAME on the overlay, send MCP initialize to
# every address it resolves to, print what each answered as one JSON object.
PROBE = r"""
import json, socket, sys, urllib.request
name, port, body, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), json.loads(sys.argv[4])
ips = sorted({a[4][0] for a in socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)})
out = {"ips": ips, "replies": {}}
for ip in ips:
    req = urllib.request.Request("http://%s:%d/mcp" % (ip, port), data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        out["replies"][ip] = {"status": resp.status, "body": json.loads(resp.read())}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def clients(swarm_lab):
    """A docker SDK client per node (hostname -> client), each on that node's own socket."""
    made = {name: docker.DockerClient(base_url=url) for name, url in swarm_lab.hosts.items()}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def manager(clients, swarm_lab):
    return next(c for name, c in clients.items() if swarm_lab.hosts[name] == swarm_lab.docker_host)


def node_names(manager) -> dict[str, str]:
    return {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}


def stack_services(manager, stack: str):
    return manager.services.list(filters={"label": f"com.docker.stack.namespace={stack}"})


def running_tasks(service) -> list[dict]:
    return [t for t in service.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]


def two_running(service) -> list[dict] | None:
    tasks = running_tasks(service)
    return tasks if len(tasks) == 2 else None


def gpu_reservation(service) -> int:
    reservations = service.attrs["Spec"]["TaskTemplate"].get("Resources", {}).get("Reservations", {})
    return sum(
        r["DiscreteResourceSpec"]["Value"]
        for r in reservations.get("GenericResources") or []
        if r.get("DiscreteResourceSpec", {}).get("Kind") == "NVIDIA-GPU"
    )


def published_port(service) -> int:
    ports = service.attrs["Spec"].get("EndpointSpec", {}).get("Ports") or []
    assert ports, f"{service.name} publishes no port"
    return ports[0]["PublishedPort"]


def initialize(url: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(INITIALIZE).encode(), headers=HEADERS, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def probe_from(clients, node: str, container_id: str, name: str, port: int) -> dict:
    """Run PROBE in a task container on NODE (through that node's own engine) against service NAME."""
    container = clients[node].containers.get(container_id)
    code, output = container.exec_run(
        ["/opt/mcp/bin/python", "-c", PROBE, name, str(port), json.dumps(INITIALIZE), json.dumps(HEADERS)]
    )
    assert code == 0, output.decode(errors="replace")[-2000:]
    return json.loads(output.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def image(manager, swarm_lab) -> str:
    """The sample image as the stack names it (already loaded into every node)."""
    return stack_services(manager, swarm_lab.stack)[0].attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


@pytest.fixture(scope="module")
def spread_service(manager, swarm_lab, image):
    """A two-replica service of the sample image on the stack's overlay (dnsrr, no published port, health-checked)."""
    name = f"swarmlab-spread-{uuid.uuid4().hex[:6]}"
    service = manager.services.create(
        image,
        name=name,
        env=["MCP_PORT=8080", f"MCP_SERVER_NAME={name}"],
        networks=[f"{swarm_lab.stack}_{OVERLAY}"],
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
        mode=docker.types.ServiceMode("replicated", replicas=2),
        # a task counts as running once healthy, so "running" means "answers"
        healthcheck=docker.types.Healthcheck(test=["CMD", "mcp-healthcheck"], interval=2 * 10**9, timeout=3 * 10**9,
                                             retries=30, start_period=60 * 10**9),
    )
    try:
        tasks = wait_for(lambda: two_running(service), timeout=180, what=f"two running tasks of {name}")
        yield service, tasks
    finally:
        service.remove()


def test_one_manager_and_two_workers_are_ready(manager, swarm_lab):
    nodes = manager.nodes.list()
    assert sorted(n.attrs["Spec"]["Role"] for n in nodes) == ["manager", "worker", "worker"]
    for node in nodes:
        assert node.attrs["Status"]["State"] == "ready", node.attrs["Description"]["Hostname"]
        assert node.attrs["Spec"]["Availability"] == "active"
    assert sorted(swarm_lab.node_ips) == ["sophia-swarm-manager", "sophia-swarm-worker1", "sophia-swarm-worker2"]
    nets = {ipaddress.ip_network(f"{ip}/24", strict=False) for ip in swarm_lab.node_ips.values()}
    assert len(set(swarm_lab.node_ips.values())) == 3 and len(nets) == 1
    assert manager.info()["Swarm"]["ControlAvailable"] is True


def test_address_pool_clears_k3s_and_the_production_default(manager, swarm_lab):
    cluster = manager.info()["Swarm"]["Cluster"]
    pools = [ipaddress.ip_network(p) for p in cluster["DefaultAddrPool"]]
    assert pools and cluster["SubnetSize"] == 24
    for pool in pools:
        for taken in ("10.0.0.0/8", "10.42.0.0/16", "10.43.0.0/16", "172.17.0.0/16"):
            assert not pool.overlaps(ipaddress.ip_network(taken)), f"{pool} overlaps {taken}"
    overlay = manager.networks.get(f"{swarm_lab.stack}_{OVERLAY}")
    subnet = ipaddress.ip_network(overlay.attrs["IPAM"]["Config"][0]["Subnet"])
    assert any(subnet.subnet_of(pool) for pool in pools)


def test_only_the_gpu_worker_has_the_label_and_nvidia_gpu_resources(manager, swarm_lab):
    assert swarm_lab.gpu_worker == "sophia-swarm-worker1"
    for node in manager.nodes.list():
        name = node.attrs["Description"]["Hostname"]
        labels = node.attrs["Spec"].get("Labels") or {}
        gpus = [
            r["NamedResourceSpec"]["Value"]
            for r in node.attrs["Description"]["Resources"].get("GenericResources") or []
            if r.get("NamedResourceSpec", {}).get("Kind") == "NVIDIA-GPU"
        ]
        if name == swarm_lab.gpu_worker:
            assert node.attrs["Spec"]["Role"] == "worker"
            assert labels.get("gpu") == "true"
            assert len(gpus) == len(set(gpus)) == 8  # an 8-GPU host (SOPHIA_SWARM_GPUS)
        else:
            assert "gpu" not in labels and gpus == [], name


def test_gpu_services_of_the_stack_run_on_the_gpu_worker_only(manager, swarm_lab):
    names = node_names(manager)
    gpu_services = [s for s in stack_services(manager, swarm_lab.stack) if gpu_reservation(s)]
    assert len(gpu_services) == 4  # llm-gateway, embeddings, reranker, whisper
    for service in gpu_services:
        tasks = running_tasks(service)
        assert tasks, f"{service.name} has no running task"
        assert {names[t["NodeID"]] for t in tasks} == {swarm_lab.gpu_worker}, service.name


def test_a_gpu_reservation_no_node_can_hold_stays_pending(manager, swarm_lab, image):
    # The GPU node advertises 8: a task reserving 9 fits nowhere, whatever the labels say.
    service = manager.services.create(
        image,
        name=f"swarmlab-gpu9-{uuid.uuid4().hex[:6]}",
        resources=docker.types.Resources(generic_resources={"NVIDIA-GPU": 9}),
    )
    try:
        task = wait_for(lambda: next((t for t in service.tasks() if t["Status"].get("Err")), None),
                        timeout=60, what="the scheduler's verdict")
        assert task["Status"]["State"] == "pending"
        assert "insufficient resources" in task["Status"]["Err"]
    finally:
        service.remove()


def test_replicas_spread_over_two_nodes(manager, spread_service):
    _service, tasks = spread_service
    names = node_names(manager)
    assert len({names[t["NodeID"]] for t in tasks}) == 2


def test_mcp_answers_at_each_task_nodes_ip_and_published_port(manager, swarm_lab):
    names = node_names(manager)
    services = stack_services(manager, swarm_lab.stack)
    assert len(services) == 28
    for service in services:
        port = published_port(service)
        for task in running_tasks(service):
            ip = swarm_lab.node_ips[names[task["NodeID"]]]
            status, body = initialize(f"http://{ip}:{port}/mcp")
            assert status == 200
            assert body["result"]["serverInfo"]["name"] == service.name.removeprefix(f"{swarm_lab.stack}_")


def test_host_mode_port_is_closed_on_a_node_without_the_task(manager, swarm_lab):
    # No routing mesh here: mcp-llm-gateway's port answers on the GPU node only.
    service = manager.services.get(f"{swarm_lab.stack}_mcp-llm-gateway")
    port = published_port(service)
    for name, ip in swarm_lab.node_ips.items():
        if name == swarm_lab.gpu_worker:
            continue
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((ip, port), timeout=5).close()


def test_services_reach_each_other_by_name_across_nodes(manager, clients, swarm_lab):
    names = node_names(manager)
    gateway = manager.services.get(f"{swarm_lab.stack}_mcp-llm-gateway")
    on_gpu = running_tasks(gateway)[0]
    # a task on another node than the GPU worker
    other_service, other = next(
        (s, t) for s in stack_services(manager, swarm_lab.stack) for t in running_tasks(s)
        if names[t["NodeID"]] != swarm_lab.gpu_worker
    )
    # from the other node to the GPU worker, and back
    for node, task, target in (
        (names[other["NodeID"]], other, gateway),
        (names[on_gpu["NodeID"]], on_gpu, other_service),
    ):
        short = target.name.removeprefix(f"{swarm_lab.stack}_")
        out = probe_from(clients, node, task["Status"]["ContainerStatus"]["ContainerID"], short, published_port(target))
        # dnsrr: one address per running task (the HA override runs some services twice), no VIP
        assert len(out["ips"]) == len(running_tasks(target)), out
        reply = next(iter(out["replies"].values()))
        assert reply["status"] == 200 and reply["body"]["result"]["serverInfo"]["name"] == short


def test_dnsrr_name_of_a_spread_service_resolves_to_tasks_on_two_nodes(manager, clients, swarm_lab, spread_service):
    service, tasks = spread_service
    names = node_names(manager)
    # probe from a stack task on the GPU worker: at least one replica is on another node
    gateway_task = running_tasks(manager.services.get(f"{swarm_lab.stack}_mcp-llm-gateway"))[0]
    out = probe_from(clients, swarm_lab.gpu_worker, gateway_task["Status"]["ContainerStatus"]["ContainerID"],
                     service.name, 8080)
    task_ips = {t["NetworksAttachments"][0]["Addresses"][0].split("/")[0] for t in tasks}
    assert set(out["ips"]) == task_ips and len(task_ips) == 2
    assert len({names[t["NodeID"]] for t in tasks}) == 2
    for reply in out["replies"].values():
        assert reply["status"] == 200 and reply["body"]["result"]["serverInfo"]["name"] == service.name


def test_a_worker_socket_is_not_a_manager(swarm_lab):
    assert len(swarm_lab.worker_hosts) == 2
    for url in swarm_lab.worker_hosts:
        client = docker.DockerClient(base_url=url)
        try:
            info = client.info()["Swarm"]
            assert info["LocalNodeState"] == "active"
            assert info["ControlAvailable"] is False
            with pytest.raises(docker.errors.APIError, match="not a swarm manager"):
                client.nodes.list()
        finally:
            client.close()


def test_node_sockets_and_the_secret_are_root_only(swarm_lab):
    state = Path(swarm_lab.docker_host.removeprefix("unix://")).parent.parent
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for url in swarm_lab.hosts.values():
        sock = Path(url.removeprefix("unix://"))
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert sock.stat().st_uid == 0 and sock.stat().st_gid == 0
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    key = state / "mcp_api_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size >= 32


def snapshot(engine, manager, stack: str) -> dict:
    return {
        "containers": sorted((c.name, c.id) for c in engine.containers.list(all=True, filters={"label": "sophia.ai/swarm-lab"})),
        "nodes": sorted((n.id, n.attrs["Description"]["Hostname"]) for n in manager.nodes.list()),
        "services": sorted((s.id, s.name, s.attrs["Version"]["Index"]) for s in stack_services(manager, stack)),
        "secrets": sorted(s.id for s in manager.secrets.list()),
        "networks": sorted(n.id for n in manager.networks.list(filters={"driver": "overlay"})),
    }


def test_a_second_up_changes_nothing(repo, engine, manager, swarm_lab):
    before = snapshot(engine, manager, swarm_lab.stack)
    res = swarm_lab_script(repo, "up")
    assert "swarm-lab: changed: nothing" in res.stdout, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == f"DOCKER_HOST={swarm_lab.docker_host}"
    assert snapshot(engine, manager, swarm_lab.stack) == before
