# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""swarm_service_update and role swarm_stabilize on the host engine's real single-node Swarm (the quick default).

Each test module deploys its own small stack from the sample MCP image (no published ports, so nothing clashes with
the lab's stack) and removes it at the end. Health checks and update monitors are short so that rollouts take
seconds; the multi-node tests (tests/integration/swarm/) run the role with its defaults on the sample stack.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from ..traffic.frontdoor import run_playbook, task_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = "sophia-platform/mcp-server:lab"
FAST = {
    "swarm_stabilize_healthcheck": {"test": ["CMD", "mcp-healthcheck"], "interval": "2s", "timeout": "3s",
                                    "retries": 3, "start_period": "5s"},
    "swarm_stabilize_class_defaults": {
        klass: {"limits": {"cpus": 0.5, "memory": "256M"}, "reservations": {"cpus": 0.01, "memory": "32M"},
                "restart_policy": {"condition": "any", "delay": "2s", "max_attempts": 0},
                "update_config": {"parallelism": 1, "delay": "1s", "failure_action": "rollback", "monitor": "4s",
                                  "order": "stop-first"},
                "rollback_config": {"parallelism": 1, "failure_action": "pause", "monitor": "4s",
                                    "order": "stop-first"}}
        for klass in ("gpu", "critical", "non_critical")},
    "swarm_stabilize_label_gpu_nodes": False,
    "swarm_stabilize_wait_timeout": 120,
}


def compose(stack):
    return f"""version: "3.8"
services:
  plain:
    image: {IMAGE}
    environment: {{MCP_SERVER_NAME: {stack}-plain, MCP_PORT: "9961", KEEP_ME: "yes"}}
    deploy:
      endpoint_mode: dnsrr
      labels: {{sophia.ai/criticality: non-critical}}
  kept:
    image: {IMAGE}
    environment: {{MCP_SERVER_NAME: {stack}-kept, MCP_PORT: "9962"}}
    healthcheck: {{test: [CMD, mcp-healthcheck], interval: 3s, timeout: 2s, retries: 3, start_period: 5s}}
    deploy:
      endpoint_mode: dnsrr
      resources: {{limits: {{cpus: "0.25", memory: 128M}}}}
      update_config: {{failure_action: rollback, monitor: 4s}}
      restart_policy: {{condition: any, delay: 2s}}
"""


def wait_running(engine, stack, count, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services = engine.services.list(filters={"label": f"com.docker.stack.namespace={stack}"})
        running = [s for s in services if any(t["Status"]["State"] == "running" and t["DesiredState"] == "running"
                                              for t in s.tasks())]
        if len(services) == count and len(running) == count:
            return services
        time.sleep(2)
    raise AssertionError(f"stack {stack} did not run {count} services in {timeout}s")


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    name = f"stab{uuid.uuid4().hex[:6]}"
    path = tmp_path_factory.mktemp("stack") / "stack.yml"
    path.write_text(compose(name))
    subprocess.run(["docker", "stack", "deploy", "-c", str(path), name], check=True, capture_output=True)
    try:
        wait_running(engine, name, 2)
        yield name
    finally:
        subprocess.run(["docker", "stack", "rm", name], check=False, capture_output=True)


def spec(engine, name):
    service = engine.services.get(name)
    return service.attrs["Spec"], service.attrs["Version"]["Index"]


def role_play(stack, **more):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Stabilise", "ansible.builtin.include_role": {"name": "sophia_ai.platform.swarm_stabilize"},
         "vars": {"swarm_stabilize_stack": stack, **FAST, **more}},
        {"name": "Result", "ansible.builtin.debug": {"var": "swarm_stabilize_result"}}]}]


def result_of(out):
    return task_results(out, "Result")[-1]["swarm_stabilize_result"]


def test_check_mode_says_what_would_change_and_changes_nothing(engine, stack, tmp_path):
    before = {s: spec(engine, f"{stack}_{s}") for s in ("plain", "kept")}
    rc, out = run_playbook(tmp_path, role_play(stack), check=True, diff=True)
    assert rc == 0, out["stderr"][-2000:]
    result = result_of(out)
    assert result["changed"] == [f"{stack}_plain", f"{stack}_kept"] or set(result["changed"]) == {
        f"{stack}_plain", f"{stack}_kept"}
    plain = {c["path"] for c in result["planned"][f"{stack}_plain"]}
    assert {"healthcheck.test", "limits.cpus", "limits.memory", "update_config.failure_action"} <= plain
    kept = {c["path"] for c in result["planned"][f"{stack}_kept"]}
    assert not any(p.startswith("healthcheck") for p in kept), "a health check the service has is kept"
    assert "limits.cpus" not in kept and "limits.memory" not in kept
    assert {s: spec(engine, f"{stack}_{s}") for s in ("plain", "kept")} == before, "check mode changed a service"


