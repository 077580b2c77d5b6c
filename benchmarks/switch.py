#!/usr/bin/env python3
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sophia_ai.platform.traffic_switch moving one MCP service between two backends under steady load.

What it brings up itself, and removes at the end (also after a failure, Ctrl-C or SIGTERM):

- two containers of the sample MCP server image (``sophia-platform/mcp-server:lab``) on the local engine,
  published on free loopback ports: the service ``mcp-bench``'s servers ``swarm`` and ``k3s``;
- the front door: role ``sophia_ai.platform.front_door`` run by ansible-playbook in its lab daemon mode
  (Debian's HAProxy 2.6), one frontend on a free port, its files in a temporary directory;
- the traffic recorder (module_utils ``_recorder``, started and stopped through ``start()`` / ``stop()`` exactly as
  the ``traffic_recorder`` module does: a detached process writing one JSON line per request) at ``--rate``
  requests per second (default 50) through the front door, ``tools/call echo`` on a new connection each, never
  retried.

Why two containers and not the lab Swarm's service plus a second backend: the benchmark then needs no ``make lab``
(minutes, 28 services) and never touches the shared lab's front door, whose weights other tests and people rely
on while it runs; both servers are the same image on the same engine, so what is measured is the front door's
switch (runtime API, weights, drain) and nothing that differs between the two backends. Which orchestrator runs a
server does not matter to HAProxy: it only sees an address and a port.

Then, under load, after ``--warmup`` seconds: ``--switches`` switches (default 10), alternately to ``k3s`` and to
``swarm``, each through the module's runner in-process (``_haproxy.switch`` over ``RuntimeApi`` on the admin
socket, which is what the module's ``main()`` calls; drain on, server-state file written), ``--hold`` seconds
apart; then ``--ansible-switches`` more (default 2) through ansible-playbook (the ``traffic_switch`` task's time
from the ansible.posix.json callback, and the playbook's wall time).

``switch_s``: for each runner switch, the recorder's requests sent from the start of the switch call until the
next switch; the switch is complete at the sending time of the first request after which every request was
answered ``ok`` by the new backend (the front door's ``X-Sophia-Backend`` header in the recorder's lines);
``switch_s`` is the median over the switches of that moment minus the start of the call. It is an upper bound at
the recorder's resolution (1 / rate): ``switch_s_lower`` is the median of the last request that did not reach the
new backend (0 when none did). ``ansible_switch_s`` is the same measure from the start of the ansible task.

The last line is one JSON object: requests, failed, outcomes (failures by outcome), skipped, availability, rate
(asked), rate_per_s (sent), p50_ms and p99_ms (successful requests), p50_ms_runner_phase and p99_ms_runner_phase
(the same before the first ansible-playbook switch, which competes for the CPUs), switches, switch_s, switch_s_max,
switch_s_lower, call_ms (median runner call), call_ms_max, ansible_switches, ansible_task_s (median),
ansible_playbook_s (median), ansible_switch_s (median), backends (requests per server), check_downs (times HAProxy's
health checks marked each server down during the run: a busy machine can starve the sample servers), load (1-minute
load average at start and end) and target_met (failed 0 and switch_s < 1 s).
The exit status is 0 when the target is met, 1 when not.

Usage: make bench-switch, or .venv/bin/python benchmarks/switch.py [--rate 50] [--switches 10] [--hold 1.5]
[--save-recording FILE]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICE = "mcp-bench"
TARGET_FAILED, TARGET_SWITCH_S = 0, 1.0


def cache_dir() -> Path:
    return Path(os.environ.get("SOPHIA_CACHE") or Path.home() / ".cache" / "sophia-platform")


def prepare_environment() -> None:
    """What the Makefile exports, for a run without it: the collections path, the venv and the cached tools."""
    if not os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(cache_dir() / "collections" / digest)
    os.environ["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(cache_dir() / "bin"),
                                          os.environ.get("PATH", os.defpath)])
    os.environ.setdefault("ANSIBLE_LOCALHOST_WARNING", "0")
    for entry in [str(REPO)] + os.environ["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)


prepare_environment()

# pylint: disable=wrong-import-position
import docker  # noqa: E402

from ansible_collections.sophia_ai.platform.plugins.module_utils import _recorder  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.module_utils._haproxy import parse_stat, switch  # noqa: E402
from tests.integration.traffic.frontdoor import Backend, FrontDoor, free_ports, task_results  # noqa: E402


def log(msg: str) -> None:
    print(msg, flush=True)


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time as the ansible.posix.json callback writes it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def median(values):
    return statistics.median(values) if values else None


def rounded(value, digits=4):
    return None if value is None else round(value, digits)


def converge_time(requests: list, start: float, until: float, target: str) -> dict:
    """How one switch went, from the recorder's request records (sorted by sending time ``at``, epoch seconds).

    ``requests`` sent in ``[start, until)`` are the switch's; a request is on target when it was answered ``ok``
    by ``target`` (the front door's backend header). ``switch_s``: from ``start`` to the first request after which
    every one is on target (None when the last one is not); ``lower_s``: to the last one that is not (0 if none).
    """
    mine = [r for r in requests if start <= r["at"] < until]
    off = [index for index, r in enumerate(mine) if not (r["outcome"] == "ok" and r.get("backend") == target)]
    failed = collections.Counter(r["outcome"] for r in mine if r["outcome"] != "ok")
    figures = {"requests": len(mine), "off_target": len(off), "failed": sum(failed.values()), "outcomes": dict(failed)}
    if not mine:
        return dict(figures, switch_s=None, lower_s=None)
    if not off:
        return dict(figures, switch_s=mine[0]["at"] - start, lower_s=0.0)
    if off[-1] == len(mine) - 1:
        return dict(figures, switch_s=None, lower_s=mine[-1]["at"] - start)
    return dict(figures, switch_s=mine[off[-1] + 1]["at"] - start, lower_s=mine[off[-1]]["at"] - start)


def load_requests(path: str) -> list:
    records, dummy = _recorder.load_records(path)
    requests = []
    for record in records:
        if record["kind"] == "request" and record["outcome"] != _recorder.NOT_SENT:
            requests.append(dict(record, at=_recorder.parse_iso(record["ts"])))
    requests.sort(key=lambda r: r["at"])
    return requests


def bring_up(engine, work: Path):
    """The two backends and the front door; returns (backends, front door, front door port)."""
    swarm_port, k3s_port, front_port = free_ports(3)
    backends = {}
    front_door = None
    try:
        for side, port in (("swarm", swarm_port), ("k3s", k3s_port)):
            backends[side] = Backend(engine, f"sophia-bench-switch-{side}-{port}", f"{SERVICE}-{side}", port)
        for backend in backends.values():
            backend.wait()
        log(f"backends: two sample MCP containers, swarm on 127.0.0.1:{swarm_port}, k3s on 127.0.0.1:{k3s_port}")
        (work / "front-door").mkdir()
        front_door = FrontDoor(work / "front-door", [
            {"name": SERVICE, "port": front_port, "servers": [
                {"name": "swarm", "address": "127.0.0.1", "port": swarm_port, "weight": 100},
                {"name": "k3s", "address": "127.0.0.1", "port": k3s_port, "weight": 0}]}])
        started = time.perf_counter()
        rc, out = front_door.converge()
        if rc != 0:
            raise SystemExit(f"the front_door role failed (rc {rc}): {json.dumps(out.get('stats'))}\n{out['stderr'][-3000:]}")
        log(f"front door: role front_door (lab daemon mode, HAProxy pid {front_door.pid()}) on 127.0.0.1:{front_port}"
            f" in {time.perf_counter() - started:.1f} s")
        for side in backends:
            front_door.wait_status(SERVICE, side, "UP")
        return backends, front_door, front_port
    except BaseException:
        tear_down(backends, front_door)
        raise


def tear_down(backends: dict, front_door) -> None:
    if front_door is not None:
        pid = front_door.pid()
        front_door.stop()
        deadline = time.monotonic() + 10
        while pid and _recorder.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _recorder.alive(pid):
            os.kill(pid, signal.SIGKILL)
    for backend in backends.values():
        backend.remove()


def check_counters(front_door) -> dict:
    """Per server of the service, from HAProxy's statistics: failed checks, transitions to DOWN, seconds down."""
    rows = parse_stat(front_door.api.command("show stat"))
    return {row["svname"]: {"chkfail": int(row.get("chkfail") or 0), "chkdown": int(row.get("chkdown") or 0),
                            "downtime_s": int(row.get("downtime") or 0)}
            for row in rows if row.get("pxname") == SERVICE and row.get("svname") not in ("BACKEND", "FRONTEND")}


def runner_switch(front_door, target: str) -> dict:
    start_wall, start = time.time(), time.perf_counter()
    try:
        result = switch(front_door.api, {"service": SERVICE, "to": target, "state_file": front_door.state_file})
    except PlatformError as exc:
        raise SystemExit(f"switch to {target} failed after {time.perf_counter() - start:.3f} s: {exc}") from None
    call_s = time.perf_counter() - start
    if not result["changed"] or result["weights"].get(target) != 100:
        raise SystemExit(f"switch to {target} did not take: {result['msg']}")
    drain = result["drain"] or {}
    return {"how": "runner", "target": target, "start": start_wall, "call_s": call_s,
            "drain_s": drain.get("waited_s"), "drain_complete": drain.get("complete")}


def ansible_switch(front_door, target: str) -> dict:
    start = time.perf_counter()
    rc, out = front_door.switch(service=SERVICE, to=target)
    wall = time.perf_counter() - start
    results = task_results(out, "Switch traffic")
    if rc != 0 or len(results) != 1 or not results[0].get("changed"):
        raise SystemExit(f"ansible-playbook switch to {target} failed (rc {rc}): {results}\n{out['stderr'][-2000:]}")
    task = out["plays"][0]["tasks"][0]["task"]["duration"]
    task_start, task_end = parse_time(task["start"]), parse_time(task["end"])
    return {"how": "ansible-playbook", "target": target, "start": task_start, "call_s": task_end - task_start,
            "playbook_s": wall, "drain_s": (results[0].get("drain") or {}).get("waited_s")}


def main() -> int:  # pylint: disable=too-many-locals,too-many-statements
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="recorder requests per second (default 50)")
    parser.add_argument("--switches", type=int, default=10, help="runner switches (default 10)")
    parser.add_argument("--ansible-switches", type=int, default=2, help="switches through ansible-playbook (default 2)")
    parser.add_argument("--hold", type=float, default=1.5, help="seconds between switches (default 1.5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the first switch (default 2)")
    parser.add_argument("--save-recording", metavar="FILE", help="copy the recorder's JSON lines here before clean-up")
    args = parser.parse_args()

    def terminated(signum, frame):  # pylint: disable=unused-argument
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    load_start = os.getloadavg()[0]
    log(f"load average (1 min) {load_start:.2f} on {os.cpu_count()} CPUs"
        + ("  (busy machine: figures are pessimistic)" if load_start > 4 else ""))
    engine = docker.from_env()
    engine.ping()
    moves, summary, checks = [], None, {}
    with tempfile.TemporaryDirectory(prefix="sophia-bench-switch-") as tmp:
        work = Path(tmp)
        out = str(work / "traffic.jsonl")
        backends, front_door, front_port = bring_up(engine, work)
        recording = False
        try:
            started = _recorder.start({"targets": {SERVICE: f"http://127.0.0.1:{front_port}/mcp"}, "rate": args.rate,
                                       "out": out})
            recording = True
            log(f"recorder: pid {started['pid']}, {args.rate:g} requests/s through the front door, writing {out}")
            time.sleep(args.warmup)
            targets = ["k3s", "swarm"] * (args.switches + args.ansible_switches)
            for index in range(args.switches + args.ansible_switches):
                target = targets[index]
                if index < args.switches:
                    move = runner_switch(front_door, target)
                    log(f"switch {index + 1:>2} -> {target:<5} runner call {move['call_s'] * 1000:7.1f} ms "
                        f"(drain wait {move['drain_s'] * 1000 if move['drain_s'] is not None else 0:.1f} ms)")
                else:
                    move = ansible_switch(front_door, target)
                    log(f"switch {index + 1:>2} -> {target:<5} ansible-playbook: task {move['call_s']:.3f} s, "
                        f"playbook wall {move['playbook_s']:.3f} s")
                moves.append(move)
                time.sleep(args.hold)
            end = time.time()
        finally:
            if recording:
                stopped = _recorder.stop(out)
                summary = stopped["summary"]
                log(f"recorder: {stopped['msg']}")
                if args.save_recording:
                    shutil.copyfile(out, args.save_recording)
                    log(f"recording saved to {args.save_recording}")
            try:
                checks = check_counters(front_door)
                log("health checks: " + ", ".join(f"{name} {c['chkfail']} failed, {c['chkdown']} times down "
                                                  f"({c['downtime_s']} s)" for name, c in checks.items()))
            except Exception as exc:  # pylint: disable=broad-except
                log(f"health checks: could not read HAProxy's statistics: {exc}")
            tear_down(backends, front_door)
            log("cleaned up: recorder stopped, HAProxy stopped, both containers removed, temporary files removed")
        requests = load_requests(out)

    for index, move in enumerate(moves):
        until = moves[index + 1]["start"] if index + 1 < len(moves) else end
        move.update(converge_time(requests, move["start"], until, move["target"]))
        shown = "NOT converged" if move["switch_s"] is None else f"{move['switch_s'] * 1000:.1f} ms"
        log(f"switch {index + 1:>2} -> {move['target']:<5} ({move['how']}): every new request on {move['target']} "
            f"after {shown} (last off-target request at +{(move['lower_s'] or 0) * 1000:.1f} ms; "
            f"{move['requests']} requests until the next switch, {move['off_target']} off target, {move['failed']} failed"
            + (f": {', '.join(f'{k} {v}' for k, v in sorted(move['outcomes'].items()))})" if move["outcomes"] else ")"))

    runner = [m for m in moves if m["how"] == "runner"]
    through_ansible = [m for m in moves if m["how"] == "ansible-playbook"]
    overall = summary["overall"]
    never = [m for m in moves if m["switch_s"] is None]
    switch_s = None if [m for m in runner if m["switch_s"] is None] else median([m["switch_s"] for m in runner])
    # latency while only the runner switches ran (ansible-playbook competes for the same CPUs on a small machine)
    quiet_until = through_ansible[0]["start"] if through_ansible else end
    quiet = sorted(r["latency_ms"] for r in requests if r["at"] < quiet_until and r["outcome"] == "ok")
    result = {
        "requests": overall["requests"],
        "failed": overall["failed"],
        "outcomes": overall["outcomes"],
        "skipped": overall["skipped"],
        "availability": overall["availability"],
        "rate": args.rate,
        "rate_per_s": overall["rate_per_s"],
        "p50_ms": overall["latency_ms"]["p50"],
        "p99_ms": overall["latency_ms"]["p99"],
        "p50_ms_runner_phase": _recorder.percentile(quiet, 50),
        "p99_ms_runner_phase": _recorder.percentile(quiet, 99),
        "switches": len(runner),
        "switch_s": rounded(switch_s),
        "switch_s_max": None if never else rounded(max((m["switch_s"] for m in runner), default=None)),
        "switch_s_lower": rounded(median([m["lower_s"] for m in runner])),
        "call_ms": rounded(median([m["call_s"] * 1000 for m in runner]), 2),
        "call_ms_max": rounded(max((m["call_s"] * 1000 for m in runner), default=None), 2),
        "ansible_switches": len(through_ansible),
        "ansible_task_s": rounded(median([m["call_s"] for m in through_ansible]), 3),
        "ansible_playbook_s": rounded(median([m["playbook_s"] for m in through_ansible]), 3),
        "ansible_switch_s": rounded(median([m["switch_s"] for m in through_ansible if m["switch_s"] is not None])),
        "backends": overall["backends"],
        "check_downs": {name: c["chkdown"] for name, c in checks.items()},
        "load": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    met = result["failed"] == TARGET_FAILED and switch_s is not None and switch_s < TARGET_SWITCH_S and not never
    result["target_met"] = met
    log(f"{result['requests']} requests at {result['rate_per_s']}/s, {result['failed']} failed, p50 "
        f"{result['p50_ms']} ms, p99 {result['p99_ms']} ms; switch_s median {result['switch_s']} s over "
        f"{len(runner)} runner switches; ansible task {result['ansible_task_s']} s")
    log(f"target (failed {TARGET_FAILED}, switch_s < {TARGET_SWITCH_S:g} s): {'met' if met else 'NOT met'}")
    print(json.dumps(result), flush=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
