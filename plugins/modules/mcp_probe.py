#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mcp_probe
short_description: Probe an MCP server - initialize, list its tools, optionally call one - and time each step
version_added: 0.1.0
description:
  - Speaks the Model Context Protocol (MCP, JSON-RPC 2.0) to one server URL, the way an MCP client does, and
    reports whether it answers, how fast, and what it is.
  - Steps, each timed in milliseconds - C(initialize) with protocol version negotiation (the probe offers
    O(protocol_version); the server's answer must be a version the probe supports, else the task fails naming
    both), the C(notifications/initialized) notification, C(tools/list) (every page of a paginated list), and,
    with O(call_tool), one C(tools/call).
  - "Transports: streamable HTTP (one POST per message, JSON or SSE-framed replies, C(Mcp-Session-Id) sessions
    when the server hands one out) and the older HTTP+SSE transport (a GET opens an event stream whose C(endpoint)
    event names where to POST; replies come back on the stream). With O(transport=auto) the probe POSTs
    C(initialize) first and falls back to HTTP+SSE when that POST is answered HTTP 404 or 405, as the MCP
    specification's backwards-compatibility section says."
  - Retries the whole exchange on failures that may pass (connection refused or reset, DNS failure, timeout,
    HTTP 408, 425, 429, 500, 502, 503, 504, an expired session) every O(retry_delay) seconds until O(deadline)
    seconds have passed; each request waits at most O(timeout) seconds. Failures that would repeat (TLS
    verification, other HTTP 4xx, a reply that is not MCP, a JSON-RPC error, an unsupported protocol version,
    missing tools) fail at once. The failure message says what failed, where and what to do; RV(reason) is a
    stable keyword for it.
  - Read-only. It never changes the server (use a harmless tool with O(call_tool)), so check mode runs the
    same probe and C(changed) is always false.
  - Probe the MCP endpoint (for the sample servers C(/mcp)), not C(/healthz) or C(/readyz) - those are plain
    HTTP health checks, not MCP, and this module reports them as such.
  - Why our own client - no Ansible module speaks MCP (C(ansible.builtin.uri) sends one HTTP request, cannot
    negotiate a protocol, keep a session, follow an SSE stream or retry an exchange), and the official C(mcp)
    Python SDK needs Python 3.10+, C(httpx) and C(pydantic) on the managed host. This module uses the Python
    standard library only, so it runs on any managed host.
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.INFO_MODULE
options:
  url:
    description:
      - The MCP endpoint, for example V(http://10.0.0.5:9005/mcp) (streamable HTTP) or V(http://host:8000/sse)
        (HTTP+SSE).
      - HTTP proxies from the environment are not used; the probe connects to the URL's host directly.
      - One of O(url) and O(urls) is required.
    type: str
  urls:
    description:
      - Several MCP endpoints, each probed as O(url) would be (with the other options, each with its own retries
        and O(deadline)), up to O(parallel) at once, in one task - instead of a loop, where every item costs a module
        start. The task fails if any of them fails, naming each; RV(results) has every endpoint's outcome.
    type: list
    elements: str
  parallel:
    description: With O(urls), how many endpoints are probed at once.
    type: int
    default: 8
  transport:
    description:
      - V(streamable_http) or V(sse) use that transport only. V(auto) tries streamable HTTP and falls back to
        HTTP+SSE when the C(initialize) POST is answered HTTP 404 or 405.
    type: str
    choices: [auto, streamable_http, sse]
    default: auto
  expected_tools:
    description:
      - Tool names the server must offer; the task fails listing the missing ones.
    type: list
    elements: str
    default: []
  call_tool:
    description:
      - One tool to call after C(tools/list). Pick a harmless one (the sample servers' C(echo)).
      - The tool must be in the server's tool list.
    type: dict
    suboptions:
      name:
        description: The tool's name.
        type: str
        required: true
      arguments:
        description: The tool's arguments.
        type: dict
        default: {}
      fail_on_error:
        description:
          - Fail the task when the call's result has C(isError) true. With V(false) the result is only reported
            in RV(tool_call).
        type: bool
        default: true
  headers:
    description:
      - HTTP headers sent with every request, for example C(Authorization). Values are secret and never logged.
      - The probe sets C(Accept), C(Content-Type), C(Mcp-Session-Id) and C(MCP-Protocol-Version) itself; they
        may not appear here.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds one request may take (connect, TLS handshake and reply), never more than what is left of
        O(deadline).
    type: float
    default: 10
  deadline:
    description:
      - Seconds the whole probe may take, retries included.
    type: float
    default: 30
  retry_delay:
    description:
      - Seconds between attempts.
    type: float
    default: 1
  validate_certs:
    description:
      - Verify the server's TLS certificate and host name for C(https://) URLs.
      - V(false) is for labs only.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) to trust instead of the system's trust store, for example a private CA
        or a self-signed server certificate.
    type: path
  protocol_version:
    description:
      - The MCP protocol version the probe offers in C(initialize). The server may answer another version; the
        probe accepts any of these choices.
    type: str
    choices: ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']
    default: '2025-11-25'
notes:
  - Each request uses a new connection, so RV(steps[].latency_ms) includes the TCP connect and TLS handshake,
    as a new client would see it.
  - Failures return RV(reason), RV(attempts), RV(elapsed_ms) and RV(failed_attempts) besides C(msg), and where they
    apply C(url), C(step), C(status) (HTTP), C(body) (a snippet of the reply), C(code) (JSON-RPC error) and
    C(missing) (tools).
seealso:
  - name: MCP specification, transports
    description: Streamable HTTP, and the backwards compatibility with HTTP+SSE.
    link: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports
"""

EXAMPLES = r"""
- name: The MCP service answers and offers its tools
  sophia_ai.platform.mcp_probe:
    url: http://10.0.0.5:9005/mcp
    expected_tools: [echo, add, server_info]

- name: Call a harmless tool, give the service a minute to come up
  sophia_ai.platform.mcp_probe:
    url: "http://{{ inventory_hostname }}:9005/mcp"
    call_tool:
      name: echo
      arguments:
        text: probe
    deadline: 60
    retry_delay: 2
  register: mcp_gong_probe

- name: Behind TLS with a private CA and a token
  sophia_ai.platform.mcp_probe:
    url: https://mcp.example.internal/gong/mcp
    ca_path: /etc/ssl/private-ca.pem
    headers:
      Authorization: "Bearer {{ mcp_token }}"

- name: Every service of the fleet answers through the front door (one task, eight probes at a time)
  sophia_ai.platform.mcp_probe:
    urls:
      - http://127.0.0.1:19005/mcp
      - http://127.0.0.1:19006/mcp
      - http://127.0.0.1:19007/mcp
    deadline: 60
  register: fleet_probe

- name: An older server that only speaks HTTP+SSE; also runs in check mode (it only reads)
  sophia_ai.platform.mcp_probe:
    url: http://legacy-mcp:8000/sse
    transport: sse
  check_mode: true
"""

RETURN = r"""
msg:
  description: One line saying which server answered, over what, and how fast (with O(urls), how many answered, and
    each failure).
  returned: always
  type: str
  sample: "MCP server mcp-gong 1.0.0 at http://10.0.0.5:9005/mcp answered over streamable_http (protocol 2025-11-25,
    3 tools, attempt 1): initialize 10.5 ms, notifications/initialized 4.1 ms, tools/list 7.7 ms"
