# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/phase1.yml and role swarm_stabilize on the multi-node Swarm lab (a manager and two workers, Docker in
Docker; scripts/swarm-lab.sh), with the front door (HAProxy) and the traffic recorder for real.

Each test deploys its own small stack on the lab (the 28-service sample stack is left to `make phase1`, whose figures
the issue's closing note gives): ``web`` on every node (global mode, three tasks: host-mode port), ``api`` (one replica, has a
health check), ``gpu`` (reserves an NVIDIA-GPU, no placement constraint). Health checks and update monitors are short
so that rollouts take seconds. The front door and the recorder run on their own ports and files under tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ..swarm.lab import swarm_lab, swarm_lab_script, wait_for
from ..traffic.frontdoor import run_playbook, task_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
FAST_CLASS = {"limits": {"cpus": 0.5, "memory": "256M"}, "reservations": {"cpus": 0.02, "memory": "32M"},
              "restart_policy": {"condition": "any", "delay": "2s", "max_attempts": 0},
              "update_config": {"parallelism": 1, "delay": "1s", "failure_action": "rollback", "monitor": "4s",
                                "order": "stop-first"},
              "rollback_config": {"parallelism": 1, "failure_action": "pause", "monitor": "4s",
                                  "order": "stop-first"}}
FAST = {"swarm_stabilize_healthcheck": {"test": ["CMD", "mcp-healthcheck"], "interval": "2s", "timeout": "3s",
                                        "retries": 3, "start_period": "5s"},
        "swarm_stabilize_class_defaults": {
            **{k: FAST_CLASS for k in ("critical", "non_critical")},
            # as the role's defaults: a GPU service updates start-first where the GPU node has room (8 GPUs here)
            "gpu": {**FAST_CLASS, "update_config": {**FAST_CLASS["update_config"], "order": "start-first"},
                    "rollback_config": {**FAST_CLASS["rollback_config"], "order": "start-first"}}},
        "swarm_stabilize_wait_timeout": 150}


def stack_file(path, name, base_port):
    tag = (Path(os.environ.get("SOPHIA_CACHE", Path.home() / ".cache/sophia-platform")) / "images" /
           "mcp-server.current").read_text().strip().split(":")[-1]
    image = f"sophia-platform/mcp-server:{tag}"
    services = {
        # web runs a task on every node (global: three, one per node), so the GPU node always holds another task
        # of the stack's network beside gpu's: a GPU task alone in its network on a node can be rejected over and
        # over by Swarm's constraint enforcer (the node's network attachment comes and goes with it; see
        # _swarm_service.ENFORCER_REJECTION and swarm_audit's gpu_network_alone).
        "web": {"global": True, "labels": {"sophia.ai/criticality": "non-critical"}},
        "api": {"replicas": 1, "healthcheck": True},
        "gpu": {"replicas": 1, "gpu": True},
    }
    out = {"version": "3.8", "services": {}}
    for i, (svc, opts) in enumerate(services.items()):
        port = base_port + i
        spec = {"image": image, "environment": {"MCP_SERVER_NAME": f"{name}-{svc}", "MCP_PORT": str(port)},
                "ports": [{"target": port, "published": port, "protocol": "tcp", "mode": "host"}],
                "deploy": {"endpoint_mode": "dnsrr", "labels": opts.get("labels", {})}}
        if opts.get("global"):
            spec["deploy"]["mode"] = "global"
        else:
            spec["deploy"]["replicas"] = opts["replicas"]
        if opts.get("healthcheck"):
            spec["healthcheck"] = {"test": ["CMD", "mcp-healthcheck"], "interval": "3s", "timeout": "2s",
                                   "retries": 3, "start_period": "5s"}
        if opts.get("gpu"):
            spec["deploy"]["resources"] = {"reservations": {"generic_resources": [
                {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}]}}
        out["services"][svc] = spec
    path.write_text(yaml.safe_dump(out, sort_keys=False))
    return path


def docker(lab_host, *args, check=True, timeout=120):
    return subprocess.run(["docker", "-H", lab_host, *args], capture_output=True, text=True, timeout=timeout,
                          check=check)


