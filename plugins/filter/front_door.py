# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of role front_door (the logic is in module_utils/_haproxy.py)."""

from __future__ import annotations

from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy


def front_door_server_state(text, services):
    return _haproxy.prune_server_state(text, services)


class FilterModule:
    def filters(self):
        return {"front_door_server_state": front_door_server_state}
