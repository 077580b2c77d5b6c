# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The I/O runner of ``bluegreen_cutover``: reads the live objects, plans (``_bluegreen``), runs the steps.

Kubernetes goes through ``_k8s_client.K8sClient`` (``request`` / ``list_all``, every request counted), the front
door through ``_haproxy`` (``read_backend``, ``switch``: health gate, drain, server-state file), the Swarm through
``_swarm_service`` / ``_docker_client``, MCP checks through ``_mcp.probe``. Requests that the API server could not
answer (connection refused while it restarts, 429, 5xx) are retried for up to ``API_RETRY_S`` seconds: every write
here is a server-side apply or a merge patch, so sending it again is safe. Nothing here calls ``fail_json``.
"""

from __future__ import annotations

import copy
import getpass
import os
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from urllib.parse import quote

from ansible_collections.sophia_ai.platform.plugins.module_utils import _bluegreen as bg
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError, PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._gpu_cluster import ACTIVE_PODS
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_apply import rollout_state

API_RETRY_S = 60.0
RETRY_STATUSES = (429, 500, 502, 503, 504)
POLL_S = 0.25
WRITE_STEPS = {"pin_blue", "start", "apply_green", "apply_preview", "switch", "record_promoted", "complete",
               "move_volumes", "copy_back",
               "retire_previous_blue", "scale_down_superseded_green", "restore_selector", "abort", "scale_up_blue",
               "switch_back", "scale_down_green", "scale_green"}
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def utcnow():
    return datetime.now(timezone.utc)


def controller_user():
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# ------------------------------------------------------------------------------------------------ Kubernetes

class Kube:
    """Requests through a K8sClient, retried while the API server cannot answer."""

    def __init__(self, client, clock=time.monotonic, sleep=time.sleep, retry_s=API_RETRY_S):
        self.client, self.clock, self.sleep, self.retry_s = client, clock, sleep, retry_s

    def call(self, method, path, query=None, body=None, content_type="application/json", retry=True):
        start = self.clock()
        while True:
            try:
                status, answer = self.client.request(method, path, query, body, content_type)
            except ApiError:
                if not retry or self.clock() - start > self.retry_s:
                    raise
                self.sleep(1.0)
                continue
            if status in RETRY_STATUSES and retry and self.clock() - start <= self.retry_s:
                self.sleep(1.0)
                continue
            return status, answer

    def check(self, method, path, status, answer, ok=(200, 201)):
        if status in ok:
            return answer
        message = (answer or {}).get("message") if isinstance(answer, dict) else answer
        raise ApiError(f"{method} {path} answered HTTP {status}: {message}", object=path, status=status,
                       reason="api")

    def get(self, path):
        status, answer = self.call("GET", path)
        if status == 404:
            return None
        return self.check("GET", path, status, answer)

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        start = self.clock()
        while True:
            try:
                return self.client.list_all(api_version, kind, namespace=namespace, label_selector=label_selector,
                                            field_selector=field_selector)
            except ApiError as exc:
                status = exc.details.get("status")
                if (status is not None and status not in RETRY_STATUSES) or self.clock() - start > self.retry_s:
                    raise
                self.sleep(1.0)

    def apply(self, path, obj):
        query = [("fieldManager", bg.FIELD_MANAGER), ("force", "true")]
        status, answer = self.call("PATCH", path, query, obj, APPLY_PATCH)
        return self.check("PATCH", path, status, answer)

    def scale(self, path, replicas):
        query = [("fieldManager", bg.FIELD_MANAGER)]
        status, answer = self.call("PATCH", path + "/scale", query, {"spec": {"replicas": replicas}}, MERGE_PATCH)
        return self.check("PATCH", path + "/scale", status, answer)

    def delete(self, path):
        status, answer = self.call("DELETE", path, [("propagationPolicy", "Background")])
        if status == 404:
            return None
        return self.check("DELETE", path, status, answer, ok=(200, 202))


def service_path(namespace, name):
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/services/{quote(name, safe='')}"


def deployment_path(namespace, name):
    return f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/deployments/{quote(name, safe='')}"


def jobs_path(namespace):
    return f"/apis/batch/v1/namespaces/{quote(namespace, safe='')}/jobs"


# ------------------------------------------------------------------------------------------------ checks

def http_get(url, timeout):
    """(HTTP status, first bytes of the body); OSError when no answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:  # noqa: S310 - the user's check URL
            return resp.status, resp.read(200).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, (exc.read(200) or b"").decode("utf-8", "replace")


def default_probe(options):
    from ansible_collections.sophia_ai.platform.plugins.module_utils._mcp import LATEST_VERSION, probe
    options = dict({"transport": "auto", "expected_tools": [], "call_tool": None, "headers": {},
                    "validate_certs": True, "ca_path": None, "protocol_version": LATEST_VERSION}, **options)
    return probe(options)


class Checks:
    """Runs http, mcp and job checks; each result is {name, type, target, ok, seconds, detail}."""

    def __init__(self, run):
        self.run = run

    def run_all(self, checks, targets, phase):
        results = []
        for check in checks:
            start = self.run.clock()
            if check["type"] == "job":
                ok, detail, where = self._job(check)
            else:
                urls = [f"{base.rstrip('/')}{check['path']}" for base in self._bases(check["target"], targets)]
                ok, detail = self._probe_all(check, urls)
                where = ", ".join(urls)
                if ok and check.get("duration"):
                    ok, detail = self._soak(check, urls, detail)
            results.append({"name": check["name"], "type": check["type"], "phase": phase, "target": where, "ok": ok,
                            "seconds": round(self.run.clock() - start, 3), "detail": detail})
        return results

    def _probe_all(self, check, urls):
        ok, detail = True, []
        for url in urls:
            one_ok, one_detail = (self._http if check["type"] == "http" else self._mcp)(check, url)
            ok = ok and one_ok
            detail.append(one_detail if len(urls) == 1 else f"{url}: {one_detail}")
        return ok, "; ".join(detail)

    def _soak(self, check, urls, first):
        """Run a passed check again every second until its ``duration`` is over; the first failure ends it."""
        start, passes = self.run.clock(), 1
        while self.run.clock() - start < check["duration"]:
            self.run.sleep(1.0)
            ok, detail = self._probe_all(check, urls)
            if not ok:
                return False, (f"failed {round(self.run.clock() - start, 1)} s into its {check['duration']} s soak "
                               f"(after {passes} passes): {detail}")
            passes += 1
        return True, f"{first}; kept passing for {check['duration']} s ({passes} passes)"

    @staticmethod
    def _bases(target, targets):
        if target in ("preview", "active"):
            bases = targets.get(target) or []
            if not bases:
                raise InputError(f"no address for check target {target}", reason="bad_check")
            return bases
        return [target]

    def _http(self, check, url):
        last = ""
        for attempt in range(check["attempts"]):
            if attempt:
                self.run.sleep(1.0)
            try:
                status, body = self.run.http_get(url, check["timeout"])
            except (OSError, ValueError) as exc:
                last = f"no answer: {exc}"
                continue
            if status == check["status"]:
                return True, f"HTTP {status} (attempt {attempt + 1})"
            last = f"HTTP {status}, wanted {check['status']}: {body[:120]!r}"
        return False, f"{last} after {check['attempts']} attempts"

    def _mcp(self, check, url):
        options = {"url": url, "expected_tools": check["tools"], "timeout": check["timeout"],
                   "deadline": check["timeout"] * check["attempts"] + check["attempts"] - 1, "retry_delay": 1.0}
        try:
            facts = self.run.mcp_probe(options)
        except PlatformError as exc:
            return False, str(exc)
        return True, facts.get("msg") or "MCP server answered"

    def _job(self, check):
        run = self.run
        body = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"generateName": f"{run.name}-check-", "namespace": run.namespace,
                             "labels": {bg.PREFIX + "check": run.name}},
                "spec": copy.deepcopy(check["job"])}
        pod_spec = body["spec"]["template"]["spec"]
        pod_spec.setdefault("restartPolicy", "Never")
        body["spec"].setdefault("backoffLimit", 0)
        status, answer = run.kube.call("POST", jobs_path(run.namespace), body=body, retry=False)
        created = run.kube.check("POST", jobs_path(run.namespace), status, answer)
        job_name = created["metadata"]["name"]
        path = f"{jobs_path(run.namespace)}/{job_name}"
        deadline = run.clock() + check["timeout"]
        try:
            while True:
                job = run.kube.get(path) or {}
                done, failed, line = rollout_state(dict(job, kind="Job"))
                if done:
                    return True, f"Job {job_name}: {line}", f"job {job_name}"
                if failed:
                    return False, f"Job {job_name}: {failed}", f"job {job_name}"
                if run.clock() > deadline:
                    return False, f"Job {job_name} not complete after {check['timeout']} s: {line}", f"job {job_name}"
                run.sleep(1.0)
        finally:
            run.kube.delete(path)