def running_tasks(lab_host, stack):
    out = docker(lab_host, "stack", "ps", stack, "--filter", "desired-state=running", "--format",
                 "{{.Name}} {{.CurrentState}} {{.Node}}").stdout.split("\n")
    return [line for line in out if " Running " in f" {line} "]


@pytest.fixture(scope="module")
def lab():
    return swarm_lab(REPO, stack=False)  # the nodes; each test deploys a stack of its own


@pytest.fixture
def small_stack(lab, tmp_path):
    name = f"p1{uuid.uuid4().hex[:5]}"
    base_port = 9300 + (int(uuid.uuid4().hex[:4], 16) % 60) * 10
    path = stack_file(tmp_path / "stack.yml", name, base_port)
    docker(lab.docker_host, "stack", "deploy", "--resolve-image", "never", "-c", str(path), name)
    try:
        wait_for(lambda: len(running_tasks(lab.docker_host, name)) >= 5, timeout=180, what=f"stack {name} running")
        yield name
    finally:
        docker(lab.docker_host, "stack", "rm", name, check=False)


def phase1(lab, stack, tmp_path, offset, *extra, timeout=900):
    extra_vars = tmp_path / "vars.yml"
    extra_vars.write_text(yaml.safe_dump({
        **FAST, "phase1_docker_host": lab.docker_host, "phase1_stack": stack,
        "phase1_report_dir": str(tmp_path / "report"), "phase1_front_door_port_offset": offset,
        "lab_front_door_dir": str(tmp_path / "front-door"), "phase1_traffic_rate": 10}))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/phase1.yml",
                          "-e", f"@{extra_vars}", *extra], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout, env=env, check=False)
    return res


def rollout_window(docker_host, service):
    """The service's last update, from the engine: (started, completed) as ISO times to the second."""
    status = json.loads(docker(docker_host, "service", "inspect", service).stdout)[0]["UpdateStatus"]
    return status["StartedAt"][:19], status["CompletedAt"][:19]


def failed_requests(recording, suffix):
    """(time to the second, outcome) of every failed request of the service whose name ends with SUFFIX."""
    out = []
    with open(recording, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kind") == "request" and record["service"].endswith(suffix) and record["outcome"] != "ok":
                out.append((record["ts"][:19], record["outcome"]))
    return out


def stop_front_door(tmp_path):
    pid_file = tmp_path / "front-door" / "haproxy.pid"
    if pid_file.exists():
        for pid in pid_file.read_text().split():
            try:
                os.kill(int(pid), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


def test_phase1_stabilises_with_no_failed_request_on_a_multi_replica_service(lab, small_stack, tmp_path):
    offset = 20000
    try:
        res = phase1(lab, small_stack, tmp_path, offset)
        assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
        report = json.loads((tmp_path / "report" / "phase1.json").read_text())
        names = {f"{small_stack}_{s}" for s in ("web", "api", "gpu")}
        assert {s["name"] for s in report["services"]} == names
        assert set(report["changed"]) == names and report["failed"] == []
        assert report["stabilised"] == 3
        for check in ("no_healthcheck", "no_limits", "no_rollback_on_failure", "gpu_unpinned"):
            assert report["findings_after"].get(check, 0) == 0, (check, report["findings_after"])
        assert report["findings_before"].get("gpu_unpinned", 0) == 1
        web = next(s for s in report["services"] if s["name"].endswith("_web"))
        assert web["replicas"] == {"desired": 3, "running": 3}
        # The recorder ran through the front door for the whole run.
        assert web["traffic"]["requests"] >= 100
        # While one of its tasks is replaced, the front door sends the service's requests to the others (health
        # checks; a failed connection marks the server down at once and is retried on another): none may fail.
        # A request fails when refused, reset, answered with an error or slower than phase 1's timeout (40 s).
        lost = failed_requests(tmp_path / "report" / "traffic.jsonl", "web")
        assert lost == [], (rollout_window(lab.docker_host, f"{small_stack}_web"), lost)
        assert report["traffic"]["multi_replica_failed"] == 0
        # api and gpu have one task each, replaced stop-first (host-mode ports): the front door held their requests
        # while no task ran, so none failed either; web kept tasks running and was not held.
        assert report["held"]["services"] == sorted(f"{small_stack}_{s}" for s in ("api", "gpu")), report["held"]
        for single in ("api", "gpu"):
            lost = failed_requests(tmp_path / "report" / "traffic.jsonl", single)
            assert lost == [], (single, rollout_window(lab.docker_host, f"{small_stack}_{single}"), lost)
            assert 0 < next(s for s in report["services"] if s["name"].endswith(single))["held_s"] < 25
        assert report["traffic"]["failed"] == 0
        assert (tmp_path / "report" / "phase1.md").read_text().startswith(f"# Phase 1 report: {small_stack}")
        assert (tmp_path / "report" / "swarm-audit-before.json").exists()
        # A second run changes no service.
        res = phase1(lab, small_stack, tmp_path, offset)
        assert res.returncode == 0, res.stdout[-4000:]
        again = json.loads((tmp_path / "report" / "phase1.json").read_text())
        assert again["changed"] == [] and again["failed"] == []
        assert {s["outcome"] for s in again["services"]} == {"none"}
        # the first run stays the last run that changed something (the migration report's figures)
        assert report["run_changed"] is True and again["run_changed"] is False
        assert json.loads((tmp_path / "report" / "phase1.changed.json").read_text()) == report
    finally:
        stop_front_door(tmp_path)


def test_a_worker_socket_is_refused_as_not_a_manager(lab, tmp_path):
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Stabilise", "ansible.builtin.include_role": {"name": "sophia_ai.platform.swarm_stabilize"},
         "vars": {"swarm_stabilize_docker_host": lab.worker_hosts[0]}}]}]
    rc, out = run_playbook(tmp_path, plays)
    assert rc != 0
    text = json.dumps(out)
    assert "is a worker" in text and "role=manager" in text


