#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_service_update
short_description: Give a running Swarm service a health check, limits, a restart policy and a safe update config
version_added: 0.1.0
description:
  - Changes only the parts of a running Docker Swarm service's spec that it is given - health check, CPU and memory
    limits and reservations, restart policy, update and rollback config, placement constraints, service labels -
    and sends the rest of the current spec back as it is, so image, environment, secrets, configs, networks,
    ports, GPU reservations (generic resources) and the stack's labels stay untouched.
  - With O(only_missing) it fills only what the service lacks (a health check it has is kept whole; limits,
    reservations, restart policy, update and rollback config key by key) except the keys in O(enforce), which are
    set whatever the service has. This is how role C(sophia_ai.platform.swarm_stabilize) adds what is missing
    without overriding what teams chose.
  - Nothing is sent when the spec already holds (no restart for nothing). Otherwise the change is one update call
    at the spec version read, and with O(wait) the module follows the rolling update it starts until it
    converges (every desired task running; a task with a health check runs only once the check passes), rolls
    back, pauses, or O(wait_timeout) passes. A health check that never passes makes Swarm roll the service back
    when its update config says C(failure_action=rollback); the module reports C(rollout.state=rolled_back) and,
    with O(fail_on_rollback), fails.
  - "Why our own module: C(community.docker.docker_swarm_service) (community.docker 4.8.5) builds the whole
    service spec from its own options, so an update that names only a health check drops the environment,
    secrets, configs, networks and ports that a stack gave the service unless each is repeated; it cannot express
    generic resources, so it would strip the C(NVIDIA-GPU) reservations of GPU services; it has no way to fill
    only what is missing; and it does not wait for the rolling update or report a rollback."
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._docker_connection
  - sophia_ai.platform._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the service and says what would change; sends nothing.
  diff_mode:
    support: full
    details:
      - One line per changed key, before and after, in the units of the options (C(256M), C(10s), C(0.5)).
  idempotent:
    support: full
    details:
      - When every given key already holds, nothing is sent and C(changed) is false.
