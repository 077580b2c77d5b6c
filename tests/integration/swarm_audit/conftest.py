# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of swarm_audit's integration tests: the host engine's Swarm with the sample stack, services made
under a unique name prefix (removed afterwards), ansible-playbook runs, and the netns two-node Swarm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from .netns_swarm import NetnsSwarm, available

SAMPLE_IMAGE = "sophia-platform/mcp-server:lab"


def ansible_playbook(repo, tmp_path, tasks, env=None, name="play.yml"):
    """Run tasks on localhost through ansible-playbook; (returncode, [task results], raw output)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump([{"name": "swarm_audit", "hosts": "localhost", "connection": "local",
                                     "gather_facts": False, "tasks": tasks}], sort_keys=False))
    run_env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    run_env.update(env or {})
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(path)], cwd=repo, env=run_env,
                         capture_output=True, text=True, timeout=600, check=False)
    try:
        output = json.loads(res.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON: %s %s" % (res.stdout[-3000:], res.stderr[-2000:]))
    return res.returncode, [task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]], output


def audit_task(register=None, **args):
    task = {"name": "audit", "sophia_ai.platform.swarm_audit": args}
    if register:
        task["register"] = register
    return task


@pytest.fixture(scope="session")
def sample_stack(repo, lab_swarm):
    """The host engine's single-node Swarm with stack sophia, brought up with the lab playbook when missing."""
    engine = lab_swarm

    def services():
        if engine.info()["Swarm"]["LocalNodeState"] != "active":
            return []
        return engine.services.list(filters={"label": "com.docker.stack.namespace=sophia"})

    if len(services()) < 28:
        res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/lab",
                              "playbooks/lab.yml"], cwd=repo, capture_output=True, text=True, timeout=900,
                             check=False)
        assert res.returncode == 0, "make lab's playbook failed: " + res.stdout[-3000:] + res.stderr[-2000:]
    assert len(services()) == 28
    return engine


@pytest.fixture
def prefix(sample_stack):
    """A unique service name prefix; every service carrying it is removed at the end."""
    name = "sa-it-%s" % uuid.uuid4().hex[:8]
    yield name
    for service in sample_stack.services.list(filters={"name": name}):
        if service.name.startswith(name):
            service.remove()


@pytest.fixture(scope="module")
def netns_swarm():
    reason = available()
    if reason:
        pytest.skip("two-node Swarm in network namespaces: %s" % reason)
    with NetnsSwarm() as lab:
        yield lab
