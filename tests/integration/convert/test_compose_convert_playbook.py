# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sophia_ai.platform.compose_convert through ansible-playbook (localhost, connection local) with the real kompose.

First run changed, second run not changed, check mode writes nothing, diff mode prints per-file diffs, and a bad
input fails with a clear message and leaves dest exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration]

SAMPLE = Path("examples/sophia-mcp-stack.yml").resolve()


def playbook(tmp_path, tasks, name="play.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump([{"name": "compose_convert", "hosts": "localhost", "connection": "local",
                                     "gather_facts": False, "tasks": tasks}], sort_keys=False))
    return path


def ansible_playbook(repo, path, *args, json_output=True):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    if json_output:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(path), *args], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    return res, (json.loads(res.stdout) if json_output else None)


def task_results(output):
    return [task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]]


def convert_task(dest, **extra):
    args = {"src": [str(SAMPLE)], "dest": str(dest)}
    args.update(extra)
    return {"name": "convert", "sophia_ai.platform.compose_convert": args}


def snapshot(directory):
    return {p.name: (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(Path(directory).iterdir())}


def test_first_run_changed_second_not(repo, tmp_path):
    dest = tmp_path / "manifests"
    path = playbook(tmp_path, [dict(convert_task(dest), register="first"), dict(convert_task(dest), register="second")])
    res, output = ansible_playbook(repo, path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    first, second = task_results(output)
    assert first["changed"] is True and len(first["changed_files"]) == 58
    assert second["changed"] is False and second["changed_files"] == []
    assert first["services"]["mcp-llm-gateway"]["gpus"] == 1
    assert first["prerequisites"][0]["name"] == "mcp-api-key"
    assert any("deploy.restart_policy.delay" in w for w in first["warnings"])
    assert output["stats"]["localhost"]["changed"] == 1
    assert (dest / "deployment-mcp-gong.yaml").exists()


def test_check_mode_writes_nothing(repo, tmp_path):
    dest = tmp_path / "manifests"
    path = playbook(tmp_path, [dict(convert_task(dest), check_mode=True)])
    res, output = ansible_playbook(repo, path)
    assert res.returncode == 0, res.stdout[-3000:]
    (result,) = task_results(output)
    assert result["changed"] is True and len(result["changed_files"]) == 58
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == ["play.yml"]


def test_diff_mode_prints_per_file_diffs(repo, tmp_path):
    dest = tmp_path / "manifests"
    res, _output = ansible_playbook(repo, playbook(tmp_path, [convert_task(dest)]))
    assert res.returncode == 0
    path = playbook(tmp_path, [convert_task(dest, env={"MCP_IMAGE_TAG": "v2"}, services=["mcp-gong", "mcp-slack"])], "diff.yml")
    res, _output = ansible_playbook(repo, path, "--diff", json_output=False)
    assert res.returncode == 0, res.stdout[-3000:]
    out = res.stdout
    gong = dest / "deployment-mcp-gong.yaml"
    assert "--- before: %s\n+++ after: %s\n" % (gong, gong) in out
    assert "-        image: sophia-platform/mcp-server:lab" in out
    assert "+        image: sophia-platform/mcp-server:v2" in out
    assert "--- before: %s\n+++ after: /dev/null\n" % (dest / "deployment-mcp-ai-memory.yaml") in out  # no longer produced
    assert "changed=1" in out


def test_bad_input_fails_clearly_and_leaves_dest_as_it_was(repo, tmp_path):
    dest = tmp_path / "manifests"
    res, _output = ansible_playbook(repo, playbook(tmp_path, [convert_task(dest)]))
    assert res.returncode == 0
    before = snapshot(dest)
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  mcp-gong:\n    image: x\n    ports: ['9005:9005']\n  other:\n    image: y\n    ports: ['9005:80']\n")
    res, output = ansible_playbook(repo, playbook(tmp_path, [convert_task(dest, src=[str(bad)])], "bad-play.yml"))
    assert res.returncode == 2
    (result,) = task_results(output)
    assert result["failed"] is True
    assert result["msg"] == ("%s:7: service 'other', key 'ports.0': port 9005/tcp is also published by service 'mcp-gong' "
                             "(%s:4). Fix: publish a different port on one of the two services" % (bad, bad))
    assert result["line"] == 7 and result["service"] == "other" and result["key"] == "ports.0"
    assert snapshot(dest) == before
    assert sorted(os.listdir(tmp_path)) == ["bad-play.yml", "bad.yml", "manifests", "play.yml"]
