# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Harness of the blue-green cutover tests (tests/integration/bluegreen) and of benchmarks/cutover.py.

Nothing is mocked. Two set-ups, each brought up once and removed again at the end (also after a failure):

- :class:`InClusterLab`: a namespace of its own on the lab cluster (upstream Kubernetes built from source, the real
  node's kubelet, containerd and kube-proxy); blue = Deployment ``mcp-bg`` (2 replicas of the sample MCP image,
  readiness ``/readyz``, a preStop sleep so that a stopping pod leaves the Service's endpoints before it stops)
  behind the active Service ``mcp-bg`` (type NodePort); the front door (role ``sophia_ai.platform.front_door`` in
  its lab daemon mode, in a temporary directory) with one backend ``mcp-bg`` whose only server is that Service, at
  its ClusterIP (else its NodePort on 127.0.0.1; :func:`reachable` says why the ClusterIP comes first).
- :class:`SwarmToK3sLab`: blue = a Swarm service of the sample image on the host engine's single-node Swarm
  (host-mode published port; ``docker swarm init`` only when the engine is in no Swarm, and then left again at the
  end; a Swarm that was active is left as it was, only this service is removed), green = Deployment and NodePort
  Service ``mcp-bgs`` in a namespace of its own on the lab cluster (0 replicas: the module scales it, as it does
  after role mcp_deploy applied it), and the front door's backend ``mcp-bgs`` with servers ``swarm`` (weight 100)
  and ``k3s`` (weight 0), as playbooks/phase2.yml wires them except that ``k3s`` is the Service's ClusterIP, not
  its NodePort on 127.0.0.1 (see :func:`reachable`).

:class:`Traffic` measures one case: the traffic recorder (module_utils ``_recorder`` ``start()`` / ``stop()``, what the
traffic_recorder module runs) at 50 requests/s through the front door (``tools/call echo``, a new connection each,
never retried); a sampler that sends ``tools/call server_info`` through the same front door a few times a second
(never retried either) and keeps the name of the MCP server that answered - the recorder's lines name only the
front door's server (``X-Sophia-Backend``), which is the same for blue and green in the in-cluster mode; and a
watcher that reads the backend's servers from the runtime API every 20 ms: their weights date the start of a switch
(the last reading before the weights moved), their state says when HAProxy took a server out (health checks, or
an observed connection error) and back in.

The sample servers get CPU weight (pods: a CPU request, so Burstable and not BestEffort; the Swarm task: cpu-shares
among the engine's containers): the machine has 2 CPUs shared with other jobs, a sample server needs about 4 ms of
CPU per request (0.2 of a core at 50 requests/s), and a starved one times requests out that no cutover step touched.
Each case records the load average at its start and end.

:func:`run_cutover` runs ``sophia_ai.platform.bluegreen_cutover`` through ansible-playbook (the ansible.posix.json
callback), as tests/integration/traffic drives traffic_switch.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import docker
import kubernetes

from ansible_collections.sophia_ai.platform.plugins.module_utils import _recorder

from ..traffic.frontdoor import IMAGE, FrontDoor, call_tool, free_ports, run_playbook, task_results

REPO = Path(__file__).resolve().parents[3]
RATE = 50.0
MIN_REQUESTS = 1000
SAMPLE_RATE = 5.0
WARMUP_S = 2.0
SETTLE_S = 2.0
AFTER_S = 3.0
QUIET_LOAD = 16.0
QUIET_WAIT_S = 60.0
PORT = 9005
REAL_NODE = {"sophia.ai/lab-node": "real"}
TASK = "Blue-green cutover"
GPU_NODES = 8
CPU_REQUEST = "100m"
CPU_LIMIT = "500m"
# The Swarm task's CPU weight among the engine's containers (1024 each by default): the host engine also runs the
# lab's 28-service stack and other jobs' containers (Docker-in-Docker Swarm labs among them), and a busy shared machine
# must not starve blue while green starts. It only matters when the CPUs are contended; blue needs ~0.2 of a core.
SWARM_CPU_SHARES = 8192
PREFIX = "sophia.ai/bluegreen-"
REVISION_LABEL = "sophia.ai/bluegreen-revision"


def log(msg):
    print(msg, flush=True)


def wait_for(predicate, timeout=60.0, interval=0.5, what="condition", tolerate=(Exception,)):
    """Poll ``predicate`` until it returns something true; exceptions in ``tolerate`` count as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except tolerate as exc:  # the API server may be restarting
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def wait_quiet(limit=QUIET_LOAD, timeout=QUIET_WAIT_S):
    """Wait (at most ``timeout`` s) until the 1-minute load average is at most ``limit``; returns the seconds waited.

    The machine (2 CPUs) is shared with other jobs; at a load average of 30 or more the sample servers (0.2 of a
    core each at 50 requests/s) starve, above all the Swarm task, whose whole /docker cgroup weighs what one busy
    process does, and requests time out whatever the cutover does. The case runs anyway after ``timeout``."""
    start = time.monotonic()
    while os.getloadavg()[0] > limit and time.monotonic() - start < timeout:
        time.sleep(5)
    return round(time.monotonic() - start, 1)


def lab_cluster(*args, timeout=900):
    """Run scripts/lab-cluster.sh; returns the completed process (the caller checks it)."""
    return subprocess.run([str(REPO / "scripts" / "lab-cluster.sh"), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def parse_time(text):
    """Epoch seconds of an ISO 8601 time as the ansible.posix.json callback writes it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------------------------ Kubernetes


def _maybe_json(value):
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class Kube:
    """The lab cluster through the official Python client."""

    def __init__(self, kubeconfig):
        self.kubeconfig = str(kubeconfig)
        self.client = kubernetes.config.new_client_from_config(config_file=self.kubeconfig)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.apps = kubernetes.client.AppsV1Api(self.client)
        self.discovery = kubernetes.client.DiscoveryV1Api(self.client)

    def close(self):
        self.client.close()

    def create_namespace(self, name):
        self.core.create_namespace({"metadata": {"name": name, "labels": {"sophia.ai/test": "bluegreen"}}})

    def delete_namespace(self, name):
        try:
            self.core.delete_namespace(name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise

    def create(self, namespace, obj):
        kubernetes.utils.create_from_dict(self.client, obj, namespace=namespace)

    def deployment(self, namespace, name):
        return self.apps.read_namespaced_deployment(name, namespace)

    def deployments(self, namespace):
        return {d.metadata.name: d for d in self.apps.list_namespaced_deployment(namespace).items}

    def service(self, namespace, name):
        return self.core.read_namespaced_service(name, namespace)

    def available(self, namespace, name):
        dep = self.deployment(namespace, name)
        status = dep.status
        want = dep.spec.replicas
        return (status.observed_generation == dep.metadata.generation and (status.updated_replicas or 0) == want
                and (status.available_replicas or 0) == want and (status.replicas or 0) == want)

    def wait_available(self, namespace, name, timeout=180.0):
        wait_for(lambda: self.available(namespace, name), timeout, what=f"Deployment {namespace}/{name} to be available")

    def scale(self, namespace, name, replicas):
        self.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})

    def annotations(self, namespace, service):
        """The Service's ``sophia.ai/bluegreen-*`` annotations, short names, JSON values parsed."""
        raw = self.service(namespace, service).metadata.annotations or {}
        return {key[len(PREFIX):]: _maybe_json(value) for key, value in raw.items() if key.startswith(PREFIX)}

    def endpoint_pods(self, namespace, service):
        """Names of the pods that the Service's EndpointSlices list as ready."""
        slices = self.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}").items
        return sorted(e.target_ref.name for s in slices for e in (s.endpoints or [])
                      if e.conditions and e.conditions.ready and e.target_ref)

    def pod_labels(self, namespace):
        return {p.metadata.name: p.metadata.labels or {} for p in self.core.list_namespaced_pod(namespace).items}

    def node_port(self, namespace, service):
        return self.service(namespace, service).spec.ports[0].node_port

    def api_ready(self):
        try:
            return self.core.get_api_resources() is not None
        except Exception:  # pylint: disable=broad-except
            return False


