# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build the phase reports (the logic is in module_utils/_phase_report.py)."""

from __future__ import annotations

from ansible_collections.sophia_ai.platform.plugins.module_utils import _phase_report


def phase1_report(before, after, outcomes=None, traffic=None, meta=None):
    return _phase_report.build(before, after, outcomes, traffic, meta)


def phase_report_markdown(report):
    return _phase_report.markdown(report)


def swarm_front_door_services(services, addresses, offset=10000, stack=""):
    return _phase_report.front_door_services(services, addresses, offset, stack)


class FilterModule:
    def filters(self):
        return {"phase1_report": phase1_report, "phase_report_markdown": phase_report_markdown,
                "swarm_front_door_services": swarm_front_door_services}
