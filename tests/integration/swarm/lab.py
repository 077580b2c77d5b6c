"""The multi-node Swarm lab for tests: start it (or reuse it) with scripts/swarm-lab.sh and describe it.

Plain functions, so that other test directories (the swarm_stabilize tests, the molecule scenario) use the same
lab: ``from ..swarm.lab import swarm_lab`` inside tests/integration, or run this file
(``python tests/integration/swarm/lab.py [--no-stack]``), which prints the description as one JSON object.
Standard library and the docker CLI only. Nothing here tears the lab down: ``scripts/swarm-lab.sh down``
(``make lab-down``) does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NODE_PREFIX = "sophia-swarm-"
UP_TIMEOUT_S = 1200


@dataclass(frozen=True)
class SwarmLab:
    """What a test needs to reach the lab; every URL is a unix socket on this machine (root only)."""

    docker_host: str
    worker_hosts: list[str]
    gpu_worker: str
    node_ips: dict[str, str]
    stack: str
    # node hostname -> that node's own engine (a DOCKER_HOST URL)
    hosts: dict[str, str] = field(default_factory=dict)
    up_output: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def swarm_lab_script(repo: Path, *args: str, timeout: float = UP_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run scripts/swarm-lab.sh with ARGS; fails with the script's own error text."""
    res = subprocess.run(
        [str(repo / "scripts" / "swarm-lab.sh"), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if res.returncode != 0:
        raise AssertionError(f"scripts/swarm-lab.sh {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return res


def docker_json(host: str, *args: str):
    res = subprocess.run(["docker", "-H", host, *args], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(res.stdout)


def describe(docker_host: str, stack: str = "sophia", up_output: str = "") -> SwarmLab:
    """Read the lab's nodes from its manager: addresses, roles, the GPU node, each node's socket."""
    state = Path(docker_host.removeprefix("unix://")).parent.parent
    ids = subprocess.run(
        ["docker", "-H", docker_host, "node", "ls", "-q"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    nodes = docker_json(docker_host, "node", "inspect", *ids)
    hosts, ips, workers, gpu = {}, {}, [], []
    for node in nodes:
        name = node["Description"]["Hostname"]
        url = f"unix://{state / name.removeprefix(NODE_PREFIX) / 'docker.sock'}"
        hosts[name] = url
        ips[name] = node["Status"]["Addr"]
        if node["Spec"]["Role"] == "worker":
            workers.append(url)
        if (node["Spec"].get("Labels") or {}).get("gpu") == "true":
            gpu.append(name)
    if len(gpu) != 1:
        raise AssertionError(f"the Swarm lab should have exactly one node labelled gpu=true, not {gpu}")
    return SwarmLab(
        docker_host=docker_host,
        worker_hosts=sorted(workers),
        gpu_worker=gpu[0],
        node_ips=dict(sorted(ips.items())),
        stack=stack,
        hosts=dict(sorted(hosts.items())),
        up_output=up_output,
    )


def swarm_lab(repo: Path = REPO, *, stack: bool = True) -> SwarmLab:
    """Start the lab, or reuse the running one (a warm ``up`` takes a second or two), and describe it."""
    res = swarm_lab_script(repo, "up", *([] if stack else ["--no-stack"]))
    last = res.stdout.strip().splitlines()[-1]
    if not last.startswith("DOCKER_HOST=unix://"):
        raise AssertionError(f"scripts/swarm-lab.sh up did not end with DOCKER_HOST=...: {last!r}")
    return describe(last.split("=", 1)[1], up_output=res.stdout + res.stderr)


def wait_for(predicate, timeout: float = 120.0, interval: float = 1.0, what: str = "condition"):
    """Poll PREDICATE until it returns something true; fail with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


if __name__ == "__main__":
    LAB = swarm_lab(stack="--no-stack" not in sys.argv[1:])
    print(json.dumps({k: v for k, v in LAB.as_dict().items() if k != "up_output"}))
