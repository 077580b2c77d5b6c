# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start real MCP server processes on local ports for the mcp_probe tests, and stop them again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SAMPLE = REPO / "lab" / "images" / "mcp-server" / "server.py"


def port_free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process this test session started (and stops: terminate, then kill, by its own pid)."""

    def __init__(self, argv, port, env=None, delay=0.0):
        self.port = port
        self.argv = argv
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        if delay:
            argv = ["sh", "-c", 'sleep "$0" && exec "$@"', str(delay)] + list(argv)
        self.log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would stall the server
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def wait(self, timeout=60.0):
        """Return once the port accepts connections; fail with the server's output when it exits first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("%s exited with %s: %s" % (self.argv, self.proc.returncode, self.output()))
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def sample_server(port, name="mcp-probe-sample", delay=0.0) -> Server:
    env = {"MCP_PORT": str(port), "MCP_HOST": "127.0.0.1", "MCP_SERVER_NAME": name}
    return Server([sys.executable, str(SAMPLE)], port, env, delay)


def sdk_server(mode, port, *extra) -> Server:
    return Server([sys.executable, str(HERE / "sdk_server.py"), mode, "127.0.0.1", str(port)] + list(extra), port,
                  {"MCP_SERVER_NAME": "mcp-probe-%s" % mode})
