# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one door to the Kubernetes API (the only file that imports the kubernetes SDK).

:func:`connect` builds an ``ApiClient`` from the shared connection options (``_args.CONNECTION_SPEC``): a
kubeconfig and context, a host with a token or client certificate, or the in-cluster service account.
:meth:`K8sClient.list_all` lists one kind with pagination (``limit`` + ``continue``) and returns plain dicts:
the response is read raw and parsed with ``json.loads`` instead of being deserialised into SDK model objects
(for 1,000 nodes that is the difference between milliseconds and seconds). :meth:`K8sClient.get` (one raw GET,
e.g. ``/openapi/v3``), :meth:`K8sClient.request` (any method; error statuses returned with their Status body) and
:meth:`K8sClient.apply_dry_run` (server-side apply with ``dryRun=All``) send single requests the same way.

Every HTTP request the SDK's REST client sends goes through ``request`` of its urllib3 pool manager, which is
wrapped with a counter: :attr:`K8sClient.api_calls` is the number of requests sent, and ``K8sClient.requests`` lists them
(method and path), so modules can return it and tests and benchmarks can assert on it.
"""

from __future__ import annotations

import json
import os
import traceback
from urllib.parse import urlsplit

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import (
    ApiError,
    DependencyError,
    InputError,
)

try:
    from kubernetes import client as k8s_sdk
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
    import urllib3
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

# Kinds whose plural is not "lowercase kind + s"; list_all also takes the plural itself.
_IRREGULAR_PLURALS = {"endpoints": "endpoints", "ingress": "ingresses", "networkpolicy": "networkpolicies",
                      "podsecuritypolicy": "podsecuritypolicies", "priorityclass": "priorityclasses",
                      "storageclass": "storageclasses", "ingressclass": "ingressclasses",
                      "runtimeclass": "runtimeclasses", "resourceclaim": "resourceclaims"}


def plural_of(kind):
    """'Node' -> 'nodes', 'DaemonSet' -> 'daemonsets', 'NetworkPolicy' -> 'networkpolicies'; plurals pass."""
    name = kind.lower()
    if name in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[name]
    if kind == name and name.endswith("s"):
        return name  # already a resource plural: nodes, pods, daemonsets
    if name.endswith(("s", "x", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def list_path(api_version, kind, namespace=None):
    """The collection URL: /api/v1/nodes, /apis/apps/v1/namespaces/kube-system/daemonsets, ..."""
    if not api_version or api_version.count("/") > 1:
        raise InputError(f"api_version {api_version!r} is not 'v1' or 'group/version'", key="api_version")
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = plural_of(kind)
    if namespace:
        return f"{base}/namespaces/{namespace}/{plural}"
    return f"{base}/{plural}"


class K8sClient:
    """An ApiClient whose HTTP requests are counted; lists kinds into plain dicts."""

    def __init__(self, api_client, request_timeout=None):
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.host = api_client.configuration.host
        self.requests = []
        pool_manager = api_client.rest_client.pool_manager
        send = pool_manager.request

        def counted_request(method, url, *args, **kwargs):
            parts = urlsplit(url)
            self.requests.append(f"{method} {parts.path}{'?' + parts.query if parts.query else ''}")
            return send(method, url, *args, **kwargs)

        pool_manager.request = counted_request

    @property
    def api_calls(self):
        """HTTP requests sent so far."""
        return len(self.requests)

    def close(self):
        self.api_client.close()

    def _get(self, path, query):
        api = self.api_client
        method, url, headers, _body, _post = api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        try:
            response = api.call_api(method, url, header_params=headers, _request_timeout=self.request_timeout)
            data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(f"could not reach the Kubernetes API at {self.host} (GET {path}): {exc}. Check host / "
                           "kubeconfig and that the API server runs.", object=path, reason=type(exc).__name__) from None
        except k8s_sdk.ApiException as exc:  # TLS errors surface as ApiException(status=0)
            raise ApiError(f"GET {path} on {self.host} failed: {exc.reason}", object=path,
                           reason=str(exc.reason), status=exc.status) from None
        if not 200 <= response.status < 300:
            try:
                message = json.loads(data).get("message") or data.decode("utf-8", "replace")
            except (ValueError, AttributeError):
                message = data.decode("utf-8", "replace")[:300]
            raise ApiError(f"GET {path} on {self.host} answered {response.status} {response.reason}: {message}",
                           object=path, status=response.status, reason=response.reason)
        try:
            return json.loads(data)
        except ValueError:
            raise ApiError(f"GET {path} on {self.host} answered something that is not JSON: {data[:120]!r}",
                           object=path, reason="not_json") from None

    def get(self, path, query=None):
        """One GET of ``path`` (``query``: a list of (name, value)); the JSON answer as plain data, ApiError when
        the server answers an error status or cannot be reached."""
        return self._get(path, list(query or []))

    def request(self, method, path, query=None, body=None, content_type="application/json"):
        """One request; (HTTP status, the JSON answer or None). Error statuses are returned, not raised (the
        caller reads the Status object); ApiError only when the server cannot be reached."""
        api = self.api_client
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type  # the SDK's REST client writes dict bodies as JSON (also for +yaml)
        method, url, headers, body, _post = api.param_serialize(
            method, path, query_params=list(query or []), header_params=headers, body=body,
            auth_settings=["BearerToken"])
        try:
            response = api.call_api(method, url, header_params=headers, body=body,
                                    _request_timeout=self.request_timeout)
            data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(f"could not reach the Kubernetes API at {self.host} ({method} {path}): {exc}. Check host / "
                           "kubeconfig and that the API server runs.", object=path, reason=type(exc).__name__) from None
        except k8s_sdk.ApiException as exc:  # TLS errors surface as ApiException(status=0)
            raise ApiError(f"{method} {path} on {self.host} failed: {exc.reason}", object=path,
                           reason=str(exc.reason), status=exc.status) from None
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = {"message": data.decode("utf-8", "replace")[:300]}
        return response.status, parsed

    def apply_dry_run(self, path, obj, field_manager, force=True):
        """Server-side apply of ``obj`` at its object URL ``path`` with ``dryRun=All`` (nothing is persisted) and
        strict field validation: (HTTP status, the object or the Status answered). One request."""
        query = [("dryRun", "All"), ("fieldManager", field_manager), ("fieldValidation", "Strict")]
        if force:
            query.append(("force", "true"))
        return self.request("PATCH", path, query, body=obj, content_type="application/apply-patch+yaml")

    def list_all(self, api_version, kind, namespace=None, label_selector=None, field_selector=None, limit=500):
        """Every object of one kind as plain dicts, in as few requests as ``limit`` allows.

        ``kind`` is a Kind (``Node``) or a resource plural (``nodes``); ``namespace=None`` lists across all
        namespaces. Pages follow ``metadata.continue``; a continue token that expired (410 Gone) restarts the
        list once from the beginning.
        """
        path = list_path(api_version, kind, namespace)
        for attempt in (1, 2):
            items, token = [], None
            try:
                while True:
                    query = [("limit", int(limit))] if limit else []
                    if label_selector:
                        query.append(("labelSelector", label_selector))
                    if field_selector:
                        query.append(("fieldSelector", field_selector))
                    if token:
                        query.append(("continue", token))
                    page = self._get(path, query)
                    list_kind = page.get("kind") or ""
                    item_kind = list_kind[:-4] if list_kind.endswith("List") else None
                    for item in page.get("items") or []:
                        if item_kind:
                            item.setdefault("kind", item_kind)
                            item.setdefault("apiVersion", page.get("apiVersion") or api_version)
                        items.append(item)
                    token = (page.get("metadata") or {}).get("continue")
                    if not token:
                        return items
            except ApiError as exc:
                if exc.details.get("status") == 410 and token and attempt == 1:
                    continue
                raise
        return items  # not reached


def connect(params):
    """A :class:`K8sClient` from the connection options; raises PlatformError subclasses, never fails the module."""
    if not HAS_KUBERNETES:
        raise DependencyError(missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    if not hasattr(k8s_sdk.ApiClient, "param_serialize"):
        raise DependencyError("the kubernetes Python library is too old for this collection (it needs the client "
                              "generated with ApiClient.param_serialize, as in kubernetes 37): upgrade it with pip",
                              reason="kubernetes_too_old")
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    host = params.get("host")
    api_key = params.get("api_key")
    client_cert, client_key = params.get("client_cert"), params.get("client_key")
    configuration = k8s_sdk.Configuration()
    if host and (api_key or (client_cert and client_key)):
        source = host
    elif kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        source = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration,
                                        persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise InputError(f"could not load the kubeconfig {source}{f' (context {context})' if context else ''}: "
                             f"{exc}. Set kubeconfig and context, or host with api_key.",
                             object=source, reason=type(exc).__name__) from None
    else:
        source = "in-cluster service account"
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise InputError(f"could not load the in-cluster configuration: {exc}", object=source,
                             reason="ConfigException") from None
    if host:
        configuration.host = host.rstrip("/")
    if api_key:
        configuration.api_key = {"authorization": f"Bearer {api_key}"}
        configuration.api_key_prefix = {}
    for option, attribute in (("validate_certs", "verify_ssl"), ("ca_cert", "ssl_ca_cert"),
                              ("client_cert", "cert_file"), ("client_key", "key_file"), ("proxy", "proxy")):
        if params.get(option) is not None:
            setattr(configuration, attribute, params[option])
    if not configuration.host:
        raise InputError(f"no Kubernetes API server in {source}: set host or kubeconfig", object=source)
    return K8sClient(k8s_sdk.ApiClient(configuration), request_timeout=params.get("request_timeout"))
