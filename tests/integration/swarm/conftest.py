"""The multi-node Swarm lab for integration tests: one manager and two workers as Docker-in-Docker containers.

``swarm_lab`` runs ``scripts/swarm-lab.sh up`` once per session (reusing a running lab, as a second ``up`` does)
and yields a :class:`~.lab.SwarmLab`: ``docker_host`` (the manager's socket URL), ``worker_hosts`` (the workers'
socket URLs), ``gpu_worker`` (hostname of the node labelled gpu=true with the NVIDIA-GPU generic resources),
``node_ips`` ({hostname: ip}), ``stack`` (the sample stack's name) and ``hosts`` ({hostname: socket URL}).
It never tears the lab down: other tests reuse it, and ``scripts/swarm-lab.sh down`` (``make lab-down``) removes it.
Other test directories import the fixture (``from ..swarm.conftest import swarm_lab``) or the plain function
(``from ..swarm.lab import swarm_lab``).
"""

from __future__ import annotations

import pytest

from . import lab


@pytest.fixture(scope="session")
def swarm_lab(repo) -> lab.SwarmLab:
    """The running multi-node Swarm lab with the sample stack converged."""
    return lab.swarm_lab(repo)