# ------------------------------------------------------------------------------------------------ shared run

class Run:
    """The state of one module run: options, clients, what was done."""

    def __init__(self, params, client, check_mode=False, clock=time.monotonic, sleep=time.sleep, now=utcnow,
                 by=None, http=http_get, mcp_probe=default_probe):
        self.params, self.client, self.check_mode = params, client, check_mode
        self.clock, self.sleep, self.now = clock, sleep, now
        self.by = by or controller_user()
        self.http_get, self.mcp_probe = http, mcp_probe
        self.kube = Kube(client, clock, sleep)
        self.name, self.namespace = params["name"], params.get("namespace") or "sophia-mcp"
        self.window_s, self.delay_s, self.checks = bg.validate(params)
        self.actions, self.warnings = [], []
        self.results = {"pre": [], "post": []}
        self.switch_seconds = None
        self.gpu = None
        self.started = now()

    def done(self, name, detail):
        self.actions.append({"step": name, "detail": detail})

    def entry(self, revision, action, outcome, reason=None, switch_s=None):
        return bg.history_entry(revision, action, outcome, self.started, self.now(), self.by, reason, switch_s)

    def wait_deployment(self, name, timeout, what):
        """Wait until Deployment ``name`` is available; (ok, detail)."""
        path = deployment_path(self.namespace, name)
        deadline = self.clock() + timeout
        while True:
            dep = self.kube.get(path)
            if dep is None:
                return False, f"Deployment {self.namespace}/{name} does not exist"
            self.seen(dep)
            done, failed, line = rollout_state(dict(dep, kind="Deployment"))
            replicas = (dep.get("spec") or {}).get("replicas", 1)
            if done and (dep.get("status") or {}).get("availableReplicas", 0) >= replicas:
                return True, line
            if failed:
                return False, f"{what} {self.namespace}/{name}: {failed}"
            if self.clock() > deadline:
                return False, f"{what} {self.namespace}/{name} not available after {timeout} s: {line}"
            self.sleep(POLL_S * 4)

    def seen(self, deployment):
        """A Deployment was read again (its status is the latest)."""

    def gpu_check(self, template, replicas, green_selector, what):
        fit_probe = bg.gpu_fit(template, replicas, [], [])
        if not fit_probe["per_pod"]:
            self.gpu = fit_probe
            return replicas
        label = bg.selector_string(((template.get("spec") or {}).get("nodeSelector")) or {}) or None
        nodes = self.kube.list("v1", "nodes", label_selector=label)
        pods = self.kube.list("v1", "pods", field_selector=ACTIVE_PODS)
        green_pods = [p for p in pods if (p.get("metadata") or {}).get("namespace") == self.namespace
                      and bg.matches(green_selector, (p.get("metadata") or {}).get("labels"))]
        fit = bg.gpu_fit(template, replicas, nodes, pods, green_pods)
        run_replicas, warning = bg.gpu_decision(fit, self.params.get("gpu_shortfall") or "fail", what)
        if warning:
            self.warnings.append(warning)
        self.gpu = fit
        return run_replicas

    def patch_service(self, selector, recorded):
        """One server-side apply of the active Service: selector (when given) and every state annotation."""
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "annotations": bg.state_annotations(recorded)}}
        if selector is not None:
            body["spec"] = {"selector": dict(selector)}
        return self.kube.apply(service_path(self.namespace, self.name), body)

    def fail(self, reason, msg, result, **extra):
        details = dict(result, reason=reason, **extra)
        details.pop("msg", None)
        details.pop("changed", None)
        raise bg.CutoverError(msg, changed=bool(self.actions), **details)


# ------------------------------------------------------------------------------------------------ in cluster

def _labels(obj):
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _template(dep):
    return ((dep or {}).get("spec") or {}).get("template") or {}


def _summary(dep, record):
    if not record:
        return {}
    out = dict(record)
    if dep is not None:
        status = dep.get("status") or {}
        out.update(exists=True, spec_replicas=(dep.get("spec") or {}).get("replicas", 1),
                   available_replicas=status.get("availableReplicas", 0))
    else:
        out["exists"] = False
    return out


