#!/usr/bin/env python3
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sophia_ai.platform.compose_convert against bare ``kompose convert`` on the same files.

Two stacks: the 28-service sample (examples/sophia-mcp-stack.yml) and a generated ten-times stack (280 services:
the sample's services ten times over, renamed ``<name>-<i>`` with their ports moved by 100 * i). For each, in one
run and interleaved, ``--repeat`` times:

- ``kompose``: the whole ``kompose convert -f FILE -o DIR`` process as a user runs it (its defaults, the normal
  PATH, a fresh output directory), wall time;
- ``module``: the compose_convert task as ansible reports it (the task's duration from the ansible.posix.json
  callback, not ansible-playbook's start-up), converting into a fresh dest (so every file is written).

The medians are reported, with ``ratio`` = module / kompose (validation off: OpenAPI validation is not part of
this slice, so ``validate_s_280`` is left out of the result). The module's own split (load/kompose/post) is printed
too. The last line is one JSON object: kompose_s_28, module_s_28, ratio_28, kompose_s_280, module_s_280, ratio_280,
scale_280 (module_s_280 / module_s_28).

Usage: make bench-convert, or .venv/bin/python benchmarks/convert.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sophia-mcp-stack.yml"
TARGET_RATIO, TARGET_SCALE = 1.2, 11.0


def cache_dir():
    return Path(os.environ.get("SOPHIA_CACHE") or Path.home() / ".cache" / "sophia-platform")


def environment():
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(cache_dir() / "bin"), env.get("PATH", os.defpath)])
    if not env.get("ANSIBLE_COLLECTIONS_PATH"):  # as the Makefile computes it
        digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
        env["ANSIBLE_COLLECTIONS_PATH"] = str(cache_dir() / "collections" / digest)
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return env


def ten_times(work):
    """The 280-service stack: every sample service ten times, renamed and on ports of its own."""
    stack = yaml.safe_load(SAMPLE.read_text())
    services = {}
    for copy in range(10):
        for name, svc in stack["services"].items():
            svc = json.loads(json.dumps(svc))
            new = name if copy == 0 else "%s-%d" % (name, copy)
            port = int(svc["environment"]["MCP_PORT"]) + 100 * copy
            svc["environment"].update(MCP_SERVER_NAME=new, MCP_PORT=str(port))
            svc["ports"] = [dict(p, target=port, published=port) for p in svc["ports"]]
            services[new] = svc
    stack["services"] = services
    path = work / "stack-280.yml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return path


def time_kompose(env, src, work):
    out = Path(tempfile.mkdtemp(prefix="kompose-out-", dir=work))
    started = time.monotonic()
    res = subprocess.run(["kompose", "convert", "-f", str(src), "-o", str(out)], cwd=work, env=env,
                         capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if res.returncode != 0:
        sys.exit("kompose convert failed: %s" % res.stderr[-2000:])
    shutil.rmtree(out)
    return elapsed


def time_module(env, src, work):
    dest = Path(tempfile.mkdtemp(prefix="module-out-", dir=work)) / "manifests"
    play = work / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "convert", "sophia_ai.platform.compose_convert": {"src": [str(src)], "dest": str(dest)}}]}]))
    res = subprocess.run(["ansible-playbook", str(play)], cwd=work, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("ansible-playbook failed: %s %s" % (res.stdout[-3000:], res.stderr[-2000:]))
    task = json.loads(res.stdout)["plays"][0]["tasks"][0]
    duration = task["task"]["duration"]
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    result = task["hosts"]["localhost"]
    assert result["changed"] and len(result["files"]) > 0
    shutil.rmtree(dest.parent)
    return (parse(duration["end"]) - parse(duration["start"])).total_seconds(), result["timings"], len(result["files"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = environment()
    if not shutil.which("kompose", path=env["PATH"]):
        sys.exit("kompose is not on PATH nor in %s: run `make setup` first" % (cache_dir() / "bin"))
    work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
    try:
        shutil.copy(SAMPLE, work / "stack-28.yml")
        shutil.copytree(SAMPLE.parent / "config", work / "config")
        stacks = {28: work / "stack-28.yml", 280: ten_times(work)}
        summary = {}
        for size, src in stacks.items():
            kompose_times, module_times, splits = [], [], []
            for _attempt in range(args.repeat):
                kompose_times.append(time_kompose(env, src, work))
                seconds, split, files = time_module(env, src, work)
                module_times.append(seconds)
                splits.append(split)
            k, m = statistics.median(kompose_times), statistics.median(module_times)
            inner = {key: round(statistics.median(s[key] for s in splits), 3) for key in splits[0]}
            print("%3d services (%d files): kompose %.2f s, module task %.2f s (inside the module: %s), ratio %.2f"
                  % (size, files, k, m, inner, m / k))
            print("    runs: kompose %s, module %s" % ([round(t, 2) for t in kompose_times], [round(t, 2) for t in module_times]))
            summary.update({"kompose_s_%d" % size: round(k, 3), "module_s_%d" % size: round(m, 3), "ratio_%d" % size: round(m / k, 3)})
        summary["scale_280"] = round(summary["module_s_280"] / summary["module_s_28"], 3)
        print("targets: ratio <= %.1f (28: %s, 280: %s); 280 services in <= %.0fx the time of 28: %.2fx (%s)" % (
            TARGET_RATIO, "met" if summary["ratio_28"] <= TARGET_RATIO else "MISSED",
            "met" if summary["ratio_280"] <= TARGET_RATIO else "MISSED", TARGET_SCALE, summary["scale_280"],
            "met" if summary["scale_280"] <= TARGET_SCALE else "MISSED"))
        print("validate_s_280 left out: OpenAPI validation is not part of this slice of compose_convert")
        print(json.dumps(summary, sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
