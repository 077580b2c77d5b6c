# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared ``attributes`` documentation for the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    """Each fragment documents one attribute; modules pick the ones that hold for them."""

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
"""

    # A module that only reads.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""

    # A module that changes state and supports check and diff mode fully.
    ACTIONGROUP_PLATFORM = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/sophia_ai.platform.platform) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - sophia_ai.platform.platform
"""
