#!/usr/bin/env python3
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sophia_ai.platform.bluegreen_cutover moving one MCP service from Swarm to K3s under steady load.

What it brings up itself, and removes at the end (also after a failure, Ctrl-C or SIGTERM), with the harness of the
integration tests (tests/integration/bluegreen/lab.py, ``SwarmToK3sLab`` and ``Traffic``):

- the lab cluster (``scripts/lab-cluster.sh up --gpu-nodes 8``: reused when it runs, else started, and then stopped
  again at the end), which stands in for K3s (upstream Kubernetes built from source; see README, "Lab cluster");
- blue: a Swarm service of the sample MCP image on the host engine's single-node Swarm (``docker swarm init`` only
  when the engine is in no Swarm; then left again at the end), published on a free host port (host mode);
- green: Deployment + NodePort Service ``mcp-bgs`` in a namespace of its own on the lab cluster, 0 replicas (the
  module scales it to the Swarm service's replicas and waits for it);
- the front door: role ``sophia_ai.platform.front_door`` in its lab daemon mode (HAProxy) in a temporary directory,
  backend ``mcp-bgs`` with servers ``swarm`` (weight 100) and ``k3s`` (weight 0, at the K3s Service's ClusterIP; the
  harness's ``reachable()`` says why not its NodePort on 127.0.0.1, which phase 2 uses);
- for each case, the traffic recorder (module_utils ``_recorder`` ``start()`` / ``stop()``, as the traffic_recorder
  module runs it) at ``--rate`` requests/s (default 50) through the front door, ``tools/call echo`` on a new
  connection each, never retried, for at least ``--min-requests`` (default 1,000) requests.

Cases, each one ansible-playbook run of the module under load: ``promote`` (Swarm -> K3s, with pre-promotion checks
on the k3s server and a post-promotion MCP check through the front door), ``rollback`` (state ``rolled_back`` within
the window: back to Swarm) and ``abort`` (green made never ready - its ``/readyz`` answers 503 - so the module gives
up after ``ready_timeout`` 20 s with reason ``green_not_ready`` and keeps Swarm serving).

``switch_s``: from the start of the switch until every new request reaches the new side, from the recorder's
per-request lines (the front door's ``X-Sophia-Backend`` header says which server answered): the start is the
last reading of the backend's weights (runtime API, read every 20 ms while the case runs) that still showed the old
weights, so ``switch_s`` is an upper bound; "every new request" = the first request after which every one was
answered ``ok`` by the new side (counted from the task's start when the weights never moved). For the abort, the
time until every new request reaches Swarm again, 0 when no request was answered by K3s. ``switch_s_lower`` is the last request that did not reach the
new side (0 when none). ``module_switch_seconds`` is the module's own ``switch_seconds``.

The last line is one JSON object ``{"promote": {...}, "abort": {...}, "rollback": {...}}``, each with requests, failed,
outcomes, skipped, p50_ms, p99_ms, switch_s, switch_s_lower, module_switch_seconds, task_s (the module's task),
playbook_s, rc, reason, backends (requests per front door server), load (1-minute load average at the case's start
and end), waited_for_quiet_s (each case first waits up to 60 s for a load average of 16 or less: the machine is
shared, see the harness's ``wait_quiet()``) and target_met (failed 0, switch_s < 5 s, at least --min-requests
requests; for the abort also the reason green_not_ready). The exit status is 0 when every case meets its target,
1 when not.

Usage: make bench-cutover, or .venv/bin/python benchmarks/cutover.py [--rate 50] [--min-requests 1000] [--timeout 2]
[--save-recordings DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import _env  # benchmarks/_env.py (this directory is on sys.path when a benchmark runs)

REPO = Path(__file__).resolve().parents[1]
TARGET_SWITCH_S = 5.0


def prepare_environment() -> None:
    """What the Makefile exports, for a run without it (benchmarks/_env.py), and the collection on sys.path."""
    os.environ.setdefault("SOPHIA_CACHE", str(_env.cache_dir()))
    os.environ.update(_env.environment())
    os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "0")
    for entry in [str(REPO)] + os.environ["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)


prepare_environment()

# pylint: disable=wrong-import-position
import docker  # noqa: E402

from tests.integration.bluegreen import lab  # noqa: E402


def measure(traffic, run, target, min_requests):
    """One case's figures from the recorder's lines, the weight watcher and the module's result."""
    switch = lab.switch_to(traffic, run, target)  # as the integration tests measure it
    figures = traffic.figures()
    return {
        "requests": figures["requests"],
        "failed": figures["failed"],
        "outcomes": figures["outcomes"],
        "skipped": figures["skipped"],
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "switch_s": switch["switch_s"],
        "switch_s_lower": switch["lower_s"],
        "weights_moved": switch["switch_start"] is not None,
        "module_switch_seconds": run.result.get("switch_seconds"),
        "task_s": round(run.end - run.start, 3),
        "playbook_s": round(run.wall, 3),
        "rc": run.rc,
        "state": run.result.get("state"),
        "reason": run.result.get("reason"),
        "backends": figures["backends"],
        "rate_per_s": ((traffic.summary or {}).get("overall") or {}).get("rate_per_s"),
        "min_requests": min_requests,
        "timeout_s": traffic.timeout,
        "load": figures["load"],
        "waited_for_quiet_s": figures["waited_for_quiet_s"],
    }


def met(case, figures):
    ok = (figures["failed"] == 0 and figures["requests"] >= figures["min_requests"]
          and figures["switch_s"] is not None and figures["switch_s"] < TARGET_SWITCH_S)
    if case == "abort":
        return ok and figures["reason"] == "green_not_ready"
    return ok and figures["rc"] == 0


def run_case(setup, case, params, target, args, saved):
    with setup.traffic(case, rate=args.rate, timeout=args.timeout) as traffic:
        traffic.warmup()
        run = lab.run_cutover(setup.work, params)
        traffic.hold(after=run.end, min_requests=args.min_requests)
    if args.save_recordings:
        shutil.copyfile(traffic.out, Path(args.save_recordings) / f"cutover-{case}.jsonl")
    figures = measure(traffic, run, target, args.min_requests)
    figures["target_met"] = met(case, figures)
    saved[case] = figures
    lab.log(f"{case}: module rc {run.rc} ({run.result.get('msg', '')[:200]}); {figures['requests']} requests, "
            f"{figures['failed']} failed, p99 {figures['p99_ms']} ms, switch_s {figures['switch_s']}")
    return run


def table(results):
    head = f"{'case':<9} {'requests':>8} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'switch_s':>9} {'module s':>9} " \
           f"{'task s':>7}  {'outcome':<18} target"
    lines = [head, "-" * len(head)]
    for case in ("promote", "abort", "rollback"):
        f = results.get(case)
        if not f:
            lines.append(f"{case:<9} (not run)")
            continue
        lines.append(f"{case:<9} {f['requests']:>8} {f['failed']:>6} {str(f['p50_ms']):>8} {str(f['p99_ms']):>8} "
                     f"{str(f['switch_s']):>9} {str(f['module_switch_seconds']):>9} {f['task_s']:>7}  "
                     f"{(f['state'] or '') + ('/' + f['reason'] if f['reason'] else ''):<18} "
                     f"{'met' if f['target_met'] else 'NOT met'}")
    return "\n".join(lines)


def main() -> int:  # pylint: disable=too-many-locals
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=lab.RATE, help="recorder requests per second (default 50)")
    parser.add_argument("--min-requests", type=int, default=lab.MIN_REQUESTS, help="requests per case (default 1000)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds the recorder waits for one reply before counting it failed (default 2, the "
                             "recorder's own default)")
    parser.add_argument("--save-recordings", metavar="DIR", help="copy each case's recorder lines here")
    args = parser.parse_args()

    def terminated(signum, frame):  # pylint: disable=unused-argument
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    load_start = os.getloadavg()[0]
    lab.log(f"load average (1 min) {load_start:.2f} on {os.cpu_count()} CPUs"
            + ("  (busy machine: figures are pessimistic)" if load_start > 4 else ""))
    engine = docker.from_env()
    engine.ping()
    was_up = lab.lab_cluster("status").returncode == 0
    res = lab.lab_cluster("up", "--gpu-nodes", str(lab.GPU_NODES))
    if res.returncode != 0:
        raise SystemExit(f"scripts/lab-cluster.sh up failed: {res.stderr[-3000:]}")
    kubeconfig = res.stdout.strip().splitlines()[-1].split("=", 1)[1]
    lab.log(f"lab cluster: {'reused' if was_up else 'started'} ({kubeconfig})")
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sophia-bench-cutover-") as tmp:
            setup = lab.SwarmToK3sLab(kubeconfig, tmp, engine).up()
            try:
                run_case(setup, "promote", setup.promote_params(), "k3s", args, results)
                run_case(setup, "rollback", setup.params(state="rolled_back", reason="benchmark: rollback"), "swarm",
                         args, results)
                setup.kube.scale(setup.namespace, setup.NAME, 0)
                setup.green_env(MCP_READY_FILE="/nonexistent")  # green's /readyz answers 503 for ever
                run_case(setup, "abort", setup.promote_params(ready_timeout=20), "swarm", args, results)
            finally:
                setup.down()
                lab.log("cleaned up: recorder stopped, HAProxy stopped, Swarm service and namespace removed")
    finally:
        if not was_up:
            lab.lab_cluster("down")
            lab.log("lab cluster stopped (this benchmark started it)")
    print(table(results), flush=True)
    everything = all(results.get(case, {}).get("target_met") for case in ("promote", "abort", "rollback"))
    lab.log(f"target (per case: 0 failed, >= {args.min_requests} requests, switch_s < {TARGET_SWITCH_S:g} s): "
            f"{'met' if everything else 'NOT met'}; load average {load_start:.2f} -> {os.getloadavg()[0]:.2f}")
    print(json.dumps({case: results.get(case) for case in ("promote", "abort", "rollback")}), flush=True)
    return 0 if everything else 1


if __name__ == "__main__":
    sys.exit(main())