url:
  description: The URL probed.
  returned: success
  type: str
  sample: http://10.0.0.5:9005/mcp
transport:
  description: The transport that answered, V(streamable_http) or V(sse).
  returned: success
  type: str
  sample: streamable_http
fallback:
  description: Why O(transport=auto) fell back to HTTP+SSE.
  returned: success and the probe fell back to HTTP+SSE
  type: str
  sample: streamable HTTP initialize answered HTTP 405
server:
  description: The server's C(serverInfo) from C(initialize).
  returned: success
  type: dict
  contains:
    name:
      description: Server name.
      type: str
      sample: mcp-gong
    version:
      description: Server version.
      type: str
      sample: 1.0.0
    title:
      description: Display title, when the server gives one.
      type: str
      returned: when the server gives one
      sample: Gong
  sample: {name: mcp-gong, version: 1.0.0}
protocol_version:
  description: The protocol version negotiated in C(initialize).
  returned: success
  type: str
  sample: '2025-11-25'
capabilities:
  description: The server's capabilities, as it sent them.
  returned: success
  type: dict
  sample: {tools: {listChanged: false}, prompts: {listChanged: false}}
instructions:
  description: The server's instructions for clients, if any.
  returned: success
  type: str
  sample: Sample MCP service mcp-gong of the sophia lab fleet.
tools:
  description:
    - Names of the tools the server offers (every page of C(tools/list)), in the server's order.
    - Empty when the server does not advertise the C(tools) capability and no tool was asked for.
  returned: success
  type: list
  elements: str
  sample: [echo, add, server_info]
tool_call:
  description: The result of O(call_tool); null without it.
  returned: success
  type: dict
  contains:
    name:
      description: The tool called.
      type: str
      sample: echo
    is_error:
      description: The result's C(isError).
      type: bool
      sample: false
    text:
      description: The text content of the result, joined by newlines.
      type: str
      sample: probe
    structured_content:
      description: The result's C(structuredContent), when present.
      type: raw
      returned: when the tool returns structured content
      sample: {result: probe}
  sample: {name: echo, is_error: false, text: probe, structured_content: {result: probe}}
