# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue-green cutovers without a controller: the pure part of ``bluegreen_cutover``.

Argo Rollouts' blue-green strategy (active and preview services, pre- and post-promotion analysis,
auto-promotion, scale-down delay, abort) done inside one module run. Its state lives in annotations on the active
Service, so every run reads the live objects and plans only the steps that are still missing; a rerun, also after
the API server restarted in the middle of a run, converges.

Nothing here does I/O. The runner (``_bluegreen_run.py``) reads the objects, calls :func:`plan_in_cluster` or
:func:`plan_swarm`, and runs the steps. Here:

- options: :func:`parse_duration`, :func:`normalise_checks`, :func:`validate`;
- the green pod template and its revision: :func:`green_template`, :func:`revision`;
- selectors and objects: :func:`base_selector`, :func:`pinned_selector`, :func:`green_deployment`,
  :func:`preview_service`, :func:`current_replicaset`;
- annotations and history: :func:`read_state`, :func:`state_annotations`, :func:`history_entry`;
- GPUs: :func:`gpu_fit`;
- which steps a run needs: :func:`plan_in_cluster`, :func:`plan_swarm`;
- the switch's end: :func:`endpoints_state`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._gpu_cluster import parse_quantity, pod_request

FIELD_MANAGER = "sophia-bluegreen-cutover"
PREFIX = "sophia.ai/bluegreen-"
REVISION_LABEL = "sophia.ai/bluegreen-revision"
HASH_LABEL = "pod-template-hash"
A_STATE, A_ACTIVE, A_BLUE, A_GREEN, A_WINDOW, A_HISTORY = (
    PREFIX + "state", PREFIX + "active", PREFIX + "blue", PREFIX + "green", PREFIX + "window-end", PREFIX + "history")
ANNOTATIONS = (A_STATE, A_ACTIVE, A_BLUE, A_GREEN, A_WINDOW, A_HISTORY)
STATES = ("promoted", "aborted", "rolled_back", "completed")
RECORDED_STATES = ("preview",) + STATES
MAX_HISTORY = 20
GPU_RESOURCE = "nvidia.com/gpu"
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
CHECK_TYPES = ("http", "mcp", "job")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class CutoverError(PlatformError):
    """A cutover failed; ``details`` carry ``reason`` and, where blue was restored first, ``aborted`` or
    ``rolled_back`` and the partial result."""


# ------------------------------------------------------------------------------------------------ options

