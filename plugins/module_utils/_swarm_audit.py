# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""swarm_audit's pure layer: raw Docker API JSON of a Swarm -> facts, findings and a report.

:func:`build_audit` takes the replies of one list call per kind (``/info``, ``/nodes``, ``/services?status=true``,
``/tasks``, ``/networks``; see ``_docker_client.DockerClient.read_swarm``) and returns the facts (``swarm``,
``nodes``, ``services``, ``tasks``), the ``findings`` and a ``summary``. Placement constraints are evaluated as
swarmkit does (``node.labels.X``, ``engine.labels.X``, ``node.role``, ``node.hostname``, ``node.id``,
``node.ip``, ``node.platform.os`` / ``.arch`` with ``==`` and ``!=``; values case-insensitive, a missing label
is the empty string), so the GPU and host-port checks know which nodes a service may land on.
:func:`render_markdown` / :func:`render_json` render the report; :func:`write_report` writes it atomically and
reports ``changed`` only when its content, other than the timestamp, differs from the files already there.
:func:`run_audit` is the runner: connect, read, build, write (not in check mode), result dict. Nothing here calls
``fail_json``; errors are :class:`PlatformError` subclasses.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import time
from datetime import datetime, timedelta, timezone

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError

STACK_LABEL = "com.docker.stack.namespace"
DEFAULT_CRITICALITY = "critical"  # as compose_convert's default_criticality (module_utils/_convert.py)
CRITICALITY_VALUES = ("critical", "non-critical")
SEVERITIES = ("error", "warning", "info")
CHECKS = ("node_unavailable", "replicas_short", "tasks_failing", "gpu_unpinned", "gpu_network_alone",
          "placement_unsatisfiable",
          "port_clash", "single_replica_critical", "no_healthcheck", "no_limits", "no_reservations",
          "no_rollback_on_failure", "no_restart_policy", "criticality_label_invalid", "constraint_unevaluated",
          "scaled_to_zero")
# Task states that mean a task ended when it should not have: it failed, was rejected, was orphaned (its node
# went away), or completed (a long-running service's container exited, so Swarm started another).
ENDED_STATES = ("failed", "rejected", "orphaned", "complete")
MODES = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job",
         "GlobalJob": "global-job"}
