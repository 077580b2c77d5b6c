#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_audit
short_description: Audit a Docker Swarm (nodes, services, failed tasks) and write a report
version_added: 0.1.0
description:
  - Reads a whole Docker Swarm through a manager's Docker API with one list call per kind (C(/info), C(/nodes),
    C(/services?status=true), C(/tasks), C(/networks)), never one call per service or node, and returns facts
    about the Swarm, its nodes (role, availability, state, labels, CPUs, memory, generic resources such as GPUs)
    and its services (image, mode, replicas desired and running, criticality, health check, limits and
    reservations, GPU reservations, placement, update, rollback and restart policies, endpoint mode, published
    ports, networks, secrets, configs), plus the tasks that failed or restarted in the last O(task_window)
    seconds.
  - It returns findings, each naming the service or node, what was seen, what is wanted and the fix -
    C(no_healthcheck), C(no_limits) (no CPU or no memory limit), C(no_reservations) (no CPU and no memory
    reservation), C(single_replica_critical), C(no_rollback_on_failure) (no update_config, or a failure action
    other than rollback), C(no_restart_policy) (none set, or condition none), C(gpu_unpinned) (a GPU service whose
    placement constraints admit a node that advertises none of the GPU kind it reserves), C(gpu_network_alone) (a
    GPU service updated stop-first whose task is the only one of one of its networks on its node; swarmkit's
    constraint enforcer rejects tasks that hold generic resources whenever their node changes, and such an update
    changes the node's network attachments each time, so the update can fail over and over),
    C(placement_unsatisfiable), C(port_clash) (two services publishing the same port and protocol, in ingress
    mode anywhere or in host mode where both can land on the same node; or more host-mode replicas than nodes),
    C(tasks_failing), C(node_unavailable) (down, drained or paused), C(replicas_short) (fewer tasks running than
    desired), C(criticality_label_invalid), C(constraint_unevaluated) and C(scaled_to_zero).
  - Placement constraints are evaluated the way swarmkit does for C(node.labels.X), C(engine.labels.X),
    C(node.role), C(node.hostname), C(node.id), C(node.ip), C(node.platform.os) and C(node.platform.arch) with
    C(==) and C(!=) (values compared case-insensitively, a missing label is the empty string), against every node
    whatever its availability.
  - With O(report_dir) it writes C(<report_name>.md) (for people) and C(<report_name>.json) (for machines)
    atomically, mode 0644; C(changed) is true only when the report's content, other than its timestamp, differs
    from the files already there.
  - The number of HTTP requests sent to the engine, the API version negotiation included, is counted at the
    HTTP layer of the docker SDK's client and returned as RV(api_calls); it does not grow with the number of
    services.
  - Why not community.docker.docker_swarm_info - it calls C(/swarm) and one list per kind, but lists services
    without C(status=true) (no running or desired task counts), resolves each task's node with one more request
    per task unless it returns raw objects, computes no findings, writes no report and counts no requests. This
    module uses the same docker SDK (low-level C(docker.APIClient)) with one list per kind, and does the rest on
    the replies.
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._docker_connection
  - sophia_ai.platform._attributes
attributes:
  check_mode:
    support: full
    details:
      - The Swarm is only read. In check mode no report is written; C(changed) says whether it would be.
  diff_mode:
    support: full
    details:
      - With O(report_dir), the Markdown report before and after.
  idempotent:
    support: full
    details:
      - A second run writes nothing and reports no change unless the Swarm changed.
options:
  task_window:
    description:
      - Tasks that failed, were rejected or orphaned, or completed (a long-running task's container exited and
        Swarm started another) less than this many seconds ago are reported in RV(tasks) and counted in each
        service's C(restarts_in_window).
    type: int
    default: 3600
  critical_label:
    description:
      - The service label that holds C(critical) or C(non-critical), read from the service's labels (a stack's
        C(deploy.labels)) first, then from its containers' labels. A service without it is C(critical), as
        M(sophia_ai.platform.compose_convert) assumes.
    type: str
    default: sophia.ai/criticality
  min_critical_replicas:
    description:
      - Fewest replicas a critical replicated service should run; fewer (but not zero) is a
        C(single_replica_critical) finding.
    type: int
    default: 2
  gpu_resource_kinds:
    description:
      - Swarm generic resource kinds that are GPUs (what C(dockerd --node-generic-resource) advertises and
        services reserve).
    type: list
    elements: str
    default: [NVIDIA-GPU, GPU]
  stacks:
    description:
      - Audit only the services of these stacks (label C(com.docker.stack.namespace)); empty audits every
        service. The whole Swarm is still read, and port clashes with services of other stacks are reported.
    type: list
    elements: str
    default: []
  report_dir:
    description:
      - Directory to write the report to (created with mode 0755 when missing). Without it no file is written.
    type: path
  report_name:
    description:
      - Base name of the report files, for example V(before) and V(after) around a change.
    type: str
    default: swarm-audit
