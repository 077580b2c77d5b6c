#!/usr/bin/env python3
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sophia_ai.platform.k8s_apply against ``kubectl apply --server-side`` and a kubernetes.core.k8s loop.

Brings the lab cluster up (or reuses it, never changing its 8 kwok GPU nodes) with scripts/lab-cluster.sh, then
builds two stacks with compose_convert's module_utils (as benchmarks/convert.py does, validation off): the
28-service sample (examples/sophia-mcp-stack.yml) and the ten-times stack (280 services), and adds what role
mcp_deploy adds around them: the Namespace, a ResourceQuota, the external Secret the stack references, a
default-deny NetworkPolicy and one allow NetworkPolicy per service (PodDisruptionBudgets only for services with
two or more replicas: none in the sample). Every pod goes to the kwok nodes (node selector ``type: kwok`` and the
kwok toleration; they need not run) and GPU requests are dropped (the 8 kwok nodes have 22 GPUs; the ten-times
stack asks for 40, which would only stay Pending and is the same apply either way). Each stack is one directory
of one file per object (the Namespace first), as ``kubectl apply -f DIR`` takes it.

In one run, each tool applies each stack into a fresh namespace of its own (``k8s-apply-bench-<tool>-<size>-<n>``):

- ``ours``: one ``sophia_ai.platform.k8s_apply`` task through ansible-playbook, timed as ansible reports the
  task (the ansible.posix.json callback's task duration: AnsiballZ, a fresh Python, the kubernetes SDK import,
  the kubeconfig and the apply); the module's own ``apply_seconds`` (the apply alone, in its process) is printed too;