# Defaults of the module's options (plugins/modules/swarm_audit.py documents them).
DEFAULTS = {"task_window": 3600, "critical_label": "sophia.ai/criticality", "min_critical_replicas": 2,
            "gpu_resource_kinds": ["NVIDIA-GPU", "GPU"], "stacks": [], "report_dir": None,
            "report_name": "swarm-audit"}

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")
_CONSTRAINT_KEY = re.compile(r"^[a-z_][a-z0-9\-_.]+$", re.IGNORECASE)
_GENERATED_MD = re.compile(r"^Generated: .*$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------------- helpers

def parse_time(value):
    """Docker's RFC 3339 time (nanoseconds, Z) as an aware datetime; None for empty or Go's zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = _TIME.match(value)
    if not match:
        return None
    base, frac, zone = match.groups()
    stamp = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp = stamp.replace(microsecond=int((frac + "000000")[:6]))
    offset = timedelta(0)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return stamp.replace(tzinfo=timezone(offset))


def iso(stamp):
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(nanos):
    """Nanoseconds (Docker's durations) as seconds: int when whole, else float; None when unset."""
    if nanos is None:
        return None
    value = nanos / 1e9
    return int(value) if value == int(value) else value


def cpus(nano_cpus):
    if not nano_cpus:
        return None
    value = nano_cpus / 1e9
    return int(value) if value == int(value) else round(value, 9)


def generic_resources(items):
    """[{DiscreteResourceSpec|NamedResourceSpec: {Kind, Value}}] -> {kind: count} (a named resource counts 1)."""
    counts = {}
    for item in items or []:
        if "DiscreteResourceSpec" in item:
            spec = item["DiscreteResourceSpec"]
            counts[spec["Kind"]] = counts.get(spec["Kind"], 0) + int(spec.get("Value") or 0)
        elif "NamedResourceSpec" in item:
            spec = item["NamedResourceSpec"]
            counts[spec["Kind"]] = counts.get(spec["Kind"], 0) + 1
    return counts


def human_bytes(value):
    if value is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            amount = value / size
            return ("%d%s" % (amount, unit)) if amount == int(amount) else ("%.1f%s" % (amount, unit))
    return "%dB" % value


def options_from(params):
    """The audit's options from module params (defaults filled), checked."""
    options = dict(DEFAULTS)
    options.update({k: v for k, v in (params or {}).items() if k in DEFAULTS and v is not None})
    if int(options["task_window"]) < 0:
        raise InputError("task_window %s is negative. Fix: give seconds, e.g. 3600" % options["task_window"],
                         key="task_window")
    if int(options["min_critical_replicas"]) < 1:
        raise InputError("min_critical_replicas %s is below 1. Fix: give 1 or more (2 keeps a critical service up "
                         "through a node loss)" % options["min_critical_replicas"], key="min_critical_replicas")
    if not options["gpu_resource_kinds"]:
        raise InputError("gpu_resource_kinds is empty. Fix: list the generic resource kinds GPU nodes advertise, "
                         "e.g. [NVIDIA-GPU]", key="gpu_resource_kinds")
    name = options["report_name"]
    if not name or "/" in name or name in (".", "..") or name.startswith("."):
        raise InputError("report_name %r is not a plain file name. Fix: e.g. swarm-audit, before, after" % (name,),
                         key="report_name")
    options["stacks"] = list(options["stacks"] or [])
    options["gpu_resource_kinds"] = list(options["gpu_resource_kinds"])
    return options


# ---------------------------------------------------------------------------------------------------- facts

def node_facts(node):
    spec, desc, status = node.get("Spec") or {}, node.get("Description") or {}, node.get("Status") or {}
    manager = node.get("ManagerStatus") or {}
    resources = desc.get("Resources") or {}
    platform = desc.get("Platform") or {}
    engine = desc.get("Engine") or {}
    addr = status.get("Addr") or ""
    if (not addr or addr == "0.0.0.0") and manager.get("Addr"):
        addr = manager["Addr"].rsplit(":", 1)[0]
    return {
        "id": node.get("ID"),
        "hostname": desc.get("Hostname"),
        "role": spec.get("Role"),
        "availability": spec.get("Availability"),
        "state": status.get("State"),
        "message": status.get("Message") or None,
        "leader": bool(manager.get("Leader")),
        "reachability": manager.get("Reachability"),
        "addr": addr or None,
        "labels": dict(spec.get("Labels") or {}),
        "engine_labels": dict(engine.get("Labels") or {}),
        "engine_version": engine.get("EngineVersion"),
        "platform": {"os": platform.get("OS"), "arch": platform.get("Architecture")},
        "nano_cpus": resources.get("NanoCPUs"),
        "memory_bytes": resources.get("MemoryBytes"),
        "generic_resources": generic_resources(resources.get("GenericResources")),
    }


def healthcheck(check):
    test = (check or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return {"test": list(test), "interval_s": seconds(check.get("Interval")), "timeout_s": seconds(check.get("Timeout")),
            "retries": check.get("Retries"), "start_period_s": seconds(check.get("StartPeriod"))}


def resource_pair(spec):
    spec = spec or {}
    value = {"cpus": cpus(spec.get("NanoCPUs")), "memory_bytes": spec.get("MemoryBytes") or None}
    if value["cpus"] is None and value["memory_bytes"] is None:
        return None
    return value


def update_config(config):
    if not config:
        return None
    return {"parallelism": config.get("Parallelism", 0), "delay_s": seconds(config.get("Delay") or 0),
            "failure_action": config.get("FailureAction") or "pause", "monitor_s": seconds(config.get("Monitor") or 0),
            "max_failure_ratio": config.get("MaxFailureRatio") or 0, "order": config.get("Order") or "stop-first"}


def restart_policy(policy):
    if not policy:
        return None
    return {"condition": policy.get("Condition") or "any", "delay_s": seconds(policy.get("Delay")),
            "max_attempts": policy.get("MaxAttempts") or 0, "window_s": seconds(policy.get("Window"))}


def service_ports(service):
    endpoint = service.get("Endpoint") or {}
    ports = endpoint.get("Ports") or ((service.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []
    return [{"target": p.get("TargetPort"), "published": p.get("PublishedPort") or None,
             "protocol": p.get("Protocol") or "tcp", "mode": p.get("PublishMode") or "ingress"} for p in ports]


def criticality(spec, label):
    """The criticality label, from the service's labels (deploy.labels) first, then its containers' labels."""
    for labels in (spec.get("Labels") or {}, ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {})
                   .get("Labels") or {}):
        if label in labels:
            return labels[label]
    return DEFAULT_CRITICALITY


def service_facts(service, network_names, options):
    spec = service.get("Spec") or {}
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    resources = template.get("Resources") or {}
    reservations = resources.get("Reservations") or {}
    placement = template.get("Placement") or {}
    mode_key = next((k for k in MODES if k in (spec.get("Mode") or {})), "Replicated")
    mode_spec = (spec.get("Mode") or {}).get(mode_key) or {}
    generic = generic_resources(reservations.get("GenericResources"))
    gpu = {k: v for k, v in generic.items() if k in options["gpu_resource_kinds"]}
    status = service.get("ServiceStatus")
    labels = dict(spec.get("Labels") or {})
    networks = template.get("Networks") or spec.get("Networks") or []
    image = container.get("Image") or ""
    return {
        "id": service.get("ID"),
        "name": spec.get("Name"),
        "version": (service.get("Version") or {}).get("Index"),
        "stack": labels.get(STACK_LABEL),
        "image": image.split("@sha256:")[0] if "@sha256:" in image else image,
        "image_digest": image.split("@", 1)[1] if "@sha256:" in image else None,
        "mode": MODES[mode_key],
        "replicas": mode_spec.get("Replicas", 1) if mode_key == "Replicated" else None,
        "replicas_desired": status.get("DesiredTasks") if status else None,
        "replicas_running": status.get("RunningTasks") if status else None,
        "criticality": criticality(spec, options["critical_label"]),
        "healthcheck": healthcheck(container.get("Healthcheck")),
        "limits": resource_pair(resources.get("Limits")),
        "reservations": resource_pair(reservations),
        "gpu": {"kinds": gpu} if gpu else None,
        "generic_resources": generic,
        "placement": {"constraints": list(placement.get("Constraints") or []),
                      "preferences": ["spread=%s" % p["Spread"].get("SpreadDescriptor")
                                      for p in placement.get("Preferences") or [] if "Spread" in p],
                      "max_replicas_per_node": placement.get("MaxReplicas") or None},
        "update_config": update_config(spec.get("UpdateConfig")),
        "rollback_config": update_config(spec.get("RollbackConfig")),
        "restart_policy": restart_policy(template.get("RestartPolicy")),
        "endpoint_mode": ((spec.get("EndpointSpec") or {}).get("Mode")) or "vip",
        "ports": service_ports(service),
        "networks": sorted(network_names.get(n.get("Target"), n.get("Target")) for n in networks),
        "secrets": sorted(s.get("SecretName") for s in container.get("Secrets") or []),
        "configs": sorted(c.get("ConfigName") for c in container.get("Configs") or []),
        "labels": labels,
        "restarts_in_window": 0,
        "updated": service.get("UpdatedAt"),
        "update_state": ((service.get("UpdateStatus") or {}).get("State")) or None,
    }


def task_facts(task, services_by_id, nodes_by_id):
    status = task.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    node = nodes_by_id.get(task.get("NodeID")) or {}
    return {
        "service": services_by_id[task["ServiceID"]]["name"],
        "service_id": task.get("ServiceID"),
        "task_id": task.get("ID"),
        "slot": task.get("Slot"),
        "node": node.get("hostname") or task.get("NodeID") or None,
        "node_id": task.get("NodeID") or None,
        "state": status.get("State"),
        "desired_state": task.get("DesiredState"),
        "error": status.get("Err") or None,
        "message": status.get("Message") or None,
        "timestamp": status.get("Timestamp"),
        "exit_code": container.get("ExitCode") if container.get("ContainerID") else None,
    }


def tasks_in_window(tasks, services_by_id, nodes_by_id, window, now):
    """Tasks of the audited services that ended badly (ENDED_STATES) in the last ``window`` seconds, newest first."""
    oldest = now - timedelta(seconds=window)
    found = []
    for task in tasks:
        service = services_by_id.get(task.get("ServiceID"))
        state = (task.get("Status") or {}).get("State")
        if service is None or state not in ENDED_STATES:
            continue
        if state == "complete" and service["mode"].endswith("-job"):
            continue  # a job's task that completed did its work
        stamp = parse_time((task.get("Status") or {}).get("Timestamp")) or parse_time(task.get("UpdatedAt"))
        if stamp is None or stamp < oldest:
            continue
        found.append((stamp, task_facts(task, services_by_id, nodes_by_id)))
    found.sort(key=lambda pair: (pair[0], pair[1]["service"], pair[1]["task_id"]), reverse=True)
    return [facts for _stamp, facts in found]


# ---------------------------------------------------------------------------------------------------- placement

def parse_constraint(expr):
    """'node.labels.gpu == true' -> (key, '==', value); None when swarmkit would not parse it either."""
    for operator in ("==", "!="):
        if operator in expr:
            key, value = expr.split(operator, 1)
            key, value = key.strip(), value.strip()
            if not _CONSTRAINT_KEY.match(key):
                return None
            return key, operator, value
    return None


def _node_values(key, node):
    """The node's values for a constraint key (a list: matching any counts), or None for a key we do not know."""
    lower = key.lower()
    if lower == "node.id":
        return [node.get("id") or ""]
    if lower == "node.hostname":
        return [node.get("hostname") or ""]
    if lower == "node.role":
        return [node.get("role") or ""]
    if lower == "node.platform.os":
        return [(node.get("platform") or {}).get("os") or ""]
    if lower == "node.platform.arch":
        return [(node.get("platform") or {}).get("arch") or ""]
    if lower.startswith("node.labels."):
        return [(node.get("labels") or {}).get(key[len("node.labels."):], "")]
    if lower.startswith("engine.labels."):
        return [(node.get("engine_labels") or {}).get(key[len("engine.labels."):], "")]
    return None


def _ip_matches(value, node):
    try:
        network = ipaddress.ip_network(value, strict=False)
        return ipaddress.ip_address(node.get("addr") or "") in network
    except ValueError:
        return False


def admits(constraints, node):
    """(admitted, unevaluated): does the node satisfy every constraint; the constraints we could not evaluate."""
    unevaluated = []
    for expr in constraints:
        parsed = parse_constraint(expr)
        if parsed is None:
            unevaluated.append(expr)
            continue
        key, operator, value = parsed
        if key.lower() == "node.ip":
            match = _ip_matches(value, node)
        else:
            values = _node_values(key, node)
            if values is None:
                unevaluated.append(expr)
                continue
            match = any(value.lower() == str(v).lower() for v in values)
        if match != (operator == "=="):
            return False, unevaluated
    return True, unevaluated


def admitted_nodes(service, nodes):
    """The nodes a service's constraints admit (any availability), and the constraints we could not evaluate."""
    admitted, unevaluated = [], []
    for node in nodes:
        ok, skipped = admits(service["placement"]["constraints"], node)
        unevaluated.extend(e for e in skipped if e not in unevaluated)
        if ok:
            admitted.append(node)
    return admitted, unevaluated


# ---------------------------------------------------------------------------------------------------- findings

def _finding(check, severity, msg, fix, service=None, node=None, **extra):
    item = {"check": check, "severity": severity, "service": service, "node": node, "msg": msg, "fix": fix}
    item.update(extra)
    return item


def _node_label(node):
    return "%s (%s)" % (node.get("hostname"), (node.get("id") or "?")[:12])


def node_findings(nodes):
    found = []
    for node in nodes:
        name = _node_label(node)
        if node["state"] != "ready":
            found.append(_finding(
                "node_unavailable", "error",
                "node %s is %s%s (availability %s): its tasks run elsewhere or not at all; wanted state ready"
                % (name, node["state"], ": " + node["message"] if node.get("message") else "", node["availability"]),
                "bring the node back (check dockerd and the network to the managers on port 2377) or remove it "
                "(docker node rm %s)" % node["hostname"], node=node["hostname"], node_id=node["id"]))
        elif node["availability"] != "active":
            found.append(_finding(
                "node_unavailable", "warning",
                "node %s is ready but its availability is %s: no new tasks land on it; wanted active"
                % (name, node["availability"]),
                "docker node update --availability active %s once its maintenance is over" % node["hostname"],
                node=node["hostname"], node_id=node["id"]))
    return found


def service_findings(service, admitted, unevaluated, nodes, options):
    """Every finding about one service's own spec and state."""
    name = service["name"]
    critical = service["criticality"] != "non-critical"
    found = []

    def add(check, severity, msg, fix, **extra):
        found.append(_finding(check, severity, msg, fix, service=name, **extra))

    if service["criticality"] not in CRITICALITY_VALUES:
        add("criticality_label_invalid", "warning",
            "service %s has %s=%r, not critical or non-critical; it is audited as critical"
            % (name, options["critical_label"], service["criticality"]),
            "set the label %s to critical or non-critical (deploy.labels in the stack file)" % options["critical_label"])
    if service["mode"] == "replicated" and service["replicas"] == 0:
        add("scaled_to_zero", "info", "service %s is scaled to 0 replicas: nothing of it runs" % name,
            "scale it up (docker service scale %s=N) or remove it if it is no longer used" % name)
    if service["healthcheck"] is None:
        add("no_healthcheck", "error" if critical else "warning",
            "service %s (%s) has no health check (seen: none in the service spec); wanted a healthcheck so that "
            "Swarm replaces hung tasks and update_config can roll back a bad update"
            % (name, service["criticality"]),
            "add a healthcheck (test, interval, timeout, retries, start_period) to the service, e.g. "
            "docker service update --health-cmd mcp-healthcheck %s; role sophia_ai.platform.swarm_stabilize adds one"
            % name)
    limits = service["limits"] or {}
    missing = [k for k, label in (("cpus", "CPU"), ("memory_bytes", "memory")) if limits.get(k) is None]
    if missing:
        add("no_limits", "warning",
            "service %s has no %s limit (seen: %s); wanted CPU and memory limits so that one service cannot starve "
            "its node" % (name, " and no ".join("CPU" if m == "cpus" else "memory" for m in missing),
                          _pair_text(service["limits"])),
            "set deploy.resources.limits.cpus and .memory (docker service update --limit-cpu/--limit-memory %s); "
            "role sophia_ai.platform.swarm_stabilize adds them" % name)
    if service["reservations"] is None:
        add("no_reservations", "warning",
            "service %s reserves no CPU and no memory%s; wanted a memory (and CPU) reservation so that the "
            "scheduler only places it where it fits" % (name, " (only %s)" % _kinds_text(service["generic_resources"])
                                                        if service["generic_resources"] else ""),
            "set deploy.resources.reservations.memory and .cpus (docker service update --reserve-memory/"
            "--reserve-cpu %s); role sophia_ai.platform.swarm_stabilize adds them" % name)
    wanted = int(options["min_critical_replicas"])
    if critical and service["mode"] == "replicated" and 0 < (service["replicas"] or 0) < wanted:
        add("single_replica_critical", "error",
            "critical service %s runs %d replica%s; wanted at least %d so that it survives a node loss or a "
            "rolling update" % (name, service["replicas"], "" if service["replicas"] == 1 else "s", wanted),
            "docker service scale %s=%d, or label it %s=non-critical if it is not critical"
            % (name, wanted, options["critical_label"]))
    update = service["update_config"]
    if update is None or update["failure_action"] != "rollback":
        add("no_rollback_on_failure", "warning",
            "service %s %s; wanted update_config.failure_action rollback so that a failed update rolls back"
            % (name, "has no update_config (the engine's default failure action is pause)" if update is None
               else "has update_config.failure_action %s" % update["failure_action"]),
            "set deploy.update_config.failure_action: rollback and a rollback_config (docker service update "
            "--update-failure-action rollback %s); role sophia_ai.platform.swarm_stabilize sets it" % name)
    policy = service["restart_policy"]
    if policy is None or policy["condition"] == "none":
        add("no_restart_policy", "error" if policy else "warning",
            "service %s %s; wanted a restart_policy with condition any or on-failure, a delay and a window"
            % (name, "has restart_policy condition none: a task that exits is never replaced" if policy
               else "sets no restart_policy (left to the engine's default: condition any, no limit on attempts)"),
            "set deploy.restart_policy (condition any, delay 5s, max_attempts, window) (docker service update "
            "--restart-condition any %s); role sophia_ai.platform.swarm_stabilize sets it" % name)
    if service["replicas_desired"] is not None and (service["replicas_running"] or 0) < service["replicas_desired"]:
        add("replicas_short", "error",
            "service %s runs %d of %d desired tasks" % (name, service["replicas_running"] or 0,
                                                        service["replicas_desired"]),
            "docker service ps --no-trunc %s shows why tasks do not run (resources, constraints, image, health)"
            % name)
    if service["restarts_in_window"]:
        add("tasks_failing", "warning",
            "service %s had %d failed or restarted task%s in the last %ss; wanted none"
            % (name, service["restarts_in_window"], "" if service["restarts_in_window"] == 1 else "s",
               options["task_window"]),
            "read the task errors (docker service ps --no-trunc %s) and the logs (docker service logs %s)"
            % (name, name), tasks=service["restarts_in_window"])
    if unevaluated:
        add("constraint_unevaluated", "info",
            "service %s has placement constraints this audit cannot evaluate: %s; they are taken as admitting "
            "every node" % (name, ", ".join(unevaluated)),
            "check them by hand (docker node ls, docker node inspect)")
    if nodes and not admitted and not unevaluated:
        add("placement_unsatisfiable", "error",
            "service %s has placement constraints %s that no node satisfies; its tasks cannot be scheduled"
            % (name, ", ".join(service["placement"]["constraints"])),
            "fix the constraints or label a node to match (docker node update --label-add KEY=VALUE NODE)")
    if service["gpu"]:
        kinds = service["gpu"]["kinds"]
        bare = [n for n in admitted if not any(n["generic_resources"].get(k, 0) for k in kinds)]
        if bare:
            add("gpu_unpinned", "error",
                "GPU service %s reserves %s but its placement (%s) admits %d node%s that advertise%s none: %s; "
                "wanted a constraint that admits only GPU nodes"
                % (name, _kinds_text(kinds), ", ".join(service["placement"]["constraints"]) or "no constraints",
                   len(bare), "" if len(bare) == 1 else "s", "s" if len(bare) == 1 else "",
                   ", ".join(_node_label(n) for n in bare)),
                "add a placement constraint to the GPU nodes, e.g. node.labels.gpu == true, and label them "
                "(docker node update --label-add gpu=true NODE); role sophia_ai.platform.swarm_stabilize labels GPU "
                "nodes and pins GPU services", nodes=[n["hostname"] for n in bare])
    return found


def _pair_text(pair):
    if not pair:
        return "none"
    return "cpus %s, memory %s" % (pair["cpus"] if pair["cpus"] is not None else "-", human_bytes(pair["memory_bytes"]))


def _kinds_text(kinds):
    return ", ".join("%s x%d" % (k, v) for k, v in sorted(kinds.items()))


def port_findings(services, admitted_by_name, selected):
    """Published ports two services (or more replicas than nodes of one) cannot both hold."""
    by_port = {}
    for service in services:
        for port in service["ports"]:
            if port["published"]:
                by_port.setdefault((port["published"], port["protocol"]), []).append((service, port["mode"]))
    found = []
    for (published, protocol), users in sorted(by_port.items()):
        for i, (first, first_mode) in enumerate(users):
            for second, second_mode in users[i + 1:]:
                if first["name"] == second["name"]:
                    continue
                if first["name"] not in selected and second["name"] not in selected:
                    continue
                if "ingress" in (first_mode, second_mode):
                    where = "every node (ingress mode publishes on all of them)"
                else:
                    second_ids = {n["id"] for n in admitted_by_name[second["name"]]}
                    common = [n for n in admitted_by_name[first["name"]] if n["id"] in second_ids]
                    if not common:
                        continue
                    where = "node%s %s (host mode, placements overlap)" % (
                        "" if len(common) == 1 else "s", ", ".join(_node_label(n) for n in common))
                names = sorted((first["name"], second["name"]))
                found.append(_finding(
                    "port_clash", "error",
                    "services %s and %s both publish %s/%s (%s / %s mode) and can land on %s; only one can bind it"
                    % (names[0], names[1], published, protocol, first_mode, second_mode, where),
                    "publish one of them on another port, or place them on different nodes with constraints",
                    service=names[0] if names[0] in selected else names[1], services=names,
                    port="%s/%s" % (published, protocol)))
        for service, mode in users:
            if mode != "host" or service["name"] not in selected or service["mode"] != "replicated":
                continue
            admitted = [n for n in admitted_by_name[service["name"]] if n["availability"] == "active"]
            if (service["replicas"] or 0) > len(admitted) and not service["placement"]["max_replicas_per_node"]:
                found.append(_finding(
                    "port_clash", "error",
                    "service %s publishes %s/%s in host mode with %d replicas but only %d active node%s admit it: "
                    "two tasks on one node cannot both bind it" % (service["name"], published, protocol,
                                                                   service["replicas"], len(admitted),
                                                                   "" if len(admitted) == 1 else "s"),
                    "run at most one replica per node (fewer replicas, more nodes, or mode global), or publish in "
                    "ingress mode", service=service["name"], services=[service["name"]],
                    port="%s/%s" % (published, protocol)))
    return found


# ---------------------------------------------------------------------------------------------------- audit

def swarm_facts(info, nodes, api_version):
    swarm = info.get("Swarm") or {}
    cluster = swarm.get("Cluster") or {}
    spec = cluster.get("Spec") or {}
    return {
        "id": cluster.get("ID"),
        "created": cluster.get("CreatedAt"),
        "managers": sum(1 for n in nodes if n["role"] == "manager"),
        "workers": sum(1 for n in nodes if n["role"] == "worker"),
        "default_addr_pool": list(cluster.get("DefaultAddrPool") or []),
        "subnet_size": cluster.get("SubnetSize"),
        "data_path_port": cluster.get("DataPathPort"),
        "is_manager": bool(swarm.get("ControlAvailable")),
        "node_id": swarm.get("NodeID"),
        "node_addr": swarm.get("NodeAddr"),
        "engine_name": info.get("Name"),
        "engine_version": info.get("ServerVersion"),
        "api_version": api_version,
        "task_history_retention_limit": (spec.get("Orchestration") or {}).get("TaskHistoryRetentionLimit"),
        "leader": next((n["hostname"] for n in nodes if n["leader"]), None),
    }


def _running_tasks(tasks):
    running = {}
    for task in tasks:
        if (task.get("Status") or {}).get("State") == "running" and task.get("DesiredState") == "running":
            running[task.get("ServiceID")] = running.get(task.get("ServiceID"), 0) + 1
    return running


def gpu_network_findings(selected, raw_tasks, nodes_by_id, network_names):
    """GPU services updated stop-first whose task is the only one of one of its networks on its node.

    Swarm allocates a node's attachment to a network when the first task of that network lands there and frees it
    when the last leaves; each time, the node object changes, and swarmkit's constraint enforcer then rejects the
    node's tasks that hold generic resources (its check is inverted: "assigned node no longer meets
    constraints"). A stop-first update of such a task frees and re-allocates the attachment, so the new task can
    be rejected over and over and the update fail. Ingress is left out (every node keeps its attachment).
    """
    sharing = {}
    for task in raw_tasks:
        if task.get("DesiredState") != "running":
            continue
        for attachment in task.get("NetworksAttachments") or []:
            network = (attachment.get("Network") or {}).get("ID")
            sharing.setdefault((task.get("NodeID"), network), set()).add(task.get("ServiceID"))
    found = []
    by_id = {s["id"]: s for s in selected if s["gpu"] and (s["update_config"] or {}).get("order", "stop-first")
             != "start-first"}
    seen = set()
    for task in raw_tasks:
        service = by_id.get(task.get("ServiceID"))
        if not service or task.get("DesiredState") != "running":
            continue
        for attachment in task.get("NetworksAttachments") or []:
            network = (attachment.get("Network") or {}).get("ID")
            name = network_names.get(network) or network
            if name == "ingress" or sharing.get((task.get("NodeID"), network)) != {service["id"]}:
                continue
            node = nodes_by_id.get(task.get("NodeID")) or {"hostname": task.get("NodeID")}
            key = (service["name"], node.get("hostname"), name)
            if key in seen:
                continue
            seen.add(key)
            found.append(_finding(
                "gpu_network_alone", "warning",
                "GPU service %s is the only service of network %s on node %s and updates stop-first: Swarm's "
                "constraint enforcer can reject its new task each time the node's attachment to that network is "
                "freed and allocated again (\"assigned node no longer meets constraints\"), failing the update"
                % (service["name"], name, node.get("hostname")),
                "update it start-first (update_config.order: start-first; role sophia_ai.platform.swarm_stabilize "
                "does so where the GPU node has room for a second task's GPUs), or keep a task of another service "
                "of network %s on that node" % name,
                service=service["name"], node=node.get("hostname"), network=name))
    return found


def build_audit(raw, options, now):
    """Facts, findings and summary from the raw replies (see module docstring). ``now``: an aware datetime."""
    options = options_from(options)
    nodes = sorted((node_facts(n) for n in raw.get("nodes") or []), key=lambda n: (n["hostname"] or "", n["id"]))
    nodes_by_id = {n["id"]: n for n in nodes}
    network_names = {n.get("Id") or n.get("ID"): n.get("Name") for n in raw.get("networks") or []}
    every = sorted((service_facts(s, network_names, options) for s in raw.get("services") or []),
                   key=lambda s: s["name"])
    stacks = set(options["stacks"])
    selected = [s for s in every if not stacks or s["stack"] in stacks]
    selected_names = {s["name"] for s in selected}
    running = _running_tasks(raw.get("tasks") or [])
    admitted_by_name, unevaluated_by_name = {}, {}
    for service in every:
        admitted_by_name[service["name"]], unevaluated_by_name[service["name"]] = admitted_nodes(service, nodes)
        if service["replicas_desired"] is None:  # an engine older than API 1.41: no ServiceStatus
            service["replicas_running"] = running.get(service["id"], 0)
            service["replicas_desired"] = service["replicas"] if service["mode"] == "replicated" else sum(
                1 for n in admitted_by_name[service["name"]] if n["state"] == "ready" and n["availability"] == "active")
    services_by_id = {s["id"]: s for s in selected}
    tasks = tasks_in_window(raw.get("tasks") or [], services_by_id, nodes_by_id, int(options["task_window"]), now)
    for task in tasks:
        services_by_id[task["service_id"]]["restarts_in_window"] += 1
    findings = node_findings(nodes)
    for service in selected:
        findings.extend(service_findings(service, admitted_by_name[service["name"]],
                                         unevaluated_by_name[service["name"]], nodes, options))
    findings.extend(port_findings(every, admitted_by_name, selected_names))
    findings.extend(gpu_network_findings(selected, raw.get("tasks") or [], nodes_by_id, network_names))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    check_order = {c: i for i, c in enumerate(CHECKS)}
    findings.sort(key=lambda f: (order[f["severity"]], check_order.get(f["check"], len(CHECKS)),
                                 f["service"] or "", f["node"] or "", f["msg"]))
    return {
        "swarm": swarm_facts(raw.get("info") or {}, nodes, raw.get("api_version")),
        "nodes": nodes,
        "services": selected,
        "tasks": tasks,
        "findings": findings,
        "summary": summarize(selected, nodes, tasks, findings, options),
    }


def summarize(services, nodes, tasks, findings, options):
    by_severity = {severity: 0 for severity in SEVERITIES}
    by_check = {}
    for finding in findings:
        by_severity[finding["severity"]] += 1
        by_check[finding["check"]] = by_check.get(finding["check"], 0) + 1
    return {
        "services": len(services),
        "nodes": len(nodes),
        "stacks": sorted({s["stack"] for s in services if s["stack"]}),
        "services_with_healthcheck": sum(1 for s in services if s["healthcheck"]),
        "services_with_limits": sum(1 for s in services if s["limits"]),
        "services_with_restart_policy": sum(1 for s in services if s["restart_policy"]
                                            and s["restart_policy"]["condition"] != "none"),
        "gpu_services": sum(1 for s in services if s["gpu"]),
        "tasks_in_window": len(tasks),
        "task_window_s": int(options["task_window"]),
        "findings": len(findings),
        "by_severity": by_severity,
        "by_check": dict(sorted(by_check.items())),
    }


# ---------------------------------------------------------------------------------------------------- report

def report_document(audit, generated_at, name, options):
    return {"report": name, "generated_at": generated_at,
            "options": {k: options[k] for k in ("task_window", "critical_label", "min_critical_replicas",
                                                "gpu_resource_kinds", "stacks")},
            "swarm": audit["swarm"], "summary": audit["summary"], "findings": audit["findings"],
            "nodes": audit["nodes"], "services": audit["services"], "tasks": audit["tasks"]}


def render_json(document):
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _cell(value):
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _h in headers) + "|"]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def render_markdown(document):
    swarm, summary = document["swarm"], document["summary"]
    sev = summary["by_severity"]
    lines = [
        "# Swarm audit: %s" % document["report"], "",
        "Generated: %s" % document["generated_at"], "",
        "Swarm %s (created %s), engine %s (%s, API %s): %d manager%s, %d worker%s, leader %s. "
        "Address pool %s /%s." % (swarm["id"], swarm["created"], swarm["engine_name"], swarm["engine_version"],
                                  swarm["api_version"], swarm["managers"], "" if swarm["managers"] == 1 else "s",
                                  swarm["workers"], "" if swarm["workers"] == 1 else "s", swarm["leader"],
                                  ", ".join(swarm["default_addr_pool"]) or "-", swarm["subnet_size"]), "",
        "%d service%s%s on %d node%s: %d with a health check, %d with limits, %d with a restart policy, %d GPU "
        "services; %d failed or restarted tasks in the last %ss. Findings: %d errors, %d warnings, %d info."
        % (summary["services"], "" if summary["services"] == 1 else "s",
           " (stacks: %s)" % ", ".join(document["options"]["stacks"]) if document["options"]["stacks"] else "",
           summary["nodes"], "" if summary["nodes"] == 1 else "s", summary["services_with_healthcheck"],
           summary["services_with_limits"], summary["services_with_restart_policy"], summary["gpu_services"],
           summary["tasks_in_window"], summary["task_window_s"], sev["error"], sev["warning"], sev["info"]), "",
        "## Findings", "",
    ]
    if document["findings"]:
        lines += _table(["severity", "check", "object", "what was seen", "fix"],
                        [(f["severity"], f["check"], f["service"] or f["node"], f["msg"], f["fix"])
                         for f in document["findings"]])
    else:
        lines.append("None.")
    lines += ["", "## Findings by check", ""]
    lines += _table(["check", "count"], sorted(summary["by_check"].items())) if summary["by_check"] else ["None."]
    lines += ["", "## Nodes", ""]
    lines += _table(["hostname", "id", "role", "availability", "state", "leader", "addr", "engine", "CPUs", "memory",
                     "generic resources", "labels"],
                    [(n["hostname"], n["id"][:12], n["role"], n["availability"], n["state"],
                      "yes" if n["leader"] else "", n["addr"], n["engine_version"], cpus(n["nano_cpus"]),
                      human_bytes(n["memory_bytes"]), _kinds_text(n["generic_resources"]),
                      ", ".join("%s=%s" % kv for kv in sorted(n["labels"].items())))
                     for n in document["nodes"]])
    lines += ["", "## Services", ""]
    lines += _table(["service", "stack", "mode", "running/desired", "criticality", "health check", "limits",
                     "reservations", "GPU", "restart", "update failure action", "endpoint", "ports",
                     "restarts in window"],
                    [(s["name"], s["stack"], s["mode"], "%s/%s" % (s["replicas_running"], s["replicas_desired"]),
                      s["criticality"], " ".join(s["healthcheck"]["test"]) if s["healthcheck"] else "none",
                      _pair_text(s["limits"]), _pair_text(s["reservations"]),
                      _kinds_text(s["gpu"]["kinds"]) if s["gpu"] else "",
                      s["restart_policy"]["condition"] if s["restart_policy"] else "none",
                      s["update_config"]["failure_action"] if s["update_config"] else "none", s["endpoint_mode"],
                      ", ".join("%s:%s/%s %s" % (p["published"] or "-", p["target"], p["protocol"], p["mode"])
                                for p in s["ports"]), s["restarts_in_window"])
                     for s in document["services"]])
    lines += ["", "## Failed or restarted tasks in the last %ss" % summary["task_window_s"], ""]
    if document["tasks"]:
        lines += _table(["service", "task", "slot", "node", "state", "desired", "exit code", "error", "time"],
                        [(t["service"], (t["task_id"] or "")[:12], t["slot"], t["node"], t["state"],
                          t["desired_state"], t["exit_code"], t["error"] or t["message"], t["timestamp"])
                         for t in document["tasks"]])
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def _read(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlatformError("Cannot read the existing report %s: %s. Fix: remove it or choose another report_dir"
                            % (path, exc), file=path) from None


def _same_json(old_text, document):
    try:
        old = json.loads(old_text)
    except ValueError:
        return False
    if not isinstance(old, dict):
        return False
    old.pop("generated_at", None)
    new = dict(document)
    new.pop("generated_at", None)
    return old == json.loads(json.dumps(new))


def _atomic_write(path, text):
    directory = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(audit, report_dir, name, options, generated_at, check_mode=False, want_diff=False):
    """Write <report_dir>/<name>.md and .json unless only the timestamp would change. Returns the report dict."""
    md_path = os.path.join(report_dir, name + ".md")
    json_path = os.path.join(report_dir, name + ".json")
    if os.path.exists(report_dir) and not os.path.isdir(report_dir):
        raise InputError("report_dir %s exists and is not a directory. Fix: give a directory path" % report_dir,
                         key="report_dir", file=report_dir)
    document = report_document(audit, generated_at, name, options)
    markdown = render_markdown(document)
    old_md, old_json = _read(md_path), _read(json_path)
    same = (old_md is not None and old_json is not None and _same_json(old_json, document)
            and _GENERATED_MD.sub("Generated: -", old_md) == _GENERATED_MD.sub("Generated: -", markdown))
    modes_ok = same and all((os.stat(p).st_mode & 0o7777) == 0o644 for p in (md_path, json_path))
    changed = not (same and modes_ok)
    result = {"changed": changed, "markdown": md_path, "json": json_path, "dir": report_dir}
    if want_diff and not same:
        result["diff"] = {"before": old_md or "", "after": markdown, "before_header": md_path,
                          "after_header": md_path}
    if changed and not check_mode:
        try:
            if not os.path.isdir(report_dir):
                os.makedirs(report_dir, 0o755)
                os.chmod(report_dir, 0o755)
            if same:  # content unchanged: only the file modes differ
                for path in (md_path, json_path):
                    os.chmod(path, 0o644)
            else:
                _atomic_write(json_path, render_json(document))
                _atomic_write(md_path, markdown)
        except OSError as exc:
            raise PlatformError("Cannot write the report to %s: %s. Fix: choose a report_dir this user can write"
                                % (report_dir, exc), file=report_dir) from None
    return result


# ---------------------------------------------------------------------------------------------------- runner

def run_audit(params, connect, check_mode=False, want_diff=False, now=None, clock=time.monotonic):
    """connect(params) -> client with read_swarm(host), api_calls, close(); the module's result dict."""
    options = options_from(params)
    started = clock()
    client = connect(params)
    try:
        raw = client.read_swarm(params.get("docker_host"))
    finally:
        client.close()
    now = now or datetime.now(timezone.utc)
    audit = build_audit(raw, options, now)
    result = dict(audit, changed=False, api_calls=client.api_calls)
    if options["report_dir"]:
        report = write_report(audit, options["report_dir"], options["report_name"], options, iso(now),
                              check_mode=check_mode, want_diff=want_diff)
        diff = report.pop("diff", None)
        if diff is not None:
            result["diff"] = diff
        result["report"] = report
        result["changed"] = report["changed"]
    summary = audit["summary"]
    result["msg"] = "%d service%s on %d node%s: %d errors, %d warnings, %d info%s" % (
        summary["services"], "" if summary["services"] == 1 else "s", summary["nodes"],
        "" if summary["nodes"] == 1 else "s", summary["by_severity"]["error"], summary["by_severity"]["warning"],
        summary["by_severity"]["info"],
        "" if not options["report_dir"] else "; report %s %s" % (
            result["report"]["markdown"],
            ("would be written" if check_mode else "written") if result["changed"] else "unchanged"))
    result["seconds"] = round(clock() - started, 3)
    return result
