#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_recorder
short_description: Send MCP requests at a fixed rate to every service, record each one, and summarise the recording
version_added: 0.1.0
description:
  - Runs the collection's traffic recorder as a background process on the target host, so that a phase playbook
    can start it before a step and stop it after, and read from its recording how many requests failed.
  - The recorder sends one cheap MCP request (C(tools/call) of O(tool), or C(ping)) to every service in
    O(targets) at O(rate) requests per second each, on an open-loop schedule (request N is due at N / O(rate)
    seconds whatever happened to earlier ones, so slow replies do not lower the offered rate), each on a new
    connection, never retried. Each service is initialised once (C(initialize), C(notifications/initialized));
    a request answered HTTP 404 for its session counts as failed (V(session_lost)) and the recorder
    re-initialises, as the MCP specification says.
  - It writes one JSON line per request to O(out) - time (ISO 8601 and monotonic seconds since the start),
    service, outcome, latency, HTTP status and the backend that answered, read from the response header
    O(backend_header) that the front door sets - and flushes every second.
  - V(started) starts the recorder unless one already runs for O(out) with the same settings (then nothing
    changes; with other settings it is restarted). V(stopped) stops it (SIGTERM; it lets the requests in flight
    finish) and returns the summary. V(summary) only reads the recording.
  - The summary gives, per service and overall, the requests, the failures by outcome, the availability
    (successful / sent), p50, p95 and p99 latency of the successful requests, the longest failure streak, a
    downtime estimate and the same figures per time window of O(window) seconds.
  - Why our own - no Ansible module or load generator we could ship speaks MCP (an initialise handshake, sessions
    and their loss, SSE-framed replies) and records every request with the backend that answered; tools such
    as C(hey), C(vegeta) or C(wrk) send bare HTTP requests and report aggregates. The recorder uses the Python
    standard library only, like M(sophia_ai.platform.mcp_probe), whose MCP client it shares, and also runs as a
    command, C(python -m ansible_collections.sophia_ai.platform.plugins.module_utils._recorder run|summary).
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._attributes
attributes:
  check_mode:
    support: full
    details:
      - V(started) and V(stopped) report what they would do; V(stopped) returns the summary of the recording so far.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - V(started) with the same settings while the recorder runs, and V(stopped) while none runs, change nothing.