def mcp_deployment(name, labels, server_name, replicas, env=None, claim=None, mount=None):
    """A Deployment of the sample MCP server on the lab's real node, drained cleanly on stop; with ``claim`` its
    PersistentVolumeClaim is mounted at ``mount`` and the server keeps its memories there (MCP_DATA_DIR)."""
    env = {"MCP_SERVER_NAME": server_name, "MCP_PORT": str(PORT), **(env or {})}
    if claim:
        env["MCP_DATA_DIR"] = mount
    container = {
        "name": "mcp",
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "ports": [{"name": "mcp", "containerPort": PORT}],
        # period 1 s (quick to join); timeout and threshold 3 so that a busy 2-core machine does not flap blue
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 1, "timeoutSeconds": 3,
                           "failureThreshold": 3},
        # stay in the Service until kube-proxy has dropped the endpoint, then stop
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        # Burstable, not BestEffort: the kubelet gives BestEffort pods a CPU weight of 2, and a busy shared machine
        # then starves them (a sample server needs ~4 ms of CPU per request, 20 % of a core at 50 requests/s). The
        # limit caps a starting pod (Python importing the MCP SDK, a few CPU-seconds) so that green's start does not
        # take the 2 CPUs from blue, which serves meanwhile.
        "resources": {"requests": {"cpu": CPU_REQUEST, "memory": "64Mi"}, "limits": {"cpu": CPU_LIMIT}},
    }
    pod = {"nodeSelector": REAL_NODE, "terminationGracePeriodSeconds": 20, "containers": [container]}
    if claim:
        container["volumeMounts"] = [{"name": "data", "mountPath": mount}]
        pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": pod,
            },
        },
    }