def test_converge_then_a_second_run_changes_nothing(engine, stack, tmp_path):
    rc, out = run_playbook(tmp_path, role_play(stack), timeout=600)
    assert rc == 0, out["stderr"][-2000:]
    result = result_of(out)
    assert set(result["changed"]) == {f"{stack}_plain", f"{stack}_kept"} and result["failed"] == []
    plain = spec(engine, f"{stack}_plain")[0]
    container = plain["TaskTemplate"]["ContainerSpec"]
    assert container["Healthcheck"]["Test"] == ["CMD", "mcp-healthcheck"]
    assert plain["TaskTemplate"]["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 268435456}
    assert plain["UpdateConfig"]["FailureAction"] == "rollback"
    assert "KEEP_ME=yes" in container["Env"], "what the role does not manage stays"
    kept = spec(engine, f"{stack}_kept")[0]
    assert kept["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Interval"] == 3_000_000_000
    assert kept["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 128 * 1024 * 1024
    # Every task healthy (running means its health check passed) after the role.
    wait_running(engine, stack, 2, timeout=5)
    versions = {s: spec(engine, f"{stack}_{s}")[1] for s in ("plain", "kept")}
    rc, out = run_playbook(tmp_path, role_play(stack))
    assert rc == 0, out["stderr"][-2000:]
    assert out["stats"]["localhost"]["changed"] == 0
    assert set(result_of(out)["unchanged"]) == {f"{stack}_plain", f"{stack}_kept"}
    assert {s: spec(engine, f"{stack}_{s}")[1] for s in ("plain", "kept")} == versions, "a service was updated"


def test_an_unknown_service_fails_before_anything_changes(engine, stack, tmp_path):
    versions = {s: spec(engine, f"{stack}_{s}")[1] for s in ("plain", "kept")}
    rc, out = run_playbook(tmp_path, role_play(stack, swarm_stabilize_services={"mcp-nope": {"class": "critical"}}))
    assert rc != 0
    text = str(out)
    assert "mcp-nope" in text and "not a service of the Swarm" in text and "Nothing was changed" in text
    assert {s: spec(engine, f"{stack}_{s}")[1] for s in ("plain", "kept")} == versions


def test_a_health_check_that_never_passes_rolls_back_and_is_reported(engine, stack, tmp_path):
    """on_failure continue: the failed service is back on its previous spec, the role goes on and says so;
    on_failure stop: the role fails naming the service."""
    before = spec(engine, f"{stack}_kept")[0]
    never = {"kept": {"healthcheck": {"test": "exit 1", "interval": "1s", "timeout": "1s", "retries": 1,
                                      "start_period": "0s"}, "enforce": ["healthcheck"]}}
    rc, out = run_playbook(tmp_path, role_play(stack, swarm_stabilize_services=never), timeout=600)
    assert rc == 0, out["stderr"][-2000:]
    result = result_of(out)
    assert [f["service"] for f in result["failed"]] == [f"{stack}_kept"]
    assert result["failed"][0]["state"] == "rolled_back"
    assert "unhealthy" in result["failed"][0]["detail"] or "rollback" in result["failed"][0]["detail"]
    after = spec(engine, f"{stack}_kept")[0]
    assert after["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == before["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    wait_running(engine, stack, 2, timeout=60)
    rc, out = run_playbook(tmp_path, role_play(stack, swarm_stabilize_services=never,
                                               swarm_stabilize_on_failure="stop"), timeout=600)
    assert rc != 0
    assert f"{stack}_kept did not converge" in str(out) and "rolled_back" in str(out)


def test_module_errors_name_the_host_and_the_fix(tmp_path):
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Missing", "sophia_ai.platform.swarm_service_update": {"name": "no-such-service-xyz",
                                                                        "limits": {"cpus": 1}},
         "ignore_errors": True},
        {"name": "Unreachable", "sophia_ai.platform.swarm_service_update": {
            "name": "x", "docker_host": "unix:///nonexistent/docker.sock", "limits": {"cpus": 1}},
         "ignore_errors": True},
        {"name": "Bad value", "sophia_ai.platform.swarm_service_update": {
            "name": "x", "limits": {"memory": "lots"}}, "ignore_errors": True}]}]
    rc, out = run_playbook(tmp_path, plays)
    assert rc == 0
    missing = task_results(out, "Missing")[0]
    assert missing["failed"] and "does not exist" in missing["msg"] and missing["reason"] == "service_missing"
    unreachable = task_results(out, "Unreachable")[0]
    assert unreachable["failed"] and "unix:///nonexistent/docker.sock" in unreachable["msg"]
    bad = task_results(out, "Bad value")[0]
    assert bad["failed"] and "limits.memory" in bad["msg"]
