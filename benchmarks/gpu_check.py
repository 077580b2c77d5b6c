#!/usr/bin/env python3
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: gpu_node_check cluster mode over 10, 100 and 1,000 kwok GPU nodes in the lab cluster.

Brings the lab cluster up (or reuses it) with scripts/lab-cluster.sh, sets the kwok GPU node count for each
size, and times the module's work as ansible runs it:

- ``seconds``: the module_utils entry point main() calls (``connect`` + ``run_cluster_check``: kubeconfig,
  one paginated list per kind, the summary and the checks) in this process, median of ``--repeat`` runs;
- the same through ``ansible-playbook`` (the task's own duration from the json callback, which adds the
  AnsiballZ start, a fresh Python and the kubernetes SDK import, and the playbook's wall time), printed above.

The gpu=true nodes are the N kwok nodes plus the lab's real node. API calls are counted at the HTTP layer.
The last line is one JSON object: {"runs": [{"nodes": N, "seconds": S, "api_calls": C}, ...]}. The lab is left
with 8 kwok GPU nodes (what the tests expect).

Usage: make bench-gpu, or .venv/bin/python benchmarks/gpu_check.py [--sizes 10,100,1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "scripts" / "lab-cluster.sh"
LEAVE_NODES = 8
TARGET_CALLS, TARGET_SECONDS = 10, 2.0

for entry in filter(None, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

# pylint: disable=wrong-import-position
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.module_utils._gpu_cluster import run_cluster_check  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.modules.gpu_node_check import argument_spec  # noqa: E402


def log(msg: str) -> None:
    print(msg, flush=True)


def lab(*args: str) -> str:
    """Run scripts/lab-cluster.sh; retried a few times while another user restarts the lab."""
    for attempt in range(5):
        res = subprocess.run([str(LAB), *args], capture_output=True, text=True, timeout=900, check=False)
        if res.returncode == 0:
            return res.stdout
        if attempt == 4:
            raise SystemExit(f"scripts/lab-cluster.sh {' '.join(args)} failed:\n{res.stderr[-3000:]}")
        log(f"  lab-cluster.sh {' '.join(args)} failed (try {attempt + 1}); retrying in 10 s")
        time.sleep(10)
    raise AssertionError("not reached")


def bring_up(nodes: int) -> str:
    status = subprocess.run([str(LAB), "status"], capture_output=True, text=True, check=False)
    if status.returncode == 0:
        log("lab cluster: running, reused")
        lab("nodes", str(nodes))
        out = status.stdout
    else:
        log("lab cluster: starting (scripts/lab-cluster.sh up)")
        out = lab("up", "--gpu-nodes", str(nodes))
    return out.strip().splitlines()[-1].split("=", 1)[1]


def params(kubeconfig: str) -> dict:
    values = {name: spec.get("default") for name, spec in argument_spec().items()}
    values.update(mode="cluster", kubeconfig=kubeconfig)
    return values


def one_run(kubeconfig: str) -> tuple[float, dict, list]:
    for attempt in range(30):
        start = time.perf_counter()
        client = connect(params(kubeconfig))
        try:
            result = run_cluster_check(params(kubeconfig), client)
            return time.perf_counter() - start, result, list(client.requests)
        except ApiError as exc:
            if "could not reach" not in str(exc) or attempt == 29:
                raise
            time.sleep(2)  # the shared lab's API server is restarting
        finally:
            client.close()
    raise AssertionError("not reached")


def through_ansible(kubeconfig: str, workdir: Path) -> tuple[float, float, dict]:
    play = workdir / "gpu_check.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "gpu_node_check", "sophia_ai.platform.gpu_node_check": {"mode": "cluster", "kubeconfig": kubeconfig}}]}]))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    start = time.perf_counter()
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    task = json.loads(res.stdout)["plays"][0]["tasks"][0]
    times = task["task"]["duration"]
    task_seconds = (datetime.fromisoformat(times["end"].replace("Z", "+00:00"))
                    - datetime.fromisoformat(times["start"].replace("Z", "+00:00"))).total_seconds()
    return task_seconds, wall, task["hosts"]["localhost"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="kwok GPU node counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="in-process runs per size (the median is reported)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    kubeconfig = bring_up(sizes[0])
    runs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size in sizes:
                times, result, requests = [], None, []
                for _attempt in range(3):
                    lab("nodes", str(size))
                    times = []
                    for _ in range(args.repeat):
                        seconds, result, requests = one_run(kubeconfig)
                        times.append(seconds)
                    if result["totals"]["gpu_nodes"] > size:  # the kwok nodes plus the lab's real node
                        break
                    log(f"  the shared lab has {result['totals']['gpu_nodes']} GPU nodes, not {size}+1 (someone "
                        "reset it): again")
                else:
                    raise SystemExit(f"the lab did not keep {size} kwok GPU nodes long enough to measure")
                calls = result["api_calls"]
                median = statistics.median(times)
                log(f"{size:>5} kwok GPU nodes ({result['totals']['gpu_nodes']} gpu=true nodes, "
                    f"{result['totals']['allocatable']} GPUs): entry point {median:.3f} s median of "
                    f"{' / '.join(f'{t:.3f}' for t in times)} s, {calls} API calls "
                    f"({describe(requests)})")
                task_seconds, wall, task = through_ansible(kubeconfig, Path(tmp))
                log(f"{'':>5} through ansible-playbook: task {task_seconds:.3f} s (fresh Python, SDK import, "
                    f"AnsiballZ), playbook wall {wall:.3f} s, {task['api_calls']} API calls")
                runs.append({"nodes": size, "seconds": round(median, 4), "api_calls": calls})
    finally:
        log(f"leaving the lab with {LEAVE_NODES} kwok GPU nodes")
        lab("nodes", str(LEAVE_NODES))
    worst = max(runs, key=lambda run: run["nodes"])
    verdict = "met" if worst["api_calls"] <= TARGET_CALLS and worst["seconds"] < TARGET_SECONDS else "NOT met"
    log(f"target (<= {TARGET_CALLS} API calls, < {TARGET_SECONDS:g} s over {worst['nodes']} nodes): {verdict}")
    print(json.dumps({"runs": runs}), flush=True)
    return 0 if verdict == "met" else 1


def describe(requests: list) -> str:
    """'GET /api/v1/nodes x3, ...': the requests of one run, grouped by path."""
    counts: dict = {}
    for request in requests:
        path = request.split("?")[0]
        counts[path] = counts.get(path, 0) + 1
    return ", ".join(f"{path} x{count}" for path, count in counts.items())


if __name__ == "__main__":
    sys.exit(main())
