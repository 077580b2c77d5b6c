# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the traffic tests: sample MCP containers, the front door role run by ansible-playbook, the
traffic_switch module run by ansible-playbook, the runtime API, and a steady MCP load that never retries.

Nothing is mocked: the backends are containers of the sample image on the local engine, HAProxy is Debian's
(started by the role in its lab daemon mode), and every module runs through ansible-playbook.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils._haproxy import RuntimeApi, parse_servers_state, parse_stat

IMAGE = "sophia-platform/mcp-server:lab"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
HEADER = "X-Sophia-Backend"


def free_ports(count):
    """``count`` distinct free local ports (all bound at once, so they differ)."""
    socks = []
    try:
        for dummy in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_http(url, timeout=60.0, status=200):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == status:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == status:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer {status} within {timeout} s")
        time.sleep(0.2)


class Backend:
    """One sample MCP server container, published on 127.0.0.1:port, with a readiness file."""

    def __init__(self, engine, name, server_name, port):
        self.name, self.server_name, self.port = name, server_name, port
        self.container = engine.containers.run(
            IMAGE, name=name, detach=True,
            environment={"MCP_SERVER_NAME": server_name, "MCP_PORT": str(port), "MCP_READY_FILE": "/tmp/ready"},
            ports={f"{port}/tcp": ("127.0.0.1", port)},
        )
        self.ready(True)

    def ready(self, ready):
        cmd = ["touch", "/tmp/ready"] if ready else ["rm", "-f", "/tmp/ready"]
        assert self.container.exec_run(cmd).exit_code == 0

    def wait(self):
        wait_http(f"http://127.0.0.1:{self.port}/readyz")
        return self

    def remove(self):
        try:
            self.container.remove(force=True)
        except Exception:  # pylint: disable=broad-except
            pass


def run_playbook(workdir, plays, check=False, diff=False, timeout=300):
    """Run ``plays`` (a list of plays) with ansible-playbook; return (rc, parsed ansible.posix.json output)."""
    workdir = Path(workdir)
    inventory = workdir / "hosts.yml"
    if not inventory.exists():
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook = workdir / f"play-{time.monotonic_ns()}.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook)] + (["--check"] if check else []) + (["--diff"] if diff else [])
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    res = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        out = json.loads(res.stdout)
    except ValueError as exc:
        raise AssertionError(f"ansible-playbook printed no JSON (rc {res.returncode}): {res.stdout[-3000:]} {res.stderr[-3000:]}") from exc
    out["stderr"] = res.stderr
    return res.returncode, out


def stats(out):
    return out["stats"]["localhost"]


def task_results(out, name):
    """Every host result of the task called ``name`` (one per loop item for loops), in play order."""
    found = []
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(name):
                found.append(task["hosts"]["localhost"])
    return found