class InCluster(Run):
    """bluegreen_cutover mode in_cluster."""

    def seen(self, deployment):
        self.deployments[deployment["metadata"]["name"]] = deployment

    def read(self):
        self.service = self.kube.get(service_path(self.namespace, self.name))
        if self.service is None:
            raise bg.CutoverError(f"Service {self.namespace}/{self.name} does not exist: the active Service of the "
                                  "cutover must exist (apply it with mcp_deploy first)", reason="no_blue",
                                  object=f"Service/{self.namespace}/{self.name}")
        self.state = bg.read_state(self.service)
        self.svc_selector = (self.service.get("spec") or {}).get("selector") or {}
        self.deployments = {d["metadata"]["name"]: d for d in self.kube.list("apps/v1", "deployments", self.namespace)}

    def sides(self):
        """(active record, other record, active Deployment)."""
        state = self.state
        if state["state"] and state.get("blue"):
            green_active = state.get("active") == state["green"].get("revision") and \
                state["state"] in ("promoted", "completed")
            active, other = (state["green"], state["blue"]) if green_active else (state["blue"], state["green"])
            dep = self.deployments.get(active.get("deployment"))
            if dep is None:
                raise bg.CutoverError(
                    f"the active side's Deployment {self.namespace}/{active.get('deployment')} (recorded on Service "
                    f"{self.name}) does not exist: restore it, or remove the sophia.ai/bluegreen-* annotations to "
                    "start over", reason="no_blue", object=f"Deployment/{self.namespace}/{active.get('deployment')}")
            return dict(active), dict(other or {}), dep
        found = bg.find_blue_deployment(self.deployments.values(), self.svc_selector)
        base = bg.base_selector(self.svc_selector)
        if len(found) != 1:
            names = ", ".join(d["metadata"]["name"] for d in found)
            raise bg.CutoverError(
                f"Service {self.namespace}/{self.name} selects {bg.selector_string(base) or 'nothing'}: "
                + (f"several Deployments match ({names}); give each its own labels" if found else
                   "no Deployment's pod template matches it, so there is no blue to cut over from"),
                reason="no_blue", object=f"Service/{self.namespace}/{self.name}")
        dep = found[0]
        record = {"deployment": dep["metadata"]["name"], "revision": bg.revision(_template(dep)),
                  "replicas": (dep.get("spec") or {}).get("replicas", 1)}
        return record, {}, dep

    def active_selector(self, record, dep):
        """The selector that pins the active side: recorded, its revision label, or its pod-template-hash."""
        if record.get("selector"):
            return record["selector"]
        rev_label = _labels(_template(dep)).get(bg.REVISION_LABEL)
        if rev_label:
            return bg.pinned_selector(self.svc_selector, revision_value=rev_label)
        done, dummy, line = rollout_state(dict(dep, kind="Deployment"))
        if not done:
            raise bg.CutoverError(
                f"blue Deployment {self.namespace}/{dep['metadata']['name']} is in the middle of a rollout ({line}): "
                "blue is pinned by its current ReplicaSet's pod-template-hash, so it must be fully rolled out first",
                reason="blue_not_ready", object=f"Deployment/{self.namespace}/{dep['metadata']['name']}")
        match = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        replicasets = self.kube.list("apps/v1", "replicasets", self.namespace,
                                     label_selector=bg.selector_string(match) or None)
        rs = bg.current_replicaset(dep, replicasets)
        if rs is None or not _labels(rs).get(bg.HASH_LABEL):
            raise bg.CutoverError(f"found no current ReplicaSet (with a pod-template-hash) of blue Deployment "
                                  f"{self.namespace}/{dep['metadata']['name']}", reason="blue_not_ready",
                                  object=f"Deployment/{self.namespace}/{dep['metadata']['name']}")
        return bg.pinned_selector(self.svc_selector, pod_template_hash=_labels(rs)[bg.HASH_LABEL])

    def plan(self):
        params = self.params
        active, other, active_dep = self.sides()
        self.active_rec, self.other_rec, self.active_dep = active, other, active_dep
        active["selector"] = self.active_selector(active, active_dep)
        active.setdefault("replicas", (active_dep.get("spec") or {}).get("replicas", 1))
        self.active_rev = active["revision"]
        desired_rev = None
        self.green_tpl = None
        if (params.get("state") or "promoted") == "promoted":
            self.green_tpl = bg.green_template(_template(active_dep), params.get("image"), params.get("container"),
                                               params.get("env"), params.get("template"))
            desired_rev = bg.revision(self.green_tpl)
        self.desired_rev = desired_rev
        self.preview_name = params.get("preview_service") or f"{self.name}-preview"
        facts = {"desired_rev": desired_rev, "active_rev": self.active_rev,
                 "pinned": self.svc_selector == active["selector"],
                 "active_selector_ok": not self.state["state"] or self.svc_selector == active["selector"],
                 "green": None, "green_replicas": None, "green_name": None, "preview_ok": True,
                 "preview_name": self.preview_name}
        if desired_rev and desired_rev != self.active_rev:
            self.green_rec = {"deployment": bg.green_name(self.name, desired_rev), "revision": desired_rev,
                              "selector": bg.pinned_selector(self.svc_selector, revision_value=desired_rev),
                              "replicas": params.get("replicas") or (active_dep.get("spec") or {}).get("replicas", 1)}
            facts.update(green=self.deployments.get(self.green_rec["deployment"]),
                         green_replicas=self.green_rec["replicas"], green_name=self.green_rec["deployment"])
            self.preview_live = self.kube.get(service_path(self.namespace, self.preview_name))
            self.preview_want = bg.preview_service(self.service, self.preview_name, self.namespace,
                                                   self.green_rec["selector"])
            facts["preview_ok"] = not bg.preview_differs(self.preview_live, self.preview_want)
        else:
            self.green_rec = None
        blue = self.state.get("blue") or {}
        blue_dep = self.deployments.get(blue.get("deployment"))
        blue_spec = (blue_dep or {}).get("spec") or {}
        facts["blue_live"] = blue_dep is not None
        green_active_now = active.get("revision") == (self.state.get("green") or {}).get("revision")
        if green_active_now and (params.get("state") or "promoted") == "promoted":
            facts["blue_up"] = blue_dep is not None and blue_spec.get("replicas", 1) > 0
        else:
            facts["blue_up"] = blue_dep is not None and blue_spec.get("replicas", 1) >= (blue.get("replicas") or 1) \
                and (blue_dep.get("status") or {}).get("availableReplicas", 0) >= (blue.get("replicas") or 1)
        plan = bg.plan_in_cluster(self.state, dict(params, pre_checks=self.checks["pre"],
                                                   post_checks=self.checks["post"]), self.now(), facts)
        history = self.state.get("history") or []
        if plan["final"] == "promoted" and not plan["steps"] and history and \
                history[-1].get("outcome") == "switching" and history[-1].get("revision") == self.active_rev:
            # the last run stopped between the switch and its end (the API server went away): finish it
            plan["steps"] = [bg.step("wait_endpoints", "finish the interrupted switch"),
                             *([bg.step("post_checks", "run the post-promotion checks")] if self.checks["post"] else []),
                             bg.step("record_promoted", "record the promotion's outcome")]
        return plan

    # -------------------------------------------------------------------------------------------- result

    def result(self, final, changed):
        state = dict(self.state)
        blue = state.get("blue") or {}
        green = state.get("green") or {}
        if not self.state["state"]:
            blue = self.active_rec
        green_active = final in ("promoted", "completed") and bool(green) and state.get("active") == green.get("revision")
        return {
            "changed": changed,
            "state": final,
            "phase": final or "steady",
            "paused": final == "preview",
            "active": "green" if green_active else "blue",
            "blue": _summary(self.deployments.get(blue.get("deployment")), blue),
            "green": _summary(self.deployments.get(green.get("deployment")), green),
            "window_ends_at": state.get("window_end"),
            "window_open": bg.window_open(state, self.now()),
            "checks": self.results,
            "history": state.get("history") or [],
            "switch_seconds": self.switch_seconds,
            "actions": self.actions,
            "gpu": self.gpu,
            "api_calls": self.client.api_calls,
            "warnings": self.warnings,
        }

    def diff_view(self):
        state = self.state
        blue = self.deployments.get((state.get("blue") or self.active_rec or {}).get("deployment"))
        green = self.deployments.get((state.get("green") or {}).get("deployment"))
        return {"active": state.get("active") or self.active_rec.get("revision"), "state": state.get("state"),
                "blue_replicas": (blue or {}).get("spec", {}).get("replicas"),
                "green_replicas": (green or {}).get("spec", {}).get("replicas")}

    # -------------------------------------------------------------------------------------------- steps

    def pod_names(self, selector):
        pods = self.kube.list("v1", "pods", self.namespace, label_selector=bg.selector_string(selector))
        return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}

    def wait_endpoints(self, selector, start, timeout):
        names, refreshed = self.pod_names(selector), self.clock()
        label = f"kubernetes.io/service-name={self.name}"
        while True:
            slices = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", self.namespace, label_selector=label)
            done, detail = bg.endpoints_state(slices, names)
            if done:
                return self.clock() - start, detail
            if self.clock() - start > timeout:
                return None, detail
            self.sleep(0.1)
            if not names or self.clock() - refreshed > 2:
                names, refreshed = self.pod_names(selector), self.clock()

    def scale(self, name, replicas):
        self.kube.scale(deployment_path(self.namespace, name), replicas)
        if name in self.deployments:
            self.deployments[name].setdefault("spec", {})["replicas"] = replicas

    def record(self, selector, recorded):
        live = self.patch_service(selector, recorded)
        self.service = live
        self.state = bg.read_state(live)
        if selector is not None:
            self.svc_selector = (live.get("spec") or {}).get("selector") or {}

    def targets(self):
        def base(service):
            spec = (service or {}).get("spec") or {}
            ports = spec.get("ports") or []
            if not spec.get("clusterIP") or spec.get("clusterIP") == "None" or not ports:
                return []
            return [f"http://{spec['clusterIP']}:{ports[0]['port']}"]
        preview = self.kube.get(service_path(self.namespace, self.preview_name))
        return {"preview": base(preview), "active": base(self.service)}

    def scale_down_green(self, green):
        if self.delay_s:
            self.sleep(self.delay_s)
        self.scale(green["deployment"], 0)
        self.done("scale_down_green", f"scaled {green['deployment']} to 0")

    def back_to_blue(self, final, reason, action, outcome, switched):
        """Abort (green never took traffic) or roll back (it did): blue active, green at 0, state recorded."""
        blue, green = self.state["blue"], self.state["green"]
        recorded = bg.with_history(dict(self.state, state=final, active=blue["revision"]),
                                   self.entry(green.get("revision"), action, outcome, reason))
        start = self.clock()
        self.record(blue["selector"], recorded)
        self.done("switch_back" if switched else "record", f"Service {self.name}: selector back to blue "
                  f"{bg.selector_string(blue['selector'])}, state {final}")
        if switched:
            seconds, detail = self.wait_endpoints(blue["selector"], start, self.params.get("ready_timeout") or 300)
            self.switch_seconds = None if seconds is None else round(seconds, 3)
            self.done("wait_endpoints", f"blue's pods only: {detail}")
        if green.get("deployment") in self.deployments:
            if switched:
                self.scale_down_green(green)
            else:
                self.scale(green["deployment"], 0)
                self.done("scale_down_green", f"scaled {green['deployment']} to 0")
        if switched and self.switch_seconds is not None:
            self.record(blue["selector"], bg.with_history(self.state, self.entry(
                green.get("revision"), action, outcome, reason, self.switch_seconds), replace_last=True))

    def execute(self, plan):
        params = self.params
        names = [s["step"] for s in plan["steps"]]
        ready_timeout = params.get("ready_timeout") or 300
        if not names:
            return
        if "retire_previous_blue" in names:
            old = self.state["blue"]
            self.retire(old)
        if "scale_down_superseded_green" in names:
            old = self.state["green"]
            self.scale(old["deployment"], 0)
            self.done("scale_down_superseded_green", f"scaled {old['deployment']} (superseded) to 0")
        if "restore_selector" in names:
            self.record(self.active_rec["selector"], self.state)
            self.done("restore_selector", f"Service {self.name}: selector {bg.selector_string(self.active_rec['selector'])}")
        if "abort" in names:
            self.back_to_blue(plan["final"], params.get("reason"), "abort", "aborted", False)
            return
        if "complete" in names:
            self.complete()
            return
        if "switch_back" in names:
            if "scale_up_blue" in names:
                blue = self.state["blue"]
                self.scale(blue["deployment"], blue.get("replicas") or 1)
                self.done("scale_up_blue", f"scaled {blue['deployment']} to {blue.get('replicas') or 1}")
                ok, detail = self.wait_deployment(blue["deployment"], ready_timeout, "blue Deployment")
                if not ok:
                    self.fail("blue_not_ready", f"{detail}: traffic stays on green", self.result(self.state["state"], True))
            action = "rollback" if plan["final"] == "rolled_back" else "abort"
            self.back_to_blue(plan["final"], params.get("reason"), action, plan["final"], True)
            return
        if self.green_rec is None:
            if "wait_endpoints" in names:
                self.finish_promotion(self.clock())
            return
        self.promote(names, plan, ready_timeout)

    def retire(self, old):
        if (self.params.get("blue_scale_down") or "scale") == "delete":
            self.kube.delete(deployment_path(self.namespace, old["deployment"]))
            self.deployments.pop(old["deployment"], None)
            self.done("retire_previous_blue", f"deleted {old['deployment']}")
        else:
            self.scale(old["deployment"], 0)
            self.done("retire_previous_blue", f"scaled {old['deployment']} to 0")
        self.warnings.append(f"a new revision was promoted while the rollback window of {old['deployment']} was "
                             f"open: {old['deployment']} was retired, a rollback now returns to the revision active "
                             "before this run")

    def complete(self):
        blue = self.state["blue"]
        how = self.params.get("blue_scale_down") or "scale"
        if blue.get("deployment") in self.deployments:
            if how == "delete":
                self.kube.delete(deployment_path(self.namespace, blue["deployment"]))
                self.deployments.pop(blue["deployment"], None)
                self.done("complete", f"deleted blue Deployment {blue['deployment']}")
            else:
                self.scale(blue["deployment"], 0)
                self.done("complete", f"scaled blue Deployment {blue['deployment']} to 0")
        recorded = bg.with_history(dict(self.state, state="completed"),
                                   self.entry(self.state["green"].get("revision"), "complete", "completed",
                                              self.params.get("reason")))
        self.record(self.state["green"]["selector"], recorded)
        self.done("record", "state completed")

    def promote(self, names, plan, ready_timeout):
        params = self.params
        blue, green = self.active_rec, self.green_rec
        replicas = None
        if "apply_green" in names:  # before anything is written: a shortfall changes nothing
            replicas = self.gpu_check(self.green_tpl, green["replicas"], green["selector"],
                                      f"green {self.namespace}/{green['deployment']}")
        if "start" in names or "pin_blue" in names:
            recorded = dict(self.state, state="preview", active=blue["revision"], window_end=None,
                            blue={k: blue[k] for k in ("deployment", "revision", "selector", "replicas")},
                            green=dict(green))
            if "start" in names:
                recorded = bg.with_history(recorded, self.entry(green["revision"], "promote", "started"))
            self.record(blue["selector"], recorded)
            self.done("start", f"Service {self.name}: selector pinned to blue "
                               f"{bg.selector_string(blue['selector'])}, green {green['deployment']} recorded")
        green_dep = self.deployments.get(green["deployment"])
        if "apply_green" in names:
            manifest = bg.green_deployment(self.active_dep, self.name, self.namespace, self.green_tpl,
                                           green["revision"], replicas, green["selector"])
            green_dep = self.kube.apply(deployment_path(self.namespace, green["deployment"]), manifest)
            self.deployments[green["deployment"]] = green_dep
            self.done("apply_green", f"applied Deployment {green['deployment']} ({replicas} replicas)")
        if "apply_preview" in names:
            self.kube.apply(service_path(self.namespace, self.preview_name), self.preview_want)
            self.done("apply_preview", f"Service {self.preview_name} -> green {green['revision']}")
        ok, detail = self.wait_deployment(green["deployment"], ready_timeout, "green Deployment")
        if not ok:
            self.back_to_blue("aborted", "green_not_ready", "promote", "aborted", False)
            self.fail("green_not_ready", f"{detail}. Aborted: blue keeps serving, green was scaled to 0",
                      self.result("aborted", True), aborted=True)
        if "pre_checks" in names:
            self.results["pre"] = Checks(self).run_all(self.checks["pre"], self.targets(), "pre")
            failed = [c["name"] for c in self.results["pre"] if not c["ok"]]
            if failed:
                self.back_to_blue("aborted", "pre_check_failed", "promote", "aborted", False)
                self.fail("pre_check_failed", f"pre-promotion check(s) {', '.join(failed)} failed against green "
                          f"{green['deployment']} (see checks). Aborted: blue keeps serving, green was scaled to 0",
                          self.result("aborted", True), aborted=True)
        if plan["final"] == "preview":
            return
        recorded = bg.with_history(dict(self.state, state="promoted", active=green["revision"],
                                        window_end=bg.window_end(self.now(), self.window_s)),
                                   self.entry(green["revision"], "promote", "switching"))
        start = self.clock()
        self.record(green["selector"], recorded)
        self.done("switch", f"Service {self.name}: selector -> green {bg.selector_string(green['selector'])}")
        self.finish_promotion(start)

    def finish_promotion(self, start):
        green = self.state["green"]
        seconds, detail = self.wait_endpoints(green["selector"], start, self.params.get("ready_timeout") or 300)
        self.done("wait_endpoints", f"green's pods only: {detail}")
        if seconds is None:
            self.back_to_blue("rolled_back", "switch_timeout", "promote", "rolled_back", True)
            self.fail("switch_timeout", f"the endpoints of Service {self.name} did not show only green's pods "
                      f"({detail}). Rolled back to blue", self.result("rolled_back", True), rolled_back=True)
        self.switch_seconds = round(seconds, 3)
        if self.checks["post"]:
            self.results["post"] = Checks(self).run_all(self.checks["post"], self.targets(), "post")
            failed = [c["name"] for c in self.results["post"] if not c["ok"]]
            if failed:
                self.back_to_blue("rolled_back", "post_check_failed", "promote", "rolled_back", True)
                self.fail("post_check_failed", f"post-promotion check(s) {', '.join(failed)} failed after the switch "
                          f"to green {green['deployment']} (see checks). Rolled back: blue serves again, green was "
                          "scaled to 0", self.result("rolled_back", True), rolled_back=True)
        self.record(green["selector"], bg.with_history(self.state, self.entry(
            green["revision"], "promote", "promoted", switch_s=self.switch_seconds)))
        self.done("record_promoted", f"state promoted, rollback window until {self.state['window_end']}")


