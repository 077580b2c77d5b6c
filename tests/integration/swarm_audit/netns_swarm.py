# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real two-node Swarm (one manager, one worker) plus an engine outside any Swarm, on this machine, in seconds.

Each is a real ``dockerd`` (the host's own binary) in a network namespace of its own (``ip netns`` +
``nsenter --net``: ``ip netns exec`` would remount /sys and hide the cgroup hierarchies dockerd needs), with its
own data root, exec root, pid file and unix socket under a temporary directory, ``--bridge none
--iptables=false --storage-driver vfs`` and an empty daemon.json, so it touches neither the host engine nor its
Swarm. The manager and worker namespaces are joined by a veth pair (10.231.x.1 - 10.231.x.2); the worker
advertises ``NVIDIA-GPU=2`` as a Swarm generic resource and is labelled ``gpu=true``. No images are loaded:
services are created with 0 replicas (or fail to start, which is real too).

The multi-node lab (scripts/swarm-lab.sh, Docker-in-Docker) is another engineer's; this is only what
swarm_audit's tests need: a worker's engine to be refused, and a manager whose Swarm has a worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid


def _run(*args, env=None, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, env=env, timeout=120)


def available():
    """None when this machine can run it, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, dockerd)"
    for tool in ("ip", "nsenter", "dockerd", "docker"):
        if shutil.which(tool) is None:
            return "%s not found" % tool
    return None


class NetnsSwarm:
    """Start with ``with NetnsSwarm() as lab:``; ``lab.manager``, ``lab.worker``, ``lab.standalone`` are URLs."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.names = {role: "sa-%s-%s" % (tag, role[0]) for role in ("manager", "worker", "standalone")}
        self.subnet = 100 + int(tag, 16) % 150
        self.root = tempfile.mkdtemp(prefix="swarm-audit-netns-")
        self.procs = {}

    def url(self, role):
        return "unix://%s/%s/docker.sock" % (self.root, role)

    @property
    def manager(self):
        return self.url("manager")

    @property
    def worker(self):
        return self.url("worker")

    @property
    def standalone(self):
        return self.url("standalone")

    def docker(self, role, *args, check=True):
        env = dict(os.environ, DOCKER_HOST=self.url(role))
        return _run("docker", *args, env=env, check=check)

    def addr(self, role):
        return "10.231.%d.%d" % (self.subnet, 1 if role == "manager" else 2)

    def __enter__(self):
        try:
            self._network()
            for role in ("manager", "worker", "standalone"):
                self._dockerd(role)
            for role in ("manager", "worker", "standalone"):
                self._wait(role)
            self.docker("manager", "swarm", "init", "--advertise-addr", self.addr("manager"))
            token = self.docker("manager", "swarm", "join-token", "-q", "worker").stdout.strip()
            self.docker("worker", "swarm", "join", "--token", token, "%s:2377" % self.addr("manager"))
            worker_id = json.loads(self.docker("worker", "info", "--format", "{{json .Swarm.NodeID}}").stdout)
            self.docker("manager", "node", "update", "--label-add", "gpu=true", worker_id)
            self.worker_id = worker_id
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _network(self):
        manager, worker, standalone = (self.names[r] for r in ("manager", "worker", "standalone"))
        for name in (manager, worker, standalone):
            _run("ip", "netns", "add", name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "link", "add", manager + "0", "type", "veth", "peer", "name", worker + "0")
        for name, role in ((manager, "manager"), (worker, "worker")):
            _run("ip", "link", "set", name + "0", "netns", name)
            _run("ip", "-n", name, "addr", "add", self.addr(role) + "/30", "dev", name + "0")
            _run("ip", "-n", name, "link", "set", name + "0", "up")

    def _dockerd(self, role):
        home = os.path.join(self.root, role)
        os.makedirs(home)
        with open(os.path.join(home, "daemon.json"), "w", encoding="utf-8") as handle:
            handle.write("{}")
        args = ["nsenter", "--net=/var/run/netns/%s" % self.names[role], "dockerd",
                "--config-file", os.path.join(home, "daemon.json"), "--data-root", os.path.join(home, "data"),
                "--exec-root", os.path.join(home, "exec"), "--pidfile", os.path.join(home, "docker.pid"),
                "-H", self.url(role), "--bridge", "none", "--iptables=false", "--ip6tables=false",
                "--storage-driver", "vfs"]
        if role == "worker":
            args += ["--node-generic-resource", "NVIDIA-GPU=2"]
        log = open(os.path.join(home, "dockerd.log"), "wb")  # pylint: disable=consider-using-with
        self.procs[role] = (subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), log)  # noqa: S603

    def _wait(self, role, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.docker(role, "version", "--format", "{{.Server.Version}}", check=False).returncode == 0:
                return
            if self.procs[role][0].poll() is not None:
                break
            time.sleep(0.3)
        with open(os.path.join(self.root, role, "dockerd.log"), encoding="utf-8", errors="replace") as handle:
            raise RuntimeError("dockerd (%s) did not come up: %s" % (role, handle.read()[-2000:]))

    def __exit__(self, *exc):
        for proc, _log in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, log in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
        with open("/proc/mounts", encoding="utf-8") as handle:
            leftovers = [line.split()[1] for line in handle if line.split()[1].startswith(self.root)]
        for mount in sorted(leftovers, reverse=True):
            _run("umount", "-l", mount, check=False)
        for name in self.names.values():
            _run("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
