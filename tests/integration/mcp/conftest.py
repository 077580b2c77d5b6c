# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real MCP servers for the mcp_probe tests, started on free local ports and stopped afterwards.

- ``sample_url``: the sample server (lab/images/mcp-server/server.py, official ``mcp`` SDK) from the project
  venv, exactly as the image runs it: stateless streamable HTTP with JSON replies.
- ``sse_url``, ``stateful_url``: the same server in the SDK's HTTP+SSE transport and in stateful streamable
  HTTP with SSE-framed replies (tests/integration/mcp/sdk_server.py).
- ``tls``: the sample server over HTTPS with a self-signed certificate made by ``openssl req -x509``.
- ``broken``: the deliberately broken servers of tests/integration/mcp/broken.py.
"""

from __future__ import annotations

import subprocess

import pytest

from .broken import BrokenServer
from .servers import port_free, sample_server, sdk_server


@pytest.fixture(scope="session")
def sample_url():
    server = sample_server(port_free()).wait()
    yield "http://127.0.0.1:%d/mcp" % server.port
    server.stop()


@pytest.fixture(scope="session")
def sse_url():
    server = sdk_server("sse", port_free()).wait()
    yield "http://127.0.0.1:%d/sse" % server.port
    server.stop()


@pytest.fixture(scope="session")
def stateful_url():
    server = sdk_server("stateful", port_free()).wait()
    yield "http://127.0.0.1:%d/mcp" % server.port
    server.stop()


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """``(url, ca_path)``: the sample server behind TLS with a fresh self-signed certificate for 127.0.0.1."""
    work = tmp_path_factory.mktemp("tls")
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mcp-probe-test",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    server = sdk_server("tls", port_free(), str(cert), str(key)).wait()
    yield "https://127.0.0.1:%d/mcp" % server.port, str(cert)
    server.stop()


@pytest.fixture(scope="session")
def broken():
    with BrokenServer() as server:
        yield server
