#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_switch
short_description: Move an MCP service's traffic between its Swarm and K3s backends at the HAProxy front door
version_added: 0.1.0
description:
  - Sets the weights of one service's servers in the front door (role C(sophia_ai.platform.front_door)) through
    HAProxy's runtime API, without a reload - all to Swarm, all to K3s, a split, or explicit weights per server or
    side.
  - The front door names each service's HAProxy backend after the service and its servers C(swarm) and C(k3s),
    or C(swarm-<n>) and C(k3s-<n>) when a side has several; the part before the first C(-) is the server's
    I(side).
  - Health gate - before anything changes, every server whose share of the traffic would grow must pass its
    health check (up, checks enabled, last completed check passed). Otherwise the task fails, naming each such server
    with its status, check status and code and the last check's result, and nothing is changed. A server in
    maintenance counts as unhealthy (its checks are paused). See O(health_timeout).
  - Order - servers that take traffic get their new weight and leave drain first, then the others go to weight 0,
    so the service always has a server. With O(drain) (the default) a server whose weight drops to 0 is also put
    in C(drain) state - it gets no new requests, the ones it serves finish - and the module waits until its
    current sessions reach 0 or O(drain_timeout) passes (then it warns). Without O(drain), its sessions are
    shut at once.
  - Idempotent - it compares the effective weights (0 for a drained server) and changes nothing when they already
    hold; a drained server whose wanted weight is 0 stays as it is.
  - Persistence - with O(state_file) (the front door's C(front_door_server_state_file)) the module writes HAProxy's
    C(show servers state) to that file after a change. The front door's configuration loads it at every start
    and reload (C(load-server-state-from-file global)), so a reload, a restart or a rerun of the role keeps the
    switch. HAProxy applies a saved weight only while the configured weight of that server is unchanged - when
    the role's C(front_door_services) weights change, the configuration wins; after a final cut-over, set the
    role's weights to match.
  - "Why our own module: no Ansible module drives HAProxy's runtime API with health gating and drain for a
    service as a whole. C(community.general.haproxy) (community.general 11.4.2, bundled with ansible 12.3.0)
    changes one server per task (O(community.general.haproxy#module:host)), so a switch is several tasks with
    no ordering guarantee and no rule that the service keeps a server; it sets a weight on a server without
    looking at its health check (its C(wait) only polls for C(UP) after the change is made, then fails with the
    change in place); it supports neither check mode nor diff mode; its C(changed) compares C(show stat) rows
    including the current session count, so it can report a change when none was made; it talks over a unix
    socket only; and it never writes the server-state file, so a reload of haproxy undoes its weights."
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the servers and applies the health gate, changes nothing; C(changed) and the diff say what a real run
        would do (an unhealthy target fails in check mode too).
  diff_mode:
    support: full
    details:
      - The effective weight and admin state (V(ready), V(drain), V(maint)) of every server, before and after.
  idempotent:
    support: full
    details:
      - When the effective weights already hold, nothing is sent to HAProxy and C(changed) is false.
options:
  service:
    description:
      - The service, that is the HAProxy backend, for example V(mcp-gong).
    type: str
    required: true
    aliases: [backend]
  to:
    description:
      - V(swarm) or V(k3s) - every server of that side gets weight 100, every other server of the backend 0.
      - V(split) - O(split) percent of the traffic to the C(k3s) side, the rest to the C(swarm) side, other
        servers 0. Per-server weights are scaled so the sides' shares hold whatever their server counts.
      - Mutually exclusive with O(weights).
    type: str
    choices: [swarm, k3s, split]
  split:
    description:
      - With O(to=split), the percent of the service's traffic that goes to the C(k3s) side.
    type: int
  weights:
    description:
      - "Weight per server or side, for example C({swarm: 0, k3s: 100}); 0 to 256. A side's weight is given to
        each server of the side; an exact server name wins over its side; servers that no key names keep their
        weight."
      - Mutually exclusive with O(to).
    type: dict
  drain:
    description:
      - Put servers whose weight drops to 0 in C(drain) state and wait for their sessions to end (up to
        O(drain_timeout)). With V(false) their sessions are shut at once, which cuts requests in flight.
    type: bool
    default: true
  drain_timeout:
    description:
      - Seconds to wait for drained servers to finish their sessions. When they have not, the module warns; the
        switch itself is done.
    type: float
    default: 60
  health_timeout:
    description:
      - Seconds to wait for unhealthy target servers to pass their health checks before refusing. V(0) refuses
        at once.
    type: float
    default: 0
  socket:
    description:
      - HAProxy's runtime API, a unix socket path or C(tcp://HOST:PORT). It must be declared with
        C(level admin) (the front door's C(front_door_socket) is).
    type: str
    default: /run/haproxy/admin.sock
  state_file:
    description:
      - The server-state file of HAProxy's configuration (C(server-state-file), the front door's
        C(front_door_server_state_file)). After a change the module writes the running state there (0600) so
        that a reload keeps it. Without it the module warns after a change.
    type: path
  timeout:
    description:
      - Seconds one runtime API command may take.
    type: float
    default: 5
notes:
  - Runs on the host that holds the runtime API socket (usually the front door host, with C(become)).
  - Failures return C(reason), a stable keyword - V(unhealthy_target), V(no_traffic), V(unknown_service),
    V(unknown_server), V(no_side), V(bad_weight), V(bad_split), V(socket_missing), V(socket_permission),
    V(socket_refused), V(timeout), V(permission_denied), V(state_file) - and where they apply C(service),
    C(unhealthy) and C(servers).
seealso:
  - name: HAProxy 2.6 management guide, the runtime API
    description: C(set server), C(show servers state), C(show stat).
    link: https://docs.haproxy.org/2.6/management.html#9.3
  - module: community.general.haproxy
"""

EXAMPLES = r"""
- name: Send all of mcp-gong's traffic to K3s, draining Swarm
  sophia_ai.platform.traffic_switch:
    service: mcp-gong
    to: k3s
    state_file: /var/lib/haproxy/server-state
  become: true

- name: Canary - 10 percent to K3s
  sophia_ai.platform.traffic_switch:
    service: mcp-gong
    to: split
    split: 10
    state_file: /var/lib/haproxy/server-state

- name: Explicit weights, waiting up to 20 s for K3s to pass its health checks
  sophia_ai.platform.traffic_switch:
    service: mcp-gong
    weights:
      swarm: 0
      k3s: 100
    health_timeout: 20
    socket: tcp://10.0.0.9:9999

- name: What would change (check mode and diff)
  sophia_ai.platform.traffic_switch:
    service: mcp-gong
    to: swarm
  check_mode: true
  diff: true
"""

RETURN = r"""
msg:
  description: What was done.
  returned: always
  type: str
  sample: "mcp-gong: weights set to swarm=0, k3s=100 (was swarm=100, k3s=0)"
service:
  description: The service (HAProxy backend).
  returned: success
  type: str
  sample: mcp-gong
weights:
  description: The effective weight of every server after the task (0 for a drained server); in check mode, the
    weights a real run would set.
  returned: success
  type: dict
  sample: {swarm: 0, k3s: 100}
commands:
  description: The runtime API commands sent (or, in check mode, that would be sent), in order; empty when the
    weights already hold.
  returned: success
  type: list
  elements: str
  sample: ["set server mcp-gong/k3s weight 100", "set server mcp-gong/swarm weight 0",
           "set server mcp-gong/swarm state drain"]
servers:
  description: Every server of the backend as HAProxy reports it after the task (before it, in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Server name.
      type: str
      sample: k3s
    side:
      description: V(swarm), V(k3s), or null for other names.
      type: str
      sample: k3s
    address:
      description: Address and port.
      type: str
      sample: 192.0.2.2:30905
    weight:
      description: The weight set at runtime (C(srv_uweight)).
      type: int
      sample: 100
    initial_weight:
      description: The weight in the configuration (C(srv_iweight)).
      type: int
      sample: 0
    effective_weight:
      description: The weight, or 0 when the server is in drain or maintenance.
      type: int
      sample: 100
    admin_state:
      description: V(ready), V(drain) or V(maint).
      type: str
      sample: ready
    op_state:
      description: V(running), V(starting), V(stopping) or V(stopped) (down).
      type: str
      sample: running
    status:
      description: The status HAProxy's statistics show, for example V(UP), V(DOWN), V(DRAIN), V(UP 1/2).
      type: str
      sample: UP
    sessions:
      description: Current and queued sessions.
      type: int
      sample: 0
    healthy:
      description: Whether the health gate would let traffic go to this server.
      type: bool
      sample: true
    health_problem:
      description: Why not, or null.
      type: str
      sample: null
    check:
      description: The health check - C(enabled), C(passed) (the last completed check passed), C(in_progress),
        C(status) of the last completed check (for example V(L7OK), V(L4CON), V(L7STS)), C(code) (HTTP status),
        C(description) and C(last) (the last check's result text).
      type: dict
      sample: {enabled: true, passed: true, in_progress: false, status: L7OK, code: "200",
               description: Layer7 check passed, last: ""}
drain:
  description: The drain wait, when servers were drained - C(servers), C(complete), C(sessions_left), C(waited_s).
  returned: when servers were drained
  type: dict
  sample: {servers: [swarm], complete: true, sessions_left: {}, waited_s: 0.002}
state_file:
  description: The server-state file written, or null.
  returned: success
  type: str
  sample: /var/lib/haproxy/server-state
reason:
  description: On failure, what failed, as a stable keyword (see the notes).
  returned: failure
  type: str
  sample: unhealthy_target
unhealthy:
  description: On a refused switch, the servers that failed the health gate, as in RV(servers).
  returned: when the health gate refused the switch
  type: list
  elements: dict
  sample: [{name: k3s, status: DOWN, check: {status: L4CON, last: Connection refused}}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._haproxy import DEFAULT_SOCKET, RuntimeApi, switch


def argument_spec():
    return {
        "service": {"type": "str", "required": True, "aliases": ["backend"]},
        "to": {"type": "str", "choices": ["swarm", "k3s", "split"]},
        "split": {"type": "int"},
        "weights": {"type": "dict"},
        "drain": {"type": "bool", "default": True},
        "drain_timeout": {"type": "float", "default": 60},
        "health_timeout": {"type": "float", "default": 0},
        "socket": {"type": "str", "default": DEFAULT_SOCKET},
        "state_file": {"type": "path"},
        "timeout": {"type": "float", "default": 5},
    }


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("to", "weights")],
        required_one_of=[("to", "weights")],
        required_if=[("to", "split", ("split",))],
        supports_check_mode=True,
    )
    try:
        result = switch(RuntimeApi(module.params["socket"], module.params["timeout"]), module.params, check_mode=module.check_mode)
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
