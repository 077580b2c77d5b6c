"""The lab cluster for integration tests: the real control plane built from source (scripts/lab-cluster.sh).

``lab_kubeconfig`` starts the lab (or reuses a running one, as ``make lab-up`` does) with 8 kwok GPU nodes and
yields the path of its kubeconfig. The API server, scheduler and controllers are the upstream programs; only
the GPU nodes are kwok's (no GPU exists here), and the tests say so where it matters.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from .lab import GPU_NODES, lab_cluster

kubernetes = pytest.importorskip("kubernetes")


@pytest.fixture(scope="session")
def lab_kubeconfig(repo):
    """A running lab cluster's kubeconfig; a lab that the fixture started is removed again afterwards."""
    was_up = subprocess.run([str(repo / "scripts" / "lab-cluster.sh"), "status"], capture_output=True, check=False).returncode == 0
    last = lab_cluster(repo, "up", "--gpu-nodes", str(GPU_NODES)).strip().splitlines()[-1]
    assert last.startswith("KUBECONFIG=")
    yield last.split("=", 1)[1]
    if not was_up:
        lab_cluster(repo, "down")


@pytest.fixture(scope="session")
def api(lab_kubeconfig):
    client = kubernetes.config.new_client_from_config(config_file=lab_kubeconfig)
    yield client
    client.close()


@pytest.fixture
def namespace(api):
    core = kubernetes.client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
