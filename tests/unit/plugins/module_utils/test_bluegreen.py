# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/_bluegreen.py (pure) and _bluegreen_run.py (the runner, against a fake API server).

Fixtures: fixtures/bluegreen/*.json are objects as the lab cluster's API server returned them (capture.py there:
a Deployment mcp-gong of the sample MCP server, 2 replicas on the real node, behind a NodePort Service; its
ReplicaSet, pods, EndpointSlice; the GPU nodes). fixtures/haproxy/ are HAProxy 2.6's real runtime API replies.

What is faked, and why: ``FakeCluster`` stands in for the API server (a unit test has none). It keeps the objects
seeded from the fixtures and does what the API server and its controllers would do for the requests the runner
sends - server-side apply and merge patches of Services and Deployments, the scale subresource, Jobs - and derives
the ReplicaSets, pods, Deployment status and EndpointSlices from the Deployments, with pods of listed images never
ready. ``FakeFrontDoor`` replays the captured ``show servers state`` / ``show stat`` replies with the weights
and admin states that ``set server`` commands set. ``FakeDocker`` is a Swarm service's inspect/update. Time is a
fake clock, so waits cost nothing. The runs that hit the real lab are the integration tests.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _bluegreen as bg
from ansible_collections.sophia_ai.platform.plugins.module_utils import _bluegreen_run as runner
from ansible_collections.sophia_ai.platform.plugins.module_utils import _volume_copy as vc
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError
from ansible_collections.sophia_ai.platform.plugins.modules.bluegreen_cutover import argument_spec

FIX = Path(__file__).parent / "fixtures" / "bluegreen"
HAPROXY = Path(__file__).parent / "fixtures" / "haproxy"
NS = "sophia-mcp"
NAME = "mcp-gong"
T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)


def load(name):
    return json.loads((FIX / name).read_text())


# ------------------------------------------------------------------------------------------------ fakes

class FakeTime:
    def __init__(self):
        self.t = 0.0

    def clock(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds

    def now(self):
        return T0 + timedelta(seconds=self.t)


def selector_of(text):
    return dict(part.split("=", 1) for part in text.split(",")) if text else {}


class FakeCluster:
    """An in-memory API server seeded with the lab's objects (see the module docstring)."""

    def __init__(self):
        self.services = {NAME: load("service.json")}
        blue = load("deployment.json")
        self.deployments = {NAME: blue}
        rs = load("replicasets.json")["items"][0]
        self.hashes = {NAME: rs["metadata"]["labels"]["pod-template-hash"]}
        self.rs_fixture, self.pod_fixture = rs, load("pods.json")["items"][0]
        self.slice_fixture = load("endpointslices.json")["items"][0]
        self.nodes = load("nodes.json")["items"]
        self.other_pods = []
        self.unready_images = set()
        self.requests = []
        self.selectors = []  # the active Service's selector after each write to it
        self.jobs = {}
        self.job_outcome = "Complete"
        self.unreachable = 0  # the next N requests find no API server
        self.unreachable_after = None  # (after this many requests, for this many)
        self.pod_generation = 0  # bumped by a pod's deletion: the ReplicaSet's new pods get new names

    @property
    def api_calls(self):
        return len(self.requests)

    def close(self):
        pass

    # ---- derived objects

    def pod_hash(self, name, dep):
        if name not in self.hashes:
            self.hashes[name] = hashlib.sha256(json.dumps(dep["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]
        return self.hashes[name]

    def ready(self, dep):
        images = {c["image"] for c in dep["spec"]["template"]["spec"]["containers"]}
        return not images & self.unready_images

    def status(self, dep):
        n = dep["spec"].get("replicas", 1)
        ready = n if self.ready(dep) else 0
        dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": n, "updatedReplicas": n,
                         "readyReplicas": ready, "availableReplicas": ready,
                         "conditions": [{"type": "Available", "status": "True" if ready == n else "False"}]}
        return dep

    def pods(self):
        out = []
        for index, (name, dep) in enumerate(sorted(self.deployments.items())):
            h = self.pod_hash(name, dep)
            for i in range(dep["spec"].get("replicas", 1)):
                pod = copy.deepcopy(self.pod_fixture)
                suffix = f"{i:05d}" if not self.pod_generation else f"g{self.pod_generation}{i:04d}"
                pod["metadata"].update(name=f"{name}-{h}-{suffix}", uid=f"uid-{name}-{suffix}",
                                       labels=dict(dep["spec"]["template"]["metadata"]["labels"], **{"pod-template-hash": h}))
                pod["spec"]["containers"] = copy.deepcopy(dep["spec"]["template"]["spec"]["containers"])
                pod["status"]["podIP"] = f"10.244.{index}.{i + 10}"
                ready = "True" if self.ready(dep) else "False"
                for condition in pod["status"].get("conditions") or []:
                    if condition["type"] in ("Ready", "ContainersReady"):
                        condition["status"] = ready
                out.append(pod)
        return out + copy.deepcopy(self.other_pods)

    def replicasets(self):
        out = []
        for name, dep in self.deployments.items():
            rs = copy.deepcopy(self.rs_fixture)
            h = self.pod_hash(name, dep)
            rs["metadata"].update(name=f"{name}-{h}", labels=dict(dep["spec"]["selector"]["matchLabels"],
                                                                  **{"pod-template-hash": h}))
            rs["metadata"]["ownerReferences"][0].update(name=name, uid=dep["metadata"]["uid"])
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = \
                dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            out.append(rs)
        return out

    def slices(self):
        out = []
        pods = self.pods()
        for name, svc in self.services.items():
            selector = svc["spec"].get("selector") or {}
            item = copy.deepcopy(self.slice_fixture)
            item["metadata"]["name"] = f"{name}-abcde"
            item["metadata"]["labels"]["kubernetes.io/service-name"] = name
            endpoints = []
            for pod in pods:
                if selector and all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items()):
                    ready = all(c["status"] == "True" for c in pod["status"]["conditions"] if c["type"] == "Ready")
                    endpoint = copy.deepcopy(self.slice_fixture["endpoints"][0])
                    endpoint.update(addresses=[pod["status"]["podIP"]],
                                    conditions={"ready": ready, "serving": ready, "terminating": False},
                                    targetRef={"kind": "Pod", "name": pod["metadata"]["name"], "namespace": NS,
                                               "uid": pod["metadata"]["uid"]})
                    endpoints.append(endpoint)
            item["endpoints"] = endpoints
            out.append(item)
        return out

    # ---- the API

    def _gate(self, what):
        self.requests.append(what)
        if self.unreachable_after is not None and len(self.requests) > self.unreachable_after[0]:
            self.unreachable, self.unreachable_after = self.unreachable_after[1], None
        if self.unreachable:
            self.unreachable -= 1
            raise ApiError("could not reach the Kubernetes API at https://127.0.0.1:6443", reason="MaxRetryError")

    def list_all(self, api_version, kind, namespace=None, label_selector=None, field_selector=None, limit=500):
        self._gate(f"LIST {kind} {label_selector or ''}")
        items = {"deployments": lambda: [self.status(copy.deepcopy(d)) for d in self.deployments.values()],
                 "replicasets": self.replicasets, "pods": self.pods, "EndpointSlice": self.slices,
                 "nodes": lambda: copy.deepcopy(self.nodes)}[kind]()
        wanted = selector_of(label_selector)
        return [i for i in items if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]

    def request(self, method, path, query=None, body=None, content_type="application/json"):
        self._gate(f"{method} {path}")
        match = re.match(r"^/api/v1/namespaces/[^/]+/services/([^/]+)$", path)
        if match:
            return self._service(method, match.group(1), body)
        match = re.match(r"^/apis/apps/v1/namespaces/[^/]+/deployments/([^/]+)(/scale)?$", path)
        if match:
            return self._deployment(method, match.group(1), match.group(2), body, query)
        match = re.match(r"^/apis/batch/v1/namespaces/[^/]+/jobs(?:/([^/]+))?$", path)
        if match:
            return self._job(method, match.group(1), body)
        if method == "DELETE" and re.match(r"^/api/v1/namespaces/[^/]+/pods/[^/]+$", path):
            self.pod_generation += 1
            return 200, {"kind": "Pod"}
        raise AssertionError(f"unexpected request {method} {path}")

    def _service(self, method, name, body):
        svc = self.services.get(name)
        if method == "GET":
            return (200, copy.deepcopy(svc)) if svc else (404, {"kind": "Status", "code": 404})
        assert method == "PATCH"
        if svc is None:
            svc = copy.deepcopy(body)
            svc["spec"]["clusterIP"] = "10.96.0.99"
            svc["metadata"]["resourceVersion"] = "1"
            self.services[name] = svc
            return 201, copy.deepcopy(svc)
        svc["metadata"].setdefault("annotations", {}).update(body["metadata"].get("annotations") or {})
        for key, value in (body.get("spec") or {}).items():
            svc["spec"][key] = copy.deepcopy(value)
        svc["metadata"]["resourceVersion"] = str(int(svc["metadata"]["resourceVersion"]) + 1)
        if name == NAME:
            self.selectors.append(dict(svc["spec"]["selector"]))
        return 200, copy.deepcopy(svc)

    def _deployment(self, method, name, scale, body, query):
        dep = self.deployments.get(name)
        if method == "GET":
            return (200, self.status(copy.deepcopy(dep))) if dep else (404, {"kind": "Status", "code": 404})
        if method == "DELETE":
            self.deployments.pop(name, None)
            return 200, {"kind": "Status"}
        assert method == "PATCH" and ("fieldManager", bg.FIELD_MANAGER) in query
        if scale:
            dep["spec"]["replicas"] = body["spec"]["replicas"]
            return 200, {"kind": "Scale", "spec": {"replicas": dep["spec"]["replicas"]}}
        if dep is None:
            dep = copy.deepcopy(body)
            dep["metadata"].update(uid=f"uid-{name}", generation=1, resourceVersion="1")
            dep["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
            self.deployments[name] = dep
            return 201, self.status(copy.deepcopy(dep))
        dep["spec"] = copy.deepcopy(body["spec"])
        dep["metadata"]["generation"] += 1
        return 200, self.status(copy.deepcopy(dep))

    def _job(self, method, name, body):
        if method == "POST":
            job = copy.deepcopy(body)
            job["metadata"]["name"] = job["metadata"]["generateName"] + "x7k2p"
            condition = {"type": self.job_outcome, "status": "True", "message": "BackoffLimitExceeded"}
            job["status"] = {"conditions": [condition], "succeeded": int(self.job_outcome == "Complete")}
            self.jobs[job["metadata"]["name"]] = job
            return 201, copy.deepcopy(job)
        if method == "GET":
            return 200, copy.deepcopy(self.jobs[name])
        self.jobs.pop(name)
        return 200, {"kind": "Status"}

    def writes(self):
        return [r for r in self.requests if r.split()[0] in ("PATCH", "POST", "PUT", "DELETE")]


def defaults(**params):
    spec = argument_spec()
    out = {key: value.get("default") for key, value in spec.items()}
    out.update(name=NAME, namespace=NS)
    out.update(params)
    return out


class Http:
    """Answers of the checks' HTTP GETs: 200 unless a URL prefix is set to fail."""

    def __init__(self):
        self.failing = {}
        self.urls = []

    def __call__(self, url, timeout):
        self.urls.append(url)
        for prefix, status in self.failing.items():
            if url.startswith(prefix):
                return status, "not ready"
        return 200, "ok"


def probe(options):
    return {"msg": f"MCP server answered at {options['url']}", "tools": ["add", "echo"]}


@pytest.fixture
def world():
    return FakeCluster(), FakeTime(), Http()


def run_ic(world, check_mode=False, **params):
    cluster, clock, http = world
    return runner.run_in_cluster(defaults(**params), cluster, check_mode=check_mode, clock=clock.clock,
                                 sleep=clock.sleep, now=clock.now, by="tester@ctl", http=http, mcp_probe=probe)


def annotations(cluster):
    return bg.read_state(cluster.services[NAME])


def blue_pinned(cluster):
    return {"app": NAME, "pod-template-hash": cluster.hashes[NAME]}


# ------------------------------------------------------------------------------------------------ pure: options

@pytest.mark.parametrize("value, seconds", [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("45", 45), (45, 45), (0, 0), ("0s", 0),
])
def test_parse_duration(value, seconds):
    assert bg.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "2d", "h", "-5", "1.5h", True, "30 m"])
def test_parse_duration_rejects(value):
    with pytest.raises(InputError) as info:
        bg.parse_duration(value)
    assert info.value.details["reason"] == "bad_option"


def test_checks_get_their_defaults():
    checks = bg.normalise_checks([{"name": "ready", "type": "http"}, {"type": "mcp", "tools": ["echo"]}],
                                 "pre_promotion_checks", "in_cluster")
    assert checks == [
        {"name": "ready", "type": "http", "timeout": 5.0, "target": "preview", "path": "/readyz", "attempts": 3,
         "status": 200},
        {"name": "mcp-1", "type": "mcp", "timeout": 5.0, "target": "preview", "path": "/mcp", "attempts": 3,
         "tools": ["echo"]},
    ]
    assert bg.normalise_checks([{"type": "http"}], "post_promotion_checks", "in_cluster")[0]["target"] == "active"


def test_a_check_duration_is_parsed():
    checks = bg.normalise_checks([{"type": "mcp", "duration": "2m"}, {"type": "http", "duration": 0}],
                                 "post_promotion_checks", "swarm_to_k3s")
    assert checks[0]["duration"] == 120 and "duration" not in checks[1]


@pytest.mark.parametrize("check, mode, words", [
    ({"type": "mcp", "duration": "soon"}, "swarm_to_k3s", r"pre_promotion_checks\[0\]\.duration must be a duration"),
    ({"type": "job", "job": {"template": {"spec": {"containers": []}}}, "duration": "1m"}, "in_cluster",
     "duration applies to http and mcp checks"),
    ({"type": "tcp"}, "in_cluster", "type must be one of"),
    ({"type": "job", "job": {"template": {"spec": {}}}}, "in_cluster", "must be a Job spec"),
    ({"type": "job", "job": {"template": {"spec": {"containers": []}}}}, "swarm_to_k3s", "need mode in_cluster"),
    ({"type": "http", "target": "green"}, "in_cluster", "target must be preview, active"),
    ({"type": "http", "port": 80}, "in_cluster", "unknown keys: port"),
])
def test_bad_checks_are_refused(check, mode, words):
    with pytest.raises(InputError, match=words):
        bg.normalise_checks([check], "pre_promotion_checks", mode)


@pytest.mark.parametrize("params, words", [
    ({}, "needs the new version"),
    ({"image": "x", "swarm_service": "s"}, "swarm_to_k3s only"),
    ({"mode": "swarm_to_k3s", "image": "x"}, "in_cluster only"),
    ({"mode": "swarm_to_k3s", "post_promotion_checks": [{"type": "http"}]}, "set front_door_url"),
    ({"image": "x", "replicas": 0}, "1 or more"),
    ({"image": "x", "rollback_window": "soon"}, "rollback_window must be a duration"),
])
def test_validate_refuses(params, words):
    with pytest.raises(InputError, match=words):
        bg.validate(defaults(**params))


# ------------------------------------------------------------------------------------------------ pure: templates

def test_revision_ignores_our_labels_and_pod_template_hash():
    template = load("deployment.json")["spec"]["template"]
    rev = bg.revision(template)
    assert re.match(r"^[0-9a-f]{10}$", rev)
    labelled = copy.deepcopy(template)
    labelled["metadata"]["labels"].update({bg.REVISION_LABEL: rev, "pod-template-hash": "abc"})
    assert bg.revision(labelled) == rev
    changed = copy.deepcopy(template)
    changed["spec"]["containers"][0]["image"] = "other"
    assert bg.revision(changed) != rev


def test_green_template_sets_image_and_merges_env_idempotently():
    blue = load("deployment.json")["spec"]["template"]
    green = bg.green_template(blue, image="sophia-platform/mcp-server:v2", env={"MCP_SERVER_VERSION": "2.0.0", "NEW": 1})
    container = green["spec"]["containers"][0]
    assert container["image"] == "sophia-platform/mcp-server:v2"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MCP_SERVER_VERSION"] == "2.0.0" and env["NEW"] == "1" and env["MCP_SERVER_NAME"] == NAME
    assert [e["name"] for e in container["env"]][:3] == ["MCP_SERVER_NAME", "MCP_PORT", "MCP_SERVER_VERSION"]
    again = bg.green_template(green, image="sophia-platform/mcp-server:v2", env={"MCP_SERVER_VERSION": "2.0.0", "NEW": 1})
    assert bg.revision(again) == bg.revision(green)
    assert blue["spec"]["containers"][0]["image"] == "sophia-platform/mcp-server:lab"  # not changed in place


def test_green_template_from_a_template_keeps_blue_labels():
    blue = load("deployment.json")["spec"]["template"]
    mine = {"metadata": {"labels": {"tier": "x"}}, "spec": {"containers": [{"name": "mcp", "image": "i"}]}}
    green = bg.green_template(blue, template=mine)
    assert green["metadata"]["labels"] == {"app": NAME, "tier": "x"}


def test_green_template_unknown_container():
    with pytest.raises(InputError, match="container 'sidecar' is not in the pod template"):
        bg.green_template(load("deployment.json")["spec"]["template"], image="x", container="sidecar")


def test_current_replicaset_is_the_owned_one_at_the_deployment_revision():
    dep = load("deployment.json")
    sets = load("replicasets.json")["items"]
    old = copy.deepcopy(sets[0])
    old["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "0"
    foreign = copy.deepcopy(sets[0])
    foreign["metadata"]["ownerReferences"][0]["uid"] = "other"
    assert bg.current_replicaset(dep, [old, foreign, sets[0]]) is sets[0]
    assert bg.current_replicaset(dep, [old, foreign]) is None


def test_selectors_and_objects():
    svc = load("service.json")
    assert bg.pinned_selector(svc["spec"]["selector"], pod_template_hash="h1") == {"app": NAME, "pod-template-hash": "h1"}
    pinned = bg.pinned_selector({"app": NAME, "pod-template-hash": "h1"}, revision_value="r1")
    assert pinned == {"app": NAME, bg.REVISION_LABEL: "r1"}
    preview = bg.preview_service(svc, f"{NAME}-preview", NS, pinned)
    assert preview["spec"] == {"type": "ClusterIP", "selector": pinned,
                               "ports": [{"name": "mcp", "port": 9005, "protocol": "TCP", "targetPort": 9005}]}
    assert not bg.preview_differs(dict(preview, spec=dict(preview["spec"], clusterIP="10.96.0.5")), preview)
    green = bg.green_deployment(load("deployment.json"), NAME, NS, load("deployment.json")["spec"]["template"], "r1", 3,
                                pinned)
    assert green["metadata"]["name"] == f"{NAME}-r1"
    assert green["spec"]["selector"] == {"matchLabels": pinned}
    assert green["spec"]["template"]["metadata"]["labels"] == pinned
    assert green["spec"]["replicas"] == 3


# ------------------------------------------------------------------------------------------------ pure: state

def test_annotations_round_trip_and_history_is_capped():
    recorded = {"state": "promoted", "active": "r2", "blue": {"deployment": NAME}, "green": {"deployment": "g"},
                "window_end": "2026-11-26T12:00:00Z", "history": []}
    for index in range(25):
        recorded = bg.with_history(recorded, {"revision": f"r{index}", "action": "promote", "outcome": "promoted",
                                              "started": "s", "finished": "f", "by": "me"})
    values = bg.state_annotations(recorded)
    assert all(isinstance(v, str) for v in values.values())
    back = bg.read_state({"metadata": {"annotations": values}})
    assert back["state"] == "promoted" and back["blue"] == {"deployment": NAME}
    assert len(back["history"]) == 20 and back["history"][-1]["revision"] == "r24"
    assert bg.read_state(load("service.json")) == {"state": None, "active": None, "blue": {}, "green": {},
                                                   "window_end": None, "history": []}


def test_history_entry_replaces_the_unfinished_promotion_of_its_revision():
    started = bg.history_entry("r1", "promote", "started", T0, T0, "me")
    recorded = bg.with_history({"history": [started]}, bg.history_entry("r1", "promote", "promoted", T0 + timedelta(
        minutes=5), T0 + timedelta(minutes=6), "me", switch_s=0.41234))
    assert recorded["history"] == [{"revision": "r1", "action": "promote", "outcome": "promoted",
                                    "started": "2026-11-26T10:00:00Z", "finished": "2026-11-26T10:06:00Z", "by": "me",
                                    "switch_s": 0.412}]
    other = bg.with_history({"history": [started]}, bg.history_entry("r2", "promote", "started", T0, T0, "me"))
    assert len(other["history"]) == 2


def test_window():
    state = {"window_end": "2026-11-26T12:00:00Z"}
    assert bg.window_open(state, T0)
    assert not bg.window_open(state, T0 + timedelta(hours=2))
    assert not bg.window_open({"window_end": None}, T0)
    assert bg.window_end(T0, 5400) == "2026-11-26T11:30:00Z"


# ------------------------------------------------------------------------------------------------ pure: GPUs

KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


def gpu_template(per_pod, selector=None, tolerations=(KWOK_TOLERATION,)):
    spec = {"containers": [{"name": "mcp", "image": "i", "resources": {"limits": {"nvidia.com/gpu": str(per_pod)}}}],
            "tolerations": list(tolerations)}
    if selector:
        spec["nodeSelector"] = selector
    return {"metadata": {"labels": {"app": NAME}}, "spec": spec}


def gpu_pod(node, count, phase="Running"):
    return {"metadata": {"name": f"p-{node}-{count}", "namespace": "other"},
            "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"nvidia.com/gpu": str(count)}}}]},
            "status": {"phase": phase}}


def test_gpu_fit_counts_free_gpus_node_by_node():
    nodes = load("nodes.json")["items"]
    names = [n["metadata"]["name"] for n in nodes]
    allocatable = {n["metadata"]["name"]: int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in nodes}
    pods = [gpu_pod(names[0], allocatable[names[0]] - 1), gpu_pod(names[1], 99, phase="Succeeded")]
    fit = bg.gpu_fit(gpu_template(2), 3, nodes, pods)
    assert fit["per_node"][names[0]] == 1
    assert fit["per_node"][names[1]] == allocatable[names[1]]
    assert fit["free"] == sum(fit["per_node"].values())
    assert fit["placeable"] == sum(free // 2 for free in fit["per_node"].values())
    assert fit["needed"] == 6 and fit["fits"] == (fit["placeable"] >= 3)


def test_gpu_fit_without_gpus_needs_nothing():
    fit = bg.gpu_fit(load("deployment.json")["spec"]["template"], 2, [], [])
    assert fit["per_pod"] == 0 and fit["fits"] and fit["free"] is None


def test_gpu_fit_skips_unready_unschedulable_and_unmatched_nodes():
    nodes = copy.deepcopy(load("nodes.json")["items"])
    nodes[0]["spec"]["unschedulable"] = True
    for condition in nodes[1]["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["status"] = "False"
    fit = bg.gpu_fit(gpu_template(1), 1, nodes, [])
    assert set(fit["per_node"]) == {n["metadata"]["name"] for n in nodes[2:]}
    fit = bg.gpu_fit(gpu_template(1, {"no-such": "label"}), 1, nodes, [])
    assert fit["per_node"] == {} and not fit["fits"]


def test_gpu_fit_leaves_out_nodes_whose_taints_green_does_not_tolerate():
    nodes = load("nodes.json")["items"]  # the real agent (no taint) and two kwok nodes (NoSchedule kwok.x-k8s.io/node)
    assert bg.gpu_fit(gpu_template(1, tolerations=()), 1, nodes, [])["per_node"] == {"sophia-lab-agent": 4}
    assert len(bg.gpu_fit(gpu_template(1), 1, nodes, [])["per_node"]) == 3


@pytest.mark.parametrize("toleration, taint, ok", [
    ({"operator": "Exists"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, True),
    ({"key": "a", "operator": "Exists"}, {"key": "a", "value": "b", "effect": "NoExecute"}, True),
    ({"key": "a", "value": "b"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, True),
    ({"key": "a", "value": "c"}, {"key": "a", "value": "b", "effect": "NoSchedule"}, False),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute"}, {"key": "a", "effect": "NoSchedule"}, False),
    ({"key": "x", "operator": "Exists"}, {"key": "a", "effect": "NoSchedule"}, False),
    (None, {"key": "a", "effect": "PreferNoSchedule"}, True),
])
def test_tolerates(toleration, taint, ok):
    assert bg.tolerates([toleration] if toleration else [], taint) is ok


def test_gpu_shortfall_fails_with_the_figures_or_reduces():
    nodes = load("nodes.json")["items"][:1]
    name = nodes[0]["metadata"]["name"]
    free = int(nodes[0]["status"]["allocatable"]["nvidia.com/gpu"])
    fit = bg.gpu_fit(gpu_template(1), free + 2, nodes, [])
    with pytest.raises(bg.CutoverError) as info:
        bg.gpu_decision(copy.deepcopy(fit), "fail", "green sophia-mcp/x")
    assert info.value.details["reason"] == "gpu_shortfall"
    assert f"needs {free + 2} nvidia.com/gpu" in str(info.value) and f"{free} free" in str(info.value)
    assert f"per node: {name} {free}" in str(info.value)
    replicas, warning = bg.gpu_decision(fit, "reduce", "green")
    assert replicas == free and fit["reduced"] and f"reduced green of {free} of {free + 2}" in warning
    empty = bg.gpu_fit(gpu_template(1), 1, [], [])
    with pytest.raises(bg.CutoverError):
        bg.gpu_decision(empty, "reduce", "green")


# ------------------------------------------------------------------------------------------------ pure: planning

OPEN = "2026-11-26T12:00:00Z"
CLOSED = "2026-11-26T09:00:00Z"


def recorded(state=None, active="b", window=OPEN, green="g"):
    return {"state": state, "active": active, "blue": {"deployment": "blue", "revision": "b"} if state else {},
            "green": {"deployment": f"x-{green}", "revision": green} if state else {}, "window_end": window,
            "history": []}


FACTS = {"desired_rev": "g", "active_rev": "b", "pinned": True, "active_selector_ok": True, "green": None,
         "green_replicas": 2, "green_name": "x-g", "preview_ok": False, "preview_name": "x-preview",
         "blue_live": True, "blue_up": True}


def names(plan):
    return [s["step"] for s in plan["steps"]]


@pytest.mark.parametrize("state, params, facts, steps, final", [
    (recorded(), {}, {"pinned": False}, ["pin_blue", "start", "apply_green", "apply_preview", "wait_green", "switch",
                                         "wait_endpoints", "record_promoted"], "promoted"),
    (recorded(), {"pre_checks": [1], "post_checks": [1]}, {}, [
        "start", "apply_green", "apply_preview", "wait_green", "pre_checks", "switch", "wait_endpoints", "post_checks",
        "record_promoted"], "promoted"),
    (recorded(), {"auto_promotion": False, "pre_checks": [1]}, {},
     ["start", "apply_green", "apply_preview", "wait_green", "pre_checks"], "preview"),
    # paused rerun: nothing to write, the checks are not run again
    (recorded("preview"), {"auto_promotion": False, "pre_checks": [1]},
     {"green": {"spec": {"replicas": 2}}, "preview_ok": True}, ["wait_green"], "preview"),
    # the paused green is promoted by a run with auto_promotion true
    (recorded("preview"), {"pre_checks": [1]}, {"green": {"spec": {"replicas": 2}}, "preview_ok": True},
     ["wait_green", "pre_checks", "switch", "wait_endpoints", "record_promoted"], "promoted"),
    # green active, window open, same revision: nothing
    (recorded("promoted", active="g"), {}, {"active_rev": "g"}, [], "promoted"),
    (recorded("promoted", active="g", window=CLOSED), {}, {"active_rev": "g"}, ["complete"], "completed"),
    (recorded("promoted", active="g"), {}, {"active_rev": "g", "active_selector_ok": False}, ["restore_selector"],
     "promoted"),
    (recorded("completed", active="g", window=CLOSED), {}, {"active_rev": "g"}, [], "completed"),
    (recorded("rolled_back"), {}, {"desired_rev": "b"}, [], "rolled_back"),
    # a new revision while the window of the last one is open: the old blue is retired
    (recorded("promoted", active="g"), {}, {"desired_rev": "n", "active_rev": "g", "green_name": "x-n"},
     ["retire_previous_blue", "start", "apply_green", "apply_preview", "wait_green", "switch", "wait_endpoints",
      "record_promoted"], "promoted"),
    # a new revision while another one is previewed: that one is scaled down
    (recorded("preview", green="old"), {}, {"desired_rev": "n"},
     ["scale_down_superseded_green", "start", "apply_green", "apply_preview", "wait_green", "switch", "wait_endpoints",
      "record_promoted"], "promoted"),
    (recorded("preview"), {}, {"desired_rev": "b"}, ["abort"], "aborted"),
    # retry after an abort: green exists at 0 replicas
    (recorded("aborted"), {}, {"green": {"spec": {"replicas": 0}}, "preview_ok": True},
     ["start", "apply_green", "wait_green", "switch", "wait_endpoints", "record_promoted"], "promoted"),
])
def test_plan_in_cluster_promoted(state, params, facts, steps, final):
    plan = bg.plan_in_cluster(state, dict({"state": "promoted"}, **params), T0, dict(FACTS, **facts))
    assert (names(plan), plan["final"], plan["error"]) == (steps, final, None)


@pytest.mark.parametrize("want, state, params, facts, steps, final, error", [
    ("completed", recorded("promoted", active="g"), {}, {}, [], "promoted", "window_open"),
    ("completed", recorded("promoted", active="g"), {"force": True}, {}, ["complete"], "completed", None),
    ("completed", recorded("promoted", active="g", window=CLOSED), {}, {}, ["complete"], "completed", None),
    ("completed", recorded("completed", active="g"), {}, {}, [], "completed", None),
    ("completed", recorded("rolled_back"), {}, {}, [], "rolled_back", "not_promoted"),
    ("rolled_back", recorded("promoted", active="g"), {}, {},
     ["switch_back", "wait_endpoints", "scale_down_green"], "rolled_back", None),
    ("aborted", recorded("promoted", active="g"), {}, {},
     ["switch_back", "wait_endpoints", "scale_down_green"], "aborted", None),
    ("rolled_back", recorded("rolled_back"), {}, {}, [], "rolled_back", None),
    ("aborted", recorded("aborted"), {}, {}, [], "aborted", None),
    ("rolled_back", recorded("aborted"), {}, {}, [], "aborted", None),
    ("aborted", recorded("preview"), {}, {}, ["abort"], "aborted", None),
    ("rolled_back", recorded(), {}, {}, [], None, "no_green"),
    ("rolled_back", recorded("completed", active="g", window=CLOSED), {}, {}, [], "completed", "window_closed"),
    ("rolled_back", recorded("promoted", active="g", window=CLOSED), {}, {}, [], "promoted", "window_closed"),
    ("rolled_back", recorded("completed", active="g", window=CLOSED), {"force": True}, {"blue_up": False},
     ["scale_up_blue", "switch_back", "wait_endpoints", "scale_down_green"], "rolled_back", None),
    ("rolled_back", recorded("completed", active="g", window=CLOSED), {"force": True}, {"blue_live": False},
     [], "completed", "no_blue"),
])
def test_plan_in_cluster_other_states(want, state, params, facts, steps, final, error):
    plan = bg.plan_in_cluster(state, dict({"state": want}, **params), T0, dict(FACTS, desired_rev=None, **facts))
    assert (names(plan), plan["final"], (plan["error"] or [None])[0]) == (steps, final, error)


def swarm_state(state=None, window=OPEN):
    return {"state": state, "active": "k3s" if state in ("promoted", "completed") else "swarm",
            "blue": {"swarm_service": "sophia_x", "replicas": 2} if state else {},
            "green": {"deployment": "x", "replicas_before": 0} if state else {}, "window_end": window, "history": []}


SWARM_FACTS = {"front": "swarm", "green_replicas": 0, "green_wanted": 2, "swarm_replicas": 2, "swarm_wanted": 2}


@pytest.mark.parametrize("want, state, params, facts, steps, final, error", [
    ("promoted", swarm_state(), {"pre_checks": [1], "post_checks": [1]}, {},
     ["start", "scale_green", "wait_green", "pre_checks", "switch", "post_checks", "record_promoted"], "promoted", None),
    ("promoted", swarm_state(), {}, {"green_replicas": 2}, ["start", "wait_green", "switch", "record_promoted"],
     "promoted", None),
    ("promoted", swarm_state(), {"auto_promotion": False}, {}, ["start", "scale_green", "wait_green"], "preview", None),
    ("promoted", swarm_state("preview"), {"auto_promotion": False, "pre_checks": [1]}, {"green_replicas": 2},
     ["wait_green"], "preview", None),
    ("promoted", swarm_state("promoted"), {}, {"front": "k3s"}, [], "promoted", None),
    # the front door lost the switch (reloaded without the state file): follow the recorded state
    ("promoted", swarm_state("promoted"), {}, {"front": "swarm"}, ["switch"], "promoted", None),
    ("promoted", swarm_state("promoted", CLOSED), {}, {"front": "k3s"}, ["complete"], "completed", None),
    ("completed", swarm_state("promoted"), {}, {"front": "k3s"}, [], "promoted", "window_open"),
    ("completed", swarm_state("promoted"), {"force": True}, {"front": "k3s"}, ["complete"], "completed", None),
    ("rolled_back", swarm_state("promoted"), {}, {"front": "k3s"}, ["switch_back", "scale_down_green"],
     "rolled_back", None),
    ("rolled_back", swarm_state("rolled_back"), {}, {}, [], "rolled_back", None),
    ("rolled_back", swarm_state("completed", CLOSED), {}, {"front": "k3s"}, [], "completed", "window_closed"),
    ("rolled_back", swarm_state("completed", CLOSED), {"force": True}, {"front": "k3s", "swarm_replicas": 0},
     ["scale_up_blue", "switch_back", "scale_down_green"], "rolled_back", None),
    ("aborted", swarm_state("preview"), {}, {}, ["abort"], "aborted", None),
    ("aborted", swarm_state(), {}, {}, [], None, "no_green"),
])
def test_plan_swarm(want, state, params, facts, steps, final, error):
    plan = bg.plan_swarm(state, dict({"state": want}, **params), T0, dict(SWARM_FACTS, **facts))
    assert (names(plan), plan["final"], (plan["error"] or [None])[0]) == (steps, final, error)


def test_endpoints_state_on_the_lab_slice():
    item = load("endpointslices.json")["items"][0]
    pods = {e["targetRef"]["name"] for e in item["endpoints"]}
    assert bg.endpoints_state([item], pods) == (True, f"{len(pods)} endpoints, {len(pods)} ready on the new side, 0 other")
    done, detail = bg.endpoints_state([item], set(list(pods)[:1]))
    assert not done and detail.endswith("1 other")
    assert bg.endpoints_state([], pods)[0] is False


@pytest.mark.parametrize("weights, front", [
    ({"swarm": 100, "k3s": 0}, "swarm"), ({"swarm": 0, "k3s": 100}, "k3s"), ({"swarm": 50, "k3s": 50}, "split"),
    ({"swarm": 0, "k3s": 0}, "none"),
])
def test_front_of(weights, front):
    servers = [{"name": n, "side": n, "effective_weight": w} for n, w in weights.items()]
    assert bg.front_of(servers) == front


# ------------------------------------------------------------------------------------------------ runner, in cluster

V2 = "sophia-platform/mcp-server:v2"


def test_promote_pins_blue_then_switches_in_one_patch(world):
    cluster, clock, http = world
    result = run_ic(world, image=V2, pre_promotion_checks=[{"name": "ready", "type": "http"}],
                    post_promotion_checks=[{"name": "mcp", "type": "mcp", "tools": ["echo"]}])
    rev = result["green"]["revision"]
    green_selector = {"app": NAME, bg.REVISION_LABEL: rev}
    assert (result["changed"], result["state"], result["active"], result["phase"]) == (True, "promoted", "green", "promoted")
    # one write pins blue (no traffic change), one switches, one records the outcome
    assert cluster.selectors == [blue_pinned(cluster), green_selector, green_selector]
    green = cluster.deployments[f"{NAME}-{rev}"]
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == V2
    assert green["spec"]["selector"]["matchLabels"] == green_selector and green["spec"]["replicas"] == 2
    assert cluster.deployments[NAME]["spec"]["replicas"] == 2  # blue kept at full scale
    assert cluster.services[f"{NAME}-preview"]["spec"]["selector"] == green_selector
    state = annotations(cluster)
    assert state["state"] == "promoted" and state["active"] == rev and state["window_end"] == "2026-11-26T12:00:00Z"
    assert state["blue"]["selector"] == blue_pinned(cluster) and state["blue"]["deployment"] == NAME
    assert [(h["action"], h["outcome"], h["by"]) for h in state["history"]] == [("promote", "promoted", "tester@ctl")]
    assert result["switch_seconds"] is not None and state["history"][0]["switch_s"] == result["switch_seconds"]
    assert [c["name"] for c in result["checks"]["pre"]] == ["ready"] and result["checks"]["pre"][0]["ok"]
    assert http.urls == ["http://10.96.0.99:9005/readyz"]  # the preview Service
    assert result["checks"]["post"][0]["ok"] and result["window_open"]
    assert [a["step"] for a in result["actions"]] == ["start", "apply_green", "apply_preview", "switch",
                                                      "wait_endpoints", "record_promoted"]
    assert result["api_calls"] == cluster.api_calls
    assert len(cluster.writes()) == 5


def test_promoted_rerun_writes_nothing(world):
    cluster = world[0]
    first = run_ic(world, image=V2)
    before = len(cluster.requests)
    again = run_ic(world, image=V2)
    assert again["changed"] is False and again["state"] == "promoted" and again["actions"] == []
    assert not [r for r in cluster.requests[before:] if r.split()[0] != "GET" and not r.startswith("LIST")]
    assert again["green"]["revision"] == first["green"]["revision"]
    assert again["diff"]["before"] == again["diff"]["after"]


def test_check_mode_lists_the_steps_and_writes_nothing(world):
    cluster = world[0]
    result = run_ic(world, check_mode=True, image=V2)
    assert result["changed"] is True and not cluster.writes()
    assert [a["step"] for a in result["actions"]] == ["pin_blue", "start", "apply_green", "apply_preview",
                                                      "wait_green", "switch", "wait_endpoints", "record_promoted"]
    assert result["diff"]["before"]["state"] is None and result["diff"]["after"]["state"] == "promoted"
    run_ic(world, image=V2)
    assert run_ic(world, check_mode=True, image=V2)["changed"] is False


def test_green_never_ready_aborts_and_blue_keeps_serving(world):
    cluster, clock, dummy = world
    cluster.unready_images.add(V2)
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, image=V2, ready_timeout=30)
    details = info.value.details
    assert details["reason"] == "green_not_ready" and details["aborted"] is True and details["state"] == "aborted"
    assert "Aborted: blue keeps serving" in str(info.value)
    assert cluster.services[NAME]["spec"]["selector"] == blue_pinned(cluster)
    assert cluster.deployments[f"{NAME}-{details['green']['revision']}"]["spec"]["replicas"] == 0
    state = annotations(cluster)
    assert state["state"] == "aborted" and [(h["outcome"], h.get("reason")) for h in state["history"]] == [
        ("aborted", "green_not_ready")]
    assert 30 <= clock.t < 40
    # a rerun of state aborted changes nothing
    assert run_ic(world, state="aborted")["changed"] is False


def test_failed_pre_check_aborts(world):
    cluster, dummy, http = world
    http.failing["http://10.96.0.99"] = 503
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, image=V2, pre_promotion_checks=[{"name": "ready", "type": "http"}])
    assert info.value.details["reason"] == "pre_check_failed" and info.value.details["aborted"]
    assert info.value.details["checks"]["pre"][0]["detail"].startswith("HTTP 503, wanted 200")
    assert cluster.services[NAME]["spec"]["selector"] == blue_pinned(cluster)


def test_failed_post_check_rolls_back_before_failing(world):
    cluster, clock, http = world
    active_ip = cluster.services[NAME]["spec"]["clusterIP"]
    http.failing[f"http://{active_ip}"] = 500
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, image=V2, post_promotion_checks=[{"name": "health", "type": "http", "path": "/healthz"}])
    details = info.value.details
    assert details["reason"] == "post_check_failed" and details["rolled_back"] is True
    assert details["active"] == "blue" and details["state"] == "rolled_back"
    rev = details["green"]["revision"]
    assert cluster.selectors == [blue_pinned(cluster), {"app": NAME, bg.REVISION_LABEL: rev}, blue_pinned(cluster),
                                 blue_pinned(cluster)]
    assert cluster.deployments[f"{NAME}-{rev}"]["spec"]["replicas"] == 0
    assert annotations(cluster)["history"][-1]["outcome"] == "rolled_back"


def test_rollback_within_the_window_then_rerun(world):
    cluster = world[0]
    rev = run_ic(world, image=V2)["green"]["revision"]
    result = run_ic(world, state="rolled_back", reason="latency")
    assert (result["changed"], result["state"], result["active"]) == (True, "rolled_back", "blue")
    assert cluster.services[NAME]["spec"]["selector"] == blue_pinned(cluster)
    assert cluster.deployments[f"{NAME}-{rev}"]["spec"]["replicas"] == 0
    assert result["switch_seconds"] is not None
    assert [(h["action"], h["outcome"], h.get("reason")) for h in result["history"]] == [
        ("promote", "promoted", None), ("rollback", "rolled_back", "latency")]
    again = run_ic(world, state="rolled_back")
    assert again["changed"] is False and again["state"] == "rolled_back"
    # promoting the same image again is a new attempt, from blue
    assert run_ic(world, image=V2)["state"] == "promoted"
    assert cluster.deployments[f"{NAME}-{rev}"]["spec"]["replicas"] == 2


def test_completed_needs_the_window_closed_or_force(world):
    cluster, clock, dummy = world
    run_ic(world, image=V2, rollback_window="5s")
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, state="completed", rollback_window="5s")
    assert info.value.details["reason"] == "window_open"
    assert "open until 2026-11-26T10:00:" in str(info.value)
    clock.t += 10
    result = run_ic(world, image=V2)  # a promoted rerun after the window completes
    assert (result["changed"], result["state"], result["active"]) == (True, "completed", "green")
    assert cluster.deployments[NAME]["spec"]["replicas"] == 0
    assert run_ic(world, state="completed")["changed"] is False
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, state="rolled_back")
    assert info.value.details["reason"] == "window_closed"
    result = run_ic(world, state="rolled_back", force=True)
    assert result["state"] == "rolled_back" and cluster.deployments[NAME]["spec"]["replicas"] == 2
    assert cluster.services[NAME]["spec"]["selector"] == blue_pinned(cluster)


def test_force_completion_deletes_blue_when_asked(world):
    cluster = world[0]
    run_ic(world, image=V2)
    result = run_ic(world, state="completed", force=True, blue_scale_down="delete")
    assert result["state"] == "completed" and NAME not in cluster.deployments


def test_preview_then_promote(world):
    cluster = world[0]
    paused = run_ic(world, image=V2, auto_promotion=False, pre_promotion_checks=[{"type": "http"}])
    assert (paused["phase"], paused["paused"], paused["active"]) == ("preview", True, "blue")
    assert cluster.services[NAME]["spec"]["selector"] == blue_pinned(cluster)
    writes = len(cluster.writes())
    again = run_ic(world, image=V2, auto_promotion=False, pre_promotion_checks=[{"type": "http"}])
    assert again["changed"] is False and again["paused"] and len(cluster.writes()) == writes
    promoted = run_ic(world, image=V2, pre_promotion_checks=[{"type": "http"}])
    assert promoted["state"] == "promoted" and promoted["checks"]["pre"][0]["ok"]
    assert [h["outcome"] for h in promoted["history"]] == ["promoted"]


def test_a_second_cutover_pins_by_revision_and_retires_the_first_blue(world):
    cluster = world[0]
    first = run_ic(world, image=V2)["green"]["revision"]
    result = run_ic(world, image="sophia-platform/mcp-server:v3")
    second = result["green"]["revision"]
    assert result["blue"]["deployment"] == f"{NAME}-{first}"
    assert cluster.services[NAME]["spec"]["selector"] == {"app": NAME, bg.REVISION_LABEL: second}
    assert cluster.deployments[NAME]["spec"]["replicas"] == 0  # retired: the window of the first cutover was open
    assert any("was retired" in w for w in result["warnings"])
    back = run_ic(world, state="rolled_back")
    assert cluster.services[NAME]["spec"]["selector"] == {"app": NAME, bg.REVISION_LABEL: first}
    assert back["active"] == "blue"


def test_api_server_gone_for_a_while_is_waited_out(world):
    cluster, clock, dummy = world
    cluster.unreachable_after = (8, 12)  # during the run, 12 requests find no API server
    result = run_ic(world, image=V2)
    assert result["state"] == "promoted" and cluster.unreachable == 0
    assert annotations(cluster)["history"][-1]["outcome"] == "promoted"


def test_a_run_cut_off_after_the_switch_is_finished_by_the_rerun(world):
    cluster, clock, dummy = world
    cluster.unreachable_after = (9, 10_000)  # the API server leaves right after the switch patch
    with pytest.raises(ApiError):
        run_ic(world, image=V2)
    state = annotations(cluster)
    assert state["state"] == "promoted" and state["history"][-1]["outcome"] == "switching"
    cluster.unreachable = 0
    result = run_ic(world, image=V2)
    assert result["changed"] is True and [a["step"] for a in result["actions"]] == ["wait_endpoints", "record_promoted"]
    assert annotations(cluster)["history"][-1]["outcome"] == "promoted"
    assert run_ic(world, image=V2)["changed"] is False


def test_gpu_shortfall_fails_before_anything_is_created(world):
    cluster = world[0]
    node = cluster.nodes[0]
    template = gpu_template(int(node["status"]["allocatable"]["nvidia.com/gpu"]) + 1)
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, template=template)
    assert info.value.details["reason"] == "gpu_shortfall"
    assert not [d for d in cluster.deployments if d != NAME]


def test_gpu_reduce_runs_a_smaller_green(world):
    cluster = world[0]
    node = cluster.nodes[0]
    free = sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in cluster.nodes)
    result = run_ic(world, template=gpu_template(1), replicas=free + 3, gpu_shortfall="reduce")
    assert result["gpu"]["reduced"] and result["gpu"]["replicas_run"] == free
    assert cluster.deployments[result["green"]["deployment"]]["spec"]["replicas"] == free
    assert any("reduced green" in w for w in result["warnings"]) and node


def test_job_check_is_created_and_deleted(world):
    cluster = world[0]
    job = {"template": {"spec": {"containers": [{"name": "c", "image": "curl", "args": ["http://x/readyz"]}]}}}
    result = run_ic(world, image=V2, pre_promotion_checks=[{"name": "smoke", "type": "job", "job": job}])
    assert result["checks"]["pre"][0]["ok"] and not cluster.jobs
    cluster.job_outcome = "Failed"
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, image="sophia-platform/mcp-server:v3",
               pre_promotion_checks=[{"name": "smoke", "type": "job", "job": job}])
    assert info.value.details["reason"] == "pre_check_failed" and not cluster.jobs


def test_missing_service_and_ambiguous_blue(world):
    cluster = world[0]
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, name="nope", image=V2)
    assert info.value.details["reason"] == "no_blue" and "sophia-mcp/nope does not exist" in str(info.value)
    twin = copy.deepcopy(cluster.deployments[NAME])
    twin["metadata"]["name"] = "twin"
    cluster.deployments["twin"] = twin
    with pytest.raises(bg.CutoverError, match="several Deployments match"):
        run_ic(world, image=V2)


def test_rollback_of_a_service_never_cut_over(world):
    with pytest.raises(bg.CutoverError) as info:
        run_ic(world, state="rolled_back")
    assert info.value.details["reason"] == "no_green"


# ------------------------------------------------------------------------------------------------ runner, swarm to K3s

class FakeFrontDoor:
    """HAProxy's runtime API replaying the captured mcp-gong replies, with the weights set by commands."""

    def __init__(self, k3s_up=True):
        lines = (HAPROXY / "gong-servers-state.txt").read_text().splitlines()
        self.head = lines[:2]
        self.rows = {line.split()[3]: line.split() for line in lines[2:] if line.strip()}
        self.stat = (HAPROXY / "gong-stat.txt").read_text()
        self.commands = []
        if not k3s_up:
            self.rows["k3s"][5], self.rows["k3s"][10] = "0", "8"

    def command(self, line):
        if line.startswith("show servers state"):
            return "\n".join(self.head + [" ".join(r) for r in self.rows.values()]) + "\n"
        assert line == "show stat"
        return self.stat

    def run(self, line):
        self.commands.append(line)
        match = re.match(r"set server mcp-gong/(\w+) (weight (\d+)|state (\w+))$", line)
        row = self.rows[match.group(1)]
        if match.group(3) is not None:
            row[7] = match.group(3)
        else:
            row[6] = {"ready": "0", "drain": "8"}[match.group(4)]


class FakeDocker:
    """A Swarm manager's engine with one service (inspect, update, tasks, nodes)."""

    def __init__(self, replicas=2):
        self.spec = {"Name": "sophia_mcp-gong", "Mode": {"Replicated": {"Replicas": replicas}},
                     "TaskTemplate": {"ContainerSpec": {"Image": "sophia-platform/mcp-server:lab"}}}
        self.version = 10
        self.api_calls = 0
        self.updates = []

    def inspect_service(self, name):
        self.api_calls += 1
        assert name == "sophia_mcp-gong"
        return {"ID": "svc1", "Version": {"Index": self.version}, "Spec": copy.deepcopy(self.spec)}

    def update_service(self, service_id, version, **kwargs):
        self.api_calls += 1
        assert version == self.version
        self.version += 1
        self.spec["Mode"] = kwargs["mode"]
        self.updates.append(kwargs["mode"])

    def tasks(self, filters=None):
        self.api_calls += 1
        replicas = self.spec["Mode"]["Replicated"]["Replicas"]
        return [{"DesiredState": "running", "Status": {"State": "running"}, "Slot": i} for i in range(replicas)]

    def nodes(self):
        self.api_calls += 1
        return [{"ID": "n1", "Status": {"State": "ready"}, "Spec": {"Availability": "active"}}]


@pytest.fixture
def swarm_world(world):
    cluster = world[0]
    cluster.deployments[NAME]["spec"]["replicas"] = 0  # green as mcp_deploy left it, at 0
    return world + (FakeFrontDoor(), FakeDocker())


def run_sw(swarm_world, check_mode=False, **params):
    cluster, clock, http, front, docker = swarm_world
    params = dict(mode="swarm_to_k3s", front_door_url="http://127.0.0.1:9105", **params)
    return runner.run_swarm_to_k3s(defaults(**params), cluster, check_mode=check_mode, docker=docker, haproxy=front,
                                   clock=clock.clock, sleep=clock.sleep, now=clock.now, by="tester@ctl", http=http,
                                   mcp_probe=probe)


def test_swarm_promote_rerun_rollback(swarm_world):
    cluster, clock, http, front, docker = swarm_world
    result = run_sw(swarm_world, pre_promotion_checks=[{"name": "k3s ready", "type": "http"}],
                    post_promotion_checks=[{"name": "front door", "type": "mcp"}])
    assert (result["state"], result["active"], result["front_door"]) == ("promoted", "green", {"swarm": 0, "k3s": 100})
    assert cluster.deployments[NAME]["spec"]["replicas"] == 2  # scaled to the Swarm service's replicas
    assert front.commands == ["set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0",
                              "set server mcp-gong/swarm state drain"]
    assert http.urls == ["http://127.0.0.1:18942/readyz"]  # preview = the k3s server
    assert result["checks"]["post"][0]["target"] == "http://127.0.0.1:9105/mcp"
    assert docker.updates == []  # blue untouched
    state = annotations(cluster)
    assert state["state"] == "promoted" and state["active"] == "k3s" and state["green"]["replicas_before"] == 0
    assert cluster.services[NAME]["spec"]["selector"] == {"app": NAME}  # the selector is not this mode's
    assert result["switch_seconds"] is not None

    commands = len(front.commands)
    again = run_sw(swarm_world)
    assert again["changed"] is False and len(front.commands) == commands

    back = run_sw(swarm_world, state="rolled_back")
    assert (back["state"], back["active"], back["front_door"]) == ("rolled_back", "blue", {"swarm": 100, "k3s": 0})
    assert cluster.deployments[NAME]["spec"]["replicas"] == 0  # the module scaled it up, so it scales it back
    assert run_sw(swarm_world, state="rolled_back")["changed"] is False


def test_swarm_green_not_ready_aborts_without_touching_the_front_door(swarm_world):
    cluster, dummy, dummy2, front, docker = swarm_world
    cluster.unready_images.add("sophia-platform/mcp-server:lab")
    with pytest.raises(bg.CutoverError) as info:
        run_sw(swarm_world, ready_timeout=20)
    assert info.value.details["reason"] == "green_not_ready" and info.value.details["aborted"]
    assert front.commands == [] and cluster.deployments[NAME]["spec"]["replicas"] == 0
    assert annotations(cluster)["state"] == "aborted"


def test_swarm_unhealthy_k3s_server_aborts(world):
    front = FakeFrontDoor(k3s_up=False)
    with pytest.raises(bg.CutoverError) as info:
        run_sw(world + (front, FakeDocker()), ready_timeout=3)
    assert info.value.details["reason"] == "green_not_ready"
    assert "health check of its k3s server(s) does not pass after 3 s: k3s: its health checks mark it down" in str(info.value)
    assert front.commands == []


def test_swarm_post_check_failure_switches_back(swarm_world):
    cluster, dummy, http, front, dummy2 = swarm_world
    http.failing["http://127.0.0.1:9105"] = 502
    with pytest.raises(bg.CutoverError) as info:
        run_sw(swarm_world, post_promotion_checks=[{"type": "http", "attempts": 2}])
    assert info.value.details["reason"] == "post_check_failed" and info.value.details["rolled_back"]
    assert info.value.details["front_door"] == {"swarm": 100, "k3s": 0}
    assert annotations(cluster)["state"] == "rolled_back"


def test_swarm_post_check_soak_keeps_checking_for_its_duration(swarm_world):
    cluster, clock, http, front, dummy = swarm_world
    result = run_sw(swarm_world, post_promotion_checks=[{"type": "http", "duration": "10s"}])
    post = result["checks"]["post"]
    assert post[0]["ok"] and "kept passing for 10 s (11 passes)" in post[0]["detail"], post
    assert http.urls.count("http://127.0.0.1:9105/readyz") == 11
    assert result["state"] == "promoted" and result["front_door"] == {"swarm": 0, "k3s": 100}


def test_swarm_post_check_failing_during_its_soak_switches_back(swarm_world):
    cluster, clock, http, front, dummy = swarm_world

    class LaterFailing(Http):
        """Good answers until the soak is 4 s old, then 502."""

        def __call__(self, url, timeout):
            self.urls.append(url)
            start = start_at.setdefault("t", clock.t)
            return (502, "bad gateway") if clock.t - start >= 4 else (200, "ok")

    start_at = {}
    world = (cluster, clock, LaterFailing(), front, dummy)
    with pytest.raises(bg.CutoverError) as info:
        run_sw(world, post_promotion_checks=[{"type": "http", "duration": 30, "attempts": 2}])
    assert info.value.details["reason"] == "post_check_failed" and info.value.details["rolled_back"]
    detail = info.value.details["checks"]["post"][0]["detail"]
    assert "into its 30 s soak (after 4 passes): HTTP 502" in detail, detail
    assert info.value.details["front_door"] == {"swarm": 100, "k3s": 0}


def test_swarm_complete_scales_the_swarm_service_to_zero(swarm_world):
    cluster, clock, dummy, front, docker = swarm_world
    run_sw(swarm_world, rollback_window="1m")
    with pytest.raises(bg.CutoverError) as info:
        run_sw(swarm_world, state="completed")
    assert info.value.details["reason"] == "window_open"
    clock.t += 61
    result = run_sw(swarm_world, state="completed")
    assert result["state"] == "completed" and docker.updates == [{"Replicated": {"Replicas": 0}}]
    forced = run_sw(swarm_world, state="rolled_back", force=True)
    assert forced["state"] == "rolled_back" and docker.updates[-1] == {"Replicated": {"Replicas": 2}}
    assert forced["front_door"] == {"swarm": 100, "k3s": 0}


def test_swarm_check_mode(swarm_world):
    cluster, dummy, dummy2, front, docker = swarm_world
    result = run_sw(swarm_world, check_mode=True)
    assert result["changed"] and [a["step"] for a in result["actions"]] == [
        "start", "scale_green", "wait_green", "switch", "record_promoted"]
    assert not cluster.writes() and front.commands == [] and docker.updates == []


# ------------------------------------------------------------------------------------------------ stateful moves
# The sides of a volume move are doubles here (the copy itself is tested on real archives in test_volume_copy.py
# and end to end, Swarm volume to a local-path claim, in tests/integration/bluegreen/test_swarm_to_k3s_volumes.py).


class HoldingFrontDoor(FakeFrontDoor):
    """FakeFrontDoor with the hold map of role front_door (captured replies' shapes) and HAProxy's stot counters."""

    def __init__(self, leak_during_copy=False):
        super().__init__()
        self.held, self.log, self.leak = {}, [], leak_during_copy
        self.sent = {"swarm": 1200, "k3s": 0}

    def command(self, line):
        if line.startswith("show map "):
            return "".join(f"0x55d0c0ffee{i:02d} {k} {v}\n" for i, (k, v) in enumerate(self.held.items())) or "\n"
        if line.startswith("del map "):
            self.log.append("release")
            self.held.pop(line.split()[-1], None)
            return "\n"
        if line == "show stat":
            rows = []
            for row in self.stat.splitlines():
                parts = row.split(",")
                if len(parts) > 7 and parts[0] == "mcp-gong" and parts[1] in self.sent:
                    parts[7] = str(self.sent[parts[1]])
                rows.append(",".join(parts))
            return "\n".join(rows) + "\n"
        return super().command(line)

    def run(self, line):
        if line.startswith("add map "):
            dummy, dummy2, dummy3, key, value = line.split()
            self.held[key] = value
            self.log.append("hold")
            return
        self.log.append(line)
        super().run(line)


class Side:
    """One side of a move: its volume's files {path: bytes}; read/write as _volume_copy's sides do."""

    def __init__(self, name, files, log, corrupt=False):
        self.name, self.files, self.log, self.corrupt = name, dict(files), log, corrupt
        self.restarts = 0

    def read(self, move):
        self.log.append(f"read {self.name} {move['path']}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as out:
            for path, body in sorted(self.files.items()):
                info = tarfile.TarInfo(path)
                info.size = len(body)
                out.addfile(info, io.BytesIO(body))
        buf.seek(0)
        return vc.normalise(buf)

    def write(self, move, data):
        self.log.append(f"write {self.name} {move['path']}")
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            self.files = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
        if self.corrupt:
            self.files["memories/a.json"] = b"torn"
        return {path: hashlib.sha256(body).hexdigest() for path, body in self.files.items()}

    def restart(self, manager=None, timeout=None, clock=None, sleep=None):
        self.restarts += 1
        self.log.append(f"restart {self.name}")


SWARM_FILES = {"memories/a.json": b'{"v": 1}', "memories/b.json": b'{"v": 2}'}


@pytest.fixture
def volume_world(world, tmp_path, monkeypatch):
    cluster, clock, http = world
    dep = cluster.deployments[NAME]
    dep["spec"]["replicas"] = 0
    pod = dep["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "gong-data"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    docker = FakeDocker(replicas=1)
    docker.spec["TaskTemplate"]["ContainerSpec"]["Mounts"] = [
        {"Type": "volume", "Source": "sophia_gong-data", "Target": "/data"}]
    front = HoldingFrontDoor()
    log = front.log
    sides = {"swarm": Side("swarm", SWARM_FILES, log), "k3s": Side("k3s", {}, log)}
    monkeypatch.setattr(runner.SwarmToK3s, "listening", staticmethod(lambda address: True))
    return cluster, clock, http, front, docker, sides, tmp_path


def run_vol(volume_world, check_mode=False, **params):
    cluster, clock, http, front, docker, sides, tmp_path = volume_world
    params = dict(dict(mode="swarm_to_k3s", front_door_url="http://127.0.0.1:9105",
                       snapshot_dir=str(tmp_path / "snaps"), volume_restart=False), **params)
    return runner.run_swarm_to_k3s(defaults(**params), cluster, check_mode=check_mode, docker=docker,
                                   haproxy=front, clock=clock.clock, sleep=clock.sleep, now=clock.now,
                                   by="tester@ctl", http=http, mcp_probe=probe,
                                   volume_sides=lambda run: (sides["swarm"], sides["k3s"]))


def test_volumes_move_under_a_hold_before_the_switch(volume_world):
    cluster, clock, dummy, front, dummy2, sides, tmp_path = volume_world
    result = run_vol(volume_world, volumes=["/data"])
    assert result["state"] == "promoted" and result["front_door"] == {"swarm": 0, "k3s": 100}
    assert sides["k3s"].files == SWARM_FILES
    # hold -> copy -> weights -> release, in that order
    order = [e for e in front.log if e in ("hold", "release") or e.startswith(("read", "write", "set server"))]
    assert order[:3] == ["hold", "read swarm /data", "write k3s /data"]
    assert order.index("release") > max(i for i, e in enumerate(order) if e.startswith("set server"))
    assert not front.held
    moved = result["volumes"][0]
    assert (moved["path"], moved["from"], moved["to"], moved["files"], moved["verified"]) == ("/data", "swarm", "k3s",
                                                                                              2, True)
    assert moved["swarm_volume"] == "sophia_gong-data" and moved["claim"] == "gong-data"
    assert os.stat(moved["snapshot"]).st_mode & 0o777 == 0o600
    assert result["write_pause_seconds"] is not None
    assert annotations(cluster)["green"]["volumes"] == ["/data"]
    # a rerun moves nothing
    again = run_vol(volume_world, volumes=["/data"])
    assert again["changed"] is False and again["volumes"] == [] and front.log.count("hold") == 1


def test_a_promotion_that_leaves_a_named_volume_behind_warns(volume_world):
    dummy, dummy2, dummy3, front, dummy4, sides, dummy5 = volume_world
    result = run_vol(volume_world)
    assert result["state"] == "promoted" and sides["k3s"].files == {} and "hold" not in front.log
    (warning,) = [w for w in result["warnings"] if "named volumes" in w]
    assert "at /data, which this cutover does not move" in warning and "list the paths in volumes" in warning
    again = run_vol(volume_world)  # said once: a rerun switches nothing
    assert again["changed"] is False and not [w for w in again["warnings"] if "named volumes" in w]


def test_volume_move_in_check_mode_says_so_and_holds_nothing(volume_world):
    dummy, dummy2, dummy3, front, dummy4, sides, dummy5 = volume_world
    result = run_vol(volume_world, check_mode=True, volumes=["/data"])
    steps = ["start", "scale_green", "wait_green", "move_volumes", "switch", "record_promoted"]
    assert [a["step"] for a in result["actions"]] == steps
    assert front.log == [] and sides["k3s"].files == {}


def test_a_copy_that_differs_aborts_and_releases_to_swarm(volume_world):
    cluster, dummy, dummy2, front, dummy3, sides, dummy4 = volume_world
    sides["k3s"].corrupt = True
    with pytest.raises(bg.CutoverError) as info:
        run_vol(volume_world, volumes=["/data"])
    assert info.value.details["reason"] == "volume_copy_failed" and info.value.details["aborted"]
    assert "memories/a.json: sha256 differs" in str(info.value)
    assert info.value.details["front_door"] == {"swarm": 100, "k3s": 0} and not front.held
    assert sides["swarm"].files == SWARM_FILES  # the source is only read
    assert annotations(cluster)["state"] == "aborted"


def test_a_request_reaching_a_server_during_the_copy_aborts(volume_world):
    dummy, dummy2, dummy3, front, dummy4, sides, dummy5 = volume_world
    write = sides["k3s"].write

    def leaky(move, data):
        front.sent["swarm"] += 1  # the hold expired (front_door_hold_max_ms): a request went to Swarm
        return write(move, data)

    sides["k3s"].write = leaky
    with pytest.raises(bg.CutoverError) as info:
        run_vol(volume_world, volumes=["/data"])
    assert info.value.details["reason"] == "volume_copy_failed"
    assert "sent requests to mcp-gong's servers during the copy ({'swarm': 1})" in str(info.value)
    assert info.value.details["front_door"] == {"swarm": 100, "k3s": 0} and not front.held


def test_restart_on_the_copied_data_replaces_green_pods(volume_world):
    cluster, dummy, dummy2, front, dummy3, sides, dummy4 = volume_world
    result = run_vol(volume_world, volumes=["/data"], volume_restart=True)
    assert result["state"] == "promoted"
    assert [a["step"] for a in result["actions"]].count("restart_green") == 1
    assert any(r.startswith("DELETE /api/v1/namespaces/") and "/pods/" in r for r in cluster.requests)


def test_rollback_copies_k3s_data_back_first(volume_world):
    cluster, clock, dummy, front, dummy2, sides, dummy3 = volume_world
    run_vol(volume_world, volumes=["/data"])
    sides["k3s"].files["memories/c.json"] = b'{"v": 3}'  # written on K3s after the switch
    front.log.clear()
    back = run_vol(volume_world, state="rolled_back", volume_restart=True)  # the paths come from the recorded state
    assert back["state"] == "rolled_back" and back["front_door"] == {"swarm": 100, "k3s": 0}
    assert sides["swarm"].files == dict(SWARM_FILES, **{"memories/c.json": b'{"v": 3}'}) and sides["swarm"].restarts == 1
    order = [e for e in front.log if e in ("hold", "release") or e.startswith(("read", "write", "restart"))]
    assert order == ["hold", "read k3s /data", "write swarm /data", "restart swarm", "release"]
    assert back["volumes"][0]["to"] == "swarm"


def test_a_failed_copy_back_keeps_traffic_on_k3s(volume_world):
    cluster, dummy, dummy2, front, dummy3, sides, dummy4 = volume_world
    run_vol(volume_world, volumes=["/data"])
    sides["swarm"].corrupt = True
    with pytest.raises(bg.CutoverError) as info:
        run_vol(volume_world, state="rolled_back")
    assert info.value.details["reason"] == "volume_copy_failed"
    assert "Traffic stays on K3s" in str(info.value) and "discard_k3s_writes" in str(info.value)
    assert info.value.details["front_door"] == {"swarm": 0, "k3s": 100} and not front.held
    assert annotations(cluster)["state"] == "promoted"
    forced = run_vol(volume_world, state="rolled_back", discard_k3s_writes=True)
    assert forced["state"] == "rolled_back" and forced["front_door"] == {"swarm": 100, "k3s": 0}
    assert any("discard_k3s_writes" in w for w in forced["warnings"])


def test_a_failed_post_check_whose_copy_back_fails_records_k3s_as_active(volume_world):
    cluster, dummy, http, front, dummy2, sides, dummy3 = volume_world
    http.failing["http://127.0.0.1:9105"] = 502
    sides["swarm"].corrupt = True  # the copy back fails
    with pytest.raises(bg.CutoverError) as info:
        run_vol(volume_world, volumes=["/data"], post_promotion_checks=[{"type": "http", "attempts": 1}])
    assert info.value.details["reason"] == "volume_copy_failed"
    assert info.value.details["front_door"] == {"swarm": 0, "k3s": 100} and not front.held
    notes = annotations(cluster)
    assert (notes["state"], notes["active"]) == ("promoted", "k3s")
    assert notes["history"][-1]["outcome"] == "failed" and "copying the volumes back failed" in notes["history"][-1]["reason"]
    # a rerun of the promotion must not copy Swarm's older data over K3s's
    del http.failing["http://127.0.0.1:9105"]
    writes = front.log.count("write k3s /data")
    again = run_vol(volume_world, volumes=["/data"])
    assert again["state"] == "promoted" and front.log.count("write k3s /data") == writes


def test_a_service_with_two_replicas_cannot_move_its_volume(volume_world):
    dummy, dummy2, dummy3, dummy4, docker, dummy5, dummy6 = volume_world
    docker.spec["Mode"]["Replicated"]["Replicas"] = 2
    with pytest.raises(InputError, match="runs 2 replicas, each with a volume of its own"):
        run_vol(volume_world, volumes=["/data"])


def test_volumes_are_refused_in_cluster():
    with pytest.raises(InputError, match="volumes applies to mode swarm_to_k3s only"):
        bg.validate(defaults(image="x", volumes=["/data"]))