def parse_duration(value, what="rollback_window"):
    """Seconds of ``90s``, ``30m``, ``2h``, ``1h30m``, ``45`` or an int; InputError otherwise."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a duration like 90s, 30m or 2h, got {value!r}", key=what, reason="bad_option")
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        text = str(value or "").strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            match = _DURATION.match(text)
            if not text or not match or not any(match.groups()):
                raise InputError(f"{what} must be a duration like 90s, 30m, 2h or 1h30m (or seconds), got {value!r}",
                                 key=what, reason="bad_option")
            hours, minutes, secs = (int(group or 0) for group in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 0:
        raise InputError(f"{what} must not be negative, got {value!r}", key=what, reason="bad_option")
    return seconds


def normalise_checks(checks, kind, mode):
    """The checks of ``pre_promotion_checks`` / ``post_promotion_checks`` with their defaults; InputError if bad."""
    out = []
    for index, check in enumerate(checks or []):
        where = f"{kind}[{index}]"
        if not isinstance(check, dict):
            raise InputError(f"{where} must be a mapping with name and type, got {check!r}", key=kind, reason="bad_check")
        ctype = check.get("type")
        if ctype not in CHECK_TYPES:
            raise InputError(f"{where}.type must be one of {', '.join(CHECK_TYPES)}, got {ctype!r}", key=kind,
                             reason="bad_check")
        item = {"name": str(check.get("name") or f"{ctype}-{index}"), "type": ctype,
                "timeout": float(check.get("timeout") or (120 if ctype == "job" else 5))}
        if ctype == "job":
            if mode != "in_cluster":
                raise InputError(f"{where}: job checks run in the cluster and need mode in_cluster", key=kind,
                                 reason="bad_check")
            if not isinstance(check.get("job"), dict) or not (check["job"].get("template") or {}).get("spec"):
                raise InputError(f"{where}.job must be a Job spec (with template.spec)", key=kind, reason="bad_check")
            item["job"] = check["job"]
            if check.get("duration") not in (None, "", 0, "0"):
                raise InputError(f"{where}.duration applies to http and mcp checks; a job check runs once", key=kind,
                                 reason="bad_check")
        else:
            target = check.get("target") or ("preview" if kind == "pre_promotion_checks" else "active")
            if target not in ("preview", "active") and not re.match(r"^https?://[^/]+", str(target)):
                raise InputError(f"{where}.target must be preview, active or an http(s):// URL, got {target!r}",
                                 key=kind, reason="bad_check")
            item.update(target=target, path=check.get("path") or ("/readyz" if ctype == "http" else "/mcp"),
                        attempts=max(1, int(check.get("attempts") or 3)))
            if check.get("duration") not in (None, "", 0, "0"):
                # a soak: after its first pass the check runs again every second and must keep passing this long
                item["duration"] = parse_duration(check["duration"], f"{where}.duration")
            if ctype == "http":
                item["status"] = int(check.get("status") or 200)
            else:
                item["tools"] = list(check.get("tools") or [])
        unknown = set(check) - {"name", "type", "timeout", "job", "target", "path", "attempts", "status", "tools",
                                "duration"}
        if unknown:
            raise InputError(f"{where} has unknown keys: {', '.join(sorted(unknown))}", key=kind, reason="bad_check")
        out.append(item)
    return out


def validate(params):
    """Check the options that AnsibleModule cannot; returns the parsed window (s) and checks."""
    mode = params.get("mode") or "in_cluster"
    window = parse_duration(params.get("rollback_window") if params.get("rollback_window") is not None else "2h")
    delay = parse_duration(params.get("abort_scale_down_delay") if params.get("abort_scale_down_delay") is not None
                           else "5s", "abort_scale_down_delay")
    checks = {"pre": normalise_checks(params.get("pre_promotion_checks"), "pre_promotion_checks", mode),
              "post": normalise_checks(params.get("post_promotion_checks"), "post_promotion_checks", mode)}
    if mode == "in_cluster":
        if (params.get("state") or "promoted") == "promoted" and not any(
                params.get(key) for key in ("image", "env", "template")):
            raise InputError("state promoted in_cluster needs the new version: set image, env or template",
                             key="image", reason="bad_option")
        for key in ("deployment", "swarm_service", "front_door_url", "volumes", "volume_docker_host",
                    "discard_k3s_writes"):
            if params.get(key):
                raise InputError(f"{key} applies to mode swarm_to_k3s only", key=key, reason="bad_option")
    else:
        for key in ("image", "env", "template", "container", "preview_service"):
            if params.get(key):
                raise InputError(f"{key} applies to mode in_cluster only (in swarm_to_k3s green is the K3s "
                                 "Deployment that mcp_deploy applied)", key=key, reason="bad_option")
        for phase in ("pre", "post"):
            for check in checks[phase]:
                if check.get("target") == "active" and not params.get("front_door_url"):
                    raise InputError(f"check {check['name']} targets active: set front_door_url (the front door's "
                                     "frontend, e.g. http://127.0.0.1:9105)", key="front_door_url", reason="bad_option")
    if params.get("replicas") is not None and params["replicas"] < 1:
        raise InputError("replicas must be 1 or more", key="replicas", reason="bad_option")
    return window, delay, checks


# ---------------------------------------------------------------------------------------------- templates

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def strip_revision(template):
    """A copy of a pod template without our revision label (the part that defines the revision)."""
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(REVISION_LABEL, None)
        labels.pop(HASH_LABEL, None)
    return out


def revision(template):
    """First 10 hex digits of the sha256 of the canonical JSON of a pod template (our labels left out)."""
    return hashlib.sha256(canonical(strip_revision(template)).encode("utf-8")).hexdigest()[:10]


def green_template(base, image=None, container=None, env=None, template=None):
    """Green's pod template: ``template`` as given, or ``base`` with ``image`` / ``env`` set on one container."""
    if template:
        out = strip_revision(template)
        base_labels = ((strip_revision(base).get("metadata") or {}).get("labels") or {})
        meta = out.setdefault("metadata", {})
        meta["labels"] = dict(base_labels, **(meta.get("labels") or {}))
    else:
        out = strip_revision(base)
    if image or env:
        containers = (out.get("spec") or {}).get("containers") or []
        if not containers:
            raise InputError("the pod template has no containers", key="template", reason="bad_option")
        chosen = next((c for c in containers if c.get("name") == container), None) if container else containers[0]
        if chosen is None:
            raise InputError(f"container {container!r} is not in the pod template (containers: "
                             f"{', '.join(c.get('name', '?') for c in containers)})", key="container", reason="bad_option")
        if image:
            chosen["image"] = image
        if env:
            entries = chosen.setdefault("env", [])
            for key in sorted(env):
                value = env[key]
                entry = {"name": key, "value": "" if value is None else str(value)}
                for position, old in enumerate(entries):
                    if old.get("name") == key:
                        entries[position] = entry
                        break
                else:
                    entries.append(entry)
    return out