steps:
  description: The steps of the successful attempt, in order, each with its latency in milliseconds.
  returned: success
  type: list
  elements: dict
  contains:
    step:
      description: V(connect) (HTTP+SSE only - the GET and its endpoint event), V(initialize),
        V(notifications/initialized), V(tools/list) (all pages together) or V(tools/call).
      type: str
      sample: initialize
    latency_ms:
      description: Milliseconds from sending the request to the complete reply.
      type: float
      sample: 10.512
    pages:
      description: Number of C(tools/list) pages (V(tools/list) only).
      type: int
      returned: for tools/list
      sample: 1
    endpoint:
      description: The URL the server's endpoint event named (V(connect) only).
      type: str
      returned: for connect
      sample: http://legacy-mcp:8000/messages/?session_id=51c4a20b
    is_error:
      description: The call result's C(isError) (V(tools/call) only).
      type: bool
      returned: for tools/call
      sample: false
  sample: [{step: initialize, latency_ms: 10.5}, {step: notifications/initialized, latency_ms: 4.1},
           {step: tools/list, latency_ms: 7.7, pages: 1}]
attempts:
  description: Number of attempts made, the successful or last one included.
  returned: always, except when the options are invalid
  type: int
  sample: 1
failed_attempts:
  description: The failed attempts (the last ten), each with its RV(reason) keyword and message.
  returned: always, except when the options are invalid
  type: list
  elements: dict
  sample: [{attempt: 1, reason: connection_refused, msg: "connection refused by 10.0.0.5:9005 ..."}]
elapsed_ms:
  description: Milliseconds the whole probe took, retries and delays included.
  returned: always, except when the options are invalid
  type: float
  sample: 31.4
results:
  description: With O(urls), one entry per endpoint in the order given - C(url), C(ok), and the facts a probe of
    O(url) returns (C(server), C(tools), C(steps), C(attempts), ...) or, for a failure, C(msg), C(reason) and the
    other failure details.
  returned: with O(urls)
  type: list
  elements: dict
  sample: [{url: "http://127.0.0.1:19005/mcp", ok: true, transport: streamable_http, attempts: 1},
           {url: "http://127.0.0.1:19006/mcp", ok: false, reason: connection_refused, msg: "connection refused ..."}]
reason:
  description:
    - On failure, what failed, as a stable keyword - V(connection_refused), V(dns_error), V(connection_error),
      V(tls_error), V(timeout), V(http_status), V(session_expired), V(not_mcp), V(jsonrpc_error),
      V(unsupported_protocol_version), V(tools_missing) or V(tool_error).
  returned: failure
  type: str
  sample: connection_refused
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._mcp import (
    LATEST_VERSION, SUPPORTED_VERSIONS, TRANSPORTS, probe, probe_many,
)


def argument_spec():
    return {
        "url": {"type": "str"},
        "urls": {"type": "list", "elements": "str"},
        "parallel": {"type": "int", "default": 8},
        "transport": {"type": "str", "choices": list(TRANSPORTS), "default": "auto"},
        "expected_tools": {"type": "list", "elements": "str", "default": []},
        "call_tool": {"type": "dict", "options": {
            "name": {"type": "str", "required": True},
            "arguments": {"type": "dict", "default": {}},
            "fail_on_error": {"type": "bool", "default": True},
        }},
        "headers": {"type": "dict", "default": {}, "no_log": True},
        "timeout": {"type": "float", "default": 10},
        "deadline": {"type": "float", "default": 30},
        "retry_delay": {"type": "float", "default": 1},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "protocol_version": {"type": "str", "choices": list(SUPPORTED_VERSIONS), "default": LATEST_VERSION},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("url", "urls")], required_one_of=[("url", "urls")])
    params = {k: v for k, v in module.params.items() if k not in ("urls", "parallel")}
    try:
        if module.params["urls"] is None:
            result = probe(params)
        else:
            if module.params["parallel"] < 1:
                module.fail_json(msg="parallel must be 1 or more, got %d" % module.params["parallel"])
            results, failed = probe_many(params, module.params["urls"], module.params["parallel"])
            if failed:
                module.fail_json(msg="%d of %d MCP endpoints did not answer: %s" % (
                    len(failed), len(results), "; ".join(r["msg"] for r in failed)), results=results)
            result = {"results": results, "msg": "%d MCP endpoints answered (slowest %.1f ms)" % (
                len(results), max(r["elapsed_ms"] for r in results))}
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