requirements:
  - docker (the Docker SDK for Python; the collection pins it in requirements/constraints.txt)
notes:
  - A health check that only the image defines (Dockerfile C(HEALTHCHECK)) is not seen; the audit reads service
    specs, not images (that would take one request per image on every node).
  - The module must run against a manager; a worker's engine refuses to list the Swarm's objects.
seealso:
  - module: community.docker.docker_swarm_info
  - module: sophia_ai.platform.compose_convert
"""

EXAMPLES = r"""
- name: Audit the Swarm and write the report
  sophia_ai.platform.swarm_audit:
    report_dir: /var/lib/sophia/reports
  register: audit

- name: List the services without a health check
  ansible.builtin.debug:
    msg: "{{ audit.findings | selectattr('check', 'equalto', 'no_healthcheck') | map(attribute='service') | list }}"

- name: Audit one stack on a remote manager over TLS, as the "before" report of phase 1
  sophia_ai.platform.swarm_audit:
    docker_host: tcp://10.0.0.5:2376
    validate_certs: true
    ca_path: /etc/docker/certs/ca.pem
    client_cert: /etc/docker/certs/cert.pem
    client_key: /etc/docker/certs/key.pem
    stacks: [sophia]
    task_window: 900
    report_dir: /var/lib/sophia/reports
    report_name: before

- name: Show what the report would say, writing nothing
  sophia_ai.platform.swarm_audit:
    report_dir: /var/lib/sophia/reports
  check_mode: true
  diff: true
"""

RETURN = r"""
msg:
  description: One line on what was audited and found.
  returned: always
  type: str
  sample: "28 services on 1 node: 20 errors, 60 warnings, 0 info; report /tmp/r/swarm-audit.md written"
swarm:
  description: The Swarm, from the manager's C(/info).
  returned: always
  type: dict
  sample:
    id: 4o5n4elkmqgqbbbggbjzliwh5
    created: "2026-11-26T02:59:09.313997785Z"
    managers: 1
    workers: 0
    default_addr_pool: [10.0.0.0/8]
    subnet_size: 24
    data_path_port: 4789
    is_manager: true
    node_id: 2fze2obn2qpmklrjc50r72att
    node_addr: 127.0.0.1
    engine_name: vm
    engine_version: 20.10.24+dfsg1
    api_version: "1.41"
    task_history_retention_limit: 5
    leader: vm
nodes:
  description:
    - Every node; C(generic_resources) counts each kind a node advertises (a named resource counts 1).
    - Also C(message), C(reachability) (managers), C(engine_labels) and C(platform) (C(os), C(arch)).
  returned: always
  type: list
  elements: dict
  sample:
    - id: 2fze2obn2qpmklrjc50r72att
      hostname: vm
      role: manager
      availability: active
      state: ready
      leader: true
      addr: 127.0.0.1
      labels: {gpu: "true"}
      engine_version: 20.10.24+dfsg1
      nano_cpus: 2000000000
      memory_bytes: 25276063744
      generic_resources: {NVIDIA-GPU: 4}
services:
  description:
    - The audited services. C(version) is the spec's version index, C(stack) the C(com.docker.stack.namespace)
      label (or null), C(mode) V(replicated), V(global), V(replicated-job) or V(global-job).
    - C(healthcheck), C(limits), C(reservations), C(gpu), C(update_config), C(rollback_config) and
      C(restart_policy) are null when the spec has none (a health check test of C(NONE) counts as none);
      durations are in seconds, CPUs in cores, memory in bytes.
    - C(ports) come from the service's endpoint (published ports the engine assigned included); C(networks),
      C(secrets) and C(configs) are names; C(restarts_in_window) counts the service's entries in RV(tasks).
    - Also C(replicas) (the spec's count, replicated services), C(image_digest), C(generic_resources) (every kind
      reserved), C(placement.max_replicas_per_node), C(updated) and C(update_state).
  returned: always
  type: list
  elements: dict
  sample:
    - id: swa1bcta2zan2p0p9s6quxq7p
      name: sophia_mcp-gong
      version: 52
      stack: sophia
      image: sophia-platform/mcp-server:8950e4d13a90
      mode: replicated
      replicas_desired: 1
      replicas_running: 1
      criticality: critical
      healthcheck: {test: [CMD, mcp-healthcheck], interval_s: 10, timeout_s: 3, retries: 3, start_period_s: 15}
      limits: {cpus: 0.5, memory_bytes: 268435456}
      reservations: {cpus: null, memory_bytes: 67108864}
      gpu: null
      placement: {constraints: [], preferences: []}
      update_config: {parallelism: 1, delay_s: 10, failure_action: rollback, monitor_s: 0, order: stop-first}
      rollback_config: null
      restart_policy: {condition: any, delay_s: 5, max_attempts: 0, window_s: null}
      endpoint_mode: dnsrr
      ports: [{target: 9005, published: 9005, protocol: tcp, mode: host}]
      networks: [sophia_sophia-mcp]
      secrets: [mcp_api_key]
      configs: [sophia_mcp_common]
      labels: {com.docker.stack.namespace: sophia, sophia.ai/criticality: critical}
      restarts_in_window: 0
