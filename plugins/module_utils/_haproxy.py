# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy's runtime API: read a backend's servers, plan a traffic switch, apply it with health gating and drain.

The front door (role ``sophia_ai.platform.front_door``) gives every MCP service one HAProxy frontend and one
backend of the same name, whose servers are the service's Swarm and K3s endpoints, named ``swarm`` / ``k3s`` or
``swarm-<n>`` / ``k3s-<n>`` (the part before the first ``-`` is the server's *side*).

Layers, as the style guide asks:

- pure: ``parse_servers_state`` and ``parse_stat`` (the replies of ``show servers state`` and ``show stat`` of
  HAProxy 2.6), ``servers_from`` (one record per server, with its health), ``desired_weights`` (the module's
  ``weights`` / ``to`` / ``split`` options to one weight per server), ``plan_switch`` (the runtime commands, the
  servers whose share grows, the diff) and ``health_problems`` (the gate);
- I/O: :class:`RuntimeApi`, a standard-library client of the runtime API over a unix socket or TCP, one
  connection per command (HAProxy answers a non-interactive command and closes);
- runner: ``switch`` reads the backend, plans, refuses unhealthy targets, applies (unless check mode), waits for
  the drained servers' sessions to end and writes the server-state file so that a reload keeps the change.

Nothing here calls ``fail_json``: failures are :class:`PlatformError` subclasses whose ``details`` carry a stable
``reason`` keyword.
"""

from __future__ import annotations

import csv
import os
import socket
import tempfile
import time

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError, PlatformError

SIDES = ("swarm", "k3s")
FULL_WEIGHT = 100
MAX_WEIGHT = 256
DEFAULT_SOCKET = "/run/haproxy/admin.sock"
POLL_INTERVAL = 0.1
MAX_REPLY = 16 * 1024 * 1024

# include/haproxy/server-t.h (2.6): srv_op_state, and the srv_admin flags.
OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}
ADMF_MAINT = 0x01 | 0x02 | 0x04 | 0x20  # forced, inherited, from the configuration, DNS resolution failure
ADMF_DRAIN = 0x08 | 0x10  # forced, inherited
# include/haproxy/check-t.h (2.6): check state flags, and the status of the last completed check
# (enum healthcheck_status). A check in progress leaves the last status in place ("* L7OK" in show stat), while its
# result field (srv_check_result) is reset until it ends, so the gate reads the status, not the result.
CHK_ST_ENABLED = 0x04
CHECK_STATUS_PASSED = {6: "L4OK", 9: "L6OK", 15: "L7OK", 16: "L7OKC", 20: "PROCOK"}
CHECK_STATUS_FAILED = {4: "HANA", 5: "SOCKERR", 7: "L4TOUT", 8: "L4CON", 10: "L6TOUT", 11: "L6RSP", 12: "L7TOUT",
                       13: "L7RSP", 17: "L7STS", 18: "PROCERR", 19: "PROCTOUT"}

STATE_INT_FIELDS = ("be_id", "srv_id", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight",
                    "srv_time_since_last_change", "srv_check_status", "srv_check_result", "srv_check_health",
                    "srv_check_state", "srv_port")

# Replies of commands that HAProxy refused, by their first line, with the reason keyword and a hint.
REFUSALS = (
    ("Permission denied", "permission_denied",
     "the runtime API socket must be declared with 'level admin' (the front_door role does)"),
    ("No such backend", "unknown_service", "check the service name (the front door's backend is named after it)"),
    ("Can't find backend", "unknown_service", "check the service name (the front door's backend is named after it)"),
    ("No such server", "unknown_server", "check the server names in the front door's configuration"),
    ("Unknown command", "unknown_command", "this HAProxy does not know the command; HAProxy 2.0 or later is needed"),
    ("Unknown map identifier", "hold_unsupported",
     "this front door cannot hold requests: the front_door role writes the hold map and its Lua action when "
     "front_door_hold is true (its default); rerun the role, or pass the map the role wrote (front_door_hold_map)"),
)


# --------------------------------------------------------------------------------------------------- parsing


def _snippet(text, size=200):
    text = text.strip()
    return text if len(text) <= size else text[:size] + "..."


def check_reply(command, reply):
    """Raise when HAProxy refused ``command``: commands that change state answer an empty line on success."""
    text = reply.strip()
    if not text:
        return
    first = text.splitlines()[0].strip()
    for prefix, reason, hint in REFUSALS:
        if first.startswith(prefix):
            raise ApiError(f"HAProxy refused '{command}': {first} - {hint}", reason=reason, command=command, reply=_snippet(text))
    raise ApiError(f"HAProxy refused '{command}': {first}", reason="command_failed", command=command, reply=_snippet(text))


def parse_servers_state(text, command="show servers state"):
    """Rows of ``show servers state [backend]`` (format version 1) as dicts; numeric fields as int."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1" or len(lines) < 2 or not lines[1].startswith("# "):
        check_reply(command, text)
        raise ApiError(f"unexpected reply to '{command}' (not server state format 1): {_snippet(text)!r}",
                       reason="unexpected_reply", command=command)
    names = lines[1][2:].split()
    rows = []
    for line in lines[2:]:
        values = line.split()
        if len(values) < len(names):
            raise ApiError(f"unexpected line in the reply to '{command}': {line!r}", reason="unexpected_reply", command=command)
        row = dict(zip(names, values))
        for key in STATE_INT_FIELDS:
            if key in row:
                row[key] = int(row[key])
        rows.append(row)
    return rows


def parse_stat(text):
    """Rows of ``show stat`` (CSV, header line starting with ``# ``) as dicts of strings."""
    if not text.startswith("# "):
        check_reply("show stat", text)
        raise ApiError(f"unexpected reply to 'show stat': {_snippet(text)!r}", reason="unexpected_reply", command="show stat")
    lines = [line for line in text[2:].splitlines() if line.strip()]
    return [{key: value for key, value in row.items() if key and key != "-"} for row in csv.DictReader(lines)]


def list_backends(stat_rows):
    """Names of the backends in ``show stat`` rows."""
    return sorted({row["pxname"] for row in stat_rows if row.get("svname") == "BACKEND"})


# --------------------------------------------------------------------------------------------------- servers


def side_of(name):
    """``swarm`` for ``swarm`` and ``swarm-2``, ``k3s`` for ``k3s`` and ``k3s-1``; None for other names."""
    for side in SIDES:
        if name == side or name.startswith(side + "-"):
            return side
    return None


def _admin(flags):
    if flags & ADMF_MAINT:
        return "maint"
    if flags & ADMF_DRAIN:
        return "drain"
    return "ready"


def servers_from(backend, state_rows, stat_rows):
    """One record per server of ``backend``, in configuration order, from both replies."""
    stats = {row["svname"]: row for row in stat_rows if row.get("pxname") == backend}
    servers = []
    for row in sorted((r for r in state_rows if r["be_name"] == backend), key=lambda r: r["srv_id"]):
        stat = stats.get(row["srv_name"], {})
        admin = _admin(row["srv_admin_state"])
        check_enabled = bool(row["srv_check_state"] & CHK_ST_ENABLED)
        shown = stat.get("check_status", "")
        server = {
            "name": row["srv_name"],
            "side": side_of(row["srv_name"]),
            "address": f"{row['srv_addr']}:{row['srv_port']}",
            "weight": row["srv_uweight"],
            "initial_weight": row["srv_iweight"],
            "effective_weight": row["srv_uweight"] if admin == "ready" else 0,
            "admin_state": admin,
            "op_state": OP_STATES.get(row["srv_op_state"], str(row["srv_op_state"])),
            "status": stat.get("status", ""),
            "sessions": int(stat.get("scur") or 0) + int(stat.get("qcur") or 0),
            # seconds since its last UP/DOWN change (show stat's lastchg); None when HAProxy gives none
            "last_change_s": int(stat["lastchg"]) if str(stat.get("lastchg", "")).isdigit() else None,
            "check": {
                "enabled": check_enabled,
                "passed": row["srv_check_status"] in CHECK_STATUS_PASSED,
                "in_progress": shown.startswith("* "),
                "status": shown[2:] if shown.startswith("* ") else shown,
                "code": stat.get("check_code", ""),
                "description": stat.get("check_desc", ""),
                "last": stat.get("last_chk", ""),
            },
        }
        server["health_problem"] = health_problem(server, row)
        server["healthy"] = server["health_problem"] is None
        servers.append(server)
    return servers


def health_problem(server, row):
    """Why ``server`` must not be given traffic, or None when its health check passes."""
    if server["admin_state"] == "maint":
        return "it is in maintenance, so its health checks are paused"
    if not server["check"]["enabled"]:
        return "it has no health check (its server line lacks 'check')"
    if row["srv_op_state"] not in (1, 2):
        return "its health checks mark it down"
    if row["srv_check_status"] in CHECK_STATUS_FAILED:
        return "its last health check failed"
    if row["srv_check_status"] not in CHECK_STATUS_PASSED:
        return "it has no completed health check yet"
    return None


def describe(server):
    """``status DOWN, check L7STS 503 (Layer7 wrong status), last check: Service Unavailable``."""
    check = server["check"]
    text = f"status {server['status'] or server['op_state']}"
    if check["status"]:
        text += f", check {check['status']}"
        if check["code"] and check["code"] != "0":
            text += f" {check['code']}"
        if check["description"]:
            text += f" ({check['description']})"
    else:
        text += ", no check result"
    if check["last"]:
        text += f", last check: {check['last']}"
    return text


# --------------------------------------------------------------------------------------------------- planning


def _weight(key, value):
    try:
        weight = int(value)
    except (TypeError, ValueError):
        raise InputError(f"weights.{key} must be an integer between 0 and {MAX_WEIGHT}, got {value!r}", reason="bad_weight") from None
    if isinstance(value, float) and value != weight or not 0 <= weight <= MAX_WEIGHT:
        raise InputError(f"weights.{key} must be an integer between 0 and {MAX_WEIGHT}, got {value!r}", reason="bad_weight")
    return weight


def _names(servers):
    return ", ".join(f"{s['name']}" for s in servers)


def desired_weights(backend, servers, weights=None, to=None, split=None):
    """The weight each named server must get, from ``weights`` (server or side -> weight) or ``to`` / ``split``.

    ``weights`` keys are server names or sides; a side's weight is given to each of its servers; an exact name
    wins over its side; servers no key names keep their weight. ``to`` moves the whole service: ``swarm`` or
    ``k3s`` gives that side's servers 100 each and every other server 0; ``split`` gives the ``k3s`` side
    ``split`` percent of the traffic and the ``swarm`` side the rest (per-server weights scaled so that the
    sides' shares hold whatever their server counts), every other server 0.
    """
    if not servers:
        raise InputError(f"backend {backend} has no servers", reason="no_servers", service=backend)
    if weights:
        by_name = {s["name"]: s for s in servers}
        desired = {}
        for key in sorted(weights, key=lambda k: k in by_name):  # sides first, then exact names override them
            weight = _weight(key, weights[key])
            matched = [s["name"] for s in servers if s["name"] == key or side_of(s["name"]) == key]
            if not matched:
                raise InputError(f"weights.{key}: backend {backend} has no server or side named {key} (servers: {_names(servers)})",
                                 reason="unknown_server", service=backend, key=key)
            for name in matched:
                desired[name] = weight
        return desired
    shares = {"swarm": 100, "k3s": 0} if to == "swarm" else {"swarm": 0, "k3s": 100} if to == "k3s" else None
    if shares is None:
        if split is None or not 0 <= int(split) <= 100:
            raise InputError(f"to=split needs split, the percent of traffic for k3s (0-100), got {split!r}", reason="bad_split")
        shares = {"swarm": 100 - int(split), "k3s": int(split)}
    members = {side: [s["name"] for s in servers if side_of(s["name"]) == side] for side in SIDES}
    for side, share in shares.items():
        if share and not members[side]:
            raise InputError(f"backend {backend} has no {side} server (servers named {side} or {side}-<n>; servers: {_names(servers)})",
                             reason="no_side", service=backend, side=side)
    most = max(len(members[side]) for side in SIDES if shares[side])
    raw = {side: shares[side] * most / len(members[side]) if shares[side] else 0 for side in SIDES}
    if to in SIDES:
        raw = {side: FULL_WEIGHT if shares[side] else 0 for side in SIDES}
    scale = min(1.0, MAX_WEIGHT / max(raw.values()))
    desired = {s["name"]: 0 for s in servers}
    for side in SIDES:
        weight = max(1, round(raw[side] * scale)) if raw[side] else 0
        for name in members[side]:
            desired[name] = weight
    return desired


def plan_switch(backend, servers, desired, drain=True):
    """What to send to HAProxy so that ``desired`` holds, and what changes.

    A server whose weight must be above 0 gets its weight and leaves drain; one whose effective weight drops to
    0 gets weight 0 and then ``state drain`` (``drain``) or its sessions shut (not ``drain``). Servers already at
    effective weight 0 are left alone when their desired weight is 0, so a drained server stays drained and a
    rerun changes nothing. Commands for servers that take traffic come first, so the service never has no server.
    """
    up, down, raised, lowered = [], [], [], []
    after = {}
    for server in servers:
        name, have = server["name"], server["effective_weight"]
        after[name] = {"weight": have, "state": server["admin_state"]}
        if name not in desired:
            continue
        want = desired[name]
        ref = f"{backend}/{name}"
        if want > 0:
            if server["weight"] != want:
                up.append(f"set server {ref} weight {want}")
            if server["admin_state"] != "ready":
                up.append(f"set server {ref} state ready")
            if want > have:
                raised.append(name)
            after[name] = {"weight": want, "state": "ready"}
        elif have > 0:
            down.append(f"set server {ref} weight 0")
            down.append(f"set server {ref} state drain" if drain else f"shutdown sessions server {ref}")
            lowered.append(name)
            after[name] = {"weight": 0, "state": "drain" if drain else server["admin_state"]}
    before = {s["name"]: {"weight": s["effective_weight"], "state": s["admin_state"]} for s in servers}
    if not any(entry["weight"] for entry in after.values()):
        raise InputError(f"refusing to leave {backend} with no server taking traffic (every weight would be 0)",
                         reason="no_traffic", service=backend)
    return {"commands": up + down, "raised": raised, "lowered": lowered, "before": before, "after": after}


def health_problems(backend, servers, names):
    """One line per server in ``names`` whose health forbids sending it traffic."""
    by_name = {s["name"]: s for s in servers}
    return [f"{backend}/{name}: {by_name[name]['health_problem']} ({describe(by_name[name])})"
            for name in names if not by_name[name]["healthy"]]


def weights_of(servers):
    return {s["name"]: s["effective_weight"] for s in servers}


# --------------------------------------------------------------------------------------------------- client


class RuntimeApi:
    """HAProxy's runtime API (the ``stats socket``) over a unix socket path or ``tcp://host:port``."""

    def __init__(self, address=DEFAULT_SOCKET, timeout=5.0):
        self.address = address
        self.timeout = timeout

    def _connect(self):
        if self.address.startswith("tcp://"):
            host, dummy, port = self.address[len("tcp://"):].rpartition(":")
            if not host or not port.isdigit():
                raise InputError(f"socket {self.address} is not tcp://HOST:PORT", reason="bad_socket")
            return socket.create_connection((host.strip("[]"), int(port)), timeout=self.timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        return sock

    def command(self, line):
        """Send one command, return HAProxy's whole reply (it closes the connection after answering)."""
        where = f"the HAProxy runtime API at {self.address}"
        try:
            with self._connect() as sock:
                sock.sendall(line.encode("utf-8") + b"\n")
                chunks, size = [], 0
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_REPLY:
                        raise ApiError(f"{where} sent more than {MAX_REPLY} bytes for '{line}'", reason="unexpected_reply")
        except FileNotFoundError:
            raise ApiError(f"{where} does not exist - is haproxy running with 'stats socket {self.address} level admin'"
                           " (front_door_socket)?", reason="socket_missing", socket=self.address) from None
        except PermissionError:
            raise ApiError(f"permission denied on {where} - run as root (become) or as a member of the socket's group",
                           reason="socket_permission", socket=self.address) from None
        except ConnectionRefusedError:
            raise ApiError(f"{where} refused the connection - is haproxy running?", reason="socket_refused",
                           socket=self.address) from None
        except socket.timeout:
            raise ApiError(f"{where} did not answer '{line}' within {self.timeout} s", reason="timeout",
                           socket=self.address) from None
        except OSError as exc:
            raise ApiError(f"cannot talk to {where}: {exc}", reason="socket_error", socket=self.address) from None
        return b"".join(chunks).decode("utf-8", errors="replace")

    def run(self, line):
        """Send a command that changes state; raise when HAProxy refuses it."""
        check_reply(line, self.command(line))


def read_backend(api, backend):
    """The servers of ``backend`` as ``servers_from`` describes them."""
    command = f"show servers state {backend}"
    reply = api.command(command)
    if reply.strip().startswith("Can't find backend"):
        known = list_backends(parse_stat(api.command("show stat")))
        raise ApiError(f"HAProxy has no backend {backend} (backends: {', '.join(known) or 'none'})",
                       reason="unknown_service", service=backend, backends=known)
    state_rows = parse_servers_state(reply, command)
    return servers_from(backend, state_rows, parse_stat(api.command("show stat")))


def wait_drained(api, backend, names, timeout, clock=time.monotonic, sleep=time.sleep):
    """Wait until the servers in ``names`` carry no session (current and queued), at most ``timeout`` seconds."""
    start = clock()
    while True:
        stats = {row["svname"]: row for row in parse_stat(api.command("show stat")) if row.get("pxname") == backend}
        left = {name: int(stats.get(name, {}).get("scur") or 0) + int(stats.get(name, {}).get("qcur") or 0) for name in names}
        waited = clock() - start
        busy = {name: count for name, count in left.items() if count}
        if not busy or waited >= timeout:
            return {"servers": list(names), "complete": not busy, "sessions_left": busy, "waited_s": round(waited, 3)}
        sleep(min(POLL_INTERVAL, max(0.0, timeout - waited)))


def served_totals(api, backend):
    """``{server: requests sent to it since HAProxy started}`` (``stot``) for the servers of ``backend``: unchanged
    totals over a hold prove that no request reached a server meanwhile."""
    return {row["svname"]: int(row.get("stot") or 0) for row in parse_stat(api.command("show stat"))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")}


def save_state(api, path):
    """Write ``show servers state`` (every backend) to ``path`` atomically (0600), the file HAProxy loads at start."""
    reply = api.command("show servers state")
    parse_servers_state(reply)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".server-state.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(reply)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise PlatformError(f"the switch is live but could not be saved to the server-state file {path}: {exc} - "
                            "a reload of haproxy would undo it", reason="state_file", state_file=path) from None
    return path


# --------------------------------------------------------------------------------------------------- hold


def parse_map(text):
    """``show map <file>`` reply to ``{key: value}`` (lines ``0x<ref> <key> <value>``; the first entry of a key wins,
    as in HAProxy's lookups)."""
    entries = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].startswith("0x"):
            entries.setdefault(parts[1], parts[2].strip() if len(parts) > 2 else "")
    return entries


def held_backends(api, hold_map):
    """The backends whose new requests the front door holds now (``{backend: held since, epoch s}``)."""
    command = f"show map {hold_map}"
    reply = api.command(command)
    if reply.strip() and not reply.lstrip().startswith("0x"):
        check_reply(command, reply)  # an error line (an unknown map) instead of entries
    return parse_map(reply)


def hold(api, backend, hold_map, drain_timeout=30.0, clock=time.monotonic, sleep=time.sleep, now=time.time):
    """Hold the new requests of ``backend`` at the front door, then wait until its servers carry no request.

    The front door's Lua action ``sophia_hold`` (role front_door) keeps every new request of a backend whose name
    is in ``hold_map`` waiting inside HAProxy (never answered, never sent to a server) until the entry goes or the
    role's ``front_door_hold_max`` passes. Requests already at a server finish; when none is left (``scur`` and
    ``qcur`` 0 on every server), nothing writes through the front door: the service's writes are paused.
    Returns ``{"changed", "since", "drain"}``; a hold already in place is kept (``changed`` false).
    """
    servers = read_backend(api, backend)
    current = held_backends(api, hold_map)
    changed = backend not in current
    if changed:
        api.run(f"add map {hold_map} {backend} {int(now())}")
    drain = wait_drained(api, backend, [s["name"] for s in servers], drain_timeout, clock, sleep)
    return {"changed": changed, "since": current.get(backend) or str(int(now())), "drain": drain}


def release(api, backend, hold_map):
    """Let the held requests of ``backend`` go on (to whichever servers the weights say now); True if it was held."""
    if backend not in held_backends(api, hold_map):
        return False
    command = f"del map {hold_map} {backend}"
    reply = api.command(command)
    if reply.strip().startswith("Key not found"):
        return False  # released meanwhile (by another run, or a reload)
    check_reply(command, reply)
    return True


# --------------------------------------------------------------------------------------------------- runner


def _gate(api, backend, servers, desired, params, clock, sleep):
    """Plan, and refuse unhealthy targets; with health_timeout, re-read until they pass or the time is up."""
    start = clock()
    while True:
        plan = plan_switch(backend, servers, desired, params.get("drain", True))
        problems = health_problems(backend, servers, plan["raised"])
        if not problems:
            return servers, plan
        if clock() - start >= (params.get("health_timeout") or 0):
            target = ", ".join(plan["raised"])
            raise ApiError(f"refusing to move traffic of {backend} to {target}: " + "; ".join(problems)
                           + ". Nothing was changed; fix the server or wait for its health checks to pass.",
                           reason="unhealthy_target", service=backend, unhealthy=[
                               s for s in servers if s["name"] in plan["raised"] and not s["healthy"]],
                           servers=servers)
        sleep(POLL_INTERVAL * 5)
        servers = read_backend(api, backend)


def switch(api, params, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Set the weights of one service's servers; the result dict of the traffic_switch module."""
    backend = params["service"]
    servers = read_backend(api, backend)
    desired = desired_weights(backend, servers, params.get("weights"), params.get("to"), params.get("split"))
    servers, plan = _gate(api, backend, servers, desired, params, clock, sleep)
    diff = {"before": {"service": backend, "servers": plan["before"]}, "after": {"service": backend, "servers": plan["after"]}}
    warnings = [f"{backend}/{s['name']} keeps weight {s['effective_weight']} but {s['health_problem']} ({describe(s)})"
                for s in servers if s["effective_weight"] and s["name"] not in plan["lowered"] and not s["healthy"]]
    result = {"service": backend, "commands": plan["commands"], "drain": None, "state_file": None, "diff": diff,
              "warnings": warnings}
    if not plan["commands"]:
        return dict(result, changed=False, servers=servers, weights=weights_of(servers),
                    msg=f"{backend}: weights already hold ({_weights_text(weights_of(servers))})")
    target = {name: entry["weight"] for name, entry in plan["after"].items()}
    if check_mode:
        return dict(result, changed=True, servers=servers, weights=target,
                    msg=f"{backend}: would set weights {_weights_text(target)} (was {_weights_text(weights_of(servers))})")
    applied = []
    for command in plan["commands"]:
        try:
            api.run(command)
        except PlatformError as exc:
            exc.details["applied"] = applied
            exc.msg = f"{exc.msg} (after {len(applied)} of {len(plan['commands'])} commands had been applied)"
            exc.args = (exc.msg,)
            raise
        applied.append(command)
    if plan["lowered"] and params.get("drain", True):
        result["drain"] = wait_drained(api, backend, plan["lowered"], params.get("drain_timeout", 60), clock, sleep)
        if not result["drain"]["complete"]:
            warnings.append(f"{backend}: sessions still open on drained servers after {params.get('drain_timeout', 60)} s: "
                            + ", ".join(f"{name} {count}" for name, count in sorted(result['drain']['sessions_left'].items())))
    if params.get("state_file"):
        result["state_file"] = save_state(api, params["state_file"])
    else:
        warnings.append("no state_file given: the new weights live only in the running haproxy; a reload or restart "
                        "returns to the configured weights")
    servers_after = read_backend(api, backend)
    return dict(result, changed=True, servers=servers_after, weights=weights_of(servers_after),
                msg=f"{backend}: weights set to {_weights_text(weights_of(servers_after))} (was {_weights_text(weights_of(servers))})")


def _weights_text(weights):
    return ", ".join(f"{name}={weight}" for name, weight in weights.items())


def prune_server_state(text, services):
    """The server-state file ``text`` without the lines of backends whose servers changed.

    HAProxy applies a saved server state (weight, drain) to a server of the same name whose configured weight is
    unchanged. A switch made by traffic_switch (Swarm's server drained at weight 0, the K3s server at 100) must
    not outlive the K3s server: once the configuration gives a backend another set of servers, its saved lines are
    dropped and the configured weights hold. ``services`` is role front_door's ``front_door_services``.
    """
    wanted = {s["name"]: sorted(srv["name"] for srv in s.get("servers") or []) for s in services or []}
    saved = {}
    rows = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and not line.startswith("#") and fields[0].isdigit():
            saved.setdefault(fields[1], []).append(fields[3])
            rows.append((fields[1], line))
        else:
            rows.append((None, line))
    keep = {backend for backend, names in saved.items() if sorted(names) == wanted.get(backend)}
    out = [line for backend, line in rows if backend is None or backend in keep]
    return "\n".join(out) + ("\n" if out else "")
