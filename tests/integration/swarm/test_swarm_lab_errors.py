"""scripts/swarm-lab.sh's errors: each names what failed and the fix, made for real, never touching the shared lab.

An engine socket that nobody serves; settings out of range; a node whose dockerd refuses to start (a storage
driver that does not exist), in a lab of another name and subnet beside the shared one, removed again with
``down``: its manager's own log line must reach the message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SIDE_LAB = {"SOPHIA_SWARM_NAME": "sophia-swarmerr", "SOPHIA_SWARM_SUBNET": "172.31.249.0/24"}


def swarm_lab_sh(repo, *args, **env):
    return subprocess.run(
        [str(repo / "scripts" / "swarm-lab.sh"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_no_engine_names_the_fix(repo, tmp_path):
    res = swarm_lab_sh(repo, "up", DOCKER_HOST=f"unix://{tmp_path}/none.sock", SOPHIA_CACHE=str(tmp_path))
    assert res.returncode == 1
    assert "swarm-lab: ERROR: no Docker Engine answers" in res.stderr
    assert "scripts/setup.sh engine" in res.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SOPHIA_SWARM_WORKERS": "0"}, "SOPHIA_SWARM_WORKERS must be a number from 1 to 50"),
        ({"SOPHIA_SWARM_WORKERS": "two"}, "SOPHIA_SWARM_WORKERS must be a number from 1 to 50"),
        ({"SOPHIA_SWARM_SUBNET": "172.31.250.0/16"}, "SOPHIA_SWARM_SUBNET must be a /24"),
        ({"SOPHIA_SWARM_TIMEOUT": "5m"}, "SOPHIA_SWARM_TIMEOUT must be a number of seconds"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(repo, tmp_path, env, message):
    res = swarm_lab_sh(repo, "up", SOPHIA_CACHE=str(tmp_path), **env)
    assert res.returncode == 1
    assert message in res.stderr
    assert not (tmp_path / "lab").exists()


def test_unknown_command_and_option(repo):
    assert swarm_lab_sh(repo, "sideways").returncode == 2
    res = swarm_lab_sh(repo, "up", "--sideways")
    assert res.returncode == 1 and "unknown option '--sideways'" in res.stderr


@pytest.fixture
def short_tmp():
    """A cache folder with a short path: unix socket paths under it must stay below 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="swl-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_node_whose_dockerd_will_not_start_shows_its_log(repo, short_tmp, engine):
    tmp_path = short_tmp
    env = {**SIDE_LAB, "SOPHIA_CACHE": str(tmp_path), "SOPHIA_SWARM_STORAGE_DRIVER": "no-such-driver"}
    try:
        res = swarm_lab_sh(repo, "up", "--no-stack", **env)
        assert res.returncode == 1
        assert "the Docker Engine in node sophia-swarmerr-manager exited during start-up" in res.stderr
        assert "driver not supported" in res.stderr  # dockerd's own last words, from the tail of its log
        log = tmp_path / "lab" / "swarmerr" / "manager" / "dockerd.log"
        assert str(log) in res.stderr and log.is_file()
        # the failed node is kept for a look, no longer restarting
        node = engine.containers.get("sophia-swarmerr-manager")
        assert node.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    finally:
        down = swarm_lab_sh(repo, "down", **env)
    assert down.returncode == 0, down.stderr
    assert not engine.containers.list(all=True, filters={"label": "sophia.ai/swarm-lab=sophia-swarmerr"})
    assert not engine.volumes.list(filters={"label": "sophia.ai/swarm-lab=sophia-swarmerr"})
    assert not engine.networks.list(names=["sophia-swarmerr-lab"])
    assert not (tmp_path / "lab" / "swarmerr").exists()
