# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration report: the phase reports, the front door's live state and the cluster's GPU allocation, as one
set of figures (the migration plan's success metrics) in JSON, Markdown and the Prometheus text format.

Pure: :func:`build` takes what the phases wrote (``phase1.json``, ``phase2.json``, ``phase3.json``: their own
traffic recordings through the front door), what the front door says now (every service's servers, their weights
and health) and ``gpu_node_check``'s cluster figures, and returns one JSON-ready dict. Every figure comes from a
measurement: availability and failed requests from the phases' recordings (requests sent at a fixed rate to every
service through the front door, each one answered or not), deployment time from the phases' own clocks, where a
service runs and serves from the front door's health checks and weights, GPU allocation from the pods' requests
over the nodes' allocatable GPUs.
"""

from __future__ import annotations

import math

from ansible_collections.sophia_ai.platform.plugins.module_utils._haproxy import (
    list_backends, parse_servers_state, parse_stat, servers_from, side_of,
)
from ansible_collections.sophia_ai.platform.plugins.module_utils._phase_report import _short

PHASES = ("phase1", "phase2", "phase3")
# The migration plan's targets (the report shows each figure beside its target).
TARGETS = {"availability": 0.999, "deploy_seconds": 600.0, "gpu_allocation_ratio": 0.85}


def front_door_from(servers_state, stat):
    """``{service: [{"name", "side", "weight", "status"}]}`` from the front door's replies to ``show servers state`` and
    ``show stat`` (every backend is a service; a server is UP when it passes its health check)."""
    state_rows = parse_servers_state(servers_state)
    stat_rows = parse_stat(stat)
    return {backend: [{"name": s["name"], "side": s["side"], "weight": s["effective_weight"],
                       "status": "UP" if s["healthy"] else (s["status"] or "DOWN")}
                      for s in servers_from(backend, state_rows, stat_rows)]
            for backend in list_backends(stat_rows)}


def changed_copy_path(path):
    """Where a phase keeps the report of its last run that changed something, beside ``phaseN.json``
    (``phaseN.changed.json``; the phase playbooks write it when their run's ``run_changed`` is true)."""
    return (path[:-len(".json")] if path.endswith(".json") else path) + ".changed.json"


def pick_run(latest, last_change):
    """The report a phase's migration figures come from.

    ``latest``: the phase's report of its latest run; ``last_change``: its last run that changed something (or None).
    A later run that changed nothing (``run_changed`` false: the rerun that makes sure nothing drifted) measured a
    fleet already in place, not the migration; the figures are then the run that changed something, with the latest
    run beside them (``latest_run``). Reports without ``run_changed`` (older phases) are taken as they are.
    """
    if not latest or str(latest.get("run_changed")).lower() != "false" or not last_change:
        return latest
    overall = _traffic_of("phase1" if str(latest.get("phase")) == "1" else "later", latest)[0]
    picked = dict(last_change)
    picked["latest_run"] = {"started": latest.get("started"), "finished": latest.get("finished"),
                            "seconds": latest.get("seconds"), "run_changed": False,
                            "requests": overall["requests"] if overall else None,
                            "failed": overall["failed"] if overall else None}
    return picked


def _traffic_of(phase, report):
    """``(overall, {service: figures})`` of one phase report's recording, in one shape for every phase: requests,
    failed, availability, downtime_s (None where the report has no recording)."""
    if not report:
        return None, {}
    traffic = report.get("traffic")
    if not traffic:
        return None, {}
    if phase == "phase1":  # the phase 1 report keeps its own figures per service (full Swarm names)
        services = {}
        for svc in report.get("services") or []:
            seen = svc.get("traffic")
            if seen:
                services[_short(svc["name"], report.get("stack"))] = {
                    "requests": seen.get("requests") or 0, "failed": seen.get("failed") or 0,
                    "downtime_s": seen.get("downtime_s") or 0.0}
        overall = {"requests": traffic.get("requests") or 0, "failed": traffic.get("failed") or 0,
                   "downtime_s": traffic.get("downtime_s") or 0.0, "p99_ms": traffic.get("p99_ms")}
        return overall, services
    overall = traffic.get("overall") or {}
    services = {name: {"requests": seen.get("requests") or 0, "failed": seen.get("failed") or 0,
                       "downtime_s": seen.get("downtime_s") or 0.0}
                for name, seen in (traffic.get("services") or {}).items()}
    return ({"requests": overall.get("requests") or 0, "failed": overall.get("failed") or 0,
             "downtime_s": overall.get("downtime_s") or 0.0,
             "p99_ms": (overall.get("latency_ms") or {}).get("p99")}, services)


def _ratio(num, den, digits=6):
    return round(num / float(den), digits) if den else None


def _location(servers):
    """Where a service runs (the sides with a server that passes its health check), where its traffic goes (the
    sides with weight), and its health (every side with weight is up: healthy; some: degraded; none: down)."""
    up, weighted, weighted_up = set(), set(), set()
    for server in servers or []:
        side = server.get("side") or side_of(server.get("name") or "")
        if not side:
            continue
        is_up = (server.get("status") or "").upper().startswith("UP")
        if is_up:
            up.add(side)
        if (server.get("weight") or 0) > 0:
            weighted.add(side)
            if is_up:
                weighted_up.add(side)

    def one(sides):
        return "both" if len(sides) == 2 else next(iter(sides)) if sides else "none"

    health = ("healthy" if weighted and weighted_up == weighted else "degraded" if weighted_up else "down")
    return one(up), one(weighted), health


def build(phases, front_door=None, gpu=None, meta=None):
    """Return the migration report.

    ``phases``: ``{"phase1": report or None, "phase2": ..., "phase3": ...}`` (each phase's JSON report).
    ``front_door``: ``{service: [{"name": "swarm"|"k3s"..., "weight": int, "status": "UP"|"DOWN"|...}]}``.
    ``gpu``: gpu_node_check's cluster figures (``nodes``, ``totals``) or None.
    """
    phases = {name: (phases or {}).get(name) for name in PHASES}
    front_door = front_door or {}
    ran = [name for name in PHASES if phases[name] and not phases[name].get("check_mode")]
    figures, per_service = {}, {}
    for name in PHASES:
        report = phases[name] if name in ran else None
        overall, services = _traffic_of(name, report)
        seconds = float(report["seconds"]) if report and report.get("seconds") is not None else None
        figures[name] = {
            "ran": report is not None,
            "started": (report or {}).get("started"),
            "finished": (report or {}).get("finished"),
            "seconds": seconds,
            "requests": overall["requests"] if overall else None,
            "failed": overall["failed"] if overall else None,
            "availability": _ratio(overall["requests"] - overall["failed"], overall["requests"]) if overall else None,
            "downtime_s": overall["downtime_s"] if overall else None,
            "p99_ms": overall["p99_ms"] if overall else None,
        }
        if report and report.get("latest_run"):
            figures[name]["latest_run"] = report["latest_run"]
        for service, seen in services.items():
            per_service.setdefault(service, {})[name] = seen

    moved = {}
    for name, key in (("phase2", "moved_to_k3s"), ("phase3", "on_k3s")):
        if name in ran:
            for service in phases[name].get(key) or []:
                moved.setdefault(service, name)

    names = sorted(set(front_door) | set(per_service) | set(moved))
    services = []
    for service in names:
        runs_on, serving, health = _location(front_door.get(service))
        seen = per_service.get(service, {})
        requests = sum(s["requests"] for s in seen.values())
        failed = sum(s["failed"] for s in seen.values())
        services.append({
            "name": service,
            "runs_on": runs_on if service in front_door else "unknown",
            "serving": serving if service in front_door else "unknown",
            "health": health if service in front_door else "unknown",
            "moved_in": moved.get(service),
            "requests": requests,
            "failed_requests": failed,
            "availability": _ratio(requests - failed, requests),
            "failed_by_phase": {p: seen[p]["failed"] for p in PHASES if p in seen},
            "downtime_s_by_phase": {p: round(seen[p]["downtime_s"], 3) for p in PHASES if p in seen},
        })

    requests = sum(f["requests"] or 0 for f in figures.values())
    failed = sum(f["failed"] or 0 for f in figures.values())
    deploy = {name: figures[name]["seconds"] for name in PHASES}
    deploy["total"] = round(sum(s for s in deploy.values() if s is not None), 1) if ran else None

    gpu_nodes, ratio = [], None
    if gpu:
        for row in gpu.get("nodes") or []:
            gpu_nodes.append({"name": row.get("name"), "ready": row.get("ready"),
                              "allocatable": row.get("allocatable"), "requested": row.get("requested"),
                              "allocation_ratio": row.get("allocation_ratio"), "gpu_pods": row.get("gpu_pods")})
        ratio = (gpu.get("totals") or {}).get("allocation_ratio")

    serving_k3s = [s["name"] for s in services if s["serving"] == "k3s"]
    serving_swarm = [s["name"] for s in services if s["serving"] == "swarm"]
    if not ran:
        state = "not_started"
    elif moved and not serving_k3s and front_door:
        state = "rolled_back"
    elif front_door and len(serving_k3s) == len(services) and services:
        state = "migrated"
    else:
        state = "in_progress"

    return {
        **(meta or {}),
        "state": state,
        "availability": _ratio(requests - failed, requests),
        "requests": requests,
        "failed_requests": failed,
        "deploy_seconds": deploy,
        "gpu_allocation_ratio": ratio,
        "gpu_nodes": gpu_nodes,
        "phases": figures,
        "targets": dict(TARGETS),
        "summary": {
            "services": len(services),
            "serving_from_k3s": len(serving_k3s),
            "serving_from_swarm": len(serving_swarm),
            "running_on_both": sum(1 for s in services if s["runs_on"] == "both"),
            "healthy": sum(1 for s in services if s["health"] == "healthy"),
            "not_healthy": sorted(s["name"] for s in services if s["health"] not in ("healthy",)),
        },
        "services": services,
    }


def _pct(value):
    return "-" if value is None else "%.3f%%" % (value * 100.0)


def _num(value, fmt="%.1f"):
    return "-" if value is None else fmt % value


STATE_TEXT = {
    "migrated": "every service serves from K3s through the front door; Swarm is kept for the rollback window",
    "rolled_back": "every service serves from Swarm again (rolled back); the K3s side is kept, drained",
    "in_progress": "the migration is under way: some services serve from Swarm, some from K3s",
    "not_started": "no phase has run yet",
}


def markdown(report):
    """The report for people."""
    summary = report["summary"]
    lines = ["# Migration report", ""]
    if report.get("generated"):
        lines += ["Generated %s." % report["generated"], ""]
    lines += [
        "**%s**: %s." % (report["state"].replace("_", " "), STATE_TEXT.get(report["state"], report["state"])),
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        "| availability (successful probe requests / all, every phase) | %s | %s |" % (
            _pct(report["availability"]), _pct(report["targets"]["availability"])),
        "| failed requests | %s of %s | - |" % (report["failed_requests"], report["requests"]),
        "| deployment time, all phases | %s s | %s s |" % (
            _num(report["deploy_seconds"]["total"]), _num(report["targets"]["deploy_seconds"], "%.0f")),
        "| GPU allocation (requested / allocatable) | %s | %s |" % (
            _pct(report["gpu_allocation_ratio"]), _pct(report["targets"]["gpu_allocation_ratio"])),
        "",
        "Services: %d; serving from K3s %d, from Swarm %d; running on both %d; healthy %d%s." % (
            summary["services"], summary["serving_from_k3s"], summary["serving_from_swarm"],
            summary["running_on_both"], summary["healthy"],
            ("; not healthy: " + ", ".join(summary["not_healthy"])) if summary["not_healthy"] else ""),
        "",
        "## Phases",
        "",
        "| phase | ran | seconds | requests | failed | availability | downtime s | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in PHASES:
        f = report["phases"][name]
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, "yes" if f["ran"] else "no", _num(f["seconds"]), _num(f["requests"], "%d"),
            _num(f["failed"], "%d"), _pct(f["availability"]), _num(f["downtime_s"], "%.2f"), _num(f["p99_ms"])))
    for name in PHASES:
        rerun = report["phases"][name].get("latest_run")
        if rerun:
            lines.append("")
            lines.append("%s's figures are from its run that changed something (%s); its latest run (%s, %s s) changed "
                         "nothing: %s requests, %s failed." % (
                             name, report["phases"][name]["started"], rerun["started"],
                             _num(None if rerun["seconds"] is None else float(rerun["seconds"])),
                             _num(rerun["requests"], "%d"), _num(rerun["failed"], "%d")))
    if report["gpu_nodes"]:
        lines += ["", "## GPU allocation per node", "", "| node | ready | allocatable | requested | ratio |",
                  "|---|---|---:|---:|---:|"]
        for node in report["gpu_nodes"]:
            lines.append("| %s | %s | %s | %s | %s |" % (
                node["name"], "yes" if node["ready"] else "no", node["allocatable"], node["requested"],
                _pct(node["allocation_ratio"])))
    lines += ["", "## Services", "",
              "| service | runs on | serving | health | moved in | requests | failed | availability |"
              " downtime s (by phase) |", "|---|---|---|---|---|---:|---:|---:|---|"]
    for svc in report["services"]:
        downtime = ", ".join("%s %.2f" % (p, s) for p, s in svc["downtime_s_by_phase"].items() if s) or "0"
        lines.append("| %s | %s | %s | %s | %s | %d | %d | %s | %s |" % (
            svc["name"], svc["runs_on"], svc["serving"], svc["health"], svc["moved_in"] or "-", svc["requests"],
            svc["failed_requests"], _pct(svc["availability"]), downtime))
    return "\n".join(lines) + "\n"


