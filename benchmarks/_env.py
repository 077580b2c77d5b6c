# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the benchmarks share: the cache directory and the environment the Makefile gives its commands."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cache_dir():
    return Path(os.environ.get("SOPHIA_CACHE") or Path.home() / ".cache" / "sophia-platform")


def environment():
    """os.environ with the project venv and Go tools first on PATH and ANSIBLE_COLLECTIONS_PATH as make sets it."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(cache_dir() / "bin"), env.get("PATH", os.defpath)])
    if not env.get("ANSIBLE_COLLECTIONS_PATH"):  # as the Makefile computes it
        digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
        env["ANSIBLE_COLLECTIONS_PATH"] = str(cache_dir() / "collections" / digest)
    return env
