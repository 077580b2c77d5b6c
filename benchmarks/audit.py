#!/usr/bin/env python3
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sophia_ai.platform.swarm_audit on the 28-service sample stack and a ten-times stack (280 services).

What it brings up on the host engine (the single-node lab Swarm): the sample stack ``sophia`` when it is missing
(with make lab's playbook, which it keeps), and a stack ``sophia-x10`` of 280 services: every sample service ten
times, named ``<service>-<i>`` (i = 0..9), scaled to 0 replicas (the audit reads specs; 280 running containers
would not fit this machine), their host-mode published ports moved to ``port + 100 * (i + 1)`` (9101..10028) so
that they clash neither with each other nor with the sample stack and the audit's findings are the real ones, not
280 port clashes. ``sophia-x10`` is removed at the end (``docker stack rm``), also after a failure.

For each stack, in this process, ``--repeat`` times: the audit through the module_utils layer exactly as the
module runs it (``_swarm_audit.run_audit`` with ``_docker_client.connect``: connect and negotiate the API version,
read, build facts and findings; ``stacks: [<stack>]``; no report written) straight to the engine's socket, wall
time; the median is reported. One more run goes through a counting proxy in front of the engine's socket
(tests/integration/swarm_audit/countproxy.py): the API calls the client counted at the HTTP layer must equal the
requests the proxy saw, and be the same in every run.

The reference does the same reading the way a person does with the docker CLI, ``--cli-repeat`` times:
``docker node ls -q`` + ``docker node inspect <all>``, ``docker service ls -q --filter label=...`` +
``docker service inspect <all>``, and ``docker service ps <service>`` for each service; wall time straight to the
engine (median), then one more pass through the proxy for its HTTP requests. Ratio = CLI seconds / audit seconds.

Targets (issue #6): the audit of the 28-service stack under 2 s; API calls constant in the number of services.
The last line is one JSON object: {"runs": [{"services": 28, "seconds": S, "api_calls": C}, {"services": 280,
...}], "cli": [...], "ratio_28", "ratio_280", "scale_280", "api_calls_constant", "target_s", "engine", ...}.

Usage: make bench-audit, or .venv/bin/python benchmarks/audit.py [--repeat 5] [--cli-repeat 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import _env  # benchmarks/_env.py (this directory is on sys.path when a benchmark runs)
from _env import cache_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sophia-mcp-stack.yml"
STACK, STACK_X10 = "sophia", "sophia-x10"
TARGET_S = 2.0


def environment():
    env = _env.environment()
    for entry in filter(None, env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    return env


def counting_proxy():
    path = REPO / "tests" / "integration" / "swarm_audit" / "countproxy.py"
    spec = importlib.util.spec_from_file_location("countproxy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CountingProxy


def docker(*args, env=None, check=True):
    res = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, check=False)
    if check and res.returncode != 0:
        sys.exit("docker %s failed: %s" % (" ".join(args[:3]), res.stderr[-2000:]))
    return res


def stack_services(name):
    res = docker("service", "ls", "-q", "--filter", "label=com.docker.stack.namespace=%s" % name, check=False)
    return res.stdout.split() if res.returncode == 0 else []


def ensure_sample(env):
    if len(stack_services(STACK)) >= 28:
        return "present"
    print("stack %s is missing: bringing it up with make lab's playbook" % STACK, flush=True)
    res = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/lab.yml"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("the lab playbook failed: %s" % res.stdout[-3000:])
    return "deployed"


def ten_times(work):
    """The 280-service stack file: every sample service ten times, 0 replicas, ports of its own."""
    stack = yaml.safe_load(SAMPLE.read_text())
    services = {}
    for copy in range(10):
        for name, svc in stack["services"].items():
            svc = json.loads(json.dumps(svc))
            new = "%s-%d" % (name, copy)
            port = int(svc["environment"]["MCP_PORT"]) + 100 * (copy + 1)
            svc["environment"].update(MCP_SERVER_NAME=new, MCP_PORT=str(port))
            svc["ports"] = [dict(p, target=port, published=port) for p in svc["ports"]]
            svc["deploy"]["replicas"] = 0
            services[new] = svc
    stack["services"] = services
    shutil.copytree(SAMPLE.parent / "config", work / "config")
    path = work / "stack-x10.yml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return path


def deploy_x10(work):
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "MCP_IMAGE_TAG"}  # the image's :lab tag
    docker("stack", "deploy", "--resolve-image", "never", "-c", str(ten_times(work)), STACK_X10, env=env)
    deadline = time.monotonic() + 600
    while len(stack_services(STACK_X10)) < 280:
        if time.monotonic() > deadline:
            sys.exit("stack %s did not reach 280 services" % STACK_X10)
        time.sleep(1)
    return time.monotonic() - started


def remove_x10():
    if not stack_services(STACK_X10):
        return
    docker("stack", "rm", STACK_X10, check=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        networks = docker("network", "ls", "-q", "--filter", "label=com.docker.stack.namespace=%s" % STACK_X10,
                          check=False).stdout.split()
        if not stack_services(STACK_X10) and not networks:
            return
        time.sleep(1)
    print("warning: stack %s is not fully removed yet" % STACK_X10)


def audit_once(params):
    # pylint: disable=import-outside-toplevel
    from ansible_collections.sophia_ai.platform.plugins.module_utils._docker_client import connect
    from ansible_collections.sophia_ai.platform.plugins.module_utils._swarm_audit import run_audit

    started = time.perf_counter()
    result = run_audit(params, connect)
    return time.perf_counter() - started, result


def time_audit(stacks, repeat, proxy):
    """Median wall time of ``repeat`` audits straight to the engine, then one through the counting proxy."""
    params = {"docker_host": "unix:///var/run/docker.sock", "stacks": stacks}
    runs = [audit_once(params) for _attempt in range(repeat)]
    calls = {result["api_calls"] for _seconds, result in runs}
    proxy.reset()
    _seconds, counted = audit_once(dict(params, docker_host=proxy.url))
    if calls != {counted["api_calls"]} or counted["api_calls"] != proxy.count:
        sys.exit("api_calls differ between runs or from the proxy's count: %s, %s, proxy %d"
                 % (calls, counted["api_calls"], proxy.count))
    times = [seconds for seconds, _result in runs]
    return statistics.median(times), counted["api_calls"], runs[-1][1], times


def cli_pass(stack, env):
    nodes = docker("node", "ls", "-q", env=env).stdout.split()
    docker("node", "inspect", *nodes, env=env)
    services = docker("service", "ls", "-q", "--filter", "label=com.docker.stack.namespace=%s" % stack,
                      env=env).stdout.split()
    docker("service", "inspect", *services, env=env)
    for service in services:
        docker("service", "ps", "--no-trunc", service, env=env)
    return len(services)


def time_cli(stack, repeat, proxy):
    """Median wall time of ``repeat`` CLI passes straight to the engine, then one pass counted by the proxy."""
    direct = dict(os.environ, DOCKER_HOST="unix:///var/run/docker.sock")
    times, count = [], 0
    for _attempt in range(repeat):
        started = time.perf_counter()
        count = cli_pass(stack, direct)
        times.append(time.perf_counter() - started)
    proxy.reset()
    cli_pass(stack, dict(os.environ, DOCKER_HOST=proxy.url))
    return statistics.median(times), proxy.count, count, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="audit runs per stack (median)")
    parser.add_argument("--cli-repeat", type=int, default=1, help="docker CLI reference runs per stack (median)")
    args = parser.parse_args()
    env = environment()
    if shutil.which("docker") is None:
        sys.exit("docker (the CLI) is not on PATH: run `make setup` first")
    sample_state = ensure_sample(env)
    engine = docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    proxy_class = counting_proxy()
    summary = {"runs": [], "cli": []}
    try:
        deploy_s = deploy_x10(work)
        print("engine %s; stack %s %s; stack %s (280 services, 0 replicas) deployed in %.1f s"
              % (engine, STACK, sample_state, STACK_X10, deploy_s), flush=True)
        with proxy_class() as proxy:
            for stack in (STACK, STACK_X10):
                seconds, calls, result, times = time_audit([stack], args.repeat, proxy)
                services = result["summary"]["services"]
                cli_s, cli_calls, cli_services, cli_times = time_cli(stack, args.cli_repeat, proxy)
                if cli_services != services:
                    sys.exit("the CLI saw %d services of %s, the audit %d" % (cli_services, stack, services))
                summary["runs"].append({"services": services, "seconds": round(seconds, 4), "api_calls": calls,
                                        "findings": result["summary"]["findings"]})
                summary["cli"].append({"services": services, "seconds": round(cli_s, 3), "api_calls": int(cli_calls)})
                print("%3d services (%s): audit %.3f s, %d API calls, %d findings (runs %s) | docker CLI %.2f s, "
                      "%d API calls (runs %s) | CLI / audit: %.0fx the time, %.0fx the calls"
                      % (services, stack, seconds, calls, result["summary"]["findings"],
                         [round(t, 3) for t in times], cli_s, cli_calls, [round(t, 2) for t in cli_times],
                         cli_s / seconds, cli_calls / calls), flush=True)
            whole_s, whole_calls, whole, _times = time_audit([], args.repeat, proxy)
    finally:
        remove_x10()
        shutil.rmtree(work, ignore_errors=True)
    (small, large), (cli_small, cli_large) = summary["runs"], summary["cli"]
    summary.update({
        "ratio_28": round(cli_small["seconds"] / small["seconds"], 1),
        "ratio_280": round(cli_large["seconds"] / large["seconds"], 1),
        "scale_280": round(large["seconds"] / small["seconds"], 2),
        "api_calls_constant": small["api_calls"] == large["api_calls"],
        "whole_swarm": {"services": whole["summary"]["services"], "seconds": round(whole_s, 4),
                        "api_calls": whole_calls},
        "target_s": TARGET_S, "engine": engine, "deploy_x10_s": round(deploy_s, 1),
        "repeat": args.repeat, "cli_repeat": args.cli_repeat,
    })
    print("whole Swarm (every stack, %d services): audit %.3f s, %d API calls"
          % (whole["summary"]["services"], whole_s, whole_calls))
    print("targets: 28 services under %.0f s: %.3f s (%s); API calls constant in services: %d and %d (%s)" % (
        TARGET_S, small["seconds"], "met" if small["seconds"] < TARGET_S else "MISSED", small["api_calls"],
        large["api_calls"], "met" if summary["api_calls_constant"] else "MISSED"))
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