def _drive(run, params, check_mode, predicted, changed_of):
    """Read, plan, then either say what would change (check mode) or execute: the part both modes share.

    ``predicted(before, final)`` is the diff's ``after`` in check mode; ``changed_of(actions)`` decides ``changed``.
    """
    run.read()
    plan = run.plan()
    before = run.diff_view()
    if plan["error"]:
        reason, msg = plan["error"]
        raise bg.CutoverError(f"{params['name']}: {msg}", reason=reason, changed=False,
                              **{k: v for k, v in run.result(run.state["state"], False).items() if k != "changed"})
    writes = [s for s in plan["steps"] if s["step"] in WRITE_STEPS]
    if check_mode:
        run.actions = plan["steps"]
        result = run.result(plan["final"], bool(writes))
        result["diff"] = {"before": before, "after": predicted(before, plan["final"])}
        result["msg"] = (f"{params['name']}: would " + "; ".join(s["detail"] for s in writes)) if writes else \
            f"{params['name']}: nothing to do (state {plan['final'] or 'none'})"
        return result
    run.execute(plan)
    changed = changed_of(run.actions)
    result = run.result(run.state["state"] if changed else plan["final"], changed)
    result["diff"] = {"before": before, "after": run.diff_view()}
    result["msg"] = summary(params["name"], result)
    return result


