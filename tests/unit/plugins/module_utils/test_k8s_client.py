"""_k8s_client: paths, pagination, request counting and errors.

The API server is a small local HTTP server that answers list requests the way kube-apiserver pages them
(``limit`` / ``metadata.continue``, 410 Gone for an expired token, Status objects for errors), so the real
kubernetes SDK and urllib3 send real HTTP requests and the counter is exercised where it counts. The real API
server is used in tests/integration/cluster/test_gpu_node_check.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _k8s_client as kc
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError


@pytest.mark.parametrize("kind, plural", [
    ("Node", "nodes"), ("nodes", "nodes"), ("Pod", "pods"), ("DaemonSet", "daemonsets"), ("Ingress", "ingresses"),
    ("NetworkPolicy", "networkpolicies"), ("Endpoints", "endpoints"), ("RuntimeClass", "runtimeclasses"),
    ("ConfigMap", "configmaps"), ("Gateway", "gateways"),
])
def test_plurals(kind, plural):
    assert kc.plural_of(kind) == plural


@pytest.mark.parametrize("args, path", [
    (("v1", "Node"), "/api/v1/nodes"),
    (("v1", "pods", None), "/api/v1/pods"),
    (("v1", "pods", "default"), "/api/v1/namespaces/default/pods"),
    (("apps/v1", "DaemonSet", "kube-system"), "/apis/apps/v1/namespaces/kube-system/daemonsets"),
    (("node.k8s.io/v1", "RuntimeClass"), "/apis/node.k8s.io/v1/runtimeclasses"),
])
def test_list_paths(args, path):
    assert kc.list_path(*args) == path


def test_a_bad_api_version_is_an_input_error():
    with pytest.raises(InputError):
        kc.list_path("apps/v1/extra", "DaemonSet")


class FakeApiServer(BaseHTTPRequestHandler):
    """Pages of 'items' like kube-apiserver; behaviour is set on the server object."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        server.seen.append((parts.path, query, self.headers.get("Authorization")))
        if server.mode == "forbidden":
            return self.reply(403, {"kind": "Status", "message": 'nodes is forbidden: User "x" cannot list resource'})
        if server.mode == "not-json":
            return self.reply(200, b"<html>proxy error</html>")
        if server.mode == "expire-once" and query.get("continue") and not server.expired:
            server.expired = True
            return self.reply(410, {"kind": "Status", "message": "The provided continue parameter is too old"})
        start = int(query.get("continue", 0))
        limit = int(query.get("limit", len(server.items)))
        page = server.items[start:start + limit]
        more = start + limit < len(server.items)
        return self.reply(200, {"kind": "NodeList", "apiVersion": "v1",
                                "metadata": {"continue": str(start + limit) if more else ""}, "items": page})

    def reply(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def apiserver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    server.items = [{"metadata": {"name": f"node-{i:04d}"}} for i in range(1234)]
    server.seen, server.mode, server.expired = [], "ok", False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(apiserver):
    client = kc.connect({"host": f"http://127.0.0.1:{apiserver.server_port}/", "api_key": "s3cret",
                         "request_timeout": 5})
    yield client
    client.close()


def test_list_all_follows_continue_and_counts_every_request(apiserver, client):
    items = client.list_all("v1", "Node", label_selector="gpu=true", field_selector="spec.unschedulable=false",
                            limit=500)
    assert [item["metadata"]["name"] for item in items] == [f"node-{i:04d}" for i in range(1234)]
    assert items[0]["kind"] == "Node" and items[0]["apiVersion"] == "v1"
    assert client.api_calls == 3 == len(apiserver.seen)
    assert [query.get("continue") for _path, query, _auth in apiserver.seen] == [None, "500", "1000"]
    path, query, auth = apiserver.seen[0]
    assert (path, query, auth) == ("/api/v1/nodes", {"limit": "500", "labelSelector": "gpu=true",
                                                     "fieldSelector": "spec.unschedulable=false"}, "Bearer s3cret")
    assert client.requests[0] == "GET /api/v1/nodes?limit=500&labelSelector=gpu%3Dtrue&fieldSelector=spec.unschedulable%3Dfalse"


def test_an_expired_continue_token_restarts_the_list_once(apiserver, client):
    apiserver.mode = "expire-once"
    items = client.list_all("v1", "nodes", limit=1000)
    assert len(items) == 1234
    assert [query.get("continue") for _p, query, _a in apiserver.seen] == [None, "1000", None, "1000"]
    assert client.api_calls == 4


@pytest.mark.parametrize("mode, match", [
    ("forbidden", r"GET /api/v1/nodes on http://127.0.0.1:\d+ answered 403 Forbidden: nodes is forbidden"),
    ("not-json", "answered something that is not JSON"),
])
def test_api_errors_name_the_request_and_the_answer(apiserver, client, mode, match):
    apiserver.mode = mode
    with pytest.raises(ApiError, match=match) as info:
        client.list_all("v1", "nodes")
    assert info.value.details["object"] == "/api/v1/nodes"


def test_an_unreachable_api_server_is_an_api_error():
    client = kc.connect({"host": "http://127.0.0.1:9", "api_key": "x", "request_timeout": 2})
    with pytest.raises(ApiError, match="could not reach the Kubernetes API at http://127.0.0.1:9"):
        client.list_all("v1", "nodes")
    assert client.api_calls == 1


def test_a_missing_kubeconfig_is_an_input_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match=f"could not load the kubeconfig {missing}"):
        kc.connect({"kubeconfig": str(missing)})


def test_a_kubeconfig_and_its_context_are_used(tmp_path, apiserver):
    config = tmp_path / "kubeconfig.yaml"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "lab", "cluster": {"server": f"http://127.0.0.1:{apiserver.server_port}"}},
                     {"name": "far", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "from-kubeconfig"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "u"}},
                     {"name": "other", "context": {"cluster": "far", "user": "u"}}],
    }))
    client = kc.connect({"kubeconfig": str(config), "context": "lab"})
    assert len(client.list_all("v1", "nodes")) == 1234
    assert apiserver.seen[0][2] == "Bearer from-kubeconfig"
    with pytest.raises(InputError, match="context nowhere"):
        kc.connect({"kubeconfig": str(config), "context": "nowhere"})


def test_without_the_kubernetes_library_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(kc, "HAS_KUBERNETES", False)
    monkeypatch.setattr(kc, "KUBERNETES_IMPORT_ERROR", "Traceback ... ModuleNotFoundError: No module named 'kubernetes'")
    with pytest.raises(kc.DependencyError) as info:
        kc.connect({"kubeconfig": "/dev/null"})
    assert "Failed to import the required Python library (kubernetes)" in str(info.value)
    assert "ModuleNotFoundError" in info.value.details["exception"]
