# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What role ``swarm_stabilize`` does to each service: pure planning over ``swarm_audit``'s facts.

:func:`plan` picks the services (one stack or all), gives each its class (``gpu`` when it reserves a GPU generic
resource, else ``critical``/``non_critical`` from its criticality label; an entry's ``class`` wins), merges the
settings (the default health check, then the class defaults, then the service's own entry), adds the GPU
placement constraint to GPU services, and lists the GPU nodes and any name in the variables that the Swarm does
not have. :func:`summarize` turns the per-service outcomes into the role's result.
"""

from __future__ import annotations

import copy

CLASSES = ("gpu", "critical", "non_critical")
SETTING_KEYS = ("healthcheck", "limits", "reservations", "restart_policy", "update_config", "rollback_config")
ENTRY_KEYS = SETTING_KEYS + ("class", "skip", "enforce")
FAILED_STATES = ("rolled_back", "paused", "timeout", "error")


def _merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def short_name(service):
    stack = service.get("stack")
    name = service["name"]
    if stack and name.startswith(stack + "_"):
        return name[len(stack) + 1:]
    return name


def service_class(service, entry):
    if entry.get("class"):
        return entry["class"]
    if service.get("gpu"):
        return "gpu"
    return "critical" if (service.get("criticality") or "critical") == "critical" else "non_critical"


def gpu_constraints(labels):
    return [f"node.labels.{key}=={value}" for key, value in sorted((labels or {}).items())]


def plan(services, entries=None, class_defaults=None, healthcheck=None, stack="", gpu_labels=None, pin=True,
         enforce=(), nodes=(), gpu_kinds=(), gpu_nodes=()):
    """Return {services: [...], unknown: [...], bad_entries: [...], gpu_nodes: [...], unknown_gpu_nodes: [...]}."""
    entries = entries or {}
    class_defaults = class_defaults or {}
    known = set()
    for service in services:
        known.add(service["name"])
        known.add(short_name(service))
    bad_entries = []
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            bad_entries.append(f"swarm_stabilize_services.{name}: expected a dict of settings")
            continue
        for key in entry:
            if key not in ENTRY_KEYS:
                bad_entries.append(f"swarm_stabilize_services.{name}.{key}: unknown key "
                                   f"(known: {', '.join(ENTRY_KEYS)})")
        if entry.get("class") and entry["class"] not in CLASSES:
            bad_entries.append(f"swarm_stabilize_services.{name}.class: {entry['class']!r} is not one of "
                               f"{', '.join(CLASSES)}")
    room = gpu_room(services, nodes, gpu_kinds)
    planned = []
    for service in services:
        if stack and service.get("stack") != stack:
            continue
        entry = entries.get(service["name"], entries.get(short_name(service))) or {}
        if not isinstance(entry, dict):
            entry = {}
        klass = service_class(service, entry)
        settings = _merge({"healthcheck": healthcheck} if healthcheck else {}, class_defaults.get(klass) or {})
        settings = _merge(settings, {k: v for k, v in entry.items() if k in SETTING_KEYS})
        notes, extra_enforce = [], []
        if klass == "gpu":
            notes, extra_enforce = _fit_start_first(settings, service, room, entry)
        planned.append({
            "name": service["name"],
            "class": klass,
            "skip": bool(entry.get("skip", False)),
            "settings": settings,
            "placement_constraints": gpu_constraints(gpu_labels) if (pin and klass == "gpu") else [],
            "enforce": list(enforce or ()) + list(entry.get("enforce") or ()) + extra_enforce,
            "notes": notes,
        })
    hostnames = {node.get("hostname") for node in nodes}
    found = []
    for node in nodes:
        resources = node.get("generic_resources") or {}
        if (node.get("hostname") in gpu_nodes) if gpu_nodes else any(kind in resources for kind in gpu_kinds):
            found.append({"id": node["id"], "hostname": node.get("hostname")})
    return {
        "services": planned,
        "unknown": sorted(name for name in entries if name not in known),
        "bad_entries": bad_entries,
        "gpu_nodes": found,
        "unknown_gpu_nodes": sorted(name for name in gpu_nodes if name not in hostnames),
    }


def gpu_room(services, nodes, gpu_kinds):
    """{kind: GPUs the largest GPU node has beyond every GPU task of the Swarm} (negative: over-reserved).

    A deliberately simple bound: it assumes every GPU task could sit on that one node.
    """
    room = {}
    for kind in gpu_kinds:
        largest = max(((node.get("generic_resources") or {}).get(kind, 0) for node in nodes), default=0)
        if not largest:
            continue
        used = 0
        for service in services:
            per_task = ((service.get("gpu") or {}).get("kinds") or {}).get(kind, 0)
            used += per_task * (service.get("replicas") or service.get("replicas_desired") or 1)
        room[kind] = largest - used
    return room


def _fit_start_first(settings, service, room, entry):
    """(notes, enforce): a GPU service's ``order: start-first``, set even over the engine's default stop-first.

    start-first keeps the GPU node's network attachment while the new task starts, which spares the task from
    swarmkit's constraint enforcer (see _swarm_service.ENFORCER_REJECTION) and a single-replica GPU service from
    any gap; but the new task needs its GPUs while the old one still holds its own, so where no GPU node has room
    for them the order stays stop-first, as it does for a service with a host-mode published port (the new task
    could not bind it beside the old one). An order the service's own entry names is left alone.
    """
    notes, enforce = [], []
    kinds = ((service.get("gpu") or {}).get("kinds") or {})
    host_ports = sorted({f"{p['published']}/{p['protocol']}" for p in service.get("ports") or ()
                         if p.get("mode") == "host" and p.get("published")})
    for section in ("update_config", "rollback_config"):
        config = settings.get(section) or {}
        if config.get("order") != "start-first" or (entry.get(section) or {}).get("order"):
            continue
        short = [f"{kind} (needs {count}, {max(room.get(kind, 0), 0)} free)" for kind, count in sorted(kinds.items())
                 if room.get(kind, 0) < count]
        if short:
            config["order"] = "stop-first"
            notes.append(f"{section}.order: stop-first, as no GPU node has room for a second task's "
                         f"{', '.join(short)}")
        elif host_ports:
            # Two tasks cannot hold one host-mode port on the one GPU node they both must run on.
            config["order"] = "stop-first"
            notes.append(f"{section}.order: stop-first, as the service publishes {', '.join(host_ports)} in host "
                         "mode (a second task on the same node cannot bind it)")
        else:
            enforce.append(f"{section}.order")
    return notes, enforce


def summarize(outcomes):
    """Per-service outcomes ({service, skipped, changed, changes, state, detail}) -> the role's result."""
    result = {"changed": [], "unchanged": [], "failed": [], "skipped": [], "planned": {}}
    for outcome in outcomes:
        name = outcome["service"]
        if outcome.get("skipped"):
            result["skipped"].append(name)
        elif outcome.get("state") in FAILED_STATES:
            result["failed"].append({"service": name, "state": outcome["state"], "detail": outcome.get("detail")})
        elif outcome.get("changed"):
            result["changed"].append(name)
            result["planned"][name] = outcome.get("changes") or []
        else:
            result["unchanged"].append(name)
    return result