def run_in_cluster(params, client, check_mode=False, **hooks):
    run = InCluster(params, client, check_mode=check_mode, **hooks)

    def predicted(before, final):
        after = dict(before, state=final)
        if final == "promoted" and run.green_rec:
            after.update(active=run.green_rec["revision"], green_replicas=run.green_rec["replicas"])
        elif final in ("aborted", "rolled_back"):
            after.update(active=(run.state.get("blue") or {}).get("revision"), green_replicas=0)
        elif final == "completed":
            after["blue_replicas"] = 0
        return after

    return _drive(run, params, check_mode, predicted,
                  lambda actions: any(a["step"] in WRITE_STEPS or a["step"] == "record" for a in actions))


def summary(name, result):
    if not result["changed"]:
        return f"{name}: nothing to do (state {result['state'] or 'none'}, {result['active']} active)"
    text = f"{name}: state {result['state']}, {result['active']} active"
    if result.get("switch_seconds") is not None:
        text += f", switch {result['switch_seconds']} s"
    if result.get("window_ends_at") and result["state"] == "promoted":
        text += f", rollback window until {result['window_ends_at']}"
    return text


# ------------------------------------------------------------------------------------------------ swarm to K3s

class _TimedApi:
    """A RuntimeApi whose state-changing commands are timed: ``last_run`` is when the last one was answered."""

    def __init__(self, api, clock):
        self.api, self.clock, self.last_run = api, clock, None

    def command(self, line):
        return self.api.command(line)

    def run(self, line):
        self.api.run(line)
        self.last_run = self.clock()