def _label(value):
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _value(value):
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def prometheus(report, prefix="sophia_migration"):
    """The same figures in the Prometheus text exposition format (for node_exporter's textfile collector or a
    Pushgateway): one HELP and TYPE line per metric, then its samples."""
    out = []

    def metric(name, kind, text, samples):
        out.append("# HELP %s_%s %s" % (prefix, name, text))
        out.append("# TYPE %s_%s %s" % (prefix, name, kind))
        for labels, value in samples:
            label_text = ",".join('%s="%s"' % (k, _label(v)) for k, v in labels)
            out.append("%s_%s%s %s" % (prefix, name, "{%s}" % label_text if label_text else "", _value(value)))

    metric("availability_ratio", "gauge", "Successful probe requests over all probe requests, every phase.",
           [((), report["availability"])])
    metric("requests", "gauge", "Probe requests sent through the front door during the migration.",
           [((), report["requests"])])
    metric("failed_requests", "gauge", "Probe requests that failed during the migration.",
           [((), report["failed_requests"])])
    metric("deploy_seconds", "gauge", "Wall time of each phase (phase=\"total\": all of them).",
           [((("phase", name),), report["deploy_seconds"][name]) for name in PHASES + ("total",)])
    metric("phase_failed_requests", "gauge", "Probe requests that failed during a phase.",
           [((("phase", name),), report["phases"][name]["failed"]) for name in PHASES if report["phases"][name]["ran"]])
    metric("phase_downtime_seconds", "gauge", "Seconds in a phase when some service's requests failed.",
           [((("phase", name),), report["phases"][name]["downtime_s"]) for name in PHASES
            if report["phases"][name]["ran"]])
    metric("gpu_allocation_ratio", "gauge", "GPUs requested by pods over allocatable GPUs, all GPU nodes.",
           [((), report["gpu_allocation_ratio"])])
    metric("node_gpu_allocation_ratio", "gauge", "GPUs requested by pods over allocatable GPUs, per node.",
           [((("node", n["name"]),), n["allocation_ratio"]) for n in report["gpu_nodes"]])
    metric("service_info", "gauge", "Where a service runs and serves from, and its health (value 1).",
           [((("service", s["name"]), ("runs_on", s["runs_on"]), ("serving", s["serving"]), ("health", s["health"])),
             1) for s in report["services"]])
    metric("service_failed_requests", "gauge", "Probe requests to a service that failed, every phase.",
           [((("service", s["name"]),), s["failed_requests"]) for s in report["services"]])
    metric("service_downtime_seconds", "gauge", "A service's measured downtime in a phase.",
           [((("service", s["name"]), ("phase", p)), d) for s in report["services"]
            for p, d in s["downtime_s_by_phase"].items()])
    metric("state_info", "gauge", "The migration's state (value 1).", [((("state", report["state"]),), 1)])
    return "\n".join(out) + "\n"
