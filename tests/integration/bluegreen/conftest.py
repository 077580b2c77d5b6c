# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The blue-green set-ups, one per test module (brought up once, removed at the end, also after a failure).

``lab_kubeconfig`` (tests/integration/cluster) starts or reuses the lab cluster; ``engine`` is the host's Docker
Engine (tests/integration/conftest.py). See lab.py for what each set-up holds.
"""

from __future__ import annotations

import pytest

from ..cluster.conftest import lab_kubeconfig  # noqa: F401  pylint: disable=unused-import
from .lab import InClusterLab, SwarmToK3sLab


@pytest.fixture(scope="module")
def in_cluster(lab_kubeconfig, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    lab = InClusterLab(lab_kubeconfig, tmp_path_factory.mktemp("bluegreen-in-cluster")).up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def swarm_to_k3s(lab_kubeconfig, engine, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    lab = SwarmToK3sLab(lab_kubeconfig, tmp_path_factory.mktemp("bluegreen-swarm-to-k3s"), engine).up()
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def stateful(lab_kubeconfig, engine, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    """SwarmToK3sLab with a named volume (Swarm) and a claim (lab cluster) at /data: a stateful service."""
    lab = SwarmToK3sLab(lab_kubeconfig, tmp_path_factory.mktemp("bluegreen-volumes"), engine, volume="/data").up()
    try:
        yield lab
    finally:
        lab.down()