class SwarmToK3s(Run):
    """bluegreen_cutover mode swarm_to_k3s: blue is the Swarm service, the switch is the front door's."""

    def __init__(self, params, client, docker=None, haproxy=None, volume_sides=None, **hooks):
        super().__init__(params, client, **hooks)
        self.docker, self.haproxy = docker, haproxy
        self.volume_sides = volume_sides  # tests: a callable (run) -> (swarm side, k3s side)
        self.moves, self.volume_results, self.write_pause_s, self.held_since = [], [], None, None

    def read(self):
        from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy
        from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_service
        self._haproxy, self._swarm = _haproxy, _swarm_service
        self.service = self.kube.get(service_path(self.namespace, self.name))
        if self.service is None:
            raise bg.CutoverError(f"K3s Service {self.namespace}/{self.name} does not exist: green must be deployed "
                                  "(role mcp_deploy) before the cutover", reason="no_green",
                                  object=f"Service/{self.namespace}/{self.name}")
        self.state = bg.read_state(self.service)
        selector = (self.service.get("spec") or {}).get("selector") or {}
        deployments = self.kube.list("apps/v1", "deployments", self.namespace)
        if self.params.get("deployment"):
            found = [d for d in deployments if d["metadata"]["name"] == self.params["deployment"]]
        else:
            found = [d for d in deployments if bg.matches(selector, _labels(_template(d)))]
        if len(found) != 1:
            if self.params.get("deployment"):
                what = f"Deployment {self.namespace}/{self.params['deployment']} does not exist"
            elif found:
                what = (f"several Deployments ({', '.join(d['metadata']['name'] for d in found)}) match the selector "
                        f"of Service {self.namespace}/{self.name}")
            else:
                what = f"no Deployment in {self.namespace} matches the selector of Service {self.name}"
            raise bg.CutoverError(
                f"green: {what}; set deployment (green is the K3s Deployment role mcp_deploy applied)",
                reason="no_green", object=f"Service/{self.namespace}/{self.name}")
        self.green_dep = found[0]
        self.swarm_name = self.params.get("swarm_service") or f"sophia_{self.name}"
        if self.docker is None:
            self.docker = self._swarm.connect({"docker_host": self.params.get("docker_host")
                                               or "unix:///var/run/docker.sock", "timeout": 60})
        try:
            self.swarm = self._swarm.get_service(self.docker, self.swarm_name)
        except InputError as exc:
            raise bg.CutoverError(f"blue: {exc}", reason="no_blue", object=f"swarm service {self.swarm_name}") from None
        if self.haproxy is None:
            self.haproxy = self._haproxy.RuntimeApi(self.params.get("front_door_socket") or self._haproxy.DEFAULT_SOCKET,
                                                    5.0)
        self.servers = self._haproxy.read_backend(self.haproxy, self.name)
        # the volumes this run moves: the option, else those the recorded cutover moved (a rollback copies them back)
        self.volume_paths = list(self.params.get("volumes") or (self.state.get("green") or {}).get("volumes") or [])
        if self.volume_paths:
            from ansible_collections.sophia_ai.platform.plugins.module_utils import _volume_copy
            self._volumes = _volume_copy
            self.moves = _volume_copy.plan_moves(self.volume_paths, self.swarm, _template(self.green_dep), self.name)
            if self.swarm_replicas() > 1:
                raise InputError(f"volumes: the Swarm service {self.swarm_name} runs {self.swarm_replicas()} replicas, "
                                 "each with a volume of its own on its node; a volume moves from one task (scale it "
                                 "to 1 first)", key="volumes", reason="bad_volume")

    def seen(self, deployment):
        if deployment["metadata"]["name"] == self.green_dep["metadata"]["name"]:
            self.green_dep = deployment

    def swarm_replicas(self):
        mode = ((self.swarm.get("Spec") or {}).get("Mode") or {})
        return (mode.get("Replicated") or {}).get("Replicas", 1) if "Replicated" in mode else 1

    def plan(self):
        green_spec = self.green_dep.get("spec") or {}
        blue = self.state.get("blue") or {}
        self.green_wanted = self.params.get("replicas") or (self.state.get("green") or {}).get("replicas") \
            or self.swarm_replicas() or 1
        facts = {"front": bg.front_of(self.servers), "green_replicas": green_spec.get("replicas", 1),
                 "green_wanted": self.green_wanted, "swarm_replicas": self.swarm_replicas(),
                 "swarm_wanted": blue.get("replicas") or self.swarm_replicas()}
        self.facts = facts
        plan = bg.plan_swarm(self.state, dict(self.params, pre_checks=self.checks["pre"],
                                              post_checks=self.checks["post"], volumes=self.volume_paths),
                             self.now(), facts)
        if plan.get("final") == "promoted" and any(s["step"] == "switch" for s in plan["steps"]):
            from ansible_collections.sophia_ai.platform.plugins.module_utils._volume_copy import unmoved_named_volumes
            left = unmoved_named_volumes(self.swarm, self.volume_paths)
            if left:
                self.warnings.append(
                    f"the Swarm service {self.swarm_name} keeps data on named volumes at {', '.join(left)}, which this "
                    "cutover does not move: green starts on its own (empty) claims there; list the paths in volumes "
                    "to move the data with the service (the Swarm volumes stay untouched either way)")
        return plan

    def result(self, final, changed):
        state = self.state
        dep = self.green_dep
        status = dep.get("status") or {}
        blue = dict(state.get("blue") or {"swarm_service": self.swarm_name})
        blue.update(spec_replicas=self.swarm_replicas())
        green = dict(state.get("green") or {"deployment": dep["metadata"]["name"]})
        green.update(spec_replicas=(dep.get("spec") or {}).get("replicas", 1),
                     available_replicas=status.get("availableReplicas", 0))
        return {
            "changed": changed, "state": final, "phase": final or "steady", "paused": final == "preview",
            "active": "green" if state.get("active") == "k3s" and final in ("promoted", "completed") else "blue",
            "blue": blue, "green": green, "window_ends_at": state.get("window_end"),
            "window_open": bg.window_open(state, self.now()), "checks": self.results,
            "history": state.get("history") or [], "switch_seconds": self.switch_seconds, "actions": self.actions,
            "gpu": self.gpu, "api_calls": self.client.api_calls + getattr(self.docker, "api_calls", 0),
            "front_door": {s["name"]: s["effective_weight"] for s in self.servers}, "warnings": self.warnings,
            "volumes": self.volume_results, "write_pause_seconds": self.write_pause_s,
        }

    def diff_view(self):
        return {"active": self.state.get("active") or "swarm", "state": self.state.get("state"),
                "blue_replicas": self.swarm_replicas(),
                "green_replicas": (self.green_dep.get("spec") or {}).get("replicas", 1),
                "front_door": {s["name"]: s["effective_weight"] for s in self.servers}}

    def record(self, recorded):
        self.service = self.patch_service(None, recorded)
        self.state = bg.read_state(self.service)

    def front_switch(self, to, health_timeout):
        timed = _TimedApi(self.haproxy, self.clock)
        start = self.clock()
        try:
            options = {"service": self.name, "to": to, "drain": True, "health_timeout": health_timeout,
                       "drain_timeout": self.params.get("drain_timeout") or 60,
                       "state_file": self.params.get("front_door_state_file")}
            out = self._haproxy.switch(timed, options, clock=self.clock, sleep=self.sleep)
        except PlatformError as exc:
            return None, exc
        self.warnings.extend(out.get("warnings") or [])
        self.servers = out["servers"]
        seconds = round(timed.last_run - start, 3) if timed.last_run is not None else 0.0
        self.done("switch" if to == "k3s" else "switch_back",
                  f"front door {self.name}: all traffic to {to} ({', '.join(out['commands']) or 'already'})")
        return seconds, None

    def scale_green(self, replicas):
        name = self.green_dep["metadata"]["name"]
        self.kube.scale(deployment_path(self.namespace, name), replicas)
        self.green_dep.setdefault("spec", {})["replicas"] = replicas

    def scale_swarm(self, replicas):
        spec = copy.deepcopy(self.swarm["Spec"])
        spec.setdefault("Mode", {}).setdefault("Replicated", {})["Replicas"] = replicas
        self._swarm.update_service(self.docker, self.swarm, spec)
        self.swarm = self._swarm.get_service(self.docker, self.swarm_name)

    def green_down(self, switched):
        before = (self.state.get("green") or {}).get("replicas_before")
        if before is not None and (self.green_dep.get("spec") or {}).get("replicas", 1) != before:
            if switched and self.delay_s:
                self.sleep(self.delay_s)
            self.scale_green(before)
            self.done("scale_down_green", f"scaled {self.green_dep['metadata']['name']} back to {before}")

    def back_to_swarm(self, final, reason, action, outcome, switched):
        if switched or self.facts["front"] != "swarm":
            self.front_healthy("swarm", self.params.get("ready_timeout") or 300)
            if self.moves:
                self.copy_back(final)
            try:
                seconds, error = self.front_switch("swarm", 5)
            finally:
                self.release_hold()
            if error is not None:
                raise error
            self.switch_seconds = seconds
        self.green_down(switched)
        self.record(bg.with_history(dict(self.state, state=final, active="swarm"),
                                    self.entry(self.green_dep["metadata"]["name"], action, outcome, reason,
                                               self.switch_seconds)))
        self.done("record", f"state {final}")

    def execute(self, plan):
        params = self.params
        names = [s["step"] for s in plan["steps"]]
        ready_timeout = params.get("ready_timeout") or 300
        green_name = self.green_dep["metadata"]["name"]
        if not names:
            return
        if "complete" in names:
            if "switch" in names:
                self.promote_switch(ready_timeout)
            self.scale_swarm(0)
            self.done("complete", f"scaled Swarm service {self.swarm_name} to 0")
            self.record(bg.with_history(dict(self.state, state="completed"),
                                        self.entry(green_name, "complete", "completed", params.get("reason"))))
            return
        if "abort" in names or "switch_back" in names:
            if plan["final"] in ("aborted", "rolled_back") and self.state["state"] == plan["final"]:
                seconds, error = self.front_switch("swarm", 30)  # only the front door drifted: follow the state
                if error is not None:
                    raise error
                self.switch_seconds = seconds
                return
            if "scale_up_blue" in names:
                wanted = (self.state.get("blue") or {}).get("replicas") or 1
                self.scale_swarm(wanted)
                self.done("scale_up_blue", f"scaled Swarm service {self.swarm_name} to {wanted}")
                out = self._swarm.wait_rollout(self.docker, self.swarm_name, ready_timeout, expect_update=False,
                                               clock=self.clock, sleep=self.sleep)
                if out["state"] != "converged":
                    self.fail("blue_not_ready", f"Swarm service {self.swarm_name}: {out['detail']}: traffic stays on "
                              "k3s", self.result(self.state["state"], True))
            action = "abort" if "abort" in names else "rollback"
            self.back_to_swarm(plan["final"], params.get("reason"), action, plan["final"],
                               "switch_back" in names)
            return
        if plan["final"] in ("promoted", "completed") and self.state["state"] == plan["final"]:
            if "switch" in names:
                self.promote_switch(ready_timeout)
            return
        self.promote(names, plan, ready_timeout)

    def promote(self, names, plan, ready_timeout):
        params = self.params
        green_name = self.green_dep["metadata"]["name"]
        if "start" in names:
            green = {"deployment": green_name, "replicas": self.green_wanted,
                     "replicas_before": (self.green_dep.get("spec") or {}).get("replicas", 1)}
            if self.volume_paths:
                green["volumes"] = self.volume_paths  # a later rollback copies them back
            recorded = dict(self.state, state="preview", active="swarm", window_end=None,
                            blue={"swarm_service": self.swarm_name, "replicas": self.swarm_replicas()}, green=green)
            self.record(bg.with_history(recorded, self.entry(green_name, "promote", "started")))
            self.done("start", f"recorded the cutover of {self.name} on Service {self.name} (state preview)")
        if "scale_green" in names:
            selector = ((self.green_dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            replicas = self.gpu_check(_template(self.green_dep), self.green_wanted, selector,
                                      f"green {self.namespace}/{green_name}")
            self.scale_green(replicas)
            self.done("scale_green", f"scaled {green_name} to {replicas}")
        ok, detail = self.wait_deployment(green_name, ready_timeout, "green Deployment")
        if not ok:
            self.back_to_swarm("aborted", "green_not_ready", "promote", "aborted", False)
            self.fail("green_not_ready", f"{detail}. Aborted: the Swarm service keeps serving",
                      self.result("aborted", True), aborted=True)
        k3s = [s for s in self.servers if s.get("side") == "k3s"]
        if k3s and not self.front_healthy("k3s", ready_timeout):
            problems = "; ".join(f"{s['name']}: {s['health_problem']} ({self._haproxy.describe(s)})"
                                 for s in self.servers if s.get("side") == "k3s" and not s["healthy"])
            self.back_to_swarm("aborted", "green_not_ready", "promote", "aborted", False)
            self.fail("green_not_ready", f"green is available but the front door's health check of its k3s server(s) "
                      f"does not pass after {ready_timeout} s: {problems}. Aborted: the Swarm service keeps serving",
                      self.result("aborted", True), aborted=True)
        if not k3s:
            self.back_to_swarm("aborted", "no_k3s_server", "promote", "aborted", False)
            self.fail("no_k3s_server", f"the front door's backend {self.name} has no k3s server (servers: "
                      f"{', '.join(s['name'] for s in self.servers)}): add it with role front_door",
                      self.result("aborted", True), aborted=True)
        if "pre_checks" in names:
            targets = {"preview": [f"http://{s['address']}" for s in k3s],
                       "active": [params["front_door_url"]] if params.get("front_door_url") else []}
            self.results["pre"] = Checks(self).run_all(self.checks["pre"], targets, "pre")
            failed = [c["name"] for c in self.results["pre"] if not c["ok"]]
            if failed:
                self.back_to_swarm("aborted", "pre_check_failed", "promote", "aborted", False)
                self.fail("pre_check_failed", f"pre-promotion check(s) {', '.join(failed)} failed against green "
                          "(see checks). Aborted: the Swarm service keeps serving", self.result("aborted", True),
                          aborted=True)
        if plan["final"] == "preview":
            return
        if "move_volumes" in names:
            try:
                self.move_volumes("k3s")
            except PlatformError as exc:
                self.release_hold()
                self.back_to_swarm("aborted", "volume_copy_failed", "promote", "aborted", False)
                self.fail("volume_copy_failed", f"{exc}. Aborted: the Swarm service keeps serving, its volumes as they "
                          "were (they are only read)", self.result("aborted", True), aborted=True)
        self.promote_switch(ready_timeout)

    # ---- stateful services: the volumes move while the front door holds the service's requests

    def sides(self):
        if self.volume_sides is not None:
            return self.volume_sides(self)
        docker = self.docker
        if self.params.get("volume_docker_host"):
            docker = self._swarm.connect({"docker_host": self.params["volume_docker_host"], "timeout": 60})
        pods = [p for p in self.green_pods() if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp") and bg.is_ready(p)]
        if not pods:
            raise self._volumes.CopyError(f"green {self.namespace}/{self.green_dep['metadata']['name']} has no ready "
                                          "pod to copy the volumes into or out of", reason="no_green_pod")
        pod = sorted(p["metadata"]["name"] for p in pods)[0]
        return (self._volumes.SwarmSide(docker, self.swarm_name),
                self._volumes.K3sSide(self.client.api_client, self.namespace, pod,
                                      timeout=float(self.params.get("drain_timeout") or 60)))

    def green_pods(self):
        """Green's pods (one list, by its Deployment's selector)."""
        selector = ((self.green_dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return self.kube.list("v1", "pods", self.namespace, label_selector=bg.selector_string(selector))

    def hold_map(self):
        return self.params.get("front_door_hold_map") or "/etc/haproxy/sophia-held.map"

    def release_hold(self):
        if self.held_since is None:
            return
        try:
            self._haproxy.release(self.haproxy, self.name, self.hold_map())
        finally:
            self.write_pause_s = round(self.clock() - self.held_since, 3)
            self.held_since = None
            self.done("release", f"front door: released the held requests of {self.name} after "
                                 f"{self.write_pause_s} s")

    def move_volumes(self, to):
        """Hold the service at the front door, wait until no request is at a server, copy every volume to ``to``
        (k3s or swarm) and compare each file's sha256 with the source's; the hold stays for the switch (the caller
        releases it). Raises CopyError (or another PlatformError, never anything else: the caller must be able to
        release the hold); the source is only read."""
        try:
            self._move_volumes(to)
        except PlatformError:
            raise
        except Exception as exc:  # pylint: disable=broad-except  # an SDK's or the network's error mid-copy
            raise self._volumes.CopyError(f"copying the volumes to {to} failed: {type(exc).__name__}: {exc}",
                                          reason="copy_failed") from None

    def _move_volumes(self, to):
        volumes = self._volumes
        swarm_side, k3s_side = self.sides()
        source, target = (swarm_side, k3s_side) if to == "k3s" else (k3s_side, swarm_side)
        drain_timeout = float(self.params.get("drain_timeout") or 60)
        self.held_since = self.clock()
        held = self._haproxy.hold(self.haproxy, self.name, self.hold_map(), drain_timeout, clock=self.clock,
                                  sleep=self.sleep)
        self.done("hold", f"front door: holding the new requests of {self.name} (map {self.hold_map()})")
        if not held["drain"]["complete"]:
            raise volumes.CopyError(f"requests still at the servers of {self.name} after {drain_timeout:g} s of hold "
                                    f"({held['drain']['sessions_left']}): the volumes are not copied while a write may "
                                    "be under way", reason="not_drained")
        before = self._haproxy.served_totals(self.haproxy, self.name)
        snapshots = os.path.expanduser(self.params.get("snapshot_dir") or "~/.sophia/snapshots")
        results = []
        for move in self.moves:
            start = self.clock()
            data, manifest = source.read(move)
            kept = volumes.write_snapshot(snapshots, self.name, move["path"] + ("" if to == "k3s" else "-k3s"), data)
            sums = target.write(move, data)
            problems = volumes.compare(manifest, sums)
            if problems:
                raise volumes.CopyError(
                    f"the copy of {move['path']} differs from its source ({len(problems)} file(s): "
                    f"{'; '.join(problems[:5])}); the snapshot is kept at {kept['path']}", reason="copy_mismatch")
            results.append({"path": move["path"], "from": "swarm" if to == "k3s" else "k3s", "to": to,
                            "swarm_volume": move["volume"], "claim": move["claim"],
                            "files": len(manifest["files"]), "bytes": manifest["bytes"], "verified": True,
                            "snapshot": kept["path"], "snapshot_sha256": kept["sha256"],
                            "seconds": round(self.clock() - start, 3)})
            self.done("copy_volume", f"{move['path']}: {len(manifest['files'])} file(s), {manifest['bytes']} bytes, "
                                     f"{'Swarm volume ' + move['volume'] if to == 'k3s' else 'claim ' + move['claim']}"
                                     f" -> {'claim ' + move['claim'] if to == 'k3s' else 'Swarm volume ' + move['volume']}"
                                     ", every sha256 equal")
        if self.params.get("volume_restart", True):
            self.restart_side(to, swarm_side)
        after = self._haproxy.served_totals(self.haproxy, self.name)
        if after != before:
            sent = {name: after.get(name, 0) - before.get(name, 0) for name in after if after.get(name) != before.get(name)}
            raise volumes.CopyError(f"the front door sent requests to {self.name}'s servers during the copy ({sent}): "
                                    "the hold ended before the copy did (front_door_hold_max_ms), so a write may be "
                                    "missing from the copy", reason="hold_broken")
        self.volume_results.extend(results)

    def restart_side(self, to, swarm_side):
        """Restart the side that got the data, still held, so that it opens the copied files (a service that reads
        its files at start would keep serving what it read before), then wait until it is ready again."""
        timeout = self.params.get("ready_timeout") or 300
        if to == "k3s":
            green_name = self.green_dep["metadata"]["name"]
            old = {p["metadata"]["name"] for p in self.green_pods()}
            for name in sorted(old):
                self.kube.delete(f"/api/v1/namespaces/{quote(self.namespace)}/pods/{quote(name)}")
            deadline = self.clock() + timeout
            while True:
                ready = [p for p in self.green_pods() if p["metadata"]["name"] not in old and bg.is_ready(p)]
                if len(ready) >= (self.green_dep.get("spec") or {}).get("replicas", 1):
                    break
                if self.clock() > deadline:
                    raise self._volumes.CopyError(f"green {self.namespace}/{green_name} was not ready again {timeout} s "
                                                  "after its restart on the copied data", reason="green_not_ready")
                self.sleep(POLL_S)
            self.done("restart_green", f"restarted {len(old)} pod(s) of {green_name} on the copied data")
        else:
            swarm_side.restart(self.docker, timeout, clock=self.clock, sleep=self.sleep)
            self.done("restart_swarm_task", f"replaced the Swarm task of {self.swarm_name} (forced update): it runs "
                                            "on the copied data")
        deadline = self.clock() + timeout
        for server in [s for s in self.servers if s.get("side") == to]:
            # the front door's health state may still be the one from before the restart: its servers must answer
            while not self.listening(server["address"]):
                if self.clock() > deadline:
                    raise self._volumes.CopyError(f"the {to} server {server['address']} of {self.name} does not accept "
                                                  f"connections {timeout} s after the restart", reason="not_healthy")
                self.sleep(POLL_S)
        if not self.front_healthy(to, timeout):
            raise self._volumes.CopyError(f"the front door's health check of the {to} server(s) of {self.name} does "
                                          f"not pass {timeout} s after the restart", reason="not_healthy")

    @staticmethod
    def listening(address):
        host, dummy, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            return True
        except (OSError, ValueError):
            return False

    def copy_back(self, final):
        """Before traffic goes back to Swarm: K3s's data back into the Swarm task's volumes, under a hold. A failed
        copy leaves traffic on K3s (nothing lost) unless discard_k3s_writes."""
        try:
            self.move_volumes("swarm")
        except PlatformError as exc:
            if self.params.get("discard_k3s_writes"):
                self.warnings.append(f"copying the volumes back from K3s failed ({exc}); discard_k3s_writes: Swarm "
                                     "serves its volumes as they were before the cutover")
                return
            self.release_hold()
            if not (self.state.get("active") == "k3s" and self.state["state"] in ("promoted", "completed")):
                # traffic went to K3s in this run (a failed post-promotion check) and stays there: record it as
                # promoted, or a rerun of the promotion would copy Swarm's older data over what K3s took since
                green_name = self.green_dep["metadata"]["name"]
                self.record(bg.with_history(
                    dict(self.state, state="promoted", active="k3s", window_end=bg.window_end(self.now(), self.window_s)),
                    self.entry(green_name, "rollback", "failed", f"copying the volumes back failed: {exc}",
                               self.switch_seconds)))
                self.done("record_promoted", "state promoted (traffic stays on K3s: the volumes could not go back)")
            self.fail("volume_copy_failed", f"{exc}. Traffic stays on K3s, its data untouched: fix the cause and run "
                      f"again (state {final}), or set discard_k3s_writes: true to go back to Swarm's data as it was "
                      "before the cutover", self.result(self.state["state"], True))

    def front_healthy(self, side, timeout):
        """Wait until every server of ``side`` passes the front door's health check (HAProxy needs its ``rise``
        checks after green became ready); False after ``timeout`` seconds."""
        deadline = self.clock() + timeout
        while True:
            servers = [s for s in self.servers if s.get("side") == side]
            if all(s["healthy"] for s in servers):
                return True
            if self.clock() > deadline:
                return False
            self.sleep(0.2)
            self.servers = self._haproxy.read_backend(self.haproxy, self.name)

    def promote_switch(self, ready_timeout):
        params = self.params
        green_name = self.green_dep["metadata"]["name"]
        try:
            seconds, error = self.front_switch("k3s", 5)
        finally:
            self.release_hold()  # held requests (stateful move) go on, to whichever side the weights name now
        if error is not None:
            if self.state["state"] in ("promoted", "completed"):
                raise error
            self.back_to_swarm("aborted", "green_not_ready", "promote", "aborted", False)
            self.fail("green_not_ready", f"the front door refused to send traffic to k3s: {error}. Aborted: the "
                      "Swarm service keeps serving", self.result("aborted", True), aborted=True)
        self.switch_seconds = seconds
        if self.state["state"] in ("promoted", "completed"):
            return
        if self.checks["post"]:
            targets = {"preview": [f"http://{s['address']}" for s in self.servers if s.get("side") == "k3s"],
                       "active": [params["front_door_url"]] if params.get("front_door_url") else []}
            self.results["post"] = Checks(self).run_all(self.checks["post"], targets, "post")
            failed = [c["name"] for c in self.results["post"] if not c["ok"]]
            if failed:
                self.back_to_swarm("rolled_back", "post_check_failed", "promote", "rolled_back", True)
                self.fail("post_check_failed", f"post-promotion check(s) {', '.join(failed)} failed after the switch "
                          "to k3s (see checks). Rolled back: the Swarm service serves again",
                          self.result("rolled_back", True), rolled_back=True)
        self.record(bg.with_history(dict(self.state, state="promoted", active="k3s",
                                         window_end=bg.window_end(self.now(), self.window_s)),
                                    self.entry(green_name, "promote", "promoted", switch_s=seconds)))
        self.done("record_promoted", f"state promoted, rollback window until {self.state['window_end']}")


def run_swarm_to_k3s(params, client, check_mode=False, docker=None, haproxy=None, **hooks):
    run = SwarmToK3s(params, client, docker=docker, haproxy=haproxy, check_mode=check_mode, **hooks)

    def predicted(before, final):
        after = dict(before, state=final)
        if final == "promoted":
            after["active"] = "k3s"
        elif final in ("aborted", "rolled_back"):
            after["active"] = "swarm"
        elif final == "completed":
            after["blue_replicas"] = 0
        return after

    return _drive(run, params, check_mode, predicted, bool)


def run(params, check_mode=False):
    """The module's entry: connect, run the mode's runner, close."""
    from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect
    client = connect(params)
    try:
        if (params.get("mode") or "in_cluster") == "swarm_to_k3s":
            return run_swarm_to_k3s(params, client, check_mode=check_mode)
        return run_in_cluster(params, client, check_mode=check_mode)
    finally:
        client.close()
