# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU capacity and allocation of a Kubernetes cluster: the cluster mode of ``gpu_node_check``.

:func:`summarize` is pure: from lists of nodes, pods and DaemonSets (plain dicts as the API returns them) it
computes, per GPU node, the GPU resource's capacity, allocatable and the GPUs that pods request, the GPU
Feature Discovery labels, Ready and taints; the device plugin DaemonSets' desired / ready pods; and totals with
the allocation ratio (requested / allocatable). :func:`check_cluster` turns that into failed checks.
:func:`run_cluster_check` reads the API with one paginated list per kind through a ``_k8s_client.K8sClient``
passed in, never one call per node.

A pod's GPU request follows the scheduler's effective-request rule: the larger of (the app containers' sum
plus every restartable init container, i.e. sidecar) and (each ordinary init container's request plus the
sidecars started before it), plus the pod overhead. Pods that ended (Succeeded, Failed) hold nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

GFD_PREFIX = "nvidia.com/"
_SUFFIXES = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
             "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1, "k": 10 ** 3, "M": 10 ** 6,
             "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
TERMINATED = ("Succeeded", "Failed")
ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
MAX_LISTED = 20


def parse_quantity(value):
    """A Kubernetes quantity ('8', '500m', '1Ki', 2) as a number (int when whole); None/'' -> 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)):
        return value
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise InputError(f"{value!r} is not a Kubernetes quantity", reason="bad_quantity")
    try:
        number = Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2) or ""])
    except InvalidOperation:
        raise InputError(f"{value!r} is not a Kubernetes quantity", reason="bad_quantity") from None
    return int(number) if number == number.to_integral_value() else float(number)


def _container_request(container, resource):
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    if resource in requests:
        return parse_quantity(requests[resource])
    # extended resources: a request left out defaults to the limit
    return parse_quantity((resources.get("limits") or {}).get(resource))


def pod_request(pod, resource):
    """The effective request of one pod for ``resource`` (the scheduler's rule, sidecars included)."""
    spec = pod.get("spec") or {}
    app = sum(_container_request(c, resource) for c in spec.get("containers") or [])
    sidecars = 0
    init_peak = 0
    for container in spec.get("initContainers") or []:
        request = _container_request(container, resource)
        if container.get("restartPolicy") == "Always":
            sidecars += request
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + request)
    return max(app + sidecars, init_peak) + parse_quantity((spec.get("overhead") or {}).get(resource))


def _ready(node):
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", condition.get("reason"), condition.get("message")
    return False, "NoReadyCondition", "the node has no Ready condition"


def _ratio(requested, allocatable):
    return round(requested / allocatable, 4) if allocatable else None


def summarize(nodes, pods, daemonsets, resource="nvidia.com/gpu"):
    """Per-node and total GPU figures, device plugin status; every input is a list of plain dicts."""
    by_node = {}
    pending_requested = 0
    pending_pods = 0
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in TERMINATED:
            continue
        request = pod_request(pod, resource)
        if not request:
            continue
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            entry = by_node.setdefault(node_name, [0, 0])
            entry[0] += request
            entry[1] += 1
        else:
            pending_requested += request
            pending_pods += 1
    rows = []
    for node in nodes:
        meta = node.get("metadata") or {}
        status = node.get("status") or {}
        labels = meta.get("labels") or {}
        ready, reason, message = _ready(node)
        capacity = parse_quantity((status.get("capacity") or {}).get(resource))
        allocatable = parse_quantity((status.get("allocatable") or {}).get(resource))
        requested, gpu_pods = by_node.get(meta.get("name"), (0, 0))
        rows.append({
            "name": meta.get("name"),
            "ready": ready,
            "ready_reason": None if ready else reason,
            "ready_message": None if ready else message,
            "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
            "taints": [{key: taint.get(key) for key in ("key", "value", "effect")}
                       for taint in (node.get("spec") or {}).get("taints") or []],
            "capacity": capacity,
            "allocatable": allocatable,
            "requested": requested,
            "free": allocatable - requested,
            "allocation_ratio": _ratio(requested, allocatable),
            "gpu_pods": gpu_pods,
            "product": labels.get(GFD_PREFIX + "gpu.product"),
            "gfd_labels": {key: value for key, value in labels.items() if key.startswith(GFD_PREFIX)},
        })
    rows.sort(key=lambda row: row["name"] or "")
    plugin_sets = []
    for daemonset in daemonsets:
        meta = daemonset.get("metadata") or {}
        status = daemonset.get("status") or {}
        desired = status.get("desiredNumberScheduled") or 0
        plugin_sets.append({
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "desired": desired,
            "current": status.get("currentNumberScheduled") or 0,
            "ready": status.get("numberReady") or 0,
            "available": status.get("numberAvailable") or 0,
            "updated": status.get("updatedNumberScheduled") or 0,
        })
    allocatable = sum(row["allocatable"] for row in rows)
    requested = sum(row["requested"] for row in rows)
    return {
        "resource": resource,
        "nodes": rows,
        "totals": {
            "gpu_nodes": len(rows),
            "ready_nodes": sum(1 for row in rows if row["ready"]),
            "nodes_advertising_gpus": sum(1 for row in rows if row["allocatable"] > 0),
            "capacity": sum(row["capacity"] for row in rows),
            "allocatable": allocatable,
            "requested": requested,
            "free": allocatable - requested,
            "allocation_ratio": _ratio(requested, allocatable),
            "gpu_pods": sum(row["gpu_pods"] for row in rows),
            "pending_requested": pending_requested,
            "pending_pods": pending_pods,
        },
        "device_plugin": {
            "found": bool(plugin_sets),
            "daemonsets": plugin_sets,
            "desired": sum(ds["desired"] for ds in plugin_sets),
            "ready": sum(ds["ready"] for ds in plugin_sets),
        },
    }


