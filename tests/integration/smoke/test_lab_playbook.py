"""`make lab`'s main job on the real local engine: a single-node Swarm with the 28-service sample stack.

Runs playbooks/lab.yml twice against the real engine: the first run converges (or finds the lab already up),
the second must report no change. Then one service is asked over MCP through its published port, and through
the front door (HAProxy, role front_door) on that port + 10000.
If the engine was not in a Swarm before the session, fixture lab_swarm leaves the Swarm again at its end.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from ansible_collections.sophia_ai.platform.plugins.module_utils import _mcp

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_lab(repo: Path) -> dict:
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/lab", "playbooks/lab.yml"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def lab(repo, lab_swarm):  # pylint: disable=unused-argument
    first = _run_lab(repo)
    second = _run_lab(repo)
    return first, second


def test_every_service_of_the_sample_stack_runs(lab):
    first = lab[0]
    shown = first["plays"][0]["tasks"][-1]["hosts"]["lab-swarm"]["msg"]
    assert shown[0] == "28 of 28 services running"
    assert any(line.startswith("sophia_mcp-gong.1") and ":9005->9005/tcp" in line for line in shown)


def test_services_run_the_image_set_up_built_last(lab, engine):
    cache = Path(os.environ.get("SOPHIA_CACHE", Path.home() / ".cache/sophia-platform"))
    current = (cache / "images" / "mcp-server.current").read_text().strip()
    images = {s.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] for s in engine.services.list(filters={"label": "com.docker.stack.namespace=sophia"})}
    assert images == {current}


def test_second_run_changes_nothing(lab):
    second = lab[1]
    assert second["stats"]["lab-swarm"]["changed"] == 0
    assert second["stats"]["lab-swarm"]["failures"] == 0


def test_api_key_is_never_printed(lab, repo):
    first, second = lab
    state = Path(os.environ.get("SOPHIA_CACHE", Path.home() / ".cache/sophia-platform")) / "lab" / "mcp_api_key"
    assert state.stat().st_mode & 0o777 == 0o600
    key = state.read_text()
    assert len(key) == 40
    assert key not in json.dumps(first) and key not in json.dumps(second)


def test_gong_answers_mcp_on_9005(lab):
    async def talk():
        async with Client("http://127.0.0.1:9005/mcp", mode="legacy") as client:
            result = await client.call_tool("server_info", {})
            return client.server_info.name, result.structured_content

    name, info = asyncio.run(talk())
    assert name == "mcp-gong"
    assert info["name"] == "mcp-gong"


def test_gong_answers_mcp_through_the_front_door_on_19005(lab):
    """mcp-gong through the front door: MCP with plugins/module_utils/_mcp.py, each reply naming the Swarm server
    in the header the role sets (X-Sophia-Backend), and the runtime API socket open to its owner only."""
    facts = _mcp.probe({"url": "http://127.0.0.1:19005/mcp", "transport": "auto", "expected_tools": ["server_info"],
                        "call_tool": {"name": "server_info", "arguments": {}, "fail_on_error": True}, "headers": {},
                        "timeout": 5.0, "deadline": 30.0, "retry_delay": 0.5, "validate_certs": True, "ca_path": None,
                        "protocol_version": _mcp.LATEST_VERSION})
    assert facts["server"]["name"] == "mcp-gong"
    assert facts["transport"] == "streamable_http"

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "server_info", "arguments": {}}})
    answers = []
    for dummy in range(5):  # a new connection each, as the front door routes request by request
        conn = http.client.HTTPConnection("127.0.0.1", 19005, timeout=5)
        try:
            conn.request("POST", "/mcp", body=body, headers={
                "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": _mcp.LATEST_VERSION})
            resp = conn.getresponse()
            reply = json.loads(resp.read())
            answers.append((resp.status, resp.getheader("X-Sophia-Backend"), reply["result"]["structuredContent"]["name"]))
        finally:
            conn.close()
    assert answers == [(200, "swarm", "mcp-gong")] * 5

    cache = Path(os.environ.get("SOPHIA_CACHE", Path.home() / ".cache/sophia-platform"))
    admin = (cache / "lab" / "front-door" / "admin.sock").stat()
    assert stat.S_ISSOCK(admin.st_mode)
    assert stat.S_IMODE(admin.st_mode) == 0o600