- ``kubectl``: the whole ``kubectl apply --server-side -f DIR`` process (the lab's v1.34.4 build, discovery cache
  warmed once before, as on a user's machine);
- ``loop`` (sample stack only): one ``kubernetes.core.k8s`` task run per manifest file (``loop`` over the files,
  ``apply: true``, ``server_side_apply``), the task's duration.

Each first apply is followed by the rollout wait, timed on its own (every Deployment available; polled by this
script), then by a no-change rerun of the same tool (ours must report changed=false), then the namespace is
deleted and the script waits until it is gone, so no run pays for another's clean-up. ours and kubectl take turns
going first; medians of ``--repeat`` runs on the sample stack (default 3) and ``--repeat-280`` on the ten-times
stack (default 1: one run there takes minutes on the 2-core lab). The loop runs once (89 task runs).

The last line is one JSON object: objects_28, objects_280, ours_s_28, kubectl_s_28, loop_s_28, ours_s_280,
kubectl_s_280, ours_rerun_s_28, kubectl_rerun_s_28, ours_rerun_s_280, kubectl_rerun_s_280, ratio_28,
ratio_280, loop_ratio_28 (loop / ours), rerun_ratio_280 (ours / kubectl), rerun_changed, ours_apply_s_28/_280
(the module's own apply_seconds), ours_api_calls_280, wait_s_28 / wait_s_280 (rollout wait after ours' first
apply), kubectl_wait_s_28 / kubectl_wait_s_280 (after kubectl's: shorter, since its slower apply gave the pods time).

Usage: make bench-deploy, or .venv/bin/python benchmarks/deploy.py [--repeat 3] [--repeat-280 1] [--no-loop]
[--sizes 28,280]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
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
from convert import SAMPLE, ten_times

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "scripts" / "lab-cluster.sh"
GPU_NODES = 8
FIELD_MANAGER = "sophia-mcp-deploy"
TARGET_RATIO_280, TARGET_RATIO_28, TARGET_LOOP = 1.0, 1.5, 10.0

for entry in filter(None, _env.environment()["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

# pylint: disable=wrong-import-position
from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect  # noqa: E402


def log(msg):
    print(msg, flush=True)


def environment():
    env = _env.environment()
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return env


def lab_up():
    """The lab's kubeconfig: a running lab is reused as it is, else started with 8 kwok GPU nodes."""
    status = subprocess.run([str(LAB), "status"], capture_output=True, text=True, check=False)
    if status.returncode == 0:
        log("lab cluster: running, reused")
        out = status.stdout
    else:
        log("lab cluster: starting (scripts/lab-cluster.sh up)")
        res = subprocess.run([str(LAB), "up", "--gpu-nodes", str(GPU_NODES)], capture_output=True, text=True,
                             timeout=900, check=False)
        if res.returncode != 0:
            sys.exit("scripts/lab-cluster.sh up failed:\n%s" % res.stderr[-3000:])
        out = res.stdout
    last = out.strip().splitlines()[-1]
    if not last.startswith("KUBECONFIG="):
        sys.exit("scripts/lab-cluster.sh did not end with KUBECONFIG=...: %r" % last)
    return last.split("=", 1)[1]


def find_kubectl():
    """The kubectl the lab builds ($SOPHIA_CACHE/bin/kubernetes-<version>/kubectl), else kubectl on PATH."""
    found = sorted((_env.cache_dir() / "bin").glob("kubernetes*/kubectl"))
    if found:
        return str(found[-1])
    path = shutil.which("kubectl", path=environment()["PATH"])
    if not path:
        sys.exit("no kubectl in %s: run `make setup` first" % (_env.cache_dir() / "bin"))
    return path


# --------------------------------------------------------------------------------------------- the stacks

def convert(src, dest):
    result = _compose_convert.run({"src": [str(src)], "dest": str(dest), "validate": {"schema": "none"}})
    objects = [yaml.safe_load((dest / name).read_text()) for name in result["files"]]
    return objects, result["services"]


def to_kwok(obj):
    """Pods to the kwok nodes (they need not run), without GPU requests (see the module docstring)."""
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec")
    if obj["kind"] not in ("Deployment", "StatefulSet", "DaemonSet") or template is None:
        return obj
    template.setdefault("nodeSelector", {})["type"] = "kwok"
    template["tolerations"] = [t for t in template.get("tolerations") or [] if t.get("key") != "nvidia.com/gpu"] + [
        {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]
    for container in template.get("containers") or []:
        for section in ("limits", "requests"):
            ((container.get("resources") or {}).get(section) or {}).pop("nvidia.com/gpu", None)
    return obj


def deploy_extras(objects):
    """What role mcp_deploy adds around the converted stack: quota, the external Secret, NetworkPolicies, PDBs."""
    key = base64.b64encode(secrets.token_hex(24).encode()).decode()
    extras = [
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "sophia-quota"},
         "spec": {"hard": {"pods": "2000", "services": "1000", "secrets": "100", "configmaps": "100"}}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mcp-api-key"}, "type": "Opaque",
         "data": {"mcp_api_key": key}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-deny"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    ]
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        name = obj["metadata"]["name"]
        selector = obj["spec"]["selector"]["matchLabels"]
        ports = [{"protocol": p.get("protocol", "TCP"), "port": p["containerPort"]}
                 for c in obj["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []]
        extras.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-" + name},
                       "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                    "kubernetes.io/metadata.name": "sophia-front-door"}}}], "ports": ports}]}})
        if obj["spec"].get("replicas", 1) >= 2:
            extras.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}})
    return extras


def write_stack(objects, namespace, directory):
    """One file per object, the Namespace first (kubectl applies a directory's files in name order)."""
    directory.mkdir(parents=True)
    (directory / "00-namespace.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    for number, obj in enumerate(objects, start=1):
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["namespace"] = namespace
        name = "%03d-%s-%s.yaml" % (number, obj["kind"].lower(), obj["metadata"]["name"])
        (directory / name).write_text(yaml.safe_dump(obj, sort_keys=False))
    return len(objects) + 1


# ------------------------------------------------------------------------------------------------ the tools

def task_seconds(task):
    """The task's duration as the ansible.posix.json callback reports it."""
    duration = task["task"]["duration"]
    start, end = (datetime.fromisoformat(duration[key].replace("Z", "+00:00")) for key in ("start", "end"))
    return (end - start).total_seconds()


def playbook(work, env, tasks):
    play = work / ("play-%s.yml" % secrets.token_hex(4))
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": tasks}]))
    res = subprocess.run(["ansible-playbook", str(play)], cwd=work, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("ansible-playbook failed: %s %s" % (res.stdout[-4000:], res.stderr[-2000:]))
    return json.loads(res.stdout)["plays"][0]["tasks"][0]


def run_ours(work, env, kubeconfig, directory, concurrency):
    task = playbook(work, env, [{"name": "apply", "sophia_ai.platform.k8s_apply": {
        "kubeconfig": kubeconfig, "src": [str(directory)], "field_manager": FIELD_MANAGER, "concurrency": concurrency}}])
    result = task["hosts"]["localhost"]
    return task_seconds(task), result


def run_kubectl(kubectl, kubeconfig, directory):
    started = time.monotonic()
    res = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "--field-manager",
                          FIELD_MANAGER, "-f", str(directory)], capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if res.returncode != 0:
        sys.exit("kubectl apply failed: %s" % res.stderr[-3000:])
    return elapsed, res.stdout


def run_loop(work, env, kubeconfig, directory):
    files = sorted(str(p) for p in directory.glob("*.yaml"))
    task = playbook(work, env, [{"name": "apply one file", "kubernetes.core.k8s": {
        "kubeconfig": kubeconfig, "src": "{{ item }}", "apply": True,
        "server_side_apply": {"field_manager": "bench-loop"}}, "loop": files}])
    return task_seconds(task), task["hosts"]["localhost"]


# ---------------------------------------------------------------------------------------- the cluster side

class Cluster:
    def __init__(self, kubeconfig):
        self.client = connect({"kubeconfig": kubeconfig})

    def wait_rollouts(self, namespace, expected, timeout=300):
        """Seconds until every Deployment in ``namespace`` is available (``expected`` of them)."""
        started = time.monotonic()
        while True:
            items = self.client.list_all("apps/v1", "deployments", namespace)
            done = sum(1 for d in items if (d.get("status") or {}).get("availableReplicas", 0) >= d["spec"].get("replicas", 1)
                       and (d.get("status") or {}).get("observedGeneration", 0) >= d["metadata"].get("generation", 0))
            if len(items) == expected and done == expected:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                log("    rollouts in %s: %d/%d available after %d s, going on" % (namespace, done, expected, timeout))
                return time.monotonic() - started
            time.sleep(0.5)

    def delete_namespace(self, namespace, timeout=600):
        """Delete the namespace and wait until it is gone (its pods and objects with it)."""
        self.client.request("DELETE", "/api/v1/namespaces/%s" % namespace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _answer = self.client.request("GET", "/api/v1/namespaces/%s" % namespace)
            if status == 404:
                return
            time.sleep(1)
        log("    namespace %s still terminating after %d s" % (namespace, timeout))

    def leftovers(self):
        status, answer = self.client.request("GET", "/api/v1/namespaces")
        return [n["metadata"]["name"] for n in (answer or {}).get("items") or []
                if n["metadata"]["name"].startswith("k8s-apply-bench-")] if status == 200 else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours and kubectl on the sample stack (medians)")
    parser.add_argument("--repeat-280", type=int, default=1, help="runs of ours and kubectl on the ten-times stack")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-loop", action="store_true", help="skip the kubernetes.core.k8s loop (minutes)")
    parser.add_argument("--sizes", type=lambda text: [int(n) for n in text.split(",")], default=[28, 280],
                        help="stacks to run (default 28,280; the targets need both)")
    args = parser.parse_args()
    env = environment()
    kubeconfig = lab_up()
    kubectl = find_kubectl()
    cluster = Cluster(kubeconfig)
    for namespace in cluster.leftovers():
        log("removing %s left by an earlier run" % namespace)
        cluster.delete_namespace(namespace)
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "api-resources"], capture_output=True, check=False)  # warm cache
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    summary, rerun_changed = {}, []
    try:
        shutil.copy(SAMPLE, work / "stack-28.yml")
        shutil.copytree(SAMPLE.parent / "config", work / "config")
        stacks = {28: work / "stack-28.yml", 280: ten_times(work)}
        for size, src in stacks.items():
            if size not in args.sizes:
                continue
            converted, _services = convert(src, work / ("converted-%d" % size))
            objects = [to_kwok(obj) for obj in converted]
            objects += deploy_extras(objects)
            deployments = sum(1 for obj in objects if obj["kind"] == "Deployment")
            repeat = args.repeat if size == 28 else args.repeat_280
            with_loop = size == 28 and not args.no_loop
            times = {tool: [] for tool in ["ours", "kubectl"] + (["loop"] if with_loop else [])}
            reruns = {tool: [] for tool in ("ours", "kubectl")}
            waits = {tool: [] for tool in times}
            inner, calls = [], []
            count = 0
            for attempt in range(repeat):
                order = ["ours", "kubectl"] if attempt % 2 == 0 else ["kubectl", "ours"]
                for tool in order + (["loop"] if with_loop and attempt == 0 else []):
                    namespace = "k8s-apply-bench-%s-%d-%d" % (tool, size, attempt)
                    directory = work / namespace
                    count = write_stack(objects, namespace, directory)
                    if tool == "ours":
                        seconds, result = run_ours(work, env, kubeconfig, directory, args.concurrency)
                        assert result["counts"]["created"] == count, result["counts"]
                        inner.append(result["apply_seconds"])
                        calls.append(result["api_calls"])
                    elif tool == "kubectl":
                        seconds, _out = run_kubectl(kubectl, kubeconfig, directory)
                    else:
                        seconds, _result = run_loop(work, env, kubeconfig, directory)
                    times[tool].append(seconds)
                    waits[tool].append(cluster.wait_rollouts(namespace, deployments))
                    line = "  %3d services, %-7s run %d: first apply %.2f s" % (size, tool, attempt + 1, seconds)
                    if tool == "ours":
                        again, result = run_ours(work, env, kubeconfig, directory, args.concurrency)
                        rerun_changed.append(result["changed"])
                        reruns["ours"].append(again)
                        line += (" (module's apply_seconds %.2f, %d API calls); rerun %.2f s, changed=%s (%.2f s inside, %d API "
                                 "calls, %d objects not sent)" % (inner[-1], calls[-1], again, result["changed"],
                                                                  result["apply_seconds"], result["api_calls"], result["not_sent"]))
                    elif tool == "kubectl":
                        again, _out = run_kubectl(kubectl, kubeconfig, directory)
                        reruns["kubectl"].append(again)
                        line += "; rerun %.2f s" % again
                    log(line + "; rollouts %.1f s" % waits[tool][-1])
                    cluster.delete_namespace(namespace)
            med = {tool: statistics.median(values) for tool, values in times.items()}
            summary.update({"objects_%d" % size: count, "ours_s_%d" % size: round(med["ours"], 3),
                            "kubectl_s_%d" % size: round(med["kubectl"], 3),
                            "ours_rerun_s_%d" % size: round(statistics.median(reruns["ours"]), 3),
                            "kubectl_rerun_s_%d" % size: round(statistics.median(reruns["kubectl"]), 3),
                            "ratio_%d" % size: round(med["ours"] / med["kubectl"], 3),
                            "ours_apply_s_%d" % size: round(statistics.median(inner), 3),
                            "ours_api_calls_%d" % size: int(statistics.median(calls)),
                            "wait_s_%d" % size: round(statistics.median(waits["ours"]), 2),
                            "kubectl_wait_s_%d" % size: round(statistics.median(waits["kubectl"]), 2)})
            if "loop" in med:
                summary["loop_s_28"] = round(med["loop"], 3)
                summary["loop_ratio_28"] = round(med["loop"] / med["ours"], 2)
        summary["rerun_changed"] = any(rerun_changed)
        if 280 not in args.sizes:
            print(json.dumps(summary, sort_keys=True))
            return
        summary["rerun_ratio_280"] = round(summary["ours_rerun_s_280"] / summary["kubectl_rerun_s_280"], 3)
        log("")
        log("| stack | objects | ours (task) | ours (apply inside) | kubectl | ours/kubectl | ours rerun | kubectl rerun |"
            " loop | rollouts after ours / kubectl |")
        log("|---|---|---|---|---|---|---|---|---|---|")
        for size in (28, 280):
            log("| %d services | %d | %.2f s | %.2f s | %.2f s | %.2f | %.2f s | %.2f s | %s | %.1f s / %.1f s |" % (
                size, summary["objects_%d" % size], summary["ours_s_%d" % size], summary["ours_apply_s_%d" % size],
                summary["kubectl_s_%d" % size], summary["ratio_%d" % size], summary["ours_rerun_s_%d" % size],
                summary["kubectl_rerun_s_%d" % size],
                "%.1f s (%.1fx ours)" % (summary["loop_s_28"], summary["loop_ratio_28"]) if size == 28 and "loop_s_28" in summary
                else "-", summary["wait_s_%d" % size], summary["kubectl_wait_s_%d" % size]))
        log("targets: 280 ratio <= %.1f: %s; 28 ratio <= %.1f: %s; loop >= %.0fx ours: %s; rerun changed=false: %s, "
            "no slower than kubectl's: %s" % (
                TARGET_RATIO_280, verdict(summary["ratio_280"] <= TARGET_RATIO_280), TARGET_RATIO_28,
                verdict(summary["ratio_28"] <= TARGET_RATIO_28), TARGET_LOOP,
                verdict(summary.get("loop_ratio_28", 0) >= TARGET_LOOP) if "loop_ratio_28" in summary else "not run",
                verdict(not summary["rerun_changed"]), verdict(summary["rerun_ratio_280"] <= 1.0)))
        print(json.dumps(summary, sort_keys=True))
    finally:
        for namespace in cluster.leftovers():
            cluster.delete_namespace(namespace)
        cluster.client.close()
        shutil.rmtree(work, ignore_errors=True)


def verdict(ok):
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    main()