# ---------------------------------------------------------------------------------------------- selectors

def base_selector(selector):
    """The Service selector without the pins this module adds."""
    return {k: v for k, v in (selector or {}).items() if k not in (REVISION_LABEL, HASH_LABEL)}


def pinned_selector(selector, revision_value=None, pod_template_hash=None):
    out = base_selector(selector)
    if revision_value:
        out[REVISION_LABEL] = revision_value
    elif pod_template_hash:
        out[HASH_LABEL] = pod_template_hash
    return out


def selector_string(selector):
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))


def matches(selector, labels):
    labels = labels or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def find_blue_deployment(deployments, selector, exclude=()):
    """The Deployment whose pod template labels match the Service's base selector (not one of ``exclude``)."""
    base = base_selector(selector)
    found = [d for d in deployments if d["metadata"]["name"] not in exclude
             and matches(base, (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels"))
             and not (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels", {}).get(REVISION_LABEL)]
    return found


def current_replicaset(deployment, replicasets):
    """The ReplicaSet of ``deployment`` at its current revision (owner uid and deployment.kubernetes.io/revision)."""
    uid = deployment["metadata"].get("uid")
    rev = (deployment["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION)
    owned = [rs for rs in replicasets
             if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])]
    for rs in owned:
        if rev and (rs["metadata"].get("annotations") or {}).get(DEPLOYMENT_REVISION) == rev:
            return rs
    return None


def green_name(name, rev):
    return f"{name}-{rev}"


def green_deployment(blue, name, namespace, template, rev, replicas, selector):
    """Green's Deployment: blue's spec with green's template, selector + revision label, ``replicas``."""
    spec = copy.deepcopy(blue.get("spec") or {})
    spec.pop("paused", None)
    template = copy.deepcopy(template)
    meta = template.setdefault("metadata", {})
    meta["labels"] = dict(meta.get("labels") or {}, **{REVISION_LABEL: rev})
    spec["template"] = template
    spec["selector"] = {"matchLabels": dict(selector)}
    spec["replicas"] = replicas
    labels = dict((blue.get("metadata") or {}).get("labels") or {})
    labels[REVISION_LABEL] = rev
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": green_name(name, rev), "namespace": namespace, "labels": labels,
                     "annotations": {PREFIX + "service": name}},
        "spec": spec,
    }


_PORT_KEYS = ("name", "port", "targetPort", "protocol", "appProtocol")


def service_ports(service):
    return [{k: p[k] for k in _PORT_KEYS if k in p} for p in (service.get("spec") or {}).get("ports") or []]


def preview_service(active, name, namespace, selector):
    """The preview Service: ClusterIP, the active Service's ports (no node ports), green's selector."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": dict((active.get("metadata") or {}).get("labels") or {}),
                     "annotations": {PREFIX + "preview-of": active["metadata"]["name"]}},
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": service_ports(active)},
    }


def preview_differs(live, wanted):
    if live is None:
        return True
    spec = live.get("spec") or {}
    return (spec.get("selector") or {}) != wanted["spec"]["selector"] or service_ports(live) != wanted["spec"]["ports"]


# ---------------------------------------------------------------------------------------------- annotations

def _json(text, default):
    try:
        value = json.loads(text) if text else default
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def read_state(service):
    """The cutover state recorded on a Service (empty values when it never had one)."""
    ann = ((service or {}).get("metadata") or {}).get("annotations") or {}
    state = ann.get(A_STATE)
    return {
        "state": state if state in RECORDED_STATES else None,
        "active": ann.get(A_ACTIVE),
        "blue": _json(ann.get(A_BLUE), {}),
        "green": _json(ann.get(A_GREEN), {}),
        "window_end": ann.get(A_WINDOW) or None,
        "history": _json(ann.get(A_HISTORY), []),
    }


def state_annotations(recorded):
    """Annotation values (strings) for a state dict as :func:`read_state` returns it."""
    return {
        A_STATE: recorded.get("state") or "",
        A_ACTIVE: recorded.get("active") or "",
        A_BLUE: canonical(recorded.get("blue") or {}),
        A_GREEN: canonical(recorded.get("green") or {}),
        A_WINDOW: recorded.get("window_end") or "",
        A_HISTORY: canonical((recorded.get("history") or [])[-MAX_HISTORY:]),
    }


def iso(moment):
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def window_end(now, seconds):
    return iso(now + timedelta(seconds=seconds))


def window_open(recorded, now):
    end = parse_iso(recorded.get("window_end"))
    return end is not None and now < end


def history_entry(revision_value, action, outcome, started, finished, by, reason=None, switch_s=None):
    entry = {"revision": revision_value, "action": action, "outcome": outcome, "started": iso(started),
             "finished": iso(finished), "by": by}
    if reason:
        entry["reason"] = reason
    if switch_s is not None:
        entry["switch_s"] = round(switch_s, 3)
    return entry


def with_history(recorded, entry, replace_last=None):
    """A copy of ``recorded`` with ``entry`` appended, at most MAX_HISTORY kept.

    The entry replaces the last one when ``replace_last`` is true, or (``replace_last`` None) when the last one is
    the unfinished promotion (outcome ``started`` / ``switching``) of the same revision that ``entry`` ends.
    """
    out = dict(recorded)
    history = list(recorded.get("history") or [])
    if replace_last is None:
        last = history[-1] if history else {}
        replace_last = last.get("action") == "promote" and last.get("outcome") in ("started", "switching") \
            and last.get("revision") == entry.get("revision")
        if replace_last:
            entry = dict(entry, started=last.get("started", entry["started"]))
    if replace_last and history:
        history[-1] = entry
    else:
        history.append(entry)
    out["history"] = history[-MAX_HISTORY:]
    return out


# ---------------------------------------------------------------------------------------------- GPUs

def is_ready(obj):
    """Whether a node's or a pod's ``Ready`` condition is True."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def tolerates(tolerations, taint):
    """Whether a pod with ``tolerations`` may be scheduled on a node with ``taint`` (the scheduler's rule)."""
    if taint.get("effect") not in ("NoSchedule", "NoExecute"):
        return True  # PreferNoSchedule only lowers the score
    for toleration in tolerations or []:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def gpu_fit(template, replicas, nodes, pods, green_pods=(), resource=GPU_RESOURCE):
    """Whether ``replicas`` pods of ``template`` fit the free GPUs; the figures either way.

    Free per node: allocatable minus the requests of its non-terminated pods, on Ready, schedulable nodes whose
    labels match the template's nodeSelector and whose NoSchedule / NoExecute taints the template tolerates (node
    affinity is not evaluated). Green pods that already run hold their GPUs and count as placed. ``placeable``:
    pods that fit, node by node (floor(free / per_pod)).
    """
    per_pod = pod_request({"spec": (template or {}).get("spec") or {}}, resource)
    result = {"resource": resource, "per_pod": per_pod, "replicas": replicas, "needed": replicas * per_pod,
              "free": None, "per_node": {}, "placed": 0, "placeable": None, "fits": True, "reduced": False}
    if not per_pod:
        return result
    selector = ((template or {}).get("spec") or {}).get("nodeSelector") or {}
    tolerations = ((template or {}).get("spec") or {}).get("tolerations") or []
    used = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            used[node] = used.get(node, 0) + pod_request(pod, resource)
    per_node = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        if not is_ready(node) or (node.get("spec") or {}).get("unschedulable"):
            continue
        if selector and not all((meta.get("labels") or {}).get(k) == v for k, v in selector.items()):
            continue
        if not all(tolerates(tolerations, taint) for taint in (node.get("spec") or {}).get("taints") or []):
            continue
        allocatable = parse_quantity(((node.get("status") or {}).get("allocatable") or {}).get(resource))
        if allocatable:
            per_node[meta.get("name")] = max(0, allocatable - used.get(meta.get("name"), 0))
    placed = sum(1 for pod in green_pods if (pod.get("spec") or {}).get("nodeName")
                 and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))
    placed = min(placed, replicas)
    placeable = sum(int(free // per_pod) for free in per_node.values())
    result.update(free=sum(per_node.values()), per_node=dict(sorted(per_node.items())), placed=placed,
                  placeable=placeable, needed=(replicas - placed) * per_pod, fits=placeable >= replicas - placed)
    return result


def gpu_decision(fit, shortfall, what):
    """(replicas to run, warning or None); CutoverError(reason gpu_shortfall) when it does not fit."""
    if fit["fits"]:
        return fit["replicas"], None
    nodes = ", ".join(f"{n} {f}" for n, f in fit["per_node"].items()) or "no Ready schedulable node matches"
    figures = (f"{what} needs {fit['needed']} {fit['resource']} ({fit['replicas'] - fit['placed']} pods x "
               f"{fit['per_pod']}), {fit['free']} free on the matching nodes (per node: {nodes})")
    possible = fit["placed"] + fit["placeable"]
    if shortfall == "reduce" and possible >= 1:
        fit.update(reduced=True, replicas_run=possible)
        return possible, f"{figures}: running a reduced green of {possible} of {fit['replicas']} replicas (gpu_shortfall=reduce)"
    raise CutoverError(f"{figures}. Nothing was changed. Free GPUs (scale down other GPU workloads, add GPU nodes) "
                       "or set gpu_shortfall: reduce to run a smaller green first", reason="gpu_shortfall",
                       gpu=fit)


# ---------------------------------------------------------------------------------------------- planning

def step(name, detail):
    return {"step": name, "detail": detail}


def plan_in_cluster(state, params, now, facts):
    """The steps one in_cluster run needs, from the recorded state and ``facts`` (what the runner read).

    ``facts``: ``desired_rev`` (green's revision for the options; None when not promoting), ``active_rev``,
    ``active_selector_ok`` (the active Service's selector is the active side's), ``pinned`` (the active Service's
    selector pins the active side), ``green`` (the live green Deployment or None), ``green_replicas`` (wanted),
    ``preview_ok``, ``blue_live`` (the recorded blue Deployment exists), ``blue_up`` (blue has its replicas).
    Returns {"steps": [...], "final": the state after the run, "error": None or (reason, message)}.
    """
    want = params.get("state") or "promoted"
    force = bool(params.get("force"))
    recorded = state["state"]
    is_open = window_open(state, now)
    green_active = bool(state.get("green")) and state.get("active") == (state.get("green") or {}).get("revision") \
        and recorded in ("promoted", "completed")
    steps = []
    if want == "promoted":
        if facts["desired_rev"] == facts["active_rev"]:
            if recorded == "preview":
                return {"steps": [step("abort", "green under preview equals the active revision: scale it down")],
                        "final": "aborted", "error": None}
            if not facts["active_selector_ok"]:
                steps.append(step("restore_selector", "the active Service's selector is not the active side's: "
                                                      "set it back"))
            if recorded == "promoted" and green_active and not is_open:
                steps.append(step("complete", f"rollback window ended at {state['window_end']}: scale blue down"))
                return {"steps": steps, "final": "completed", "error": None}
            return {"steps": steps, "final": recorded, "error": None}
        if recorded == "promoted" and green_active and state.get("blue", {}).get("deployment") and facts["blue_up"]:
            steps.append(step("retire_previous_blue", f"a new revision supersedes the open window: scale "
                                                      f"{state['blue']['deployment']} down"))
        if recorded == "preview" and state.get("green", {}).get("revision") not in (None, facts["desired_rev"]):
            steps.append(step("scale_down_superseded_green", f"scale {state['green'].get('deployment')} to 0"))
        if not facts["pinned"]:
            steps.append(step("pin_blue", "pin the active Service's selector to blue's pods"))
        if recorded != "preview" or state.get("green", {}).get("revision") != facts["desired_rev"]:
            steps.append(step("start", f"record green {facts['desired_rev']} (state preview)"))
        green = facts["green"]
        if green is None or (green.get("spec") or {}).get("replicas") != facts["green_replicas"]:
            steps.append(step("apply_green", f"apply Deployment {facts['green_name']} with "
                                             f"{facts['green_replicas']} replicas"))
        if not facts["preview_ok"]:  # before the wait: kube-proxy has programmed it by the time green is ready
            steps.append(step("apply_preview", f"point Service {facts['preview_name']} at green"))
        steps.append(step("wait_green", "wait until green is available"))
        paused_rerun = recorded == "preview" and not steps[:-1] and not params.get("auto_promotion", True)
        if params.get("pre_checks") and not paused_rerun:
            steps.append(step("pre_checks", "run the pre-promotion checks against preview"))
        if not params.get("auto_promotion", True):
            return {"steps": steps, "final": "preview", "error": None}
        steps.append(step("switch", "switch the active Service's selector to green (one patch)"))
        steps.append(step("wait_endpoints", "wait until the active Service's endpoints are green's pods only"))
        if params.get("post_checks"):
            steps.append(step("post_checks", "run the post-promotion checks against active"))
        steps.append(step("record_promoted", "record the promotion's outcome and the switch time"))
        return {"steps": steps, "final": "promoted", "error": None}
    if want == "completed":
        if recorded == "completed":
            return {"steps": [], "final": "completed", "error": None}
        if not (recorded == "promoted" and green_active):
            return {"steps": [], "final": recorded, "error": (
                "not_promoted", f"nothing to complete: the cutover state is {recorded or 'none'} (green is not active)")}
        if is_open and not force:
            return {"steps": [], "final": recorded, "error": (
                "window_open", f"the rollback window is open until {state['window_end']}: blue stays up until then "
                               "(or set force: true to complete now)")}
        return {"steps": [step("complete", "scale blue down")], "final": "completed", "error": None}
    # aborted / rolled_back
    if recorded in ("aborted", "rolled_back"):
        return {"steps": [], "final": recorded, "error": None}
    if not recorded:
        return {"steps": [], "final": None, "error": ("no_green", "nothing to roll back: this Service has no "
                                                                  "cutover recorded (no sophia.ai/bluegreen-state)")}
    if recorded == "preview":
        return {"steps": [step("abort", "scale green down (it never took traffic)")], "final": want, "error": None}
    if not green_active:
        return {"steps": [], "final": recorded, "error": ("no_green", f"state {recorded}: green is not active")}
    if recorded == "completed" or not is_open:
        if not force:
            return {"steps": [], "final": recorded, "error": (
                "window_closed", f"the rollback window ended at {state['window_end']} (state {recorded}): blue may "
                                 "be scaled down; set force: true to scale blue back up and switch to it")}
        if not facts["blue_live"]:
            return {"steps": [], "final": recorded, "error": (
                "no_blue", f"blue's Deployment {state['blue'].get('deployment')} no longer exists "
                           "(blue_scale_down: delete): there is nothing to roll back to")}
    if not facts["blue_up"]:
        steps.append(step("scale_up_blue", f"scale {state['blue'].get('deployment')} back to "
                                           f"{state['blue'].get('replicas')} replicas and wait"))
    steps.append(step("switch_back", "switch the active Service's selector back to blue (one patch)"))
    steps.append(step("wait_endpoints", "wait until the active Service's endpoints are blue's pods only"))
    steps.append(step("scale_down_green", "scale green to 0"))
    return {"steps": steps, "final": want, "error": None}


def plan_swarm(state, params, now, facts):
    """The steps one swarm_to_k3s run needs. ``facts``: ``front`` (``swarm`` / ``k3s`` / ``split`` / ``none``,
    where the front door sends traffic), ``green_replicas`` (the Deployment's spec), ``green_ready``,
    ``swarm_replicas`` (the Swarm service's), ``swarm_wanted`` (recorded replicas of blue)."""
    want = params.get("state") or "promoted"
    force = bool(params.get("force"))
    recorded = state["state"]
    is_open = window_open(state, now)
    k3s_active = state.get("active") == "k3s" and recorded in ("promoted", "completed")
    steps = []
    if want == "promoted":
        if k3s_active:
            if facts["front"] != "k3s":
                steps.append(step("switch", "the front door does not send all traffic to k3s as recorded: switch"))
            if recorded == "promoted" and not is_open:
                steps.append(step("complete", f"rollback window ended at {state['window_end']}: scale the Swarm "
                                              "service to 0"))
                return {"steps": steps, "final": "completed", "error": None}
            return {"steps": steps, "final": recorded, "error": None}
        if recorded != "preview":
            steps.append(step("start", "record the cutover (state preview)"))
        if facts["green_replicas"] == 0:
            steps.append(step("scale_green", f"scale green to {facts['green_wanted']} replicas"))
        steps.append(step("wait_green", "wait until green is available"))
        paused_rerun = recorded == "preview" and not steps[:-1] and not params.get("auto_promotion", True)
        if params.get("pre_checks") and not paused_rerun:
            steps.append(step("pre_checks", "run the pre-promotion checks against each k3s server"))
        if not params.get("auto_promotion", True):
            return {"steps": steps, "final": "preview", "error": None}
        if params.get("volumes"):
            steps.append(step("move_volumes", "front door: hold the service's requests; copy "
                                              f"{', '.join(params['volumes'])} from the Swarm task into green's "
                                              "claims and compare every file's sha256"))
        steps.append(step("switch", "front door: all traffic to k3s (health gate, drain Swarm)"
                                    + ("; release the held requests" if params.get("volumes") else "")))
        if params.get("post_checks"):
            steps.append(step("post_checks", "run the post-promotion checks"))
        steps.append(step("record_promoted", "record the promotion's outcome and the switch time"))
        return {"steps": steps, "final": "promoted", "error": None}
    if want == "completed":
        if recorded == "completed":
            return {"steps": [], "final": "completed", "error": None}
        if not k3s_active:
            return {"steps": [], "final": recorded, "error": (
                "not_promoted", f"nothing to complete: the cutover state is {recorded or 'none'} (k3s is not active)")}
        if is_open and not force:
            return {"steps": [], "final": recorded, "error": (
                "window_open", f"the rollback window is open until {state['window_end']}: the Swarm service stays "
                               "up until then (or set force: true to complete now)")}
        return {"steps": [step("complete", "scale the Swarm service to 0")], "final": "completed", "error": None}
    if recorded in ("aborted", "rolled_back"):
        steps = [] if facts["front"] == "swarm" else [step("switch_back", "the front door does not send all "
                                                                          "traffic to swarm as recorded: switch")]
        return {"steps": steps, "final": recorded, "error": None}
    if not recorded:
        return {"steps": [], "final": None, "error": ("no_green", "nothing to roll back: this service has no "
                                                                  "cutover recorded (no sophia.ai/bluegreen-state)")}
    if recorded == "preview":
        steps = [] if facts["front"] == "swarm" else [step("switch_back", "front door: all traffic to swarm")]
        return {"steps": steps + [step("abort", "scale green back down if this module scaled it up")],
                "final": want, "error": None}
    if recorded == "completed" or not is_open:
        if not force:
            return {"steps": [], "final": recorded, "error": (
                "window_closed", f"the rollback window ended at {state['window_end']} (state {recorded}): the Swarm "
                                 "service may be at 0; set force: true to scale it back up and switch to it")}
    if facts["swarm_replicas"] < (facts["swarm_wanted"] or 1):
        steps.append(step("scale_up_blue", f"scale the Swarm service back to {facts['swarm_wanted']} replicas and wait"))
    if params.get("volumes") and facts["front"] != "swarm":
        steps.append(step("copy_back", "front door: hold the service's requests; copy "
                                       f"{', '.join(params['volumes'])} from green's claims back into the Swarm "
                                       "task's volumes and compare every file's sha256"))
    steps.append(step("switch_back", "front door: all traffic to swarm (health gate, drain k3s)"))
    steps.append(step("scale_down_green", "scale green back down if this module scaled it up"))
    return {"steps": steps, "final": want, "error": None}


# ---------------------------------------------------------------------------------------------- endpoints

def endpoints_state(slices, pod_names):
    """(done, detail): done when every endpoint of the Service is one of ``pod_names`` and one is ready."""
    total, ready, foreign = 0, 0, []
    for item in slices:
        for endpoint in item.get("endpoints") or []:
            total += 1
            name = (endpoint.get("targetRef") or {}).get("name")
            if name not in pod_names:
                foreign.append(name or ",".join(endpoint.get("addresses") or []))
            elif (endpoint.get("conditions") or {}).get("ready", True):
                ready += 1
    detail = f"{total} endpoints, {ready} ready on the new side, {len(foreign)} other"
    return not foreign and ready > 0, detail


def front_of(servers):
    """Where the front door sends the service's traffic: swarm, k3s, split or none."""
    sides = {s.get("side") for s in servers if s.get("effective_weight")}
    if sides == {"swarm"}:
        return "swarm"
    if sides == {"k3s"}:
        return "k3s"
    return "none" if not sides else "split"