options:
  state:
    description:
      - V(started) ensures a recorder with these settings writes O(out); V(stopped) ensures none does and returns
        the summary; V(summary) returns the summary of O(out) as it stands.
    type: str
    choices: [started, stopped, summary]
    required: true
  out:
    description:
      - The JSON lines file the recorder writes (truncated on start unless O(append)). Its directory must exist.
      - Beside it go C(<out>.config.json) (the settings, mode 0600), C(<out>.log) (the recorder's output),
        C(<out>.pid) (unless O(pid_file)) and a C(.traffic_recorder/) directory with the recorder's code.
    type: path
    required: true
  pid_file:
    description:
      - Where the recorder writes its pid while it records. Default C(<out>.pid).
    type: path
  targets:
    description:
      - The services, each name mapped to its MCP URL, for example through the front door. Required for
        V(started).
    type: dict
  rate:
    description: Requests per second to each service.
    type: float
    default: 10
  duration:
    description:
      - Seconds to record; the recorder then stops by itself. Without it, it records until V(stopped).
    type: float
  timeout:
    description:
      - Seconds one request (connect, send, complete reply) may take before it counts as V(timeout).
    type: float
    default: 2
  method:
    description: The request sent - a C(tools/call) of O(tool) with O(arguments), or C(ping).
    type: str
    choices: [tools/call, ping]
    default: tools/call
  tool:
    description: The tool to call with O(method=tools/call). Pick a cheap, harmless one (the sample servers' C(echo)).
    type: str
    default: echo
  arguments:
    description: The tool's arguments.
    type: dict
    default: {text: traffic_recorder}
  backend_header:
    description:
      - The response header that names the backend that answered (set by the front door). Its value is recorded
        per request as C(backend); requests without it record null.
    type: str
    default: X-Sophia-Backend
  headers:
    description:
      - Extra HTTP headers sent with every request, for example C(Authorization). Kept in the mode 0600
        settings file, never in the process list, the recording or the module's result.
    type: dict
    default: {}
  max_in_flight:
    description:
      - Requests in flight at most. Default - O(rate) x services x O(timeout) + 2 (at least 4, at most 1024), so
        that every request may use its whole timeout without delaying the schedule.
    type: int
  max_lag:
    description:
      - A request that cannot be sent within this many seconds of its due time (every worker busy) is not sent;
        it is recorded as V(skipped) and the summary reports that the schedule was not kept.
    type: float
    default: 1
  append:
    description: Append to O(out) instead of truncating it when the recorder starts.
    type: bool
    default: false
  validate_certs:
    description: Verify TLS certificates of C(https://) targets.
    type: bool
    default: true
  ca_path:
    description: PEM file of CA certificates to trust for C(https://) targets.
    type: path
  protocol_version:
    description: The MCP protocol version offered in C(initialize).
    type: str
    choices: ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']
    default: '2025-11-25'
  window:
    description: Seconds per time window in the summary.
    type: float
    default: 1
  service_windows:
    description:
      - Return the time windows of every service in RV(summary) too, not only the overall ones. V(false) keeps the
        result small for a long recording of many services (RV(summary_text) still lists the windows with failures).
    type: bool
    default: true
  stop_timeout:
    description:
      - Seconds V(stopped) waits for the recorder to exit after SIGTERM (it lets requests in flight finish, at most
        O(timeout)) before it kills it.
    type: float
    default: 30
notes:
  - The recorder runs on the target host, with the Python interpreter that runs the module, in a session of its
    own, so it outlives the task. Stop it with V(stopped) (it also stops by itself after O(duration)).
  - Outcomes - V(ok), V(http_<code>) (for example V(http_503)), V(timeout), V(refused), V(reset), V(dns),
    V(unreachable), V(connection_error), V(tls), V(not_mcp), V(rpc_error), V(tool_error), V(session_lost),
    V(client_error) and V(skipped) (not sent). Availability is V(ok) over the requests sent.
seealso:
  - module: sophia_ai.platform.mcp_probe
"""

EXAMPLES = r"""
- name: Record traffic through the front door during the step
  sophia_ai.platform.traffic_recorder:
    state: started
    out: /var/tmp/sophia/phase3-traffic.jsonl
    rate: 50
    targets:
      mcp-gong: http://127.0.0.1:9005/mcp
      mcp-ai-memory: http://127.0.0.1:9001/mcp

- name: The step itself
  ansible.builtin.debug:
    msg: cut over here

- name: Stop recording and read the summary
  sophia_ai.platform.traffic_recorder:
    state: stopped
    out: /var/tmp/sophia/phase3-traffic.jsonl
  register: phase3_traffic

- name: No request failed
  ansible.builtin.assert:
    that: phase3_traffic.summary.overall.failed == 0
    fail_msg: "{{ phase3_traffic.summary_text }}"

- name: Summary in 10 s windows of a recording another play made
  sophia_ai.platform.traffic_recorder:
    state: summary
    out: /var/tmp/sophia/phase3-traffic.jsonl
    window: 10
"""

RETURN = r"""
msg:
  description: What was done, and for V(stopped) and V(summary) the summary's first line.
  returned: always
  type: str
  sample: traffic recorder started (pid 4242), 50.0 request(s)/s to each of 2 service(s), writing /var/tmp/t.jsonl
running:
  description: Whether a recorder writes O(out) after the task.
  returned: always
  type: bool
  sample: true
pid:
  description: The recorder's pid (V(started)), or the pid that was stopped; null when none ran.
  returned: always
  type: int
  sample: 4242
replaced_pid:
  description: The pid of a recorder with other settings that V(started) stopped first.
  returned: state is started
  type: int
  sample: null
out:
  description: The recording.
  returned: always
  type: str
  sample: /var/tmp/sophia/phase3-traffic.jsonl
pid_file:
  description: The pid file.
  returned: always
  type: str
  sample: /var/tmp/sophia/phase3-traffic.jsonl.pid
config_file:
  description: The settings file (mode 0600).
  returned: always
  type: str
  sample: /var/tmp/sophia/phase3-traffic.jsonl.config.json
log_file:
  description: The recorder's output.
  returned: always
  type: str
  sample: /var/tmp/sophia/phase3-traffic.jsonl.log
config:
  description: The settings the recorder runs with (header values masked).
  returned: state is started
  type: dict
  sample: {rate: 50.0, timeout: 2.0, method: tools/call, tool: echo, targets: {mcp-gong: http://127.0.0.1:9005/mcp}}
summary:
  description:
    - The recording's summary; null when O(out) does not exist yet.
    - C(overall) and each of C(services) have C(requests) (sent), C(ok), C(failed), C(skipped) (not sent),
      C(availability) (ok / sent, null without requests), C(outcomes) (failed requests by outcome),
      C(latency_ms) (C(p50), C(p95), C(p99), C(max), C(mean) of successful requests), C(backends) (requests per
      answering backend), C(rate_per_s), C(longest_failure_streak) (C(requests), C(seconds), C(from_t), C(to_t),
      C(outcomes); null without failures) and C(downtime_s) (the failure streaks' time, each from its first
      failure to the next success; overall the time during which any service failed).
    - C(windows) (overall, and in each service unless O(service_windows=false)) lists per window C(t) (seconds
      from the start), C(requests), C(ok), C(failed), C(skipped), C(availability), C(p50_ms), C(p99_ms) and
      C(outcomes).
    - C(schedule) says whether the schedule was C(kept) (no request skipped or later than one interval), with
      C(skipped), C(late), C(lag_p99_ms) and C(lag_max_ms). C(complete) is false when a run has no stop record.
  returned: state is stopped or summary
  type: dict
  sample:
    runs: 1
    complete: true
    duration_s: 10.0
    window_s: 1.0
    overall: {requests: 1000, ok: 999, failed: 1, skipped: 0, availability: 0.999, outcomes: {reset: 1},
              latency_ms: {p50: 2.1, p95: 3.4, p99: 5.0, max: 9.8, mean: 2.3}, downtime_s: 0.02}
    schedule: {kept: true, skipped: 0, late: 0, lag_p99_ms: 1.2, lag_max_ms: 4.0}
summary_text:
  description: The summary in a few lines - overall, one line per service, the windows with failures.
  returned: state is stopped or summary
  type: str
  sample: "/var/tmp/t.jsonl: 2 service(s), 10.0 s: 1000 requests, 1 failed (reset 1), availability 99.900%, ..."
warning:
  description: Set when the recorder had to be killed after O(stop_timeout).
  returned: when the recorder was killed
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._mcp import LATEST_VERSION, SUPPORTED_VERSIONS
from ansible_collections.sophia_ai.platform.plugins.module_utils._recorder import METHODS, read_summary, start, stop

RECORDER_OPTIONS = ("out", "pid_file", "targets", "rate", "duration", "timeout", "method", "tool", "arguments",
                    "backend_header", "headers", "max_in_flight", "max_lag", "append", "validate_certs", "ca_path",
                    "protocol_version")


def argument_spec():
    return {
        "state": {"type": "str", "choices": ["started", "stopped", "summary"], "required": True},
        "out": {"type": "path", "required": True},
        "pid_file": {"type": "path"},
        "targets": {"type": "dict"},
        "rate": {"type": "float", "default": 10},
        "duration": {"type": "float"},
        "timeout": {"type": "float", "default": 2},
        "method": {"type": "str", "choices": list(METHODS), "default": "tools/call"},
        "tool": {"type": "str", "default": "echo"},
        "arguments": {"type": "dict", "default": {"text": "traffic_recorder"}},
        "backend_header": {"type": "str", "default": "X-Sophia-Backend"},
        "headers": {"type": "dict", "default": {}, "no_log": True},
        "max_in_flight": {"type": "int"},
        "max_lag": {"type": "float", "default": 1},
        "append": {"type": "bool", "default": False},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "protocol_version": {"type": "str", "choices": list(SUPPORTED_VERSIONS), "default": LATEST_VERSION},
        "window": {"type": "float", "default": 1},
        "service_windows": {"type": "bool", "default": True},
        "stop_timeout": {"type": "float", "default": 30},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "started", ("targets",))])
    params = module.params
    try:
        if params["state"] == "started":
            result = start(dict((key, params[key]) for key in RECORDER_OPTIONS), module.check_mode)
        elif params["state"] == "stopped":
            result = stop(params["out"], params["pid_file"], params["window"], params["stop_timeout"],
                          module.check_mode, params["service_windows"])
        else:
            result = read_summary(params["out"], params["pid_file"], params["window"], params["service_windows"])
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    if result.get("warning"):
        module.warn(result["warning"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