class FrontDoor:
    """The front door role in lab daemon mode, on its own ports; playbooks in ``workdir``, its files in workdir/state."""

    def __init__(self, workdir, services):
        self.work = Path(workdir)
        self.dir = self.work / "state"
        self.services = services
        self.config = self.dir / "haproxy.cfg"
        self.socket = str(self.dir / "admin.sock")
        self.state_file = str(self.dir / "server-state")
        self.pid_file = self.dir / "haproxy.pid"
        self.api = RuntimeApi(self.socket, timeout=5)

    def role_vars(self, **more):
        return {
            "front_door_run_mode": "daemon",
            "front_door_install_package": False,
            "front_door_config_path": str(self.config),
            "front_door_pid_file": str(self.pid_file),
            "front_door_socket": self.socket,
            "front_door_socket_mode": "0600",
            "front_door_socket_group": "",
            "front_door_user": "",
            "front_door_group": "",
            "front_door_log_target": "",
            "front_door_server_state_file": self.state_file,
            "front_door_dir_mode": "0700",
            "front_door_bind_address": "127.0.0.1",
            "front_door_services": self.services,
            **more,
        }

    def converge(self, check=False, diff=False, **more):
        play = {"name": "Front door", "hosts": "localhost", "gather_facts": False,
                "roles": [{"role": "sophia_ai.platform.front_door", "vars": self.role_vars(**more)}]}
        return run_playbook(self.work, [play], check=check, diff=diff)

    def switch(self, check=False, diff=False, **params):
        params = {"socket": self.socket, "state_file": self.state_file, **params}
        play = {"name": "Switch", "hosts": "localhost", "gather_facts": False,
                "tasks": [{"name": "Switch traffic", "sophia_ai.platform.traffic_switch": params}]}
        return run_playbook(self.work, [play], check=check, diff=diff)

    def pid(self):
        return int(self.pid_file.read_text().split()[0]) if self.pid_file.exists() else None

    def servers_state(self, backend):
        return {row["srv_name"]: row for row in parse_servers_state(self.api.command(f"show servers state {backend}"))}

    def weights(self, backend):
        """Effective weights (0 while drained) as HAProxy has them now."""
        return {name: (row["srv_uweight"] if not row["srv_admin_state"] & 0x3f else 0)
                for name, row in self.servers_state(backend).items()}

    def status(self, backend, server):
        for row in parse_stat(self.api.command("show stat")):
            if row["pxname"] == backend and row["svname"] == server:
                return row
        raise KeyError(f"{backend}/{server}")

    def reset(self, backend, weights):
        """Put a backend back to known weights (all servers ready) through the runtime API."""
        for name, weight in weights.items():
            self.api.run(f"set server {backend}/{name} weight {weight}")
            self.api.run(f"set server {backend}/{name} state ready")

    def wait_status(self, backend, server, prefix, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self.status(backend, server)["status"].startswith(prefix):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{backend}/{server} not {prefix} within {timeout} s: {self.status(backend, server)['status']}")
            time.sleep(0.05)
        return time.monotonic()

    def stop(self):
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def call_tool(port, name, arguments, timeout=5.0):
    """One MCP ``tools/call`` through the front door on a new connection, never retried (the sample servers run the
    SDK's stateless mode: no initialize handshake). The tool's structured result with ``ok``, ``backend`` (the
    front door's X-Sophia-Backend) and ``held_ms`` (X-Sophia-Held-Ms, when the front door held the request), or
    ``ok`` false and ``error``."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/mcp", body=body, headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25"})
        resp = conn.getresponse()
        data = resp.read()
        extra = {"backend": resp.getheader(HEADER), "held_ms": resp.getheader("X-Sophia-Held-Ms")}
        if resp.status != 200:
            return {"ok": False, "error": f"HTTP {resp.status}: {data[:120]!r}", **extra}
        reply = json.loads(data)
        if "result" not in reply or reply["result"].get("isError"):
            return {"ok": False, "error": f"not a result: {data[:120]!r}", **extra}
        return {"ok": True, **reply["result"]["structuredContent"], **extra}
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "backend": None, "held_ms": None}
    finally:
        conn.close()


WRITE_TIMEOUT_S = 40.0  # a held write waits for the release (the role's front_door_hold_max_ms is 30 s)


class Writers:
    """``writers`` threads calling the sample server's ``remember`` through the front door, each write a new key,
    never retried, ``pause`` seconds between one thread's writes; a write counts when it was answered ``stored``.
    ``stored``: key -> (value, backend header); ``failed``: (key, answer); ``held``: X-Sophia-Held-Ms of the
    writes the front door held."""

    def __init__(self, port, tag, writers=4, pause=0.05):
        self.port, self.tag, self.pause = port, tag, pause
        self.stored, self.failed, self.held = {}, [], []
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self.write, args=(i,), daemon=True) for i in range(writers)]
        self.lock = threading.Lock()

    def write(self, index):
        seq = 0
        while not self.halt.is_set():
            key, value = f"{self.tag}-{index}-{seq}", uuid.uuid4().hex
            answer = call_tool(self.port, "remember", {"key": key, "value": value}, timeout=WRITE_TIMEOUT_S)
            with self.lock:
                if answer["ok"] and answer.get("stored"):
                    self.stored[key] = (value, answer["backend"])
                    if answer.get("held_ms"):
                        self.held.append(int(answer["held_ms"]))
                else:
                    self.failed.append((key, answer))
            seq += 1
            time.sleep(self.pause)

    def by_backend(self):
        """Stored writes per server that answered (the backend header: ``swarm``, ``k3s``), both always present."""
        out = {"swarm": 0, "k3s": 0}
        for dummy, backend in self.stored.values():
            out[backend] = out.get(backend, 0) + 1
        return out

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        for thread in self.threads:
            thread.join(timeout=WRITE_TIMEOUT_S + 5)


def missing_writes(port, stored):
    """The stored writes that ``recall`` through the front door does not give back (key -> what it answered)."""
    missing = {}
    for key, (value, dummy) in stored.items():
        answer = call_tool(port, "recall", {"key": key}, timeout=10)
        if not (answer["ok"] and answer.get("found") and answer.get("value") == value):
            missing[key] = answer
    return missing


def mcp_call(port, timeout=5.0):
    """One MCP ``tools/call server_info`` through the front door (:func:`call_tool`): (ok, backend header, server
    name or error)."""
    answer = call_tool(port, "server_info", {}, timeout)
    return answer["ok"], answer["backend"], answer["name"] if answer["ok"] else answer["error"]


class Load:
    """Steady MCP load on one front door port: ``workers`` threads, ``rate`` requests per second in all.

    Each record: (start, end, ok, backend header, server name or error), times from time.monotonic().
    """

    def __init__(self, port, rate=50, workers=4):
        self.port, self.rate, self.workers = port, rate, workers
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _work(self, offset):
        interval = self.workers / self.rate
        due = time.monotonic() + offset
        while not self._stop.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            due += interval
            start = time.monotonic()
            ok, backend, detail = mcp_call(self.port)
            with self._lock:
                self.records.append((start, time.monotonic(), ok, backend, detail))

    def __enter__(self):
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, args=(index / self.rate,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def failures(self):
        return [r for r in self.records if not r[2]]

    def summary(self):
        by_backend = {}
        for record in self.records:
            by_backend[record[3]] = by_backend.get(record[3], 0) + 1
        return {"requests": len(self.records), "failed": len(self.failures()), "by_backend": by_backend}
