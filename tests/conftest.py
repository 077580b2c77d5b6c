"""Shared pytest set-up: make ``ansible_collections.sophia_ai.platform`` importable from this checkout.

``scripts/setup.sh`` links the checkout into ``$SOPHIA_COLLECTIONS/ansible_collections/sophia_ai/platform``;
the Makefile exports ``ANSIBLE_COLLECTIONS_PATH`` pointing there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

for _path in filter(None, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The checkout's root."""
    return REPO
