# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sophia_ai.platform.mcp_probe against real MCP servers and deliberately broken ones; nothing is mocked.

The real servers are the sample server built with the official ``mcp`` SDK (from the venv, and once from the
``sophia-platform/mcp-server:lab`` image), in its own mode and in the SDK's other transports (conftest.py).
The broken ones are written with the standard library (broken.py). The module runs through
``ansible-playbook`` (localhost, connection local) and through its module_utils.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _mcp

from .broken import TOKEN
from .servers import port_free, sample_server

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[2] / "unit" / "plugins" / "module_utils" / "fixtures" / "mcp"
IMAGE = "sophia-platform/mcp-server:lab"
SAMPLE_TOOLS = ["echo", "add", "server_info"]


def options(url, **changes):
    base = {"url": url, "transport": "auto", "expected_tools": [], "call_tool": None, "headers": {}, "timeout": 5.0,
            "deadline": 10.0, "retry_delay": 0.2, "validate_certs": True, "ca_path": None,
            "protocol_version": _mcp.LATEST_VERSION}
    base.update(changes)
    return base


def fails(url, **changes):
    with pytest.raises(_mcp.McpError) as caught:
        _mcp.probe(options(url, **changes))
    return caught.value


# ------------------------------------------------------------------------------------- through ansible-playbook


def probe_task(register, check_mode=False, **args):
    task = {"name": register, "sophia_ai.platform.mcp_probe": args, "register": register, "ignore_errors": True}
    if check_mode:
        task["check_mode"] = True
    return task