options:
  name:
    description: The service's name (with its stack prefix, for example C(sophia_mcp-asana)) or ID.
    type: str
    required: true
  healthcheck:
    description:
      - The container health check. O(healthcheck.test) is a list (V([CMD, mcp-healthcheck]); a list without
        C(CMD)/C(CMD-SHELL)/C(NONE) first gets C(CMD)) or a shell command string (run with C(CMD-SHELL)).
      - Durations are seconds or Go durations (V(10s), V(1m30s), V(500ms)).
    type: dict
    suboptions:
      test:
        description: The command.
        type: raw
      interval:
        description: Time between checks.
        type: raw
      timeout:
        description: Time one check may take.
        type: raw
      retries:
        description: Consecutive failures before the task counts as unhealthy.
        type: int
      start_period:
        description: Start-up time during which failures do not count.
        type: raw
  limits:
    description: CPU (V(0.5)) and memory (V(256M), binary units) limits.
    type: dict
    suboptions:
      cpus:
        description: CPUs.
        type: float
      memory:
        description: Memory.
        type: str
  reservations:
    description:
      - CPU and memory reservations. Generic resources (GPUs) the service reserves are kept.
    type: dict
    suboptions:
      cpus:
        description: CPUs.
        type: float
      memory:
        description: Memory.
        type: str
  restart_policy:
    description: When Swarm restarts the service's tasks.
    type: dict
    suboptions:
      condition:
        description: Restart condition.
        type: str
        choices: [none, on-failure, any]
      delay:
        description: Delay between restarts.
        type: raw
      max_attempts:
        description: Restarts before giving up (0 - no limit).
        type: int
      window:
        description: Window in which restarts are counted.
        type: raw
  update_config:
    description:
      - How Swarm rolls out a new spec. V(failure_action=rollback) makes a failed update return to the previous
        spec by itself.
    type: dict
    suboptions:
      parallelism:
        description: Tasks updated at once.
        type: int
      delay:
        description: Delay between batches.
        type: raw
      failure_action:
        description: What a failed update does.
        type: str
        choices: [pause, continue, rollback]
      monitor:
        description: Time a new task is watched for failure.
        type: raw
      max_failure_ratio:
        description: Failure ratio tolerated during the update.
        type: float
      order:
        description: Stop the old task first, or start the new one first (zero downtime, needs the room).
        type: str
        choices: [stop-first, start-first]
  rollback_config:
    description: How Swarm rolls back; the keys of O(update_config), O(update_config.failure_action) without V(rollback).
    type: dict
    suboptions:
      parallelism:
        description: Tasks rolled back at once.
        type: int
      delay:
        description: Delay between batches.
        type: raw
      failure_action:
        description: What a failed rollback does.
        type: str
        choices: [pause, continue]
      monitor:
        description: Time a task is watched for failure.
        type: raw
      max_failure_ratio:
        description: Failure ratio tolerated.
        type: float
      order:
        description: Stop first or start first.
        type: str
        choices: [stop-first, start-first]
  placement_constraints:
    description: Constraints added when missing (never removed), for example V(node.labels.gpu==true).
    type: list
    elements: str
  labels:
    description: Service labels added or changed (others kept).
    type: dict
  only_missing:
    description: Set only the keys the service lacks (see the description), except those in O(enforce).
    type: bool
    default: false
  enforce:
    description:
      - Dotted keys set even with O(only_missing), for example V(update_config.failure_action) or V(healthcheck)
        (the whole health check).
    type: list
    elements: str
    default: []
  wait:
    description: Follow the rolling update until it converges, rolls back or pauses.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the rollout.
    type: int
    default: 300
  fail_on_rollback:
    description:
      - Fail when the rollout rolled back, paused or timed out (the change was sent; C(changed) is true and
        C(rollout) says what happened). When false the task succeeds and the caller reads C(rollout.state).
    type: bool
    default: true
  rejection_retries:
    description:
      - How many times to send the update again when it failed only because Swarm's constraint enforcer
        rejected a GPU task ("assigned node no longer meets constraints" on a task holding generic resources).
      - The enforcer re-checks a node's tasks whenever the node object changes (a label; a network attachment
        allocated or released as the first or last task of a network lands on or leaves the node) and, for
        generic resources, its test is inverted in swarmkit (a task whose resource is still there is rejected),
        so such a rejection says nothing about the new spec. A rolled back update is planned and sent again; a
        paused one is resumed by raising C(ForceUpdate). V(0) turns this off.
      - For GPU services, C(update_config.order=start-first) avoids most of these rejections (the node keeps its
        network attachment while the new task starts); role C(sophia_ai.platform.swarm_stabilize) sets it where
        the GPU nodes have room.
    type: int
    default: 2
  front_door:
    description:
      - The front door (role M(sophia_ai.platform.front_door)) in front of the service. When the update would leave
        the service with no running task - a stop-first update that replaces every task at once, as for the one
        task of a single-replica service with a host-mode port - the front door holds the service's new requests
        (the role's Lua hold, as M(sophia_ai.platform.bluegreen_cutover) does for a stateful move) from just
        before the update is sent until a task the update started is up and the front
        door has seen the service's server come back; then the held requests go on. Requests wait a few seconds
        instead of failing.
      - Nothing is held in check mode, when nothing changes, when the change restarts no task (update or
        rollback config, labels), with O(wait=false), for start-first updates, while other tasks keep running, or
        for a service the front door has no backend for (no published port; C(hold.skipped) says so).
      - Runs where the runtime API is reachable (a unix socket on this host, or C(tcp://HOST:PORT)).
    type: dict
    suboptions:
      socket:
        description: HAProxy's runtime API (the role's C(front_door_socket)).
        type: str
        required: true
      hold_map:
        description: The hold map (the role's C(front_door_hold_map)).
        type: str
        default: /etc/haproxy/sophia-held.map
      backend:
        description: The service's backend at the front door (default its name without the stack prefix).
        type: str
      hold_timeout:
        description:
          - Seconds after which the hold ends whatever happened (the role's C(front_door_hold_max_ms) ends it
            inside HAProxy anyway; keep this below it).
        type: float
        default: 25
      drain_timeout:
        description: Seconds to wait, once the hold is in place, for requests already at the service to end.
        type: float
        default: 5
requirements:
  - docker (Python SDK) >= 7.0 on the host that talks to the engine
seealso:
  - module: sophia_ai.platform.swarm_audit
  - module: community.docker.docker_swarm_service
"""

EXAMPLES = r"""
- name: Give a service a health check and limits where it has none, and make failed updates roll back
  sophia_ai.platform.swarm_service_update:
    name: sophia_mcp-asana
    healthcheck:
      test: [CMD, mcp-healthcheck]
      interval: 10s
      timeout: 5s
      retries: 3
      start_period: 20s
    limits: {cpus: 0.5, memory: 256M}
    reservations: {cpus: 0.1, memory: 64M}
    restart_policy: {condition: any, delay: 5s}
    update_config: {parallelism: 1, failure_action: rollback, monitor: 20s, order: start-first}
    only_missing: true
    enforce: [update_config.failure_action]

- name: Pin a GPU service to the GPU nodes, report instead of failing when it rolls back
  sophia_ai.platform.swarm_service_update:
    name: sophia_mcp-embeddings
    placement_constraints: [node.labels.gpu==true]
    fail_on_rollback: false
  register: pinned

- name: Fill what a single-replica service lacks; the front door holds its requests while its one task is replaced
  sophia_ai.platform.swarm_service_update:
    name: sophia_mcp-gong
    healthcheck: {test: [CMD, mcp-healthcheck], interval: 10s, start_period: 20s}
    update_config: {order: stop-first, failure_action: rollback}
    only_missing: true
    front_door:
      socket: /run/haproxy/admin.sock
      hold_map: /etc/haproxy/sophia-held.map
  register: gong

- name: What would change (nothing is sent)
  sophia_ai.platform.swarm_service_update:
    name: sophia_mcp-slack
    limits: {cpus: 1, memory: 512M}
  check_mode: true
  diff: true
"""

RETURN = r"""
service:
  description: The service's name, ID and spec version before (and after, when changed) the update.
  returned: always
  type: dict
  sample: {name: sophia_mcp-asana, id: 29mczeueajj9, version_before: 131, version_after: 140}
changes:
  description: Every key changed (or that would change, in check mode), with before and after values.
  returned: always
  type: list
  elements: dict
  sample: [{path: limits.memory, before: null, after: 256M}, {path: update_config.failure_action, before: pause,
            after: rollback}]
rollout:
  description:
    - What the rolling update did. C(state) is V(converged), V(rolled_back), V(paused), V(timeout), V(not_waited)
      or V(none) (nothing sent).
  returned: always
  type: dict
  sample: {state: converged, detail: "1 task(s) running", seconds: 17.4, retries: 0}
hold:
  description:
    - With O(front_door) - whether the front door held the service's requests during the update, for how long
      (C(seconds), from the hold to its release) and why it ended (C(released) - V(back) the new task is up and its
      front door server came back, V(stayed_up) its server stayed healthy 3 s after the new task came up,
      V(rollout_done), V(timeout), V(finished) or V(error)); C(rounds) has one entry
      per update sent, with the drain of the requests that were at the service when the hold began; C(skipped)
      says why a service that needed a hold was not held (the front door has no backend for it).
  returned: when O(front_door) is given
  type: dict
  sample: {held: true, backend: mcp-gong, skipped: null, seconds: 7.412, released: back,
           rounds: [{drain: {servers: [swarm], complete: true, sessions_left: {}, waited_s: 0.0}, released: back,
                     seconds: 7.412}]}
rejections:
  description: The constraint-enforcer rejections that made the module send the update again (O(rejection_retries)).
  returned: when an update was sent again
  type: list
  elements: str
  sample: ["update rolled back due to failure or early termination of task x; last failed task: assigned node no
            longer meets constraints"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy, _swarm_hold
from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_service as svc
from ansible_collections.sophia_ai.platform.plugins.module_utils._docker_client import DOCKER_CONNECTION_SPEC
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError

_DURATION = {"type": "raw"}
_UPDATE = {"parallelism": {"type": "int"}, "delay": _DURATION, "monitor": _DURATION,
           "max_failure_ratio": {"type": "float"}, "order": {"type": "str", "choices": list(svc.ORDERS)}}


def argument_spec():
    return {
        "name": {"type": "str", "required": True},
        **DOCKER_CONNECTION_SPEC,
        "healthcheck": {"type": "dict", "options": {"test": {"type": "raw"}, "interval": _DURATION,
                                                    "timeout": _DURATION, "retries": {"type": "int"},
                                                    "start_period": _DURATION}},
        "limits": {"type": "dict", "options": {"cpus": {"type": "float"}, "memory": {"type": "str"}}},
        "reservations": {"type": "dict", "options": {"cpus": {"type": "float"}, "memory": {"type": "str"}}},
        "restart_policy": {"type": "dict", "options": {
            "condition": {"type": "str", "choices": list(svc.RESTART_CONDITIONS)}, "delay": _DURATION,
            "max_attempts": {"type": "int"}, "window": _DURATION}},
        "update_config": {"type": "dict", "options": dict(_UPDATE, failure_action={
            "type": "str", "choices": list(svc.FAILURE_ACTIONS)})},
        "rollback_config": {"type": "dict", "options": dict(_UPDATE, failure_action={
            "type": "str", "choices": list(svc.ROLLBACK_FAILURE_ACTIONS)})},
        "placement_constraints": {"type": "list", "elements": "str"},
        "labels": {"type": "dict"},
        "only_missing": {"type": "bool", "default": False},
        "enforce": {"type": "list", "elements": "str", "default": []},
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 300},
        "fail_on_rollback": {"type": "bool", "default": True},
        "rejection_retries": {"type": "int", "default": 2},
        "front_door": {"type": "dict", "options": {
            "socket": {"type": "str", "required": True},
            "hold_map": {"type": "str", "default": "/etc/haproxy/sophia-held.map"},
            "backend": {"type": "str"},
            "hold_timeout": {"type": "float", "default": 25.0},
            "drain_timeout": {"type": "float", "default": 5.0}}},
    }


def front_door_hold(params, service, new_spec, tasks):
    """A FrontDoorHold when ``front_door`` is given and the update would leave the service without a task."""
    front = params.get("front_door")
    if not front or not _swarm_hold.gap_expected(new_spec, tasks):
        return None
    return _swarm_hold.FrontDoorHold(_haproxy.RuntimeApi(front["socket"]),
                                     front.get("backend") or _swarm_hold.backend_of(service), front["hold_map"],
                                     timeout=front["hold_timeout"], drain_timeout=front["drain_timeout"])


def run(module):
    params = module.params
    wanted = svc.normalise({key: params[key] for key in svc.SECTIONS})
    client = svc.connect(params)
    service = svc.get_service(client, params["name"])
    new_spec, changes = svc.plan_update(service["Spec"], wanted, params["only_missing"], params["enforce"])
    result = {"changed": bool(changes), "changes": changes,
              "service": {"name": service["Spec"]["Name"], "id": service["ID"],
                          "version_before": service["Version"]["Index"]},
              "rollout": {"state": "none", "detail": "nothing to change", "seconds": 0}}
    if params.get("front_door"):
        result["hold"] = {"held": False, "backend": None, "skipped": None, "seconds": 0, "released": None, "rounds": []}
    if module._diff and changes:
        before, after = svc.diff_text(changes)
        result["diff"] = {"before": before, "after": after, "before_header": service["Spec"]["Name"],
                          "after_header": service["Spec"]["Name"]}
    if not changes or module.check_mode:
        if changes:
            result["rollout"] = {"state": "none", "detail": "check mode: nothing sent", "seconds": 0}
        return result
    restarts = new_spec.get("TaskTemplate") != service["Spec"].get("TaskTemplate")
    tasks = svc.service_tasks(client, service) if (params.get("front_door") and restarts) else []
    holder = front_door_hold(params, service, new_spec, tasks) if (restarts and params["wait"]) else None
    retries = 0
    try:
        while True:
            if holder:
                holder.begin(tasks)
            svc.update_service(client, service, new_spec)
            if not params["wait"]:
                result["rollout"] = {"state": "not_waited", "detail": "wait is false", "seconds": 0}
                break
            rollout = svc.wait_rollout(client, params["name"], params["wait_timeout"],
                                       previous_update=service.get("UpdateStatus"), expect_update=restarts,
                                       on_poll=holder.poll if holder else None)
            if holder:
                holder.settle(lambda: svc.service_tasks(client, svc.get_service(client, params["name"])))
            if rollout["state"] not in ("rolled_back", "paused") or retries >= params["rejection_retries"]:
                break
            service = svc.get_service(client, params["name"])
            tasks = svc.service_tasks(client, service)
            if not svc.rejected_by_enforcer(tasks):
                break
            # Rolled back: the service is on its old spec again, so the same change is planned and sent again.
            # Paused: the service already has the new spec; raising ForceUpdate makes the engine replace the tasks.
            retries += 1
            result.setdefault("rejections", []).append(rollout["detail"])
            if rollout["state"] == "paused":
                new_spec = svc.force_again(service["Spec"])
            else:
                new_spec, again = svc.plan_update(service["Spec"], wanted, params["only_missing"],
                                                  params["enforce"])
                if not again:
                    break
    except BaseException:
        if holder:
            holder.end("error")
        raise
    if holder:
        holder.end()
    if holder:
        result["hold"] = holder.report()
    if params["wait"]:
        result["rollout"] = dict(rollout, retries=retries)
    result["service"]["version_after"] = svc.get_service(client, params["name"])["Version"]["Index"]
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module)
    except PlatformError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    state = result["rollout"]["state"]
    if module.params["fail_on_rollback"] and state in ("rolled_back", "paused", "timeout"):
        module.fail_json(msg=f"service {result['service']['name']}: the update {state.replace('_', ' ')}: "
                         f"{result['rollout']['detail']}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
