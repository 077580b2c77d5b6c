"""The sample MCP server image is real: it runs on the local engine and speaks MCP to the official SDK client.

Nothing is mocked: the container is started from the locally built image, and the client is the official
``mcp`` SDK's, in legacy mode so that it performs the ``initialize`` handshake (protocol version
negotiation) before ``tools/list``.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml
from mcp import Client

IMAGE = "sophia-platform/mcp-server:lab"
pytestmark = pytest.mark.integration


def _wait_http(url: str, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def server(engine, free_port):
    name = f"sophia-smoke-{free_port}"
    container = engine.containers.run(
        IMAGE,
        name=name,
        detach=True,
        environment={"MCP_SERVER_NAME": "mcp-smoke", "MCP_PORT": str(free_port), "MCP_READY_FILE": "/tmp/ready"},
        ports={f"{free_port}/tcp": ("127.0.0.1", free_port)},
    )
    try:
        _wait_http(f"http://127.0.0.1:{free_port}/healthz")
        yield container, free_port
    finally:
        container.remove(force=True)
    assert not engine.containers.list(all=True, filters={"name": name})


def test_image_tags_are_content_keyed(engine):
    lab = engine.images.get(IMAGE)
    keyed = [t for t in lab.tags if t != IMAGE and t.startswith("sophia-platform/mcp-server:")]
    assert keyed, "the :lab tag points at an image that also carries its content-key tag"
    assert lab.labels["sophia.ai/content-key"] == keyed[0].split(":")[1]


def test_initialize_and_tools_list_with_the_official_sdk_client(server):
    port = server[1]

    async def talk():
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as client:
            tools = await client.list_tools()
            added = await client.call_tool("add", {"a": 2, "b": 3})
            return client.protocol_version, client.server_info, [t.name for t in tools.tools], added

    protocol, info, tools, added = asyncio.run(talk())
    assert info.name == "mcp-smoke"
    assert info.version == "1.0.0"
    assert protocol  # negotiated during initialize
    assert sorted(tools) == ["add", "echo", "server_info"]
    assert added.structured_content == {"result": 5}


def test_health_command_and_readiness_switch(server):
    container, port = server
    assert container.exec_run(["mcp-healthcheck"]).exit_code == 0
    # readiness follows MCP_READY_FILE: absent -> 503, present -> 200
    assert _wait_http(f"http://127.0.0.1:{port}/readyz") == 503
    assert container.exec_run(["mcp-healthcheck", "/readyz"]).exit_code == 1
    assert container.exec_run(["touch", "/tmp/ready"]).exit_code == 0
    assert _wait_http(f"http://127.0.0.1:{port}/readyz") == 200


def test_server_runs_as_non_root(server):
    container = server[0]
    assert container.exec_run(["id", "-u"]).output.strip() == b"10001"


def test_docker_stack_accepts_the_sample_stack(repo):
    """The stack file is valid for `docker stack deploy` (the CLI's own loader and schema, client side)."""
    res = subprocess.run(
        ["docker", "stack", "config", "-c", str(repo / "examples" / "sophia-mcp-stack.yml")],
        capture_output=True, text=True, check=False, env={"PATH": "/usr/local/bin:/usr/bin:/bin", "MCP_IMAGE_TAG": "abc"},
    )
    assert res.returncode == 0, res.stderr
    services = yaml.safe_load(res.stdout)["services"]
    assert len(services) == 28
    assert {svc["image"] for svc in services.values()} == {"sophia-platform/mcp-server:abc"}