@pytest.fixture(scope="module")
def playbook(tmp_path_factory, sample_url, sse_url, tls, broken):
    """One ansible-playbook run with a task per case; yields ``(registered results by name, stdout)``."""
    work = tmp_path_factory.mktemp("playbook")
    echo = {"name": "echo", "arguments": {"text": "from ansible"}}
    tasks = [
        probe_task("ok", url=sample_url, expected_tools=SAMPLE_TOOLS, call_tool=echo),
        probe_task("check", check_mode=True, url=sample_url, expected_tools=["echo"]),
        probe_task("missing", url=sample_url, expected_tools=["echo", "gong_list_calls", "slack_post"]),
        probe_task("sse", url=sse_url, transport="sse", expected_tools=SAMPLE_TOOLS, call_tool=echo),
        probe_task("auto_sse", url=sse_url, expected_tools=["echo"]),
        probe_task("auth", url=broken.base + "/auth/mcp", headers={"Authorization": "Bearer " + TOKEN}),
        probe_task("no_auth", url=broken.base + "/auth/mcp"),
        probe_task("tls_ca", url=tls[0], ca_path=tls[1], call_tool={"name": "add", "arguments": {"a": 2, "b": 3}}),
        probe_task("readyz", url=sample_url.replace("/mcp", "/readyz")),
        # several endpoints in one task, at once: the streamable HTTP and the HTTP+SSE servers of the official SDK
        probe_task("many", urls=[sample_url, sse_url], expected_tools=["echo"], parallel=2),
        # one that refuses connections fails the task, naming it; the others' outcomes are still returned
        probe_task("many_one_down", urls=[sample_url, "http://127.0.0.1:%d/mcp" % port_free()], deadline=2,
                   retry_delay=0.5),
    ]
    names = [t["register"] for t in tasks]
    tasks.append({"name": "dump", "ansible.builtin.copy": {
        "content": "{{ %s | to_json }}" % ("{" + ", ".join("'%s': %s" % (n, n) for n in names) + "}"),
        "dest": str(work / "results.json"), "mode": "0600"}})
    play = [{"name": "mcp_probe", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    (work / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    started = time.monotonic()
    res = subprocess.run(["ansible-playbook", "-vvv", "-i", "localhost,", str(work / "play.yml")], cwd=work, env=env,
                         capture_output=True, text=True, check=False, timeout=300)
    print("ansible-playbook took %.1f s" % (time.monotonic() - started))
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads((work / "results.json").read_text()), res.stdout + res.stderr


def test_playbook_success_with_expected_tools_and_an_echo_call(playbook):
    ok = playbook[0]["ok"]
    assert not ok.get("failed") and ok["changed"] is False
    assert ok["server"] == {"name": "mcp-probe-sample", "version": "1.0.0"}
    assert ok["protocol_version"] == "2025-11-25"
    assert ok["transport"] == "streamable_http"
    assert ok["tools"] == SAMPLE_TOOLS
    assert ok["capabilities"]["tools"] == {"listChanged": False}
    assert ok["tool_call"] == {"name": "echo", "is_error": False, "text": "from ansible",
                               "structured_content": {"result": "from ansible"}}
    assert [s["step"] for s in ok["steps"]] == ["initialize", "notifications/initialized", "tools/list", "tools/call"]
    assert all(0 < s["latency_ms"] < 5000 for s in ok["steps"])
    assert ok["attempts"] == 1 and ok["elapsed_ms"] >= sum(s["latency_ms"] for s in ok["steps"])


def test_playbook_urls_probes_each_endpoint_in_one_task(playbook, sample_url, sse_url):
    many = playbook[0]["many"]
    assert not many.get("failed"), many["msg"]
    assert [(r["url"], r["ok"], r["transport"]) for r in many["results"]] == [
        (sample_url, True, "streamable_http"), (sse_url, True, "sse")]
    assert all("echo" in r["tools"] for r in many["results"])
    assert many["msg"].startswith("2 MCP endpoints answered")


def test_playbook_urls_fails_naming_the_endpoint_that_does_not_answer(playbook, sample_url):
    down = playbook[0]["many_one_down"]
    assert down["failed"] is True and down["msg"].startswith("1 of 2 MCP endpoints did not answer: ")
    (bad,) = [r for r in down["results"] if not r["ok"]]
    assert bad["reason"] == "connection_refused" and bad["url"] in down["msg"] and bad["attempts"] > 1
    assert [r["ok"] for r in down["results"]] == [True, False] and down["results"][0]["url"] == sample_url


def test_playbook_check_mode_still_probes_and_changes_nothing(playbook):
    check = playbook[0]["check"]
    assert not check.get("failed") and check["changed"] is False
    assert check["tools"] == SAMPLE_TOOLS


def test_playbook_missing_expected_tools_fail_naming_them(playbook):
    missing = playbook[0]["missing"]
    assert missing["failed"] is True
    assert "does not offer the expected tools gong_list_calls, slack_post" in missing["msg"]
    assert "it offers: add, echo, server_info" in missing["msg"]
    assert missing["reason"] == "tools_missing" and missing["missing"] == ["gong_list_calls", "slack_post"]
    assert missing["attempts"] == 1  # not retried


@pytest.mark.parametrize("name", ["sse", "auto_sse"])
def test_playbook_sse_server_of_the_official_sdk(playbook, name):
    result = playbook[0][name]
    assert not result.get("failed"), result["msg"]
    assert result["transport"] == "sse"
    assert result["server"]["name"] == "mcp-probe-sse"
    assert result["steps"][0]["step"] == "connect" and "/messages/?session_id=" in result["steps"][0]["endpoint"]
    if name == "auto_sse":
        assert result["fallback"] == "streamable HTTP initialize answered HTTP 405"
    else:
        assert "fallback" not in result and result["tool_call"]["text"] == "from ansible"


def test_playbook_headers_reach_the_server_and_stay_secret(playbook):
    results, output = playbook
    assert not results["auth"].get("failed") and results["auth"]["server"]["name"] == "auth-server"
    no_auth = results["no_auth"]
    assert no_auth["failed"] and no_auth["status"] == 401 and no_auth["reason"] == "http_status"
    assert "HTTP 401 Unauthorized" in no_auth["msg"] and "pass them in the headers option" in no_auth["msg"]
    assert "invalid_token" in no_auth["body"]
    assert TOKEN not in output and TOKEN not in json.dumps(results)
    assert '"Authorization": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in output  # -vvv prints the module's arguments


def test_playbook_tls_with_ca_path(playbook):
    result = playbook[0]["tls_ca"]
    assert not result.get("failed"), result["msg"]
    assert result["tool_call"]["structured_content"] == {"result": 5}


def test_playbook_readyz_is_not_mcp(playbook):
    result = playbook[0]["readyz"]
    assert result["failed"] and result["reason"] == "not_mcp"
    assert "not an event stream" in result["msg"] and '"status":"ready"' in result["msg"]
    assert "HTTP 405 first" in result["msg"]


# ----------------------------------------------------------------------------- real servers, module_utils


def test_stateful_server_with_session_and_sse_framed_replies(stateful_url):
    add = {"name": "add", "arguments": {"a": 40, "b": 2}}
    facts = _mcp.probe(options(stateful_url, expected_tools=["add"], call_tool=add))
    assert facts["transport"] == "streamable_http" and facts["server"]["name"] == "mcp-probe-stateful"
    assert facts["tool_call"]["structured_content"] == {"result": 42}


@pytest.mark.parametrize("offered", _mcp.SUPPORTED_VERSIONS)
def test_the_sdk_server_accepts_every_version_we_offer(sample_url, offered):
    assert _mcp.probe(options(sample_url, protocol_version=offered))["protocol_version"] == offered


def test_a_tool_error_is_reported_or_fails(sample_url, broken):
    facts = _mcp.probe(options(sample_url, call_tool={"name": "add", "arguments": {"a": "x"}, "fail_on_error": False}))
    assert facts["tool_call"]["is_error"] is True and "validation error" in facts["tool_call"]["text"]
    err = fails(broken.base + "/tool-error/mcp", call_tool={"name": "fail", "arguments": {}})
    assert isinstance(err, _mcp.McpToolCallError) and "isError true: the tool failed on purpose" in str(err)
    err = fails(sample_url, call_tool={"name": "rm_rf", "arguments": {}})
    assert "does not offer the tool rm_rf to call" in str(err)


def test_captured_initialize_still_matches_the_server(sample_url):
    """The unit tests' captures (fixtures/mcp/) still show what the sample server answers."""
    raw = json.loads((FIXTURES / "stateless_initialize.http.json").read_text())["capture"].encode("latin-1")
    raw = raw.partition(b"\r\n\r\n")[2]
    captured = json.loads(raw)
    host, port = sample_url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/mcp", json.dumps(_mcp.rpc_request("initialize", _mcp.initialize_params("2025-11-25"), 1)),
                 {"Content-Type": "application/json", "Accept": _mcp.ACCEPT_POST})
    live = json.loads(conn.getresponse().read())
    conn.close()
    for reply in (captured, live):
        reply["result"]["serverInfo"].pop("name")
        reply["result"].pop("instructions")
    assert live == captured


def test_the_sample_image_on_the_local_engine(engine):
    """The image the fleet runs, started now: the probe retries while it starts and then reaches it."""
    port = port_free()
    container = engine.containers.run(IMAGE, name="sophia-mcp-probe-%d" % port, detach=True,
                                      environment={"MCP_SERVER_NAME": "mcp-gong", "MCP_PORT": str(port)},
                                      ports={"%d/tcp" % port: ("127.0.0.1", port)})
    try:
        facts = _mcp.probe(options("http://127.0.0.1:%d/mcp" % port, deadline=60, expected_tools=SAMPLE_TOOLS,
                                   call_tool={"name": "server_info", "arguments": {}}))
    finally:
        container.remove(force=True)
    assert facts["server"] == {"name": "mcp-gong", "version": "1.0.0"}
    assert facts["tool_call"]["structured_content"]["hostname"] == container.id[:12]


def test_a_server_that_becomes_ready_later_is_reached_within_the_deadline():
    port = port_free()
    server = sample_server(port, name="mcp-late", delay=2.0)
    try:
        facts = _mcp.probe(options("http://127.0.0.1:%d/mcp" % port, deadline=40, retry_delay=0.5))
    finally:
        server.stop()
    assert facts["server"]["name"] == "mcp-late"
    assert facts["attempts"] > 1
    assert {f["reason"] for f in facts["failed_attempts"]} == {"connection_refused"}
    assert facts["elapsed_ms"] >= 2000


# ----------------------------------------------------------------------------------------- broken servers


def test_connection_refused_on_a_closed_port():
    port = port_free()  # bound and closed again: nothing listens
    started = time.monotonic()
    err = fails("http://127.0.0.1:%d/mcp" % port, deadline=1.5, retry_delay=0.3)
    assert isinstance(err, _mcp.McpConnectionError) and err.details["reason"] == "connection_refused"
    assert "connection refused by 127.0.0.1:%d" % port in str(err) and "gave up at the deadline of 1.5 s" in str(err)
    assert err.details["attempts"] >= 3
    assert time.monotonic() - started < 1.5 + 1


def test_dns_failure():
    err = fails("http://mcp-gong.invalid:9005/mcp", deadline=0.5)
    assert err.details["reason"] == "dns_error" and "cannot resolve host 'mcp-gong.invalid'" in str(err)


@pytest.mark.parametrize("path, cls, reason, retried, fragments", [
    ("/status/500", _mcp.McpHttpError, "http_status", True,
     ["answered initialize with HTTP 500 Internal Server Error: Internal Server Error: the backend crashed",
      "gave up at the deadline"]),
    ("/status/503", _mcp.McpHttpError, "http_status", True, ["HTTP 503 Service Unavailable", "No server is available"]),
    ("/json", _mcp.McpNotMcpError, "not_mcp", False, ['not JSON-RPC 2.0 (no "jsonrpc": "2.0"; keys: status)']),
    ("/html", _mcp.McpNotMcpError, "not_mcp", False, ["an HTML page (content-type text/html)", "Welcome to nginx!"]),
    ("/version/2099-01-01/mcp", _mcp.McpVersionError, "unsupported_protocol_version", False,
     ["protocol version '2099-01-01', which this client does not support (we offered '2025-11-25'"]),
    ("/version/2026-07-28/mcp", _mcp.McpVersionError, "unsupported_protocol_version", False, ["'2026-07-28'"]),
    ("/rpc-error/mcp", _mcp.McpRpcError, "jsonrpc_error", False,
     ["answered initialize with JSON-RPC error -32603: Internal error: database down"]),
    ("/nothing-here", _mcp.McpHttpError, "http_status", False,
     ["HTTP 404", "transport auto: the streamable HTTP initialize POST was answered HTTP 404 first"]),
])
def test_broken_servers(broken, path, cls, reason, retried, fragments):
    err = fails(broken.base + path, deadline=1.0, retry_delay=0.2)
    assert isinstance(err, cls) and err.details["reason"] == reason
    assert (err.details["attempts"] > 1) is retried
    for fragment in fragments:
        assert fragment in str(err)


def test_a_server_that_never_answers_is_bounded_by_the_deadline(broken):
    started = time.monotonic()
    err = fails(broken.base + "/hang", timeout=1.0, deadline=2.5, retry_delay=0.1)
    took = time.monotonic() - started
    assert isinstance(err, _mcp.McpTimeoutError) and err.details["reason"] == "timeout"
    assert "did not answer initialize" in str(err)
    assert err.details["attempts"] >= 2
    assert 2.4 <= took < 2.5 + 0.5


def test_an_older_protocol_version_answered_is_accepted(broken):
    facts = _mcp.probe(options(broken.base + "/version/2024-11-05/mcp"))
    assert facts["protocol_version"] == "2024-11-05"


def test_tools_list_pages_are_followed(broken):
    facts = _mcp.probe(options(broken.base + "/pages/mcp", expected_tools=["server_info"]))
    assert facts["tools"] == SAMPLE_TOOLS
    assert facts["steps"][-1] == {"step": "tools/list", "latency_ms": facts["steps"][-1]["latency_ms"], "pages": 3}


def test_tls_self_signed(tls):
    url, ca_path = tls
    err = fails(url)
    assert isinstance(err, _mcp.McpTlsError) and err.details["attempts"] == 1
    assert "could not be verified" in str(err) and "self-signed certificate" in str(err)
    assert "Set ca_path" in str(err)
    assert _mcp.probe(options(url, ca_path=ca_path))["server"]["name"] == "mcp-probe-tls"
    assert _mcp.probe(options(url, validate_certs=False))["server"]["name"] == "mcp-probe-tls"
    err = fails(url.replace("127.0.0.1", "localhost").replace("https", "http"), deadline=0.5)
    assert err.details["reason"] == "connection_error" and "use https://" in str(err)


def test_readiness_endpoint_is_not_mcp_probe_the_mcp_endpoint(sample_url):
    err = fails(sample_url.replace("/mcp", "/readyz"), transport="streamable_http")
    assert err.details["status"] == 405 and "check the path" in str(err)
    assert _mcp.probe(options(sample_url))["server"]["name"] == "mcp-probe-sample"
