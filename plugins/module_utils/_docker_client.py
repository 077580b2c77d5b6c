# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's door to the Docker Engine API (the only file that imports the docker SDK).

:func:`connect` builds a low-level ``docker.APIClient`` from the Docker connection options
(:data:`DOCKER_CONNECTION_SPEC`) and negotiates the API version with the engine. The client is a subclass whose
``send`` (``requests.Session.send``, which every HTTP request of the SDK goes through, the version negotiation
included) records each request that got an HTTP answer: :attr:`DockerClient.api_calls` is their number and
:attr:`DockerClient.requests` lists them (method, path, status), so modules return the count and tests and
benchmarks assert on it. It is not a tally kept by our own code: a request the SDK sends on its own is counted.

:meth:`DockerClient.read_swarm` reads a Swarm with one list call per kind (``/info``, ``/nodes``,
``/services?status=true``, ``/tasks``, ``/networks`` of scope swarm) and returns the raw API JSON. Errors are
raised as :class:`ApiError` / :class:`InputError` / :class:`DependencyError` whose message names the engine
and what to do.
"""

from __future__ import annotations

import os
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import (
    ApiError,
    DependencyError,
    InputError,
)

try:
    import docker
    import requests
    from docker.errors import APIError as DockerAPIError
    from docker.errors import DockerException, TLSParameterError
    from docker.tls import TLSConfig
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()
    _ClientBase = object
else:
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
    _ClientBase = docker.APIClient

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# Option names follow community.docker's docker_* modules where they overlap (docker_host, tls, validate_certs,
# ca_path, client_cert, client_key, timeout), so module_defaults written for them carry over.
DOCKER_CONNECTION_SPEC = {
    "docker_host": {"type": "str", "aliases": ["docker_url"],
                    "fallback": (env_fallback, ["DOCKER_HOST"]), "default": DEFAULT_DOCKER_HOST},
    "tls": {"type": "bool", "default": False, "fallback": (env_fallback, ["DOCKER_TLS"])},
    "validate_certs": {"type": "bool", "default": False, "aliases": ["tls_verify"],
                       "fallback": (env_fallback, ["DOCKER_TLS_VERIFY"])},
    "ca_path": {"type": "path", "aliases": ["ca_cert", "tls_ca_cert", "cacert_path"]},
    "client_cert": {"type": "path", "aliases": ["tls_client_cert", "cert_path"]},
    "client_key": {"type": "path", "aliases": ["tls_client_key", "key_path"]},
    "timeout": {"type": "int", "default": 60, "fallback": (env_fallback, ["DOCKER_TIMEOUT"])},
}

FIX_UNREACHABLE = ("start the Docker Engine there, or point docker_host (or DOCKER_HOST) at a Swarm manager's "
                   "engine, e.g. unix:///var/run/docker.sock or tcp://MANAGER:2376 with tls")
FIX_WORKER = "run swarm_audit against a manager (docker node ls --filter role=manager)"


def require_docker():
    if not HAS_DOCKER:
        raise DependencyError(missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)


def _tls_config(params, host):
    """A docker.tls.TLSConfig for the options, or False for plain HTTP / a unix socket."""
    wants_tls = params.get("tls") or params.get("validate_certs")
    if not wants_tls:
        if params.get("client_cert") or params.get("client_key") or params.get("ca_path"):
            raise InputError("ca_path / client_cert / client_key are set but tls and validate_certs are off: "
                             "the connection to %s would not use them. Fix: set tls: true (or validate_certs: true)"
                             % host, docker_host=host, key="tls")
        return False
    cert, key = params.get("client_cert"), params.get("client_key")
    if bool(cert) != bool(key):
        raise InputError("client_cert and client_key go together: only %s is set for %s. Fix: set both or neither"
                         % ("client_cert" if cert else "client_key", host), docker_host=host, key="client_cert")
    for name in ("ca_path", "client_cert", "client_key"):
        path = params.get(name)
        if path and not os.path.isfile(path):
            raise InputError("%s %s (for %s) does not exist or is not a file. Fix: give the path of the PEM file"
                             % (name, path, host), docker_host=host, key=name, file=path)
    try:
        return TLSConfig(client_cert=(cert, key) if cert else None, ca_cert=params.get("ca_path"),
                         verify=bool(params.get("validate_certs")))
    except TLSParameterError as exc:
        raise InputError("TLS options for %s are not usable: %s" % (host, exc), docker_host=host,
                         key="tls") from None


def _cause(exc):
    """The innermost requests/ssl/OS exception under a docker/requests exception."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return seen


