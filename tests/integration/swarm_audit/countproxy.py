# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A unix-socket proxy in front of a Docker Engine socket that counts the HTTP requests going through it.

An independent witness of how many requests a client sends (swarm_audit's own count, the docker CLI's): clients
point DOCKER_HOST (or docker_host) at :attr:`CountingProxy.url`; every request's head is parsed on its way to the
engine and recorded as (method, path). Requests with a body are followed by Content-Length; chunked bodies and
upgraded connections (attach, exec) are not parsed, which read-only clients never send.
Used by tests/integration/swarm_audit and benchmarks/audit.py.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading


class CountingProxy:
    """Counts HTTP requests between clients and the engine at ``upstream`` (a unix socket path)."""

    def __init__(self, upstream="/var/run/docker.sock"):
        self.upstream = upstream
        self.directory = tempfile.mkdtemp(prefix="docker-count-")
        self.path = os.path.join(self.directory, "docker.sock")
        self.requests = []
        self._lock = threading.Lock()
        self._server = None
        self._threads = []

    @property
    def url(self):
        return "unix://" + self.path

    @property
    def count(self):
        with self._lock:
            return len(self.requests)

    def reset(self):
        with self._lock:
            self.requests = []

    def __enter__(self):
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def __exit__(self, *exc):
        self._server.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
        os.rmdir(self.directory)

    def _accept(self):
        while True:
            try:
                client, _addr = self._server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.upstream)
            threading.Thread(target=self._client_to_engine, args=(client, engine), daemon=True).start()
            threading.Thread(target=self._pump, args=(engine, client), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _client_to_engine(self, client, engine):
        buffer, body_left = b"", 0
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                while True:
                    if body_left:
                        taken = min(body_left, len(buffer))
                        buffer, body_left = buffer[taken:], body_left - taken
                        if body_left:
                            break
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buffer = buffer[:end].decode("latin-1"), buffer[end + 4:]
                    request_line = head.split("\r\n", 1)[0].split(" ")
                    with self._lock:
                        self.requests.append((request_line[0], request_line[1] if len(request_line) > 1 else ""))
                    for line in head.split("\r\n")[1:]:
                        name, _sep, value = line.partition(":")
                        if name.strip().lower() == "content-length":
                            body_left = int(value.strip() or 0)
                engine.sendall(data)  # after counting: a client that got its answer sees its request counted
        except OSError:
            pass
        finally:
            for sock in (client, engine):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
