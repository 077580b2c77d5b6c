# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sophia_ai.platform.swarm_audit through ansible-playbook against real Docker engines.

- The host engine's single-node Swarm with the sample stack (brought up with the lab playbook when missing):
  facts against ``docker service ls`` / ``docker node ls``, a service created without a health check found,
  the report (check mode writes nothing, then written, then changed=false), API calls counted by the module and,
  independently, by a counting proxy in front of the engine's socket, constant from 5 to 25 extra services.
- Unreachable engines (a socket that does not exist, a closed TCP port) and a TLS server whose certificate
  is not trusted.
- A real two-node Swarm and an engine in no Swarm (dockerds in network namespaces, netns_swarm.py): the worker's
  engine refused with the fix, facts of the worker (generic GPU resources, labels), a GPU service that can land
  on the manager (no GPUs) found.
Services are created with 0 replicas under a unique prefix and removed at the end; nothing else is changed.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from .conftest import SAMPLE_IMAGE, ansible_playbook, audit_task
from .countproxy import CountingProxy

pytestmark = [pytest.mark.integration]


def cli_json_lines(*args):
    res = subprocess.run(["docker", *args, "--format", "{{json .}}"], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def create_services(engine, prefix, count, start=0, **kwargs):
    docker = pytest.importorskip("docker")
    for i in range(start, start + count):
        engine.services.create(SAMPLE_IMAGE, name="%s-%02d" % (prefix, i),
                               mode=docker.types.ServiceMode("replicated", replicas=0), **kwargs)


def test_facts_match_the_docker_cli(repo, tmp_path, sample_stack):
    rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task()])
    assert rc == 0, result
    assert result["changed"] is False and result["swarm"]["is_manager"] is True
    nodes = {n["id"]: n for n in result["nodes"]}
    listed = cli_json_lines("node", "ls")
    assert sorted(nodes) == sorted(n["ID"] for n in listed)
    for row in listed:
        node = nodes[row["ID"]]
        assert node["hostname"] == row["Hostname"] and node["state"] == row["Status"].lower()
        assert node["availability"] == row["Availability"].lower()
        assert node["leader"] is (row["ManagerStatus"] == "Leader") and node["engine_version"] == row["EngineVersion"]
    assert result["swarm"]["managers"] == sum(1 for r in listed if r["ManagerStatus"])
    services = {s["name"]: s for s in result["services"]}
    stack = {r["Name"]: r for r in cli_json_lines("service", "ls", "--filter", "label=com.docker.stack.namespace=sophia")}
    assert len(stack) == 28
    for name, row in stack.items():
        facts = services[name]
        assert facts["id"].startswith(row["ID"]) and facts["mode"] == row["Mode"] and facts["image"] == row["Image"]
        assert "%d/%d" % (facts["replicas_running"], facts["replicas_desired"]) == row["Replicas"]
        assert facts["stack"] == "sophia"
    assert result["summary"]["nodes"] == len(listed) and result["api_calls"] == 6


def test_a_service_created_without_healthcheck_is_found(repo, tmp_path, sample_stack, prefix):
    docker = pytest.importorskip("docker")
    sample_stack.services.create(SAMPLE_IMAGE, name=prefix + "-nohc",
                                 mode=docker.types.ServiceMode("replicated", replicas=0))
    sample_stack.services.create(SAMPLE_IMAGE, name=prefix + "-nohc-minor",
                                 mode=docker.types.ServiceMode("replicated", replicas=0),
                                 labels={"sophia.ai/criticality": "non-critical"})
    rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task()])
    assert rc == 0, result
    found = {f["service"]: f for f in result["findings"] if f["check"] == "no_healthcheck"}
    assert found[prefix + "-nohc"]["severity"] == "error"          # no label: critical
    assert found[prefix + "-nohc-minor"]["severity"] == "warning"
    assert "%s-nohc (critical) has no health check" % prefix in found[prefix + "-nohc"]["msg"]
    mine = next(s for s in result["services"] if s["name"] == prefix + "-nohc")
    assert mine["healthcheck"] is None and mine["replicas"] == 0 and mine["criticality"] == "critical"
    # the sample's services with a health check are not listed
    assert "sophia_mcp-gong" not in found


def test_report_check_mode_then_written_then_unchanged(repo, tmp_path, sample_stack):
    report_dir = tmp_path / "reports" / "phase1"
    args = {"report_dir": str(report_dir), "report_name": "before", "stacks": ["sophia"]}
    tasks = [
        dict(audit_task("checked", **args), check_mode=True, diff=True),
        {"name": "nothing written", "ansible.builtin.stat": {"path": str(report_dir)}},
        audit_task("first", **args),
        audit_task("second", **args),
    ]
    rc, (checked, stat_dir, first, second), output = ansible_playbook(repo, tmp_path, tasks)
    assert rc == 0, output["plays"][0]["tasks"]
    assert checked["changed"] is True and "would be written" in checked["msg"]
    assert checked["diff"]["after"].startswith("# Swarm audit: before")
    assert stat_dir["stat"]["exists"] is False
    assert first["changed"] is True and second["changed"] is False
    assert second["msg"].endswith("unchanged") and output["stats"]["localhost"]["changed"] == 2  # check + first
    md, js = report_dir / "before.md", report_dir / "before.json"
    assert oct(report_dir.stat().st_mode & 0o777) == "0o755"
    assert oct(md.stat().st_mode & 0o777) == oct(js.stat().st_mode & 0o777) == "0o644"
    document = json.loads(js.read_text())
    assert document["summary"]["services"] == 28 and document["report"] == "before"
    assert document["findings"] == first["findings"]
    assert "| sophia_mcp-gong | sophia | replicated |" in md.read_text()


