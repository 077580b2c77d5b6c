# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors raised below the modules' ``main()``.

Layers under a module never call ``fail_json``; they raise a :class:`PlatformError` whose message says what
failed, on which object, and what the user can do, and whose ``details`` carry structured keys (``object``,
``reason``, ``file``, ``key`` ...) that ``main()`` passes to ``fail_json`` as they are.
"""

from __future__ import annotations


class PlatformError(Exception):
    """A failure the user can act on: ``str(exc)`` is the message, ``exc.details`` the structured keys."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class InputError(PlatformError):
    """Bad input (a file, a parameter): nothing was changed."""


class DependencyError(PlatformError):
    """A binary or Python library the module needs is missing or too old."""


class ApiError(PlatformError):
    """A remote API (Kubernetes, Docker, an MCP server) answered with an error or not at all."""