def test_a_worker_killed_while_the_role_runs_is_reported_and_services_stay_consistent(lab, small_stack, tmp_path):
    """The GPU worker's node container is stopped while the role rolls out; Swarm marks the node down. The role must
    report the services it could not converge (their tasks cannot be placed or wait on a down node), finish the
    others, and leave every service on a whole spec: either the old one or the new one, never half of each."""
    gpu_node = lab.gpu_worker  # the node's hostname is its container's name
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Stabilise", "ansible.builtin.include_role": {"name": "sophia_ai.platform.swarm_stabilize"},
         "vars": {**FAST, "swarm_stabilize_docker_host": lab.docker_host, "swarm_stabilize_stack": small_stack,
                  # a service that waits on the stopped node is reported once this passes: short, to keep CI short
                  "swarm_stabilize_wait_timeout": 30}},
        {"name": "Result", "ansible.builtin.debug": {"var": "swarm_stabilize_result"}}]}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.Popen(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(playbook)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # the audit and the first service's update are under way
        subprocess.run(["docker", "stop", "-t", "1", gpu_node], check=True, capture_output=True, timeout=60)
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["docker", "start", gpu_node], check=False, capture_output=True, timeout=60)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-2000:]
    result = task_results(json.loads(stdout), "Result")[-1]["swarm_stabilize_result"]
    failed = {f["service"]: f for f in result["failed"]}
    assert failed, f"the stopped node should have kept some service from converging: {result}"
    assert any("down" in f["detail"] or "timeout" in f["state"] or "pending" in f["detail"]
               for f in failed.values()), failed
    assert set(result["changed"]) | set(failed) | set(result["unchanged"]) == {
        f"{small_stack}_{s}" for s in ("web", "api", "gpu")}
    # Every service's spec is whole: the role's keys are all there (new spec) or none (old spec).
    for svc in ("web", "api", "gpu"):
        spec = json.loads(docker(lab.docker_host, "service", "inspect", f"{small_stack}_{svc}").stdout)[0]["Spec"]
        limits = (spec["TaskTemplate"].get("Resources") or {}).get("Limits") or {}
        failure = (spec.get("UpdateConfig") or {}).get("FailureAction")
        assert bool(limits.get("MemoryBytes")) == (failure == "rollback"), (svc, spec)
    # A node container stopped and started again rejoins Ready, but Swarm can then refuse new tasks there ("node is
    # missing network attachment"): take the lab down so that the next user starts a whole one (`up`, about 80 s).
    swarm_lab_script(REPO, "down")
