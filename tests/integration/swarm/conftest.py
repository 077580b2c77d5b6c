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

import subprocess

import pytest

from . import lab


@pytest.fixture(scope="package")
def swarm_lab(repo) -> lab.SwarmLab:
    """The running multi-node Swarm lab with the sample stack converged.

    When this directory's tests are done the sample stack is removed from the lab (the nodes stay): its 32 tasks
    and their health checks would otherwise run beside the host engine's sample stack for the rest of the session,
    and two fleets of health checks load a 2-core machine enough to time out the latency-sensitive tests that
    follow. Later tests use the nodes with stacks of their own (``lab.swarm_lab(repo, stack=False)``).
    """
    described = lab.swarm_lab(repo)
    yield described
    subprocess.run(["docker", "-H", described.docker_host, "stack", "rm", described.stack], capture_output=True,
                   timeout=120, check=False)