tasks:
  description:
    - Tasks of the audited services that failed, were rejected or orphaned, or completed, less than
      O(task_window) seconds ago, newest first. C(exit_code) is null when no container ran.
  returned: always
  type: list
  elements: dict
  sample:
    - service: audit-fixture-crashing
      task_id: 7p0hxu1wbc8mcwx3bm1dpm6wa
      slot: 1
      node: vm
      state: failed
      desired_state: shutdown
      error: "task: non-zero exit (3)"
      timestamp: "2026-11-26T03:02:21.278662404Z"
      exit_code: 3
findings:
  description:
    - What the audit found, errors first. Each has C(check), C(severity) (V(error), V(warning) or V(info)),
      C(service) or C(node) (the other is null), C(msg) (the object, what was seen and what is wanted) and
      C(fix). C(port_clash) adds C(services) and C(port), C(gpu_unpinned) adds C(nodes), C(tasks_failing) adds
      C(tasks), C(node_unavailable) adds C(node_id), C(gpu_network_alone) names both the service and the node and
      adds C(network).
  returned: always
  type: list
  elements: dict
  sample:
    - check: gpu_unpinned
      severity: error
      service: gpu-unpinned
      node: null
      msg: "GPU service gpu-unpinned reserves NVIDIA-GPU x1 but its placement (no constraints) admits 1 node ..."
      fix: "add a placement constraint to the GPU nodes, e.g. node.labels.gpu == true, and label them ..."
      nodes: [manager-1]
summary:
  description: Counts of services, nodes, tasks in the window and findings by severity and by check.
  returned: always
  type: dict
  sample:
    services: 28
    nodes: 1
    stacks: [sophia]
    services_with_healthcheck: 14
    services_with_limits: 15
    services_with_restart_policy: 28
    gpu_services: 4
    tasks_in_window: 0
    task_window_s: 3600
    findings: 80
    by_severity: {error: 14, warning: 66, info: 0}
    by_check: {no_healthcheck: 14, no_limits: 13}
report:
  description: With O(report_dir), the report's paths and whether it changed.
  returned: when report_dir is set
  type: dict
  sample: {changed: true, markdown: /var/lib/sophia/reports/swarm-audit.md,
           json: /var/lib/sophia/reports/swarm-audit.json, dir: /var/lib/sophia/reports}
api_calls:
  description: HTTP requests sent to the engine (counted at the HTTP layer, the version negotiation included).
  returned: always
  type: int
  sample: 6
seconds:
  description: Wall time of the audit (connect, read, build, report) in seconds.
  returned: always
  type: float
  sample: 0.09
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._docker_client import (
    DOCKER_CONNECTION_SPEC,
    connect,
)
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._swarm_audit import DEFAULTS, run_audit


def argument_spec():
    spec = {name: dict(option) for name, option in DOCKER_CONNECTION_SPEC.items()}
    spec.update(
        task_window={"type": "int", "default": DEFAULTS["task_window"]},
        critical_label={"type": "str", "default": DEFAULTS["critical_label"]},
        min_critical_replicas={"type": "int", "default": DEFAULTS["min_critical_replicas"]},
        gpu_resource_kinds={"type": "list", "elements": "str", "default": list(DEFAULTS["gpu_resource_kinds"])},
        stacks={"type": "list", "elements": "str", "default": []},
        report_dir={"type": "path"},
        report_name={"type": "str", "default": DEFAULTS["report_name"]},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run_audit(module.params, connect, check_mode=module.check_mode, want_diff=module._diff)
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
