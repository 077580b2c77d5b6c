# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of role swarm_stabilize (the logic is in module_utils/_swarm_stabilize.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_stabilize


def swarm_stabilize_plan(audit, entries=None, class_defaults=None, healthcheck=None, stack="", gpu_labels=None,
                         pin=True, enforce=(), gpu_kinds=(), gpu_nodes=()):
    if not isinstance(audit, dict) or "services" not in audit:
        raise AnsibleFilterError("swarm_stabilize_plan: expected the registered result of "
                                 "sophia_ai.platform.swarm_audit (a dict with services and nodes)")
    return _swarm_stabilize.plan(audit["services"], entries, class_defaults, healthcheck, stack, gpu_labels, pin,
                                 enforce, audit.get("nodes") or (), gpu_kinds, gpu_nodes)


def swarm_stabilize_summary(outcomes):
    return _swarm_stabilize.summarize(outcomes or [])


class FilterModule:
    def filters(self):
        return {"swarm_stabilize_plan": swarm_stabilize_plan, "swarm_stabilize_summary": swarm_stabilize_summary}
