"""Integration tests run against the real local Docker Engine and the images scripts/setup.sh builds."""

from __future__ import annotations

import socket
import subprocess

import pytest

docker = pytest.importorskip("docker")


@pytest.fixture(scope="session")
def engine():
    """A client of the real local engine (set-up starts it); fails, not skips, when none answers."""
    client = docker.from_env()
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def lab_swarm(engine):
    """The host engine's Swarm that `make lab` (playbooks/lab.yml) runs the sample stack on, shared by the packages
    that use it (phase2, smoke, swarm_audit: each runs lab.yml itself, which finds the stack up after the first).
    Kept for the whole session - bringing the 28 services up takes about 100 s on two cores - and left at its end if
    the engine was in no Swarm before."""
    was_swarm = engine.info()["Swarm"]["LocalNodeState"] == "active"
    yield engine
    if not was_swarm:
        subprocess.run(["docker", "stack", "rm", "sophia"], check=False, capture_output=True)
        subprocess.run(["docker", "swarm", "leave", "--force"], check=False, capture_output=True)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
