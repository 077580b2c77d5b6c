"""Integration tests run against the real local Docker Engine and the images scripts/setup.sh builds."""

from __future__ import annotations

import socket

import pytest

docker = pytest.importorskip("docker")


@pytest.fixture(scope="session")
def engine():
    """A client of the real local engine (set-up starts it); fails, not skips, when none answers."""
    client = docker.from_env()
    client.ping()
    yield client
    client.close()


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
