# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The phase 1 report: the Swarm before and after swarm_stabilize, and the traffic measured meanwhile.

Pure: takes swarm_audit's results (before, after), swarm_stabilize's per-service outcomes and the traffic
recorder's summary, and returns one JSON-ready dict; :func:`markdown` renders it for people.
"""

from __future__ import annotations

# The checks phase 1 exists to clear (a service with none of these findings is "stabilised").
STABILISED_CHECKS = ("no_healthcheck", "no_limits", "no_restart_policy", "no_rollback_on_failure", "gpu_unpinned")


def _by_service(audit):
    out = {}
    for finding in (audit or {}).get("findings") or []:
        if finding.get("service"):
            out.setdefault(finding["service"], []).append(finding["check"])
    return {name: sorted(set(checks)) for name, checks in out.items()}


def _counts(audit):
    counts = {}
    for finding in (audit or {}).get("findings") or []:
        counts[finding["check"]] = counts.get(finding["check"], 0) + 1
    return dict(sorted(counts.items()))


def _short(name, stack):
    return name[len(stack) + 1:] if stack and name.startswith(stack + "_") else name


def build(before, after, outcomes=None, traffic=None, meta=None):
    """Return the report dict (see the phase 1 playbook's docs for its keys)."""
    outcomes = {o["service"]: o for o in outcomes or []}
    before_by, after_by = _by_service(before), _by_service(after)
    traffic_services = ((traffic or {}).get("services") or {})
    services = []
    for svc in (after or before or {}).get("services") or []:
        name = svc["name"]
        outcome = outcomes.get(name) or {}
        short = _short(name, svc.get("stack"))
        seen = traffic_services.get(short) or traffic_services.get(name)
        services.append({
            "name": name,
            "class": outcome.get("class"),
            "replicas": {"desired": svc.get("replicas_desired"), "running": svc.get("replicas_running")},
            "findings_before": before_by.get(name, []),
            "findings_after": after_by.get(name, []),
            "stabilised": not set(after_by.get(name, [])) & set(STABILISED_CHECKS),
            "outcome": ("skipped" if outcome.get("skipped") else outcome.get("state") if outcome else "not_run"),
            "changed": bool(outcome.get("changed")),
            "changes": sorted({c["path"].split(".", 1)[0] for c in outcome.get("changes") or []}),
            "rollout_s": outcome.get("seconds"),
            # seconds the front door held the service's requests while its only task(s) were replaced
            "held_s": outcome.get("held_s") or 0,
            "detail": outcome.get("detail"),
            "traffic": None if not seen else {
                "requests": seen.get("requests"), "failed": seen.get("failed"),
                "availability": seen.get("availability"), "outcomes": seen.get("outcomes"),
                "p99_ms": (seen.get("latency_ms") or {}).get("p99"), "downtime_s": seen.get("downtime_s")},
        })
    multi = [s for s in services if (s["replicas"]["desired"] or 0) >= 2 and s["traffic"]]
    overall = (traffic or {}).get("overall") or {}
    return {
        "phase": 1,
        **(meta or {}),
        "services_total": len(services),
        "stabilised": sum(1 for s in services if s["stabilised"]),
        "changed": sorted(s["name"] for s in services if s["changed"] and s["outcome"] not in
                          ("rolled_back", "paused", "timeout", "error")),
        "failed": [{"service": s["name"], "outcome": s["outcome"], "detail": s["detail"]} for s in services
                   if s["outcome"] in ("rolled_back", "paused", "timeout", "error")],
        "findings_before": _counts(before),
        "findings_after": _counts(after),
        "held": {"services": sorted(s["name"] for s in services if s["held_s"]),
                 "seconds": round(sum(s["held_s"] for s in services), 3)},
        "traffic": None if not traffic else {
            "requests": overall.get("requests"), "failed": overall.get("failed"),
            "availability": overall.get("availability"), "p99_ms": (overall.get("latency_ms") or {}).get("p99"),
            "downtime_s": overall.get("downtime_s"), "duration_s": traffic.get("duration_s"),
            "schedule_kept": (traffic.get("schedule") or {}).get("kept"),
            "multi_replica_failed": sum(s["traffic"]["failed"] or 0 for s in multi),
            "multi_replica_services": [s["name"] for s in multi]},
        "services": services,
    }


def _pct(value):
    return "-" if value is None else f"{value * 100:.3f}%"


def markdown(report):
    lines = [f"# Phase 1 report: {report.get('stack') or 'Swarm'}", ""]
    if report.get("started"):
        lines.append(f"Run: {report['started']} to {report.get('finished', '?')} ({report.get('seconds', '?')} s), "
                     f"Docker host {report.get('docker_host') or 'default'}.")
        lines.append("")
    lines.append(f"- Services: {report['services_total']}; stabilised (health check, limits, restart policy, "
                 f"rollback on failure, GPU pinning): {report['stabilised']}")
    lines.append(f"- Changed: {len(report['changed'])}; failed: {len(report['failed'])}"
                 + "".join(f"\n  - {f['service']}: {f['outcome']} ({f['detail']})" for f in report["failed"]))
    held = report.get("held") or {}
    if held.get("services"):
        lines.append(f"- Held at the front door while their only task was replaced: {len(held['services'])} "
                     f"service(s), {held['seconds']} s in all (their requests waited instead of failing)")
    traffic = report.get("traffic")
    if traffic:
        lines.append(f"- Traffic through the front door: {traffic['requests']} requests, {traffic['failed']} failed, "
                     f"availability {_pct(traffic['availability'])}, p99 {traffic['p99_ms']} ms, "
                     f"downtime {traffic['downtime_s']} s; services with 2+ replicas: "
                     f"{len(traffic['multi_replica_services'])}, their failed requests: "
                     f"{traffic['multi_replica_failed']}")
    lines += ["", "## Findings", "", "| check | before | after |", "|---|---:|---:|"]
    for check in sorted(set(report["findings_before"]) | set(report["findings_after"])):
        lines.append(f"| {check} | {report['findings_before'].get(check, 0)} | {report['findings_after'].get(check, 0)} |")
    lines += ["", "## Services", "",
              "| service | class | replicas | outcome | changed | held s | requests | failed | availability | p99 ms |"
              " findings after |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for svc in report["services"]:
        t = svc["traffic"] or {}
        lines.append(f"| {svc['name']} | {svc['class'] or '-'} | {svc['replicas']['running']}/"
                     f"{svc['replicas']['desired']} | {svc['outcome']} | {', '.join(svc['changes']) or '-'} | "
                     f"{svc.get('held_s') or '-'} | {t.get('requests', '-')} | {t.get('failed', '-')} | {_pct(t.get('availability'))} | "
                     f"{t.get('p99_ms', '-')} | {', '.join(svc['findings_after']) or '-'} |")
    return "\n".join(lines) + "\n"


def front_door_services(services, addresses, offset, stack=""):
    """Front door frontends for Swarm services: one per service with a published port, on published + offset,
    a server ``swarm-<n>`` per address on the published port (the front door's health checks find the nodes
    where a host-mode port answers; with the ingress mesh every node answers)."""
    out = []
    for svc in services:
        if stack and svc.get("stack") != stack:
            continue
        ports = [p for p in svc.get("ports") or [] if p.get("published")]
        if not ports:
            continue
        published = int(ports[0]["published"])
        name = svc["name"]
        if svc.get("stack") and name.startswith(svc["stack"] + "_"):
            name = name[len(svc["stack"]) + 1:]
        servers = [{"name": "swarm" if len(addresses) == 1 else f"swarm-{i}", "address": address,
                    "port": published, "weight": 100} for i, address in enumerate(addresses, start=1)]
        out.append({"name": name, "port": published + int(offset), "servers": servers})
    return sorted(out, key=lambda s: s["name"])