def test_api_calls_do_not_grow_with_the_number_of_services(repo, tmp_path, sample_stack, prefix):
    runs = []
    with CountingProxy() as proxy:
        for count, start in ((5, 0), (20, 5)):
            create_services(sample_stack, prefix, count, start=start)
            proxy.reset()
            rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task(docker_host=proxy.url)])
            assert rc == 0, result
            mine = [s for s in result["services"] if s["name"].startswith(prefix)]
            runs.append((len(mine), len(result["services"]), result["api_calls"], proxy.count, list(proxy.requests)))
    (mine_5, total_5, calls_5, seen_5, requests_5), (mine_25, total_25, calls_25, seen_25, _r) = runs
    assert (mine_5, mine_25) == (5, 25) and total_25 >= total_5 + 20
    # the module's count is what the engine was sent (the proxy's independent count), and it stays the same
    assert calls_5 == seen_5 == calls_25 == seen_25 == 6
    paths = [path.split("?")[0].split("/")[-1] for _method, path in requests_5]
    assert paths == ["version", "info", "nodes", "services", "tasks", "networks"]


def test_docker_host_comes_from_the_environment(repo, tmp_path, sample_stack):
    with CountingProxy() as proxy:
        rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task()], env={"DOCKER_HOST": proxy.url})
        assert rc == 0, result
        assert proxy.count == result["api_calls"] == 6


@pytest.mark.parametrize("host", ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"])
def test_unreachable_docker_host_fails_clearly(repo, tmp_path, host):
    rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task(docker_host=host)])
    assert rc != 0 and result["failed"] is True
    assert result["msg"].startswith("Cannot connect to the Docker engine at %s: " % host)
    assert "Fix: start the Docker Engine there, or point docker_host" in result["msg"]
    assert result["docker_host"] == host and result["reason"] == "unreachable"


@pytest.fixture
def untrusted_tls_server(tmp_path):
    """A TLS server on a free local port whose self-signed certificate no CA bundle trusts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield "tcp://127.0.0.1:%d" % server.getsockname()[1]
    server.close()


def test_tls_failure_names_the_engine_and_the_fix(repo, tmp_path, untrusted_tls_server):
    rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task(docker_host=untrusted_tls_server,
                                                                          validate_certs=True, timeout=10)])
    assert rc != 0 and result["reason"] == "tls"
    assert result["msg"].startswith("TLS with the Docker engine at %s failed: " % untrusted_tls_server)
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"] and "Fix: check ca_path" in result["msg"]


def test_worker_and_standalone_engines_are_refused(repo, tmp_path, netns_swarm):
    tasks = [dict(audit_task(docker_host=netns_swarm.worker), ignore_errors=True),
             dict(audit_task(docker_host=netns_swarm.standalone), ignore_errors=True)]
    _rc, (worker, standalone), _output = ansible_playbook(repo, tmp_path, tasks)
    assert worker["failed"] is True and worker["reason"] == "not_manager"
    assert worker["msg"].startswith("The Docker engine at %s (node " % netns_swarm.worker)
    assert "is a worker: run swarm_audit against a manager (docker node ls --filter role=manager)" in worker["msg"]
    assert "%s:2377" % netns_swarm.addr("manager") in worker["msg"]
    assert standalone["failed"] is True and standalone["reason"] == "not_in_swarm"
    assert "is not in a Swarm (LocalNodeState inactive)" in standalone["msg"]


def test_two_node_swarm_facts_and_gpu_placement(repo, tmp_path, netns_swarm):
    for name, extra in (("gpu-unpinned", []), ("gpu-pinned", ["--constraint", "node.labels.gpu==true"])):
        netns_swarm.docker("manager", "service", "create", "-d", "--name", name, "--replicas", "0",
                           "--generic-resource", "NVIDIA-GPU=1", "--no-resolve-image", *extra, SAMPLE_IMAGE)
    rc, (result,), _output = ansible_playbook(repo, tmp_path, [audit_task(docker_host=netns_swarm.manager)])
    assert rc == 0, result
    assert (result["swarm"]["managers"], result["swarm"]["workers"]) == (1, 1)
    worker = next(n for n in result["nodes"] if n["role"] == "worker")
    manager = next(n for n in result["nodes"] if n["role"] == "manager")
    assert worker["id"] == netns_swarm.worker_id and worker["addr"] == netns_swarm.addr("worker")
    assert worker["generic_resources"] == {"NVIDIA-GPU": 2} and worker["labels"] == {"gpu": "true"}
    assert manager["leader"] is True and manager["generic_resources"] == {}
    (unpinned,) = [f for f in result["findings"] if f["check"] == "gpu_unpinned"]
    assert unpinned["service"] == "gpu-unpinned" and manager["id"][:12] in unpinned["msg"]
    assert {s["name"]: s["gpu"] for s in result["services"]} == {
        "gpu-unpinned": {"kinds": {"NVIDIA-GPU": 1}}, "gpu-pinned": {"kinds": {"NVIDIA-GPU": 1}}}
    assert result["api_calls"] == 6 and os.path.exists(netns_swarm.manager[len("unix://"):])
