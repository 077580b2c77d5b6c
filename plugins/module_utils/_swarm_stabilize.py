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
        planned.append({
            "name": service["name"],
            "class": klass,
            "skip": bool(entry.get("skip", False)),
            "settings": settings,
            "placement_constraints": gpu_constraints(gpu_labels) if (pin and klass == "gpu") else [],
            "enforce": list(enforce or ()) + list(entry.get("enforce") or ()),
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
