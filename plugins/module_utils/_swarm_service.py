# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patch a running Swarm service's spec in place and follow the rolling update it starts.

``plan_update`` is pure: it takes the service's current ``Spec`` (as the Docker API returns it) and the wanted
settings in the module's terms (``healthcheck``, ``limits``, ``reservations``, ``restart_policy``,
``update_config``, ``rollback_config``, ``placement_constraints``, ``labels``) and returns the new spec and the
list of changes. Everything not named stays as it is - environment, secrets, configs, networks, ports, GPU
reservations (generic resources), the stack's labels - because the update sends the current spec back with only
those keys changed.

``only_missing`` fills what the service lacks and keeps what it has (a health check it has is kept whole; limits
and reservations key by key; update and rollback configs key by key, where the engine's defaults count as set),
except the keys listed in ``enforce`` (dotted, for example ``update_config.failure_action``), which are set
whatever the service has.

``classify_rollout`` is pure too: from the service's ``UpdateStatus`` and its tasks it says whether the update
converged, rolled back, paused or is still under way. The client functions below drive the Docker API.
"""

from __future__ import annotations

import copy
import re
import time

from ansible_collections.sophia_ai.platform.plugins.module_utils import _docker_client
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

NS_PER_S = 1_000_000_000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600 * NS_PER_S, "m": 60 * NS_PER_S, "s": NS_PER_S, "ms": 1_000_000, "us": 1_000,
                   "µs": 1_000, "ns": 1}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}

# module key -> API key, and how the value is converted (duration: to ns)
_HEALTHCHECK_KEYS = {"test": "Test", "interval": "Interval", "timeout": "Timeout", "retries": "Retries",
                     "start_period": "StartPeriod"}
_RESTART_KEYS = {"condition": "Condition", "delay": "Delay", "max_attempts": "MaxAttempts", "window": "Window"}
_UPDATE_KEYS = {"parallelism": "Parallelism", "delay": "Delay", "failure_action": "FailureAction",
                "monitor": "Monitor", "max_failure_ratio": "MaxFailureRatio", "order": "Order"}
_DURATIONS = {"interval", "timeout", "start_period", "delay", "window", "monitor"}
SECTIONS = ("healthcheck", "limits", "reservations", "restart_policy", "update_config", "rollback_config",
            "placement_constraints", "labels")

FAILURE_ACTIONS = ("pause", "continue", "rollback")
ROLLBACK_FAILURE_ACTIONS = ("pause", "continue")
ORDERS = ("stop-first", "start-first")
RESTART_CONDITIONS = ("none", "on-failure", "any")


def parse_duration(value, what):
    """'10s', '1m30s', '500ms', 90 (seconds) -> nanoseconds."""
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a duration such as 10s or 1m30s, got {value!r}", key=what)
    if isinstance(value, (int, float)):
        if value < 0:
            raise InputError(f"{what}: a duration cannot be negative ({value})", key=what)
        return int(round(value * NS_PER_S))
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return int(round(float(text) * NS_PER_S))
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise InputError(f"{what}: {value!r} is not a duration: use a number of seconds or Go's form "
                         "(300ms, 10s, 1m30s, 2h)", key=what)
    return int(round(sum(float(n) * _DURATION_UNITS[u] for n, u in parts)))


def parse_memory(value, what):
    """'256M', '1.5G', '512MiB', 1048576 (bytes) -> bytes (binary units, as Docker reads them)."""
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a size such as 256M, got {value!r}", key=what)
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{what}: a size cannot be negative ({value})", key=what)
        return value
    match = _MEMORY.match(str(value))
    if not match:
        raise InputError(f"{what}: {value!r} is not a size: use bytes or a number with K, M, G or T "
                         "(256M, 1.5G)", key=what)
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])


def parse_cpus(value, what):
    """0.5 -> 500000000 NanoCPUs."""
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a number of CPUs (0.5, 2)", key=what) from None
    if cpus < 0:
        raise InputError(f"{what}: a CPU count cannot be negative ({value})", key=what)
    return int(round(cpus * NS_PER_S))


def format_value(path, value):
    """API value -> the module's human form, for diffs and change lists."""
    leaf = path.rsplit(".", 1)[-1]
    if value is None:
        return None
    if leaf in _DURATIONS and isinstance(value, int):
        return format_duration(value)
    if leaf == "memory" and isinstance(value, int):
        return format_memory(value)
    if leaf == "cpus" and isinstance(value, int):
        return round(value / NS_PER_S, 3)
    return value


def format_duration(nanoseconds):
    seconds = nanoseconds / NS_PER_S
    if seconds and seconds < 1:
        return f"{nanoseconds // 1_000_000}ms"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def format_memory(size):
    for unit, factor in (("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _healthcheck_test(test, what):
    if isinstance(test, str):
        if not test.strip():
            raise InputError(f"{what}: an empty health check command", key=what)
        return ["CMD-SHELL", test]
    if not isinstance(test, list) or not test or not all(isinstance(x, str) for x in test):
        raise InputError(f"{what}: expected a shell command string or a list such as [CMD, mcp-healthcheck]",
                         key=what)
    if test[0] in ("CMD", "CMD-SHELL", "NONE"):
        return list(test)
    return ["CMD"] + list(test)


def normalise(wanted):
    """The module's options -> API-shaped values, validated; unknown or bad values raise InputError naming the key."""
    out = {}
    health = wanted.get("healthcheck")
    if health:
        api = {}
        for key, value in health.items():
            if value is None:
                continue
            if key not in _HEALTHCHECK_KEYS:
                raise InputError(f"healthcheck.{key}: unknown key (known: {', '.join(_HEALTHCHECK_KEYS)})",
                                 key=f"healthcheck.{key}")
            if key == "test":
                api["Test"] = _healthcheck_test(value, "healthcheck.test")
            elif key == "retries":
                api["Retries"] = _non_negative_int(value, "healthcheck.retries")
            else:
                api[_HEALTHCHECK_KEYS[key]] = parse_duration(value, f"healthcheck.{key}")
        if api and "Test" not in api:
            raise InputError("healthcheck.test: a health check needs a test (the command that proves the service "
                             "works, for example [CMD, mcp-healthcheck])", key="healthcheck.test")
        out["healthcheck"] = api
    for section in ("limits", "reservations"):
        values = wanted.get(section)
        if values:
            api = {}
            for key, value in values.items():
                if value is None:
                    continue
                if key == "cpus":
                    api["NanoCPUs"] = parse_cpus(value, f"{section}.cpus")
                elif key == "memory":
                    api["MemoryBytes"] = parse_memory(value, f"{section}.memory")
                else:
                    raise InputError(f"{section}.{key}: unknown key (known: cpus, memory)", key=f"{section}.{key}")
            out[section] = api
    restart = wanted.get("restart_policy")
    if restart:
        out["restart_policy"] = _keyed(restart, "restart_policy", _RESTART_KEYS, {"condition": RESTART_CONDITIONS})
    for section, actions in (("update_config", FAILURE_ACTIONS), ("rollback_config", ROLLBACK_FAILURE_ACTIONS)):
        values = wanted.get(section)
        if values:
            out[section] = _keyed(values, section, _UPDATE_KEYS, {"failure_action": actions, "order": ORDERS})
    constraints = wanted.get("placement_constraints")
    if constraints:
        for item in constraints:
            if not isinstance(item, str) or not re.search(r"(==|!=)", item):
                raise InputError(f"placement_constraints: {item!r} is not a constraint such as "
                                 "node.labels.gpu==true", key="placement_constraints")
        out["placement_constraints"] = [c.replace(" ", "") for c in constraints]
    labels = wanted.get("labels")
    if labels:
        out["labels"] = {str(k): str(v) for k, v in labels.items()}
    return out


def _non_negative_int(value, what):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a whole number", key=what) from None
    if number < 0:
        raise InputError(f"{what}: cannot be negative ({value})", key=what)
    return number


def _keyed(values, section, keys, choices):
    api = {}
    for key, value in values.items():
        if value is None:
            continue
        if key not in keys:
            raise InputError(f"{section}.{key}: unknown key (known: {', '.join(keys)})", key=f"{section}.{key}")
        if key in choices and value not in choices[key]:
            raise InputError(f"{section}.{key}: {value!r} is not one of {', '.join(choices[key])}",
                             key=f"{section}.{key}")
        if key in _DURATIONS:
            api[keys[key]] = parse_duration(value, f"{section}.{key}")
        elif key == "max_failure_ratio":
            api[keys[key]] = float(value)
        elif key in ("parallelism", "max_attempts"):
            api[keys[key]] = _non_negative_int(value, f"{section}.{key}")
        else:
            api[keys[key]] = value
    return api


def _has_healthcheck(container_spec):
    test = (container_spec.get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def plan_update(spec, wanted, only_missing=False, enforce=()):
    """Return (new_spec, changes): ``changes`` is a list of {path, before, after} in the module's units.

    ``wanted`` is :func:`normalise`'s output. ``spec`` is never modified.
    """
    new = copy.deepcopy(spec)
    enforce = set(enforce or ())
    changes = []
    task = new.setdefault("TaskTemplate", {})
    container = task.setdefault("ContainerSpec", {})

    def record(path, before, after):
        if before != after:
            changes.append({"path": path, "before": format_value(path, before), "after": format_value(path, after)})

    def keep(section, key_path):
        return only_missing and f"{section}.{key_path}" not in enforce

    health = wanted.get("healthcheck")
    if health:
        current = container.get("Healthcheck") or {}
        if not (only_missing and _has_healthcheck(container)) or "healthcheck" in enforce:
            merged = dict(health)
            if not only_missing:
                merged = {**current, **health} if _has_healthcheck(container) else dict(health)
            for module_key, api_key in _HEALTHCHECK_KEYS.items():
                if api_key in merged or api_key in current:
                    record(f"healthcheck.{module_key}", current.get(api_key), merged.get(api_key))
            container["Healthcheck"] = merged

    resources = task.setdefault("Resources", {})
    for section, api_section in (("limits", "Limits"), ("reservations", "Reservations")):
        values = wanted.get(section)
        if not values:
            continue
        current = resources.get(api_section) or {}
        merged = dict(current)  # keeps GenericResources (GPU reservations) and Pids
        for api_key, module_key in (("NanoCPUs", "cpus"), ("MemoryBytes", "memory")):
            if api_key not in values:
                continue
            if current.get(api_key) and keep(section, module_key):
                continue
            record(f"{section}.{module_key}", current.get(api_key), values[api_key])
            merged[api_key] = values[api_key]
        resources[api_section] = merged

    restart = wanted.get("restart_policy")
    if restart:
        current = task.get("RestartPolicy") or {}
        merged = dict(current)
        for module_key, api_key in _RESTART_KEYS.items():
            if api_key not in restart:
                continue
            if api_key in current and keep("restart_policy", module_key):
                continue
            record(f"restart_policy.{module_key}", current.get(api_key), restart[api_key])
            merged[api_key] = restart[api_key]
        task["RestartPolicy"] = merged

    for section, api_section in (("update_config", "UpdateConfig"), ("rollback_config", "RollbackConfig")):
        values = wanted.get(section)
        if not values:
            continue
        current = new.get(api_section) or {}
        merged = dict(current)
        for module_key, api_key in _UPDATE_KEYS.items():
            if api_key not in values:
                continue
            if api_key in current and keep(section, module_key):
                continue
            record(f"{section}.{module_key}", current.get(api_key), values[api_key])
            merged[api_key] = values[api_key]
        new[api_section] = merged

    constraints = wanted.get("placement_constraints")
    if constraints:
        placement = task.setdefault("Placement", {})
        current = list(placement.get("Constraints") or [])
        normalised = [c.replace(" ", "") for c in current]
        added = [c for c in constraints if c not in normalised]
        if added:
            record("placement_constraints", current, current + added)
            placement["Constraints"] = current + added

    labels = wanted.get("labels")
    if labels:
        current = new.get("Labels") or {}
        merged = dict(current)
        for key, value in labels.items():
            if key in current and keep("labels", key):
                continue
            record(f"labels.{key}", current.get(key), value)
            merged[key] = value
        new["Labels"] = merged

    if not changes:
        return copy.deepcopy(spec), []
    return new, changes


def diff_text(changes):
    """The changes as YAML-ish lines for Ansible's diff (before/after)."""
    before = "".join(f"{c['path']}: {c['before']}\n" for c in changes)
    after = "".join(f"{c['path']}: {c['after']}\n" for c in changes)
    return before, after


# --------------------------------------------------------------------------------------------- rollouts

# Task states that mean the task ran (or runs) the wanted spec to the end of its life; running = healthy, since
# Swarm keeps a task with a health check in "starting" until the check passes.
_TASK_DONE_BAD = {"failed", "rejected", "orphaned", "remove"}


def classify_rollout(service, tasks, nodes=None):
    """(state, detail) of a service's latest update from its inspect and its tasks.

    state: ``converged`` (update completed or none needed, desired replicas running), ``rolled_back`` (the update
    failed and Swarm rolled back), ``paused`` (the update failed and paused), ``updating``/``converging`` (under
    way), ``degraded`` (the update is done but fewer tasks run than desired, with the reason read off the tasks
    and nodes).
    """
    update = service.get("UpdateStatus") or {}
    status = update.get("State")
    message = update.get("Message") or ""
    desired = _desired_replicas(service, nodes)
    running = [t for t in tasks if t.get("DesiredState") == "running"
               and (t.get("Status") or {}).get("State") == "running"]
    if status in ("rollback_completed",):
        return "rolled_back", (message or "the update failed and Swarm rolled it back") + _last_failure(tasks)
    if status in ("paused", "rollback_paused"):
        return "paused", (message or f"update {status}") + _last_failure(tasks)
    if status in ("updating", "rollback_started"):
        return "updating", (message or status) + _task_errors(tasks, nodes)
    if desired is not None and len(running) < desired:
        return "converging", f"{len(running)} of {desired} tasks running" + _task_errors(tasks, nodes)
    return "converged", f"{len(running)} task(s) running" + (f" ({message})" if message else "")


def _last_failure(tasks):
    failed = [t for t in tasks if (t.get("Status") or {}).get("State") in _TASK_DONE_BAD
              or ((t.get("Status") or {}).get("Err") and (t.get("Status") or {}).get("State") != "running")]
    if not failed:
        return ""
    last = max(failed, key=lambda t: (t.get("Status") or {}).get("Timestamp") or "")
    status = last.get("Status") or {}
    return f"; last failed task: {status.get('Err') or status.get('Message') or status.get('State')}"


# swarmkit's constraint enforcer (manager/orchestrator/constraintenforcer) re-checks the tasks of a node each time
# the node object is updated (a label, a network attachment allocated or released as the first or last task of a
# network lands on or leaves it). For generic resources its test is inverted: a task whose assigned resource IS
# still on the node is rejected with this error. A GPU task is thus rejected whenever its node changes, and an
# update that replaces the only task of a network on the GPU node (stop-first) changes the node every time.
ENFORCER_REJECTION = "assigned node no longer meets constraints"


def rejected_by_enforcer(tasks):
    """True when the latest failed task was a GPU (generic-resource) task rejected by the constraint enforcer.

    Such a rejection says nothing about the new spec: the same update sent again succeeds once the node stops
    changing (see ``ENFORCER_REJECTION``).
    """
    failed = [t for t in tasks if (t.get("Status") or {}).get("State") in _TASK_DONE_BAD]
    if not failed:
        return False
    last = max(failed, key=lambda t: (t.get("Status") or {}).get("Timestamp") or "")
    # The engine returns a task's assigned generic resources as "GenericResources" (swarmkit's
    # AssignedGenericResources).
    return bool(last.get("GenericResources") or last.get("AssignedGenericResources")) and \
        ENFORCER_REJECTION in ((last.get("Status") or {}).get("Err") or "")


def force_again(spec):
    """The spec with ``TaskTemplate.ForceUpdate`` raised by one: the engine replaces the tasks again."""
    out = copy.deepcopy(spec)
    template = out.setdefault("TaskTemplate", {})
    template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
    return out


def _desired_replicas(service, nodes):
    mode = (service.get("Spec") or {}).get("Mode") or {}
    if "Replicated" in mode:
        return (mode["Replicated"] or {}).get("Replicas", 1)
    if "Global" in mode and nodes is not None:
        return sum(1 for n in nodes if (n.get("Status") or {}).get("State") == "ready"
                   and (n.get("Spec") or {}).get("Availability") == "active")
    return None


def _task_errors(tasks, nodes):
    down = {n.get("ID"): (n.get("Description") or {}).get("Hostname", n.get("ID")) for n in nodes or ()
            if (n.get("Status") or {}).get("State") != "ready"}
    reasons = []
    for task in tasks:
        status = task.get("Status") or {}
        if task.get("DesiredState") != "running":
            continue
        if status.get("State") in ("pending", "assigned", "preparing", "starting", "accepted", "new"):
            err = status.get("Err") or status.get("Message")
            reasons.append(f"task {task.get('Slot', '?')} {status.get('State')}" + (f": {err}" if err else ""))
        if task.get("NodeID") in down:
            reasons.append(f"node {down[task['NodeID']]} is down")
    for name in sorted(set(down.values())):
        if f"node {name} is down" not in reasons:
            reasons.append(f"node {name} is down")
    return f" ({'; '.join(dict.fromkeys(reasons))})" if reasons else ""


# ----------------------------------------------------------------------------------------------- client

def connect(params):
    """A counting Docker API client (module_utils/_docker_client.py) on a Swarm manager; clear errors otherwise."""
    client = _docker_client.connect(params)
    host = params.get("docker_host") or _docker_client.DEFAULT_DOCKER_HOST
    try:
        info = client.info()
    except Exception as exc:  # pylint: disable=broad-except
        raise _docker_client.transport_error(host, exc) from None
    _docker_client.check_swarm_member(info, host)
    return client


def _host(client):
    return getattr(client, "base_url", None) or "the Docker engine"


def _read(client, what, call, *args, **kwargs):
    """One API call; a broken connection becomes an ApiError naming the engine (the update may be under way)."""
    try:
        return call(*args, **kwargs)
    except _docker_client.DockerAPIError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        if _docker_client.HAS_DOCKER and isinstance(exc, (_docker_client.requests.exceptions.RequestException,
                                                          _docker_client.DockerException)):
            raise _docker_client.transport_error(_host(client), exc, action=what) from None
        raise


def service_tasks(client, service):
    return _read(client, f"read the tasks of {service['Spec']['Name']} from", client.tasks,
                 filters={"service": service["ID"]})


def get_service(client, name):
    try:
        return _read(client, f"read service {name} from", client.inspect_service, name)
    except _docker_client.DockerAPIError as exc:
        if exc.status_code == 404:
            raise InputError(f"service {name!r} does not exist in this Swarm (docker service ls): fix the name or "
                             "remove it from the variables", reason="service_missing", service=name) from None
        raise ApiError(f"reading service {name!r} failed: {exc}", reason="api", service=name) from None


def update_service(client, service, new_spec):
    """Send ``new_spec`` as the service's spec at its current version (the engine refuses a stale version).

    ``new_spec`` is the whole spec read a moment ago with the changes applied, so the SDK need not read it again
    (``fetch_current_spec=False``: one request, not two).
    """
    spec = new_spec
    try:
        _read(client, f"update service {spec.get('Name')} on", client.update_service,
              service["ID"], service["Version"]["Index"], task_template=spec.get("TaskTemplate"),
              name=spec.get("Name"), labels=spec.get("Labels"), mode=spec.get("Mode"),
              update_config=spec.get("UpdateConfig"), rollback_config=spec.get("RollbackConfig"),
              networks=spec.get("Networks"), endpoint_spec=spec.get("EndpointSpec"), fetch_current_spec=False)
    except _docker_client.DockerAPIError as exc:
        raise ApiError(f"updating service {spec.get('Name')!r} failed: {exc}", reason="api",
                       service=spec.get("Name")) from None


def wait_rollout(client, name, timeout, previous_update=None, expect_update=True, poll=1.0, clock=time.monotonic,
                 sleep=time.sleep, on_poll=None):
    """Poll until the service's update converges, rolls back or pauses, or ``timeout`` seconds pass.

    ``previous_update`` is the service's ``UpdateStatus`` before the change: an update counts as started once the
    engine shows another one (the old status may say ``completed`` already). A change that restarts no task
    (``expect_update`` false: update or rollback config, labels) only waits for the tasks to run.
    ``on_poll(tasks, done)`` is called on every round (``done``: the rollout is over); a number it returns is the
    next round's interval (the front door's hold polls faster while it holds).
    Returns {state, detail, seconds}; ``state`` ``timeout`` when the deadline passed first.
    """
    start = clock()
    previous = (previous_update or {}).get("StartedAt")
    while True:
        service = get_service(client, name)
        tasks = _read(client, f"follow the rollout of {name} on", client.tasks, filters={"service": service["ID"]})
        nodes = _read(client, f"follow the rollout of {name} on", client.nodes)
        state, detail = classify_rollout(service, tasks, nodes)
        update = service.get("UpdateStatus") or {}
        started = not expect_update or (update.get("StartedAt") and update.get("StartedAt") != previous)
        elapsed = clock() - start
        done = bool(started) and state in ("rolled_back", "paused", "converged")
        interval = on_poll(tasks, done) if on_poll else None
        if done:
            return {"state": state, "detail": detail, "seconds": round(elapsed, 1)}
        if elapsed > timeout:
            if not started:
                detail = f"the engine never started the update ({detail})"
            return {"state": "timeout", "detail": f"not converged after {timeout}s: {detail}",
                    "seconds": round(elapsed, 1)}
        sleep(interval or poll)