def transport_error(host, exc, action="connect to"):
    """Map a requests/docker transport failure to a clear ApiError naming the engine."""
    inner = _cause(exc)
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(_find(exc, requests.exceptions.SSLError),
                                                                   requests.exceptions.SSLError):
        return ApiError("TLS with the Docker engine at %s failed: %s. Fix: check ca_path (the CA that signed the "
                        "engine's certificate), client_cert / client_key, the host name in docker_host, or set "
                        "validate_certs: false for a lab engine" % (host, inner), docker_host=host, reason="tls")
    if isinstance(_find(exc, requests.exceptions.Timeout), requests.exceptions.Timeout):
        return ApiError("The Docker engine at %s did not answer in time: %s. Fix: check the engine's load and "
                        "the network, or raise timeout" % (host, inner), docker_host=host, reason="timeout")
    return ApiError("Cannot %s the Docker engine at %s: %s. Fix: %s" % (action, host, inner, FIX_UNREACHABLE),
                    docker_host=host, reason="unreachable")


def _find(exc, kind):
    seen = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class DockerClient(_ClientBase):
    """A docker.APIClient that records every HTTP request answered; reads a Swarm with one list per kind."""

    def __init__(self, *args, **kwargs):
        self.requests = []
        super().__init__(*args, **kwargs)

    def send(self, request, **kwargs):  # pylint: disable=arguments-differ
        response = super().send(request, **kwargs)
        self.requests.append({"method": request.method, "path": request.path_url, "status": response.status_code})
        return response

    @property
    def api_calls(self):
        return len(self.requests)

    def read_swarm(self, host):
        """Raw JSON of the Swarm: info, nodes, services (with status), tasks, swarm networks. One call each."""
        try:
            info = self.info()
            check_swarm_member(info, host)
            raw = {
                "info": info,
                "nodes": self.nodes(),
                "services": self._services(),
                "tasks": self.tasks(),
                "networks": self.networks(filters={"scope": "swarm"}),
            }
        except DockerAPIError as exc:
            raise api_error(host, exc) from None
        except requests.exceptions.RequestException as exc:
            raise transport_error(host, exc, action="read the Swarm from") from None
        raw["api_version"] = self.api_version
        return raw

    def _services(self):
        """Services with ServiceStatus (running/desired tasks, API >= 1.41); without it on older engines."""
        if docker.utils.version_gte(self.api_version, "1.41"):
            return self.services(status=True)
        return self.services()


def api_error(host, exc):
    """An engine's error reply (docker.errors.APIError) as an ApiError naming the engine."""
    status = getattr(exc.response, "status_code", None)
    explanation = exc.explanation or str(exc)
    if status == 503 and "not a swarm manager" in str(explanation).lower():
        return ApiError("The Docker engine at %s is not a Swarm manager (%s): %s" % (host, explanation, FIX_WORKER),
                        docker_host=host, reason="not_manager")
    return ApiError("The Docker engine at %s answered %s to %s: %s" % (
        host, status, getattr(exc.response, "url", "?"), explanation), docker_host=host, reason="api",
        status=status)


def check_swarm_member(info, host):
    """Raise unless the engine's /info says it is an active Swarm manager."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    name = info.get("Name") or "?"
    if state == "locked":
        raise ApiError("The Swarm on the Docker engine at %s (%s) is locked. Fix: docker swarm unlock on that node, "
                       "with the unlock key" % (host, name), docker_host=host, reason="locked")
    if state != "active":
        raise ApiError("The Docker engine at %s (%s) is not in a Swarm (LocalNodeState %s%s). Fix: point docker_host "
                       "at a Swarm manager, or create one with docker swarm init"
                       % (host, name, state, ": " + swarm["Error"] if swarm.get("Error") else ""),
                       docker_host=host, reason="not_in_swarm", state=state)
    if not swarm.get("ControlAvailable"):
        managers = ", ".join(m.get("Addr", "?") for m in swarm.get("RemoteManagers") or []) or "unknown"
        raise ApiError("The Docker engine at %s (node %s, %s) is a worker: %s; this Swarm's managers: %s"
                       % (host, name, swarm.get("NodeID") or "?", FIX_WORKER, managers),
                       docker_host=host, reason="not_manager", node_id=swarm.get("NodeID"), managers=managers)


def connect(params):
    """A DockerClient on params' engine, the API version negotiated (that request is counted too)."""
    require_docker()
    host = params.get("docker_host") or DEFAULT_DOCKER_HOST
    tls = _tls_config(params, host)
    try:
        return DockerClient(base_url=host, version="auto", timeout=params.get("timeout") or 60, tls=tls)
    except DockerException as exc:
        if _find(exc, requests.exceptions.RequestException) is not None:
            raise transport_error(host, exc) from None
        message = str(exc)
        if "Error while fetching server API version" in message:
            raise transport_error(host, exc) from None
        raise InputError("docker_host %r is not usable: %s. Fix: write unix:///path/to/docker.sock, "
                         "tcp://HOST:PORT or ssh://USER@HOST" % (host, message), docker_host=host,
                         key="docker_host") from None
