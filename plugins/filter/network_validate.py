# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check an inventory's addresses and network ranges (the logic is in module_utils/_network_validate.py)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.sophia_ai.platform.plugins.module_utils import _network_validate
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError


def cidr_overlaps(left, right=None):
    try:
        return _network_validate.cidr_overlaps(left, right)
    except PlatformError as exc:
        raise AnsibleFilterError("cidr_overlaps: %s" % exc) from None


def network_problems(hostvars, groups, hosts=None):
    if not isinstance(hostvars, Mapping) or not isinstance(groups, Mapping):
        raise AnsibleFilterError("network_problems: expected hostvars | sophia_ai.platform.network_problems(groups)")
    names = list(hosts) if hosts is not None else list(hostvars)
    inventory = {}
    for name in names:
        if name not in hostvars:
            raise AnsibleFilterError("network_problems: host %s is not in the inventory" % name)
        host = hostvars[name]
        wanted = {}
        for var in _network_validate.VARS_READ:
            if var in host:
                wanted[var] = host[var]
        member_of = [group for group, members in groups.items()
                     if group not in ("all", "ungrouped") and name in (members or [])]
        inventory[name] = {"vars": wanted, "groups": member_of}
    try:
        return _network_validate.check_inventory(inventory)
    except PlatformError as exc:
        raise AnsibleFilterError("network_problems: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"cidr_overlaps": cidr_overlaps, "network_problems": network_problems}