def _failure(node, check, seen, wanted, fix):
    where = f"node {node}" if node else "cluster"
    seen, wanted = str(seen), str(wanted)
    return {"node": node, "check": check, "seen": seen, "wanted": wanted, "fix": fix,
            "msg": f"{where}: check {check} failed: seen {seen}, wanted {wanted}. Fix: {fix}"}


def check_cluster(summary, checks):
    """The failed checks of a :func:`summarize` result; ``checks`` holds the module's cluster options."""
    failures = []
    totals = summary["totals"]
    resource = summary["resource"]
    selector = checks.get("gpu_node_selector") or "(all nodes)"
    minimum = checks.get("min_gpu_nodes")
    if minimum is not None and totals["gpu_nodes"] < minimum:
        failures.append(_failure(None, "min_gpu_nodes", f"{totals['gpu_nodes']} nodes match {selector}",
                                 f">= {minimum}", f"label the GPU nodes (kubectl label node NAME {selector}) or "
                                 "add GPU nodes; K3s agents take the label from --node-label"))
    minimum = checks.get("min_total_gpus")
    if minimum is not None and totals["allocatable"] < minimum:
        failures.append(_failure(None, "min_total_gpus", f"{totals['allocatable']} allocatable {resource}",
                                 f">= {minimum}", "add GPU nodes or make the device plugin advertise their GPUs"))
    for row in summary["nodes"]:
        if checks.get("require_ready", True) and not row["ready"]:
            failures.append(_failure(row["name"], "require_ready",
                                     f"Ready={row['ready_reason'] or 'False'}: {row['ready_message'] or ''}".rstrip(": "),
                                     "Ready=True", f"check the node's kubelet / K3s agent (journalctl -u k3s-agent) "
                                     f"and kubectl describe node {row['name']}"))
        if checks.get("require_gpu_resource", True) and row["allocatable"] <= 0:
            failures.append(_failure(row["name"], "require_gpu_resource",
                                     f"{resource} allocatable {row['allocatable']} (capacity {row['capacity']})",
                                     f"{resource} allocatable >= 1",
                                     "deploy the NVIDIA device plugin (role sophia_ai.platform.nvidia_plugin) and "
                                     f"check its pod on {row['name']}; the host needs the driver and the container "
                                     "toolkit (gpu_node_check mode=host)"))
    if checks.get("require_device_plugin"):
        plugin = summary["device_plugin"]
        where = f"{checks.get('device_plugin_namespace')}/{checks.get('device_plugin_selector')}"
        if not plugin["found"]:
            failures.append(_failure(None, "require_device_plugin", f"no DaemonSet matches {where}",
                                     "a device plugin DaemonSet with every pod ready",
                                     "deploy it (role sophia_ai.platform.nvidia_plugin) or fix device_plugin_namespace "
                                     "/ device_plugin_selector"))
        for ds in plugin["daemonsets"]:
            if ds["desired"] == 0 or ds["ready"] < ds["desired"]:
                failures.append(_failure(None, "require_device_plugin",
                                         f"DaemonSet {ds['namespace']}/{ds['name']}: {ds['ready']} of "
                                         f"{ds['desired']} pods ready",
                                         "every desired pod ready (desired >= 1)",
                                         f"kubectl -n {ds['namespace']} describe daemonset {ds['name']} and the logs "
                                         "of its pods; desired 0 means its node selector or tolerations match no "
                                         "GPU node"))
    return failures


def summary_line(summary, failures):
    totals = summary["totals"]
    ratio = totals["allocation_ratio"]
    line = (f"{totals['gpu_nodes']} GPU nodes ({totals['ready_nodes']} Ready), {totals['allocatable']} of "
            f"{totals['capacity']} {summary['resource']} allocatable, {totals['requested']} requested "
            f"(allocation {'n/a' if ratio is None else f'{ratio:.1%}'}), device plugin "
            f"{summary['device_plugin']['ready']}/{summary['device_plugin']['desired']} ready")
    if failures:
        return f"{line}: {len(failures)} failed check{'s' if len(failures) != 1 else ''}"
    return f"{line}: checks passed"


def failure_message(summary, failures):
    shown = "; ".join(failure["msg"] for failure in failures[:MAX_LISTED])
    more = f"; and {len(failures) - MAX_LISTED} more (see failed_checks)" if len(failures) > MAX_LISTED else ""
    return f"{summary}: {shown}{more}"


def run_cluster_check(params, client):
    """Cluster mode of gpu_node_check: three paginated lists (nodes, pods, DaemonSets), then pure work."""
    limit = params.get("api_page_size") or 500
    resource = params.get("gpu_resource") or "nvidia.com/gpu"
    nodes = client.list_all("v1", "nodes", label_selector=params.get("gpu_node_selector") or None, limit=limit)
    pods = client.list_all("v1", "pods", field_selector=ACTIVE_PODS, limit=limit)
    daemonsets = client.list_all("apps/v1", "daemonsets", namespace=params.get("device_plugin_namespace") or None,
                                 label_selector=params.get("device_plugin_selector") or None, limit=limit)
    summary = summarize(nodes, pods, daemonsets, resource=resource)
    summary["device_plugin"].update(namespace=params.get("device_plugin_namespace"),
                                    selector=params.get("device_plugin_selector"))
    failures = check_cluster(summary, params)
    line = summary_line(summary, failures)
    return {
        "changed": False,
        "mode": "cluster",
        "nodes": summary["nodes"],
        "totals": summary["totals"],
        "device_plugin": summary["device_plugin"],
        "failed_checks": failures,
        "summary": line,
        "msg": failure_message(line, failures) if failures else line,
        "api_calls": client.api_calls,
    }
