# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_kompose: finding the binary, checking its version, running it.

The real pinned binary is used where it exists; too-old and broken binaries are small shell scripts written
into tmp_path (a kompose older than 1.38.0 cannot be built here), which is said where they are used.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _kompose
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import DependencyError, PlatformError


@pytest.fixture(scope="module")
def real_kompose():
    path = _kompose.find_kompose()
    assert path, "make setup builds kompose"
    return path


def _script(tmp_path, body, name="kompose"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize("text, version", [("1.38.0 (HEAD)\n", (1, 38, 0)), ("v1.40.2\n", (1, 40, 2)),
                                           ("\x1b[36m1.38.1\x1b[0m (abc)", (1, 38, 1)), ("dev build\n", None), ("", None)])
def test_parse_version(text, version):
    assert _kompose.parse_version(text) == version


def test_real_binary_passes_the_version_check(real_kompose):
    assert _kompose.check_version(real_kompose) >= "1.38.0"


def test_too_old_binary_is_refused_with_install_hint(tmp_path):
    # stand-in: a script that answers like kompose 1.34.0 (no older kompose is built here)
    path = _script(tmp_path, 'echo "1.34.0 (8ee8a2f)"')
    with pytest.raises(DependencyError) as err:
        _kompose.check_version(path)
    msg = str(err.value)
    assert "is kompose 1.34.0; compose_convert needs 1.38.0 or newer" in msg
    assert "make setup" in msg and "kompose_path" in msg
    assert err.value.details["version"] == "1.34.0"


def test_unreadable_version_is_refused(tmp_path):
    path = _script(tmp_path, "echo oops >&2; exit 3")
    with pytest.raises(DependencyError, match="did not print a version"):
        _kompose.check_version(path)


def test_missing_binary_says_how_to_install(tmp_path):
    with pytest.raises(DependencyError) as err:
        _kompose.find_kompose(environ={"PATH": str(tmp_path), "SOPHIA_CACHE": str(tmp_path / "cache")})
    msg = str(err.value)
    assert msg.startswith("kompose was not found on PATH nor in %s" % (tmp_path / "cache" / "bin"))
    assert "run `make setup`" in msg
    with pytest.raises(DependencyError, match="kompose_path /nope/kompose is not an executable file"):
        _kompose.find_kompose("/nope/kompose")


def test_search_order(tmp_path, real_kompose):
    cache_bin = tmp_path / "cache" / "bin"
    cache_bin.mkdir(parents=True)
    shutil.copy(real_kompose, cache_bin / "kompose")
    env = {"PATH": str(tmp_path / "empty"), "SOPHIA_CACHE": str(tmp_path / "cache")}
    assert _kompose.find_kompose(environ=env) == str(cache_bin / "kompose")
    on_path = _script(tmp_path, "exit 0")
    assert _kompose.find_kompose(environ=dict(env, PATH=str(tmp_path))) == on_path
    assert _kompose.find_kompose(str(cache_bin / "kompose"), environ=env) == str(cache_bin / "kompose")


def test_run_convert_with_the_real_binary(real_kompose):
    text = "services:\n  web:\n    image: nginx:1\n    ports: ['8080:80']\n    environment: {A: 'x $$ ${NOT_INTERPOLATED}'}\n"
    objects, warnings = _kompose.run_convert(real_kompose, text)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [("Deployment", "web"), ("Service", "web")]
    env = objects[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "x $$ ${NOT_INTERPOLATED}"}]  # --no-interpolate: our values pass as they are
    assert "annotations" not in objects[0]["metadata"]  # no kompose.cmd / kompose.version
    assert warnings == []


def test_run_convert_ignores_the_host_environment(real_kompose, monkeypatch):
    monkeypatch.setenv("LEAKED_FROM_HOST", "secret")
    objects, _warnings = _kompose.run_convert(real_kompose, "services:\n  web:\n    image: x\n    environment: [LEAKED_FROM_HOST]\n")
    env = objects[0]["spec"]["template"]["spec"]["containers"][0].get("env") or []
    assert "secret" not in str(env)


def test_kompose_failure_is_reported(real_kompose):
    with pytest.raises(PlatformError) as err:
        _kompose.run_convert(real_kompose, "services:\n  web:\n    image: x\n    ports: ['not a port']\n")
    assert "kompose convert failed" in str(err.value)
    assert err.value.details["rc"] != 0


def test_temporary_directory_is_removed(real_kompose, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    _kompose.run_convert(real_kompose, "services:\n  web: {image: x}\n")
    assert os.listdir(tmp_path) == []


def test_kompose_runs_without_a_path_and_gives_the_same_bytes(real_kompose, tmp_path):
    """kompose execs `kompose version` per service for an annotation that is off: an empty PATH skips that work."""
    text = open("examples/sophia-mcp-stack.yml", encoding="utf-8").read().replace("./config/", "%s/examples/config/" % os.getcwd())
    seen = []

    def recording(cmd, **kwargs):
        seen.append(kwargs["env"]["PATH"])
        return subprocess.run(cmd, **kwargs)  # pylint: disable=subprocess-run-check  # check= is in kwargs

    fast, _warnings = _kompose.run_convert(real_kompose, text, runner=recording)
    assert os.path.isdir(seen[0]) is False  # the private empty directory is gone with the work directory
    assert seen[0].endswith("empty-path")

    def with_path(cmd, **kwargs):
        kwargs["env"] = dict(kwargs["env"], PATH=os.path.dirname(real_kompose) + os.pathsep + os.defpath)
        return subprocess.run(cmd, **kwargs)  # pylint: disable=subprocess-run-check  # check= is in kwargs

    slow, _warnings = _kompose.run_convert(real_kompose, text, runner=with_path)
    assert fast == slow