def nodeport_service(name, selector):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": dict(selector),
                 "ports": [{"name": "mcp", "port": PORT, "targetPort": PORT, "protocol": "TCP"}]},
    }


def reachable(kube, namespace, service, timeout=60.0):
    """The address of a Service the front door should use from this host: its ClusterIP (through kube-proxy's
    rules), else its NodePort on 127.0.0.1 (the way playbooks/phase2.yml wires K3s). The ClusterIP comes first:
    on the lab's node, new connections to a NodePort on 127.0.0.1 (route_localnet, masqueraded) now and then get no
    answer to their SYN for a second, with no cutover anywhere near (seen about once in five minutes at 50
    connections/s), and the front door's ``observe layer4 error-limit 1`` then takes the server out for ~2 s."""
    svc = kube.service(namespace, service)
    candidates = [(svc.spec.cluster_ip, PORT), ("127.0.0.1", svc.spec.ports[0].node_port)]

    def first():
        return next((c for c in candidates if answers(f"http://{c[0]}:{c[1]}/readyz")), None)

    return wait_for(first, timeout, what=f"Service {namespace}/{service} to answer at {candidates}")


def answers(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - lab addresses
            return resp.status == 200
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return False


# ------------------------------------------------------------------------------------------------ front door


def stop_front_door(front_door):
    """SIGTERM HAProxy, SIGKILL after 10 s."""
    if front_door is None:
        return
    pid = front_door.pid()
    front_door.stop()
    deadline = time.monotonic() + 10
    while pid and _recorder.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and _recorder.alive(pid):
        os.kill(pid, signal.SIGKILL)


def server_info(port, timeout=2.0):
    """One ``tools/call server_info`` through the front door on a new connection, never retried."""
    answer = call_tool(port, "server_info", {}, timeout)
    if not answer["ok"]:
        return {"ok": False, "backend": answer["backend"], "error": answer["error"]}
    return {"ok": True, "backend": answer["backend"], "name": answer["name"], "version": answer["version"]}


class _Loop(threading.Thread):
    """A daemon thread that calls ``step`` every ``interval`` seconds until stopped (bounded: 30 minutes)."""

    def __init__(self, interval, step):
        super().__init__(daemon=True)
        self.interval, self.step = interval, step
        self.halt = threading.Event()

    def run(self):
        due = time.monotonic()
        deadline = due + 1800
        while not self.halt.is_set() and time.monotonic() < deadline:
            self.step()
            due = max(due + self.interval, time.monotonic())  # a slow step delays the next one: no burst after it
            self.halt.wait(max(0.0, due - time.monotonic()))

    def stop(self):
        self.halt.set()
        self.join(timeout=10)


class Traffic:
    """One case's measurement: the traffic recorder, the server-name sampler and (with ``front_door``) the watcher.

    Use as a context manager; ``hold(after)`` keeps the load on until at least MIN_REQUESTS requests were due and
    SETTLE_S seconds have passed since ``after`` (the end of the module's task). On exit the recorder is stopped
    (also after a failure) and its lines are loaded: ``requests`` (sent ones, sorted, ``at`` = epoch seconds),
    ``summary`` (the recorder's own), ``samples`` and ``weights`` (the watcher's readings, ``(epoch, weights)``).
    """

    def __init__(self, port, service, workdir, case, front_door=None, rate=RATE, sample_rate=SAMPLE_RATE,
                 timeout=None):
        self.port, self.service, self.case, self.timeout = port, service, case, timeout
        self.out = str(Path(workdir) / f"traffic-{case}.jsonl")
        self.front_door, self.rate, self.sample_rate = front_door, rate, sample_rate
        self.samples, self.weights, self.health = [], [], []
        self.requests, self.summary, self.started, self.load, self.waited = [], None, None, [], 0.0
        self._threads = []

    def __enter__(self):
        self.waited = wait_quiet()
        self.load = [round(os.getloadavg()[0], 2)]
        # timeout None: the recorder's default (2 s per request)
        result = _recorder.start({"targets": {self.service: f"http://127.0.0.1:{self.port}/mcp"}, "rate": self.rate,
                                  "out": self.out, "timeout": self.timeout})
        self.started = time.time()
        try:
            self._threads.append(_Loop(1.0 / self.sample_rate, self._sample))
            if self.front_door is not None:
                self._threads.append(_Loop(0.02, self._watch))
            for thread in self._threads:
                thread.start()
        except BaseException:
            _recorder.stop(self.out)
            raise
        log(f"[{self.case}] recorder pid {result['pid']}: {self.rate:g} requests/s through 127.0.0.1:{self.port}")
        return self

    def _sample(self):
        at = time.time()
        self.samples.append(dict(server_info(self.port), at=at))

    def _watch(self):
        at = time.time()
        try:
            rows = self.front_door.servers_state(self.service)
        except Exception:  # pylint: disable=broad-except
            return
        # effective weights (0 while drained), as FrontDoor.weights(); and whether HAProxy holds each server up
        weights = {name: (row["srv_uweight"] if not row["srv_admin_state"] & 0x3f else 0) for name, row in rows.items()}
        up = {name: row["srv_op_state"] == 2 for name, row in rows.items()}
        if self.weights and self.weights[-1]["weights"] == weights:
            self.weights[-1]["last_seen"] = at
        else:
            self.weights.append({"first_seen": at, "last_seen": at, "weights": weights})
        if not self.health or self.health[-1][1] != up:
            self.health.append((round(at - self.started, 3), up))

    def warmup(self, seconds=WARMUP_S):
        time.sleep(seconds)

    def hold(self, after=None, settle=SETTLE_S, min_requests=MIN_REQUESTS):
        """Keep the load on until MIN_REQUESTS were due (plus 1.5 s of slack) and for ``settle`` s after ``after``
        plus AFTER_S more, so that the requests sent once the new side settled are there to check."""
        until = max(self.started + min_requests / self.rate + 1.5, (after or time.time()) + settle + AFTER_S)
        time.sleep(max(0.0, until - time.time()))

    def __exit__(self, *exc):
        for thread in self._threads:
            thread.stop()
        stopped = _recorder.stop(self.out)
        self.load.append(round(os.getloadavg()[0], 2))
        self.summary = stopped.get("summary")
        records, dummy = _recorder.load_records(self.out)
        for record in records:
            if record["kind"] == "request" and record["outcome"] != _recorder.NOT_SENT:
                self.requests.append(dict(record, at=_recorder.parse_iso(record["ts"])))
        self.requests.sort(key=lambda r: r["at"])
        log(f"[{self.case}] {stopped['msg']}")

    # --- figures

    def figures(self):
        overall = (self.summary or {}).get("overall") or {}
        latency = overall.get("latency_ms") or {}
        sample_failures = [s for s in self.samples if not s["ok"]]
        return {
            "requests": overall.get("requests", 0),
            "failed": overall.get("failed"),
            "outcomes": overall.get("outcomes"),
            "skipped": overall.get("skipped"),
            "p50_ms": latency.get("p50"),
            "p99_ms": latency.get("p99"),
            "backends": overall.get("backends"),
            "samples": len(self.samples),
            "samples_failed": len(sample_failures),
            "servers": dict(collections.Counter(s.get("name") for s in self.samples if s["ok"])),
            # the 1-minute load average when the case started and ended (2 CPUs shared with other jobs), to read
            # timeouts against: a starved sample server times out requests that no cutover step touched
            "load": self.load,
            "waited_for_quiet_s": self.waited,
            # when HAProxy's health checks (or an observed connection error) took a server out, and back in
            "server_up": self.health if len(self.health) > 1 else None,
        }

    def requests_after(self, moment):
        return [r for r in self.requests if r["at"] >= moment]

    def samples_after(self, moment):
        return [s for s in self.samples if s["at"] >= moment]

    def failures(self):
        return [r for r in self.requests if r["outcome"] != "ok"] + [s for s in self.samples if not s["ok"]]

    def switch_started(self, after=0.0):
        """When the front door's weights first moved after ``after``: the watcher's last reading that still showed
        the old weights (so a duration measured from it is an upper bound); None when they never moved."""
        for index in range(1, len(self.weights)):
            if self.weights[index]["first_seen"] >= after:
                return self.weights[index - 1]["last_seen"]
        return None

    def weight_changes(self):
        return [(round(entry["first_seen"] - self.started, 3), entry["weights"]) for entry in self.weights]


def converge(requests, start, on_target):
    """When every request sent after some moment is on target, from the request records sorted by ``at``.

    ``switch_s``: from ``start`` to the first request after which every one is on target (None when the last one
    is not), an upper bound at the recorder's resolution (1 / rate); ``lower_s``: to the last one that is not (0 if
    none). As benchmarks/switch.py measures it.
    """
    mine = [r for r in requests if r["at"] >= start]
    off = [index for index, record in enumerate(mine) if not on_target(record)]
    figures = {"requests_after_start": len(mine), "off_target": len(off)}
    if not mine:
        return dict(figures, switch_s=None, lower_s=None)
    if not off:
        return dict(figures, switch_s=round(mine[0]["at"] - start, 4), lower_s=0.0)
    if off[-1] == len(mine) - 1:
        return dict(figures, switch_s=None, lower_s=round(mine[-1]["at"] - start, 4))
    return dict(figures, switch_s=round(mine[off[-1] + 1]["at"] - start, 4), lower_s=round(mine[off[-1]]["at"] - start, 4))


# ------------------------------------------------------------------------------------------------ the module


def on_backend(backend):
    """A request answered ``ok`` by one front door server (``swarm`` or ``k3s``)."""
    return lambda record: record["outcome"] == "ok" and record.get("backend") == backend


def switch_to(traffic, run, backend):
    """``switch_s`` of one run: from the first move of the weights after the task started until every new request
    was answered by ``backend`` (from the task's start when the weights never moved; 0 when traffic never left
    ``backend``), ``lower_s``, and ``switch_start`` (seconds into the recording, None when the weights never moved)."""
    start = traffic.switch_started(after=run.start)
    if start is None and all(r.get("backend") in (None, backend) for r in traffic.requests):
        return {"switch_s": 0.0, "lower_s": 0.0, "switch_start": None}  # traffic never left ``backend``
    if start is None:
        return dict(converge(traffic.requests, run.start, on_backend(backend)), switch_start=None)
    return dict(converge(traffic.requests, start, on_backend(backend)), switch_start=round(start - traffic.started, 3))


class Run:
    """One ansible-playbook run of the module: rc, its result, the task's start and end (epoch), the wall time."""

    def __init__(self, rc, result, start, end, wall, stderr):
        self.rc, self.result, self.start, self.end, self.wall, self.stderr = rc, result, start, end, wall, stderr

    def why(self):
        shown = {key: self.result.get(key) for key in ("msg", "reason", "state", "phase", "actions", "checks", "exception")
                 if key in self.result}
        return f"rc {self.rc}: {json.dumps(shown, default=str)[:3000]}\n{self.stderr[-1500:]}"

    def brief(self):
        return {"rc": self.rc, "changed": self.result.get("changed"), "state": self.result.get("state"),
                "active": self.result.get("active"), "reason": self.result.get("reason"),
                "switch_seconds": self.result.get("switch_seconds"), "task_s": round(self.end - self.start, 3)}


def run_cutover(workdir, params, check=False, diff=False, timeout=900):
    """``sophia_ai.platform.bluegreen_cutover`` with ``params`` through ansible-playbook."""
    play = {"name": "Cutover", "hosts": "localhost", "gather_facts": False,
            "tasks": [{"name": TASK, "sophia_ai.platform.bluegreen_cutover": params}]}
    begun = time.time()
    rc, out = run_playbook(workdir, [play], check=check, diff=diff, timeout=timeout)
    finished = time.time()
    results = task_results(out, TASK)
    assert len(results) == 1, f"no single result of '{TASK}' (rc {rc}): {json.dumps(out)[:3000]}"
    start, end = begun, finished
    try:
        duration = out["plays"][0]["tasks"][0]["task"]["duration"]
        start, end = parse_time(duration["start"]), parse_time(duration["end"])
    except (KeyError, IndexError, ValueError):
        pass
    return Run(rc, results[0], start, end, finished - begun, out.get("stderr", ""))


class Background(threading.Thread):
    """A module run in a thread (to act on the lab while the module waits)."""

    def __init__(self, workdir, params, timeout=900):
        super().__init__(daemon=True)
        self.args = (workdir, params)
        self.timeout = timeout
        self.run_result, self.error = None, None

    def run(self):
        try:
            self.run_result = run_cutover(*self.args, timeout=self.timeout)
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc


# ------------------------------------------------------------------------------------------------ set-ups


class InClusterLab:
    """Blue Deployment + active NodePort Service in a namespace of its own, the front door in front of it."""

    NAME = "mcp-bg"
    BLUE_SERVER = "mcp-bg-blue"

    def __init__(self, kubeconfig, workdir):
        self.kubeconfig = str(kubeconfig)
        self.kube = Kube(kubeconfig)
        self.work = Path(workdir)
        self.namespace = f"bg-{uuid.uuid4().hex[:6]}"
        self.front_door, self.port, self.server = None, None, None

    def up(self):
        try:
            self.kube.create_namespace(self.namespace)
            self.kube.create(self.namespace, mcp_deployment(self.NAME, {"app": self.NAME}, self.BLUE_SERVER, 2,
                                                            env={"MCP_SERVER_VERSION": "1.0.0"}))
            self.kube.create(self.namespace, nodeport_service(self.NAME, {"app": self.NAME}))
            self.kube.wait_available(self.namespace, self.NAME)
            self.server = reachable(self.kube, self.namespace, self.NAME)
            (front_port,) = free_ports(1)
            (self.work / "front-door").mkdir(exist_ok=True)
            self.front_door = FrontDoor(self.work / "front-door", [{"name": self.NAME, "port": front_port, "servers": [
                {"name": "k3s", "address": self.server[0], "port": self.server[1], "weight": 100}]}])
            rc, out = self.front_door.converge()
            assert rc == 0, f"the front_door role failed (rc {rc}): {out['stderr'][-3000:]}"
            self.port = front_port
            self.front_door.wait_status(self.NAME, "k3s", "UP", timeout=60)
            wait_for(lambda: server_info(front_port)["ok"], 60, what="the front door to answer")
            log(f"in-cluster lab: namespace {self.namespace}, Service {self.NAME} at {self.server[0]}:{self.server[1]}"
                f" behind the front door on 127.0.0.1:{front_port}")
            return self
        except BaseException:
            self.down()
            raise

    def down(self):
        stop_front_door(self.front_door)
        try:
            self.kube.delete_namespace(self.namespace)
        finally:
            self.kube.close()

    def params(self, **more):
        return {"name": self.NAME, "namespace": self.namespace, "kubeconfig": self.kubeconfig, "mode": "in_cluster",
                **more}

    def annotations(self):
        return self.kube.annotations(self.namespace, self.NAME)

    def selector(self):
        return self.kube.service(self.namespace, self.NAME).spec.selector or {}

    def traffic(self, case, rate=RATE, timeout=None):
        return Traffic(self.port, self.NAME, self.work, case, front_door=self.front_door, rate=rate, timeout=timeout)

    def fingerprint(self):
        """What an API write would change: the Services' resourceVersions, each Deployment's generation and replicas."""
        services = {s.metadata.name: s.metadata.resource_version
                    for s in self.kube.core.list_namespaced_service(self.namespace).items}
        deployments = {name: (d.metadata.generation, d.spec.replicas)
                       for name, d in self.kube.deployments(self.namespace).items()}
        return {"services": services, "deployments": deployments}


class SwarmToK3sLab:
    """Blue = a Swarm service on the host engine, green = a Deployment on the lab cluster, both behind the front door."""

    NAME = "mcp-bgs"
    SWARM_SERVER = "mcp-bgs-swarm"
    K3S_SERVER = "mcp-bgs-k3s"

    def __init__(self, kubeconfig, workdir, engine=None, volume=None):
        self.kubeconfig = str(kubeconfig)
        self.kube = Kube(kubeconfig)
        self.engine = engine or docker.from_env()
        self.work = Path(workdir)
        tag = uuid.uuid4().hex[:6]
        self.namespace = f"bgs-{tag}"
        self.swarm_service = f"sophia-bgtest-{tag}"
        # a stateful service: a named volume (Swarm) and a claim on the lab's default StorageClass (local-path,
        # as on K3s) mounted at ``volume``, where the sample server keeps its memories (MCP_DATA_DIR)
        self.volume = volume
        self.swarm_volume = f"{self.swarm_service}-data"
        self.claim = f"{self.NAME}-data"
        self.swarm_initialised = False
        self.front_door, self.port, self.swarm_port, self.node_port, self.k3s_server = None, None, None, None, None

    def up(self):
        try:
            if self.engine.info()["Swarm"]["LocalNodeState"] != "active":
                res = subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], capture_output=True,
                                     text=True, timeout=120, check=False)
                assert res.returncode == 0, f"docker swarm init failed: {res.stderr}"
                self.swarm_initialised = True
            self.swarm_port, front_port = free_ports(2)
            env = [f"MCP_SERVER_NAME={self.SWARM_SERVER}", f"MCP_PORT={self.swarm_port}"]
            mounts = []
            if self.volume:
                env.append(f"MCP_DATA_DIR={self.volume}")
                mounts = [docker.types.Mount(self.volume, self.swarm_volume, type="volume")]
            self.engine.services.create(
                IMAGE, name=self.swarm_service, labels={"sophia.ai/test": "bluegreen"}, env=env, mounts=mounts,
                endpoint_spec=docker.types.EndpointSpec(ports={self.swarm_port: (self.swarm_port, "tcp", "host")}),
                mode=docker.types.ServiceMode("replicated", replicas=1))
            self.kube.create_namespace(self.namespace)
            if self.volume:
                self.kube.create(self.namespace, {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": self.claim},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}})
            self.kube.create(self.namespace, mcp_deployment(self.NAME, {"app": self.NAME}, self.K3S_SERVER, 0,
                                                            claim=self.claim if self.volume else None,
                                                            mount=self.volume))
            self.kube.create(self.namespace, nodeport_service(self.NAME, {"app": self.NAME}))
            self.node_port = self.kube.node_port(self.namespace, self.NAME)
            # green has no pod yet, so nothing answers to choose by (see reachable()): the ClusterIP
            self.k3s_server = (self.kube.service(self.namespace, self.NAME).spec.cluster_ip, PORT)
            task = wait_for(lambda: self.engine.containers.list(
                filters={"label": f"com.docker.swarm.service.name={self.swarm_service}"}), 120, interval=1,
                what=f"Swarm service {self.swarm_service}'s task to start")[0]
            task.update(cpu_shares=SWARM_CPU_SHARES)
            wait_for(lambda: answers(f"http://127.0.0.1:{self.swarm_port}/readyz"), 120,
                     what=f"Swarm service {self.swarm_service} to answer on 127.0.0.1:{self.swarm_port}")
            (self.work / "front-door").mkdir(exist_ok=True)
            self.front_door = FrontDoor(self.work / "front-door", [{"name": self.NAME, "port": front_port, "servers": [
                {"name": "swarm", "address": "127.0.0.1", "port": self.swarm_port, "weight": 100},
                {"name": "k3s", "address": self.k3s_server[0], "port": self.k3s_server[1], "weight": 0}]}])
            rc, out = self.front_door.converge()
            assert rc == 0, f"the front_door role failed (rc {rc}): {out['stderr'][-3000:]}"
            self.port = front_port
            self.front_door.wait_status(self.NAME, "swarm", "UP", timeout=60)
            wait_for(lambda: server_info(front_port)["ok"], 60, what="the front door to answer")
            log(f"swarm-to-k3s lab: Swarm service {self.swarm_service} on 127.0.0.1:{self.swarm_port}, Deployment "
                f"{self.namespace}/{self.NAME} (front door server k3s {self.k3s_server[0]}:{self.k3s_server[1]}, NodePort "
                f"{self.node_port}), front door on 127.0.0.1:{front_port}")
            return self
        except BaseException:
            self.down()
            raise

    def down(self):
        try:
            stop_front_door(self.front_door)
            try:
                self.engine.api.remove_service(self.swarm_service)
            except docker.errors.NotFound:
                pass
            self.kube.delete_namespace(self.namespace)
            if self.volume:  # the task's container goes some seconds after its service
                wait_for(self._remove_volume, 60, interval=1, what=f"volume {self.swarm_volume} to go")
        finally:
            self.kube.close()
            if self.swarm_initialised:  # we started this Swarm: leave the engine as we found it
                subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=120, check=False)

    def _remove_volume(self):
        try:
            self.engine.volumes.get(self.swarm_volume).remove()
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError:
            return False  # still in use
        return True

    def params(self, **more):
        return {"name": self.NAME, "namespace": self.namespace, "kubeconfig": self.kubeconfig, "mode": "swarm_to_k3s",
                "swarm_service": self.swarm_service, "front_door_socket": self.front_door.socket,
                "front_door_state_file": self.front_door.state_file, "front_door_url": f"http://127.0.0.1:{self.port}",
                **more}

    def promote_params(self, **more):
        """A promote to K3s as the tests and benchmarks/cutover.py run it: MCP and HTTP checks on the preview (the
        K3s server), an MCP check through the front door after the switch, a 2 h window."""
        return self.params(**{
            "state": "promoted",
            "rollback_window": "2h",
            "ready_timeout": 120,
            "pre_promotion_checks": [{"name": "k3s-ready", "type": "http", "target": "preview"},
                                     {"name": "k3s-mcp", "type": "mcp", "target": "preview", "tools": ["echo"]}],
            "post_promotion_checks": [{"name": "front-door-mcp", "type": "mcp", "target": "active", "tools": ["echo"]}],
            **more})

    def annotations(self):
        return self.kube.annotations(self.namespace, self.NAME)

    def weights(self):
        return self.front_door.weights(self.NAME)

    def swarm_version(self):
        """The Swarm service's spec version and replicas (the module must not change blue before `completed`)."""
        attrs = self.engine.api.inspect_service(self.swarm_service)
        return attrs["Version"]["Index"], attrs["Spec"]["Mode"]["Replicated"]["Replicas"]

    def traffic(self, case, rate=RATE, timeout=None):
        return Traffic(self.port, self.NAME, self.work, case, front_door=self.front_door, rate=rate, timeout=timeout)

    def green_env(self, **env):
        """Replace green's container environment: its defaults plus ``env`` (e.g. MCP_READY_FILE to keep it unready)."""
        values = {"MCP_SERVER_NAME": self.K3S_SERVER, "MCP_PORT": str(PORT), **env}
        # a strategic merge would keep the variables we drop: replace the list with a JSON patch
        self.kube.apps.patch_namespaced_deployment(
            self.NAME, self.namespace, [{"op": "replace", "path": "/spec/template/spec/containers/0/env",
                                         "value": [{"name": key, "value": value} for key, value in values.items()]}],
            _content_type="application/json-patch+json")


# ------------------------------------------------------------------------------------------------ reporting


def check_results(result):
    """The module's check results as one list, whether it returns them as a list or by phase ({pre, post})."""
    checks = result.get("checks") or []
    if isinstance(checks, dict):
        return [item for value in checks.values() for item in (value or [])]
    return list(checks)


def report(record_property, case, traffic, runs, **extra):
    """Record one case's figures (pytest's record_property) and print them on one line."""
    figures = dict(traffic.figures(), **extra)
    figures["module"] = [run.brief() for run in runs]
    record_property(case, figures)
    log(f"\n{case}: {figures['requests']} requests, {figures['failed']} failed, p99 {figures['p99_ms']} ms"
        + (f", switch_s {figures['switch_s']}" if "switch_s" in figures else "")
        + f"; {json.dumps(figures, default=str)}")
    return figures
