# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab cluster fixtures of tests/integration/cluster (``lab_kubeconfig`` starts or reuses the real lab)."""

from __future__ import annotations

from ..cluster.conftest import lab_kubeconfig  # noqa: F401  pylint: disable=unused-import
