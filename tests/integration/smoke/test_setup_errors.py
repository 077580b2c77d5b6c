"""Bad set-up states end with a clear message, not a traceback or a hang.

Each state is made for real: a dockerd that exits at start-up (its own error must be shown from its log),
a cache directory on a 1 MiB tmpfs (a disk that is really full for set-up), a Debian package that the
archive does not have (apt-get really fails).
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

pytestmark = pytest.mark.integration


def _setup(repo, *steps, **env):
    full_env = {**os.environ, **env}
    return subprocess.run(
        [str(repo / "scripts" / "setup.sh"), *steps], env=full_env, capture_output=True, text=True, timeout=300, check=False
    )


def test_engine_that_will_not_start_shows_the_log_tail(repo, tmp_path):
    # An engine socket nobody serves, and a real dockerd that refuses its command line.
    res = _setup(
        repo, "engine",
        DOCKER_HOST=f"unix://{tmp_path}/docker.sock", SOPHIA_CACHE=str(tmp_path), SOPHIA_DOCKERD="dockerd --no-such-option",
    )
    assert res.returncode == 1
    assert "dockerd exited during start-up" in res.stderr
    assert "unknown flag: --no-such-option" in res.stderr  # the tail of dockerd's own log
    assert str(tmp_path / "dockerd.log") in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_is_named_with_the_fix(repo):
    with tempfile.TemporaryDirectory() as mnt:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], check=True)
        try:
            res = _setup(repo, "disk", SOPHIA_CACHE=mnt)
        finally:
            subprocess.run(["umount", mnt], check=True)
    assert res.returncode == 1
    assert f"disk full: only 1 MiB free under {mnt}" in res.stderr
    assert "SOPHIA_CACHE" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="apt-get install needs root")
def test_missing_debian_package_is_named(repo, tmp_path):
    res = _setup(repo, "apt", SOPHIA_CACHE=str(tmp_path), SOPHIA_APT_EXTRA="sophia-platform-no-such-package")
    assert res.returncode == 1
    assert "apt-get could not install sophia-platform-no-such-package" in res.stderr
    assert "Unable to locate package sophia-platform-no-such-package" in res.stderr


def test_unknown_step_is_refused(repo):
    res = _setup(repo, "bogus")
    assert res.returncode == 1
    assert "unknown set-up step 'bogus'" in res.stderr
