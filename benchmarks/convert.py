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

The medians are reported, with ``ratio`` = module / kompose with validation off (``validate: {schema: none}``), as
the issue asks. The module's own split (load/kompose/post) is printed too.

Validation is timed on its own, in this process, on the 280-service output (the files the module wrote, parsed
once, untimed), against k8s.io/kubernetes v1.34.4's OpenAPI files from the set-up's Go module cache:

- ``validate_s_280``: what a module run pays, median of ``--repeat``: load the compiled tables from the disk cache,
  compile the closures the objects reach, check every object;
- ``validate_cold_s_280``: the same with an empty cache (the documents read, hashed and compacted first);
- ``validate_s_1000``: 1,000 objects (the 280-service output cycled), warm cache (the issue's target: under 1 s);
- ``validate_objects_per_s``: objects checked per second once compiled (checking alone).

The last line is one JSON object: kompose_s_28, module_s_28, ratio_28, kompose_s_280, module_s_280, ratio_280,
scale_280 (module_s_280 / module_s_28), validate_s_280, validate_cold_s_280, validate_objects_280, validate_s_1000,
validate_objects_per_s.

Usage: make bench-convert, or .venv/bin/python benchmarks/convert.py [--repeat 3]
"""

from __future__ import annotations

import argparse
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

import _env  # benchmarks/_env.py (this directory is on sys.path when a benchmark runs)
from _env import cache_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sophia-mcp-stack.yml"
TARGET_RATIO, TARGET_SCALE, TARGET_VALIDATE_1000 = 1.2, 11.0, 1.0


def environment():
    env = _env.environment()
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


def time_module(env, src, work, keep=None):
    dest = Path(tempfile.mkdtemp(prefix="module-out-", dir=work)) / "manifests"
    play = work / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "convert", "sophia_ai.platform.compose_convert": {"src": [str(src)], "dest": str(dest),
                                                                   "validate": {"schema": "none"}}}]}]))
    res = subprocess.run(["ansible-playbook", str(play)], cwd=work, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("ansible-playbook failed: %s %s" % (res.stdout[-3000:], res.stderr[-2000:]))
    task = json.loads(res.stdout)["plays"][0]["tasks"][0]
    duration = task["task"]["duration"]
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    result = task["hosts"]["localhost"]
    assert result["changed"] and len(result["files"]) > 0
    if keep is not None and not keep.exists():
        shutil.copytree(dest, keep)
    shutil.rmtree(dest.parent)
    return (parse(duration["end"]) - parse(duration["start"])).total_seconds(), result["timings"], len(result["files"])


def time_validation(env, manifests, work, repeat):
    """Validation alone on the files in ``manifests``: (summary dict, printable line)."""
    for entry in filter(None, env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.sophia_ai.platform.plugins.module_utils import _openapi, _validation

    schema = _validation.default_schema_dir(env)
    if not os.path.isdir(schema):
        sys.exit("%s is missing: run `make setup` first" % schema)
    objects = [yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
               for p in sorted(manifests.glob("*.yaml"))]
    thousand = (objects * (1000 // len(objects) + 1))[:1000]

    def full(objs, cache_dir):
        started = time.perf_counter()
        tables = _openapi.directory_tables(schema, _openapi.needed_documents(objs), _openapi.SchemaCache(str(cache_dir)))
        validator = _openapi.Validator(tables)
        errors = [e for obj in objs for e in validator.validate(obj)]
        elapsed = time.perf_counter() - started
        if errors:
            sys.exit("validation found errors in the module's output: %s" % errors[:5])
        return elapsed, validator

    cold = []
    for attempt in range(repeat):
        cold.append(full(objects, work / ("cache-cold-%d" % attempt))[0])
    warm_dir = work / "cache-warm"
    full(objects, warm_dir)
    warm = [full(objects, warm_dir)[0] for _attempt in range(repeat)]
    warm_1000 = [full(thousand, warm_dir)[0] for _attempt in range(repeat)]
    _seconds, validator = full(objects, warm_dir)
    check_only = []
    for _attempt in range(repeat):
        started = time.perf_counter()
        for obj in objects:
            validator.validate(obj)
        check_only.append(time.perf_counter() - started)
    summary = {"validate_s_280": round(statistics.median(warm), 4), "validate_cold_s_280": round(statistics.median(cold), 4),
               "validate_objects_280": len(objects), "validate_s_1000": round(statistics.median(warm_1000), 4),
               "validate_objects_per_s": int(len(objects) / statistics.median(check_only))}
    line = ("validation of the 280-service output (%d objects, v1.34.4 schema from %s): %.3f s with the compiled tables "
            "cached (%.0f objects/s), %.3f s from an empty cache; checking alone %.4f s (%d objects/s); 1,000 objects "
            "%.3f s (target < %.0f s: %s)" % (
                len(objects), schema, summary["validate_s_280"], len(objects) / summary["validate_s_280"],
                summary["validate_cold_s_280"], statistics.median(check_only), summary["validate_objects_per_s"],
                summary["validate_s_1000"], TARGET_VALIDATE_1000,
                "met" if summary["validate_s_1000"] < TARGET_VALIDATE_1000 else "MISSED"))
    return summary, line


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
                seconds, split, files = time_module(env, src, work, keep=work / ("manifests-%d" % size))
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
        validation, line = time_validation(env, work / "manifests-280", work, args.repeat)
        print(line)
        summary.update(validation)
        print(json.dumps(summary, sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
