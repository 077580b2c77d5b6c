#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_report
short_description: Write the migration report - availability, failed requests, deployment time, GPU allocation, where every service runs
version_added: 0.1.0
description:
  - Builds the migration's report from measurements and writes it as JSON (for machines), Markdown (for people) and
    the Prometheus text format (for node_exporter's textfile collector or a Pushgateway), the same figures in each.
  - "Measured, not claimed: availability and failed requests come from the phase playbooks' traffic recordings
    (MCP requests at a fixed rate to every service through the front door, RV(report.phases)); deployment time from
    each phase's own clock; where every service runs, where its traffic goes and its health from the front door
    (HAProxy's runtime API, read now: a side runs when its server passes the front door's health check, serves when
    it has weight); GPU allocation from M(sophia_ai.platform.gpu_node_check)'s cluster figures (pods' GPU requests
    over the nodes' allocatable GPUs)."
  - "RV(report.state): V(migrated) - every service serves from K3s; V(rolled_back) - services were moved and every
    one serves from Swarm again; V(in_progress); V(not_started)."
  - A phase whose report file is missing did not run (its figures are null); a phase report written in check mode
    counts as not run.
  - Each phase playbook rewrites its report (C(phaseN.json)) on every run, says in it whether the run changed
    anything (C(run_changed)), and keeps its last run that did as C(phaseN.changed.json) beside it. A phase's figures
    are its latest run's, unless that run changed nothing (a rerun over a fleet already in place) - then they are
    the last run that changed something, the one that migrated, and RV(report.phases) gives the latest run beside
    them (C(latest_run)).
  - "Why our own: the figures join three sources (phase recordings, the front door's runtime state, the cluster's
    GPU allocation) that no existing module reads together, and the Prometheus text format has no writer in
    ansible.builtin or community.general."
  - The files are replaced atomically, and only when their content changes. The report is a record of the run that
    wrote it; playbooks that want a second run to report no change set C(changed_when) on the task.
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the report is built and returned; no file is written.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - The files change only when a figure does; the front door's health and new phase reports do change them.
options:
  phase_reports:
    description:
      - The phase playbooks' JSON reports. A phase left out, or whose file does not exist, has not run.
    type: dict
    required: true
    suboptions:
      phase1:
        description: Phase 1's report (C(phase1.json), playbooks/phase1.yml).
        type: path
      phase2:
        description: Phase 2's report (C(phase2.json), playbooks/phase2.yml).
        type: path
      phase3:
        description: Phase 3's report (C(phase3.json), playbooks/phase3.yml).
        type: path
  front_door_socket:
    description:
      - The front door's HAProxy runtime API (a unix socket path or V(tcp://HOST:PORT)), read for every backend's
        servers, weights and health. Without it every service's location is V(unknown).
    type: str
  gpu:
    description:
      - The result of M(sophia_ai.platform.gpu_node_check) in cluster mode (its RV(sophia_ai.platform.gpu_node_check#module:nodes)
        and RV(sophia_ai.platform.gpu_node_check#module:totals)), for the GPU allocation per node and overall.
    type: dict
  dest:
    description:
      - The directory that receives C(migration.json), C(migration.md) and C(migration.prom) (created, mode 0755).
    type: path
    required: true
  metric_prefix:
    description: The prefix of every Prometheus metric name.
    type: str
    default: sophia_migration
  meta:
    description: More keys for the JSON report's top level, for example the inventory or the stack's name.
    type: dict
    default: {}
notes:
  - The front door is read on the host the task runs on (its admin socket is local, mode 0600).
seealso:
  - module: sophia_ai.platform.traffic_recorder
  - module: sophia_ai.platform.gpu_node_check
"""

EXAMPLES = r"""
- name: Read the GPU allocation of the cluster
  sophia_ai.platform.gpu_node_check:
    mode: cluster
    kubeconfig: ~/.kube/k3s.yaml
  register: gpu_cluster

- name: Write the migration report
  sophia_ai.platform.migration_report:
    phase_reports:
      phase1: reports/phase1/phase1.json
      phase2: reports/phase2/phase2.json
      phase3: reports/phase3/phase3.json
    front_door_socket: /run/haproxy/admin.sock
    gpu: "{{ gpu_cluster }}"
    dest: reports/migration
  register: migration

- name: Fail unless the migration met its availability target
  ansible.builtin.assert:
    that: migration.report.availability >= 0.999

- name: Build the report without writing it
  sophia_ai.platform.migration_report:
    phase_reports: {phase2: reports/phase2/phase2.json}
    dest: reports/migration
  check_mode: true
"""

RETURN = r"""
report:
  description: The report, as written to C(migration.json).
  returned: always
  type: dict
  contains:
    state:
      description: V(migrated), V(rolled_back), V(in_progress) or V(not_started).
      type: str
      sample: migrated
    availability:
      description: Successful probe requests over all probe requests of every phase that ran (0..1).
      type: float
      sample: 0.999412
    requests:
      description: Probe requests sent through the front door, every phase.
      type: int
      sample: 25310
    failed_requests:
      description: Probe requests that failed, every phase.
      type: int
      sample: 3
    deploy_seconds:
      description: Wall time of each phase (V(phase1), V(phase2), V(phase3); null when it did not run) and V(total).
      type: dict
      sample: {phase1: 412.3, phase2: 260.1, phase3: 180.4, total: 852.8}
    gpu_allocation_ratio:
      description: GPUs requested by pods over allocatable GPUs of every GPU node (null without O(gpu)).
      type: float
      sample: 0.125
    gpu_nodes:
      description: Per GPU node - name, ready, allocatable, requested, allocation_ratio, gpu_pods.
      type: list
      elements: dict
    phases:
      description:
        - Per phase - ran, started, finished, seconds, requests, failed, availability, downtime_s, p99_ms; and
          latest_run (started, finished, seconds, run_changed, requests, failed) when the figures are from an
          earlier run than the latest, which changed nothing.
      type: dict
    services:
      description:
        - One entry per service - name, runs_on (V(swarm), V(k3s), V(both), V(none)), serving (the sides with
          weight), health (V(healthy) - every side with weight is up; V(degraded); V(down)), moved_in (the phase that
          moved it), requests, failed_requests, availability, failed_by_phase, downtime_s_by_phase.
      type: list
      elements: dict
    summary:
      description: Counts - services, serving_from_k3s, serving_from_swarm, running_on_both, healthy, not_healthy.
      type: dict
paths:
  description: The files, by format (V(json), V(markdown), V(prometheus)).
  returned: always
  type: dict
  sample: {json: reports/migration/migration.json, markdown: reports/migration/migration.md,
           prometheus: reports/migration/migration.prom}
msg:
  description: One line - the state, availability, failed requests, deployment time and GPU allocation.
  returned: always
  type: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._haproxy import RuntimeApi
from ansible_collections.sophia_ai.platform.plugins.module_utils._migration_report import (
    PHASES, build, changed_copy_path, front_door_from, markdown, pick_run, prometheus,
)
from ansible_collections.sophia_ai.platform.plugins.module_utils._swarm_audit import _atomic_write

FILES = (("json", "migration.json"), ("markdown", "migration.md"), ("prometheus", "migration.prom"))


def argument_spec():
    return {
        "phase_reports": {"type": "dict", "required": True,
                          "options": {name: {"type": "path"} for name in PHASES}},
        "front_door_socket": {"type": "str"},
        "gpu": {"type": "dict"},
        "dest": {"type": "path", "required": True},
        "metric_prefix": {"type": "str", "default": "sophia_migration"},
        "meta": {"type": "dict", "default": {}},
    }


def read_report(module, name, path):
    """One phase report (None when the file is not there); a file that is not one fails naming it."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as exc:
        module.fail_json(msg="phase_reports.%s: cannot read %s as a JSON phase report (%s); run the phase again to "
                             "rewrite it, or remove the file if the phase did not run" % (name, path, exc))
    if not isinstance(report, dict):
        module.fail_json(msg="phase_reports.%s: %s holds no JSON object; it is not a phase report" % (name, path))
    return report


def read_phase_reports(module):
    """Each phase's report: its latest run's, or - when that run changed nothing - its last run that changed
    something (``phaseN.changed.json`` beside it), the latest noted (``pick_run``)."""
    phases = {}
    for name, path in module.params["phase_reports"].items():
        latest = read_report(module, name, path)
        last_change = read_report(module, name, changed_copy_path(path)) if latest else None
        phases[name] = pick_run(latest, last_change)
    return phases


def read_front_door(socket_path):
    api = RuntimeApi(socket_path)
    return front_door_from(api.command("show servers state"), api.command("show stat"))


def write(path, content):
    """Replace ``path`` atomically with ``content``; False when it already holds exactly that."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == content:
                return False
    except OSError:
        pass
    _atomic_write(path, content)
    return True


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    phases = read_phase_reports(module)
    front_door = None
    try:
        if params["front_door_socket"]:
            front_door = read_front_door(params["front_door_socket"])
    except PlatformError as exc:
        module.fail_json(msg="front_door_socket: %s" % exc, **exc.details)
    report = build(phases, front_door, params["gpu"], params["meta"])
    contents = {
        "json": json.dumps(report, indent=2, sort_keys=True) + "\n",
        "markdown": markdown(report),
        "prometheus": prometheus(report, params["metric_prefix"]),
    }
    dest = params["dest"]
    paths = {kind: os.path.join(dest, name) for kind, name in FILES}
    changed = False
    if not module.check_mode:
        if not os.path.isdir(dest):
            os.makedirs(dest, mode=0o755)
            changed = True
        for kind, dummy in FILES:
            changed = write(paths[kind], contents[kind]) or changed
    total = report["deploy_seconds"]["total"]
    module.exit_json(changed=changed, report=report, paths=paths, msg=(
        "%s: availability %s (%d of %d requests failed), deployment %s s, GPU allocation %s" % (
            report["state"], "n/a" if report["availability"] is None else "%.4f%%" % (report["availability"] * 100),
            report["failed_requests"], report["requests"], "n/a" if total is None else total,
            "n/a" if report["gpu_allocation_ratio"] is None else report["gpu_allocation_ratio"])))


if __name__ == "__main__":
    main()
