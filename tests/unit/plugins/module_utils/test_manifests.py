# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest directory and the runner: idempotence, check mode, diff, stale files, atomicity, determinism.

Everything runs the real kompose binary; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert, _manifests
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
BAD = FIXTURES / "bad"
SAMPLE = Path("examples/sophia-mcp-stack.yml")


def run(src, dest, check_mode=False, want_diff=False, **params):
    params = dict({"src": [str(s) for s in (src if isinstance(src, list) else [src])], "dest": str(dest)}, **params)
    return _compose_convert.run(params, check_mode=check_mode, want_diff=want_diff)


def snapshot(directory):
    """Every entry under directory: relative path -> (mode, sha256 or 'dir'), plus the mtimes."""
    directory = Path(directory)
    if not directory.exists():
        return None
    state = {}
    for path in sorted(directory.rglob("*")):
        info = path.stat()
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        state[str(path.relative_to(directory))] = (info.st_mode, digest, info.st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def sample_stack(tmp_path_factory):
    """A copy of the sample stack (and its config file) that tests may edit."""
    root = tmp_path_factory.mktemp("stack")
    shutil.copy(SAMPLE, root / "stack.yml")
    shutil.copytree("examples/config", root / "config")
    return root / "stack.yml"


@pytest.fixture(scope="module")
def converted_once(sample_stack, tmp_path_factory):
    dest = tmp_path_factory.mktemp("dest") / "manifests"
    first = run(sample_stack, dest)
    return dest, first


def test_first_run_writes_everything_second_changes_nothing(converted_once, sample_stack):
    dest, first = converted_once
    assert first["changed"] is True
    assert first["changed_files"] == first["files"] and len(first["files"]) == 58
    before = snapshot(dest)
    second = run(sample_stack, dest)
    assert second["changed"] is False and second["changed_files"] == [] and second["removed_files"] == []
    assert second["msg"] == "28 services converted; %s is up to date" % dest
    assert snapshot(dest) == before


def test_index_lists_what_was_written(converted_once):
    dest, first = converted_once
    index = json.loads((dest / _manifests.INDEX).read_text())
    assert index["generator"] == "sophia_ai.platform.compose_convert"
    assert sorted(index["files"]) == first["files"]
    entry = index["files"]["deployment-mcp-gong.yaml"]
    assert entry["kind"] == "Deployment" and entry["services"] == ["mcp-gong"]
    assert entry["sha256"] == hashlib.sha256((dest / "deployment-mcp-gong.yaml").read_bytes()).hexdigest()
    assert len(index["files"]["configmap-mcp-common.yaml"]["services"]) == 28


def test_output_is_byte_identical_across_runs_directories_and_environments(sample_stack, tmp_path, monkeypatch):
    run(sample_stack, tmp_path / "a")
    monkeypatch.setenv("MCP_IMAGE_TAG", "from-the-controller-env")  # never read: only `env` interpolates
    monkeypatch.chdir(tmp_path)
    run(sample_stack, tmp_path / "b")
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b
    assert b"from-the-controller-env" not in b"".join(b.values())


def test_one_edited_service_changes_only_its_files(converted_once, sample_stack, tmp_path):
    dest, _first = converted_once
    edited = tmp_path / "stack.yml"
    shutil.copytree(sample_stack.parent / "config", tmp_path / "config")
    text = sample_stack.read_text()
    marker = "      MCP_SERVER_NAME: mcp-gong\n      MCP_PORT: \"9005\"\n"
    assert marker in text
    edited.write_text(text.replace(marker, marker + "      LOG_LEVEL: debug\n"))
    work = tmp_path / "dest"
    shutil.copytree(dest, work)
    result = run(edited, work, want_diff=True)
    assert result["changed_files"] == ["deployment-mcp-gong.yaml"]
    assert result["removed_files"] == []
    (diff,) = result["diff"]
    assert diff["before_header"] == diff["after_header"] == str(work / "deployment-mcp-gong.yaml")
    assert "LOG_LEVEL" in diff["after"] and "LOG_LEVEL" not in diff["before"]


def test_check_mode_writes_nothing_and_reports_the_change(sample_stack, tmp_path):
    dest = tmp_path / "new"
    result = run(sample_stack, dest, check_mode=True, want_diff=True)
    assert result["changed"] is True and len(result["changed_files"]) == 58
    assert not dest.exists()
    assert os.listdir(tmp_path) == ["new"] or os.listdir(tmp_path) == []
    assert len(result["diff"]) == 58
    assert all(d["before_header"] == "/dev/null" for d in result["diff"])
    assert "would change 58" in result["msg"]


def test_check_mode_on_existing_dest(converted_once, sample_stack, tmp_path):
    dest, _first = converted_once
    before = snapshot(dest)
    result = run(sample_stack, dest, check_mode=True, services=["mcp-gong"])
    assert result["changed"] is True and "deployment-mcp-slack.yaml" in result["removed_files"]
    assert snapshot(dest) == before


def test_files_no_longer_produced_are_removed_only_if_ours_and_unedited(sample_stack, tmp_path):
    dest = tmp_path / "dest"
    run(sample_stack, dest)
    (dest / "README.txt").write_text("not ours\n")
    (dest / "deployment-old.yaml").write_text("kind: Deployment\n")  # not in the index
    with open(dest / "deployment-mcp-slack.yaml", "a", encoding="utf-8") as handle:
        handle.write("# edited by hand\n")
    result = run(sample_stack, dest, services=["mcp-gong"], want_diff=True)
    assert "deployment-mcp-slack.yaml" not in result["removed_files"]
    assert (dest / "deployment-mcp-slack.yaml").exists() and (dest / "README.txt").exists() and (dest / "deployment-old.yaml").exists()
    assert "service-mcp-slack.yaml" in result["removed_files"] and not (dest / "service-mcp-slack.yaml").exists()
    assert {"service": None, "key": "dest", "message": "deployment-mcp-slack.yaml was written by an earlier run and edited "
            "since: no longer produced, but kept"} in result["conversion_warnings"]
    removed = [d for d in result["diff"] if d["after_header"] == "/dev/null"]
    assert len(removed) == len(result["removed_files"])
    assert sorted(p.name for p in dest.glob("*mcp-gong*")) == ["deployment-mcp-gong.yaml", "service-mcp-gong.yaml"]


def test_secret_data_never_shows_in_diff(tmp_path):
    result = run(FIXTURES / "secrets-configs.yml", tmp_path / "out", want_diff=True)
    diff = {d["after_header"].rsplit("/", 1)[1]: d for d in result["diff"]}
    secret = diff["secret-db-password.yaml"]["after"]
    assert secret.startswith("(Secret manifest, data hidden: sha256 ")
    assert "bm90LWEtcmVhbC1wYXNzd29yZAo" not in json.dumps(result)


BAD_INPUTS = [
    (BAD / "invalid-yaml.yml.txt", {}, "invalid YAML"),
    (BAD / "services-list.yml", {}, "'services' is a list, not a mapping"),
    (BAD / "gpu-count-string.yml", {}, "GPU count 'two' is not a whole number"),
    (BAD / "gpu-count-negative.yml", {}, "GPU count -1 is negative"),
    (BAD / "port-out-of-range.yml", {}, "published port 70000 is out of range"),
    (BAD / "duplicate-port.yml", {}, "port 9005/tcp is also published by service 'first'"),
    (BAD / "required-var.yml", {}, "required variable WEB_TAG is unset"),
    (BAD / "empty.yml", {}, "the compose file is empty"),
    (BAD / "no-image.yml", {}, "service 'web', key 'image': no image"),
    (BAD / "bad-name.yml", {}, "'Web_Server' is not a valid Kubernetes name"),
    (BAD / "traversal-name.yml", {}, "'../../etc' is not a valid Kubernetes name"),
    (BAD / "billion-laughs.yml", {}, "alias bomb"),
    (BAD / "recursive-alias.yml", {}, "recursive alias"),
    (BAD / "missing-env-file.yml", {}, "env_file ./does-not-exist.env does not exist"),
    (BAD / "bad-criticality.yml", {}, "sophia.ai/criticality is 'Critical'"),
    (SAMPLE, {"env_files": ["/nonexistent/prod.env"]}, "/nonexistent/prod.env: the env_files entry does not exist"),
    (SAMPLE, {"kompose_path": "/nonexistent/kompose"}, "kompose_path /nonexistent/kompose is not an executable file"),
    (SAMPLE, {"gpu_node_label": "gpu"}, "gpu_node_label 'gpu' is not KEY=VALUE"),
    (FIXTURES / "gpu-all.yml", {}, "count: all (or no count) asks for every GPU"),
]


@pytest.mark.parametrize("src, params, words", BAD_INPUTS, ids=[str(b[0].name) + str(sorted(b[1])) for b in BAD_INPUTS])
def test_bad_input_leaves_dest_exactly_as_it_was(converted_once, tmp_path, src, params, words):
    dest, _first = converted_once
    work = tmp_path / "dest"
    shutil.copytree(dest, work)
    before = snapshot(work)
    siblings = sorted(os.listdir(tmp_path))
    with pytest.raises(PlatformError) as err:
        run(src, work, **params)
    assert words in str(err.value)
    assert snapshot(work) == before
    assert sorted(os.listdir(tmp_path)) == siblings  # no staging directory left behind
    fresh = tmp_path / "never-created"
    with pytest.raises(PlatformError):
        run(src, fresh, **params)
    assert not fresh.exists()


def test_binary_garbage_leaves_dest_as_it_was(converted_once, tmp_path):
    dest, _first = converted_once
    work = tmp_path / "dest"
    shutil.copytree(dest, work)
    before = snapshot(work)
    garbage = tmp_path / "garbage.yml"
    garbage.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(InputError, match="binary, not YAML text"):
        run(garbage, work)
    assert snapshot(work) == before


def test_dest_that_is_a_file_is_refused(tmp_path):
    dest = tmp_path / "file"
    dest.write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        run(FIXTURES / "criticality.yml", dest)
    assert dest.read_text() == "x"


def test_new_dest_appears_in_one_rename(tmp_path):
    result = run(FIXTURES / "criticality.yml", tmp_path / "a" / "b")
    assert sorted(os.listdir(tmp_path / "a")) == ["b"]
    assert sorted(os.listdir(tmp_path / "a" / "b")) == sorted(result["files"] + [_manifests.INDEX])
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o755
