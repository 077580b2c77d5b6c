# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of generated manifests before they are written: the OpenAPI schema, then a server-side dry run.

:func:`check` takes the rendered files ({file name: {"kind", "name", ...}}) with their objects and the module's
``validate`` and connection options; it returns a report for the result, or raises :class:`InputError` (schema)
/ :class:`ApiError` (dry run) listing every error with its file, object, JSON path and message, so that the
caller writes nothing.

Where the schema comes from (``validate.schema``):

* ``auto`` (default): the API server's ``/openapi/v3`` when a cluster connection is given, else
  ``$SOPHIA_CACHE/go/mod/k8s.io/kubernetes@<DEFAULT_KUBERNETES_VERSION>/api/openapi-spec/v3`` (``make setup``
  leaves it there), else an error that says what to give;
* ``server``: the API server's (a connection is required);
* a path: a directory of OpenAPI v3 files as ``k8s.io/kubernetes`` ships them in ``api/openapi-spec/v3``;
* ``none``: no schema check.

The cluster is contacted only when a connection option is set (``kubeconfig``, ``context``, ``host``, ``api_key``)
or ``validate.server_dry_run: true`` or ``validate.schema: server`` asks for it; the connection then falls back as
:func:`_k8s_client.connect` does (``KUBECONFIG``, ``~/.kube/config``, the in-cluster service account).
The dry run (``validate.server_dry_run``, on by default when the cluster is contacted) sends each object once as a
server-side apply with ``dryRun=All``, ``force=true`` and ``fieldValidation=Strict``: admission (quotas, limit
ranges, policies) and the API server's own validation run, nothing is stored. A namespace that does not exist
yet is checked with a dry run of its creation (one request) and listed as a prerequisite; the objects in it get
the schema check only (the API server refuses even a dry run into a missing namespace), with a warning.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.sophia_ai.platform.plugins.module_utils import _openapi
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

DEFAULT_KUBERNETES_VERSION = "v1.34.4"  # the lab's; the schema of a cluster comes from its API server
FIELD_MANAGER = "sophia-compose-convert"
SERVICE_LABEL = "io.kompose.service"
CONNECTION_KEYS = ("kubeconfig", "context", "host", "api_key")
DRY_RUN_WORKERS = 8
MAX_LISTED = 20  # errors spelled out in the message; all of them are in validation_errors
_CLUSTER_SCOPED = {"Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
                   "CustomResourceDefinition", "PriorityClass", "RuntimeClass", "IngressClass",
                   "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"}


def _k8s():
    """_k8s_client, imported only when a cluster is contacted: importing the kubernetes SDK takes 0.4 to 1.5 s here,
    which a conversion that does not talk to a cluster should not pay."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.sophia_ai.platform.plugins.module_utils import _k8s_client
    return _k8s_client


def cache_root(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get("SOPHIA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sophia-platform")


def default_schema_dir(environ=None):
    """Where ``make setup`` leaves k8s.io/kubernetes' OpenAPI v3 files (the Go module cache)."""
    return os.path.join(cache_root(environ), "go", "mod", "k8s.io", "kubernetes@%s" % DEFAULT_KUBERNETES_VERSION,
                        "api", "openapi-spec", "v3")


class Settings:
    """The ``validate`` option, resolved: schema source, dry run, cache directory."""

    def __init__(self, params, environ=None):
        options = params.get("validate") or {}
        schema = options.get("schema")
        schema = "auto" if schema is None else str(schema).strip()
        if not schema:
            raise InputError("validate.schema is empty. Fix: auto, server, none or the path of an OpenAPI v3 directory",
                             key="validate.schema")
        dry_run = options.get("server_dry_run")
        # the cluster is contacted only when asked: a connection option set, or the dry run or server schema asked for
        # (the connection then falls back to KUBECONFIG, ~/.kube/config or the in-cluster account, as in connect())
        self.use_cluster = any(params.get(key) for key in CONNECTION_KEYS) or dry_run is True or schema == "server"
        self.dry_run = self.use_cluster if dry_run is None else bool(dry_run)
        if schema == "auto":
            if self.use_cluster:
                schema = "server"
            else:
                schema = default_schema_dir(environ)
                if not os.path.isdir(schema):
                    raise InputError(
                        "validation is on and found no Kubernetes OpenAPI schema: no cluster connection was given and "
                        "%s does not exist. Fix: give kubeconfig (the API server's schema is used), or "
                        "validate.schema: <the api/openapi-spec/v3 directory of k8s.io/kubernetes at your version> "
                        "(make setup leaves the %s one there), or validate.schema: none" % (schema, DEFAULT_KUBERNETES_VERSION),
                        key="validate.schema", fix="kubeconfig, validate.schema=<dir> or validate.schema=none")
        self.schema = schema if schema in ("server", "none") else os.path.abspath(os.path.expanduser(schema))
        cache_dir = options.get("cache_dir")
        self.cache_dir = os.path.expanduser(cache_dir) if cache_dir else os.path.join(cache_root(environ), "openapi")

    @property
    def enabled(self):
        return self.schema != "none" or self.dry_run


def load_validator(settings, objects, client=None):
    """A :class:`_openapi.Validator` for ``objects`` from the configured source; (validator, report)."""
    cache = _openapi.SchemaCache(settings.cache_dir)
    needed = _openapi.needed_documents(objects)
    if settings.schema == "server":
        tables = _openapi.server_tables(client, needed, cache)
        source = "the OpenAPI schema of %s" % client.host
    else:
        tables = _openapi.directory_tables(settings.schema, needed, cache)
        source = "the OpenAPI schema in %s" % settings.schema
    report = {"schema": client.host if settings.schema == "server" else settings.schema,
              "schema_source": "server" if settings.schema == "server" else "directory",
              "documents": sorted(tables), "cache": {"dir": settings.cache_dir, "hits": cache.hits, "misses": cache.misses}}
    return _openapi.Validator(tables, source=source), report


def schema_errors(validator, items):
    """[{file, kind, name, path, message, check}] for the (file name, object) pairs."""
    errors = []
    for fname, obj in items:
        for path, message in validator.validate(obj):
            errors.append({"file": fname, "kind": obj.get("kind"), "name": (obj.get("metadata") or {}).get("name"),
                           "path": path, "message": message, "check": "schema"})
    return errors


def _object_path(validator, obj, namespace):
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    name = (obj.get("metadata") or {}).get("name") or ""
    template = validator.resource_path(api_version, kind) if validator else None
    if template:
        return template.replace("{namespace}", namespace).replace("{name}", name), "{namespace}" in template
    namespaced = kind not in _CLUSTER_SCOPED
    return "%s/%s" % (_k8s().list_path(api_version, kind, namespace if namespaced else None), name), namespaced


def _status_errors(fname, obj, status, body):
    body = body if isinstance(body, dict) else {}
    meta = obj.get("metadata") or {}
    base = {"file": fname, "kind": obj.get("kind"), "name": meta.get("name"), "check": "server_dry_run",
            "status": status, "reason": body.get("reason")}
    message = body.get("message") or "HTTP %s" % status
    causes = ((body.get("details") or {}).get("causes")) or []
    if not causes:
        return [dict(base, path="(object)", message="%s (HTTP %s %s)" % (message, status, body.get("reason") or ""))]
    return [dict(base, path=cause.get("field") or "(object)",
                 message="%s (HTTP %s %s)" % (cause.get("message") or message, status, body.get("reason") or ""))
            for cause in causes]


def dry_run(client, validator, items, default_namespace, prerequisites, warnings):
    """Server-side apply dry run of each object (one request each). Returns (errors, report)."""
    errors, plan, missing = [], [], []
    namespaces = {}
    for fname, obj in items:
        namespace = (obj.get("metadata") or {}).get("namespace") or default_namespace
        path, namespaced = _object_path(validator, obj, namespace)
        plan.append((fname, obj, path, namespace if namespaced else None))
        if namespaced:
            namespaces.setdefault(namespace, []).append(fname)
    for namespace in sorted(namespaces):
        status, body = client.request("GET", "/api/v1/namespaces/%s" % namespace)
        if status != 404:
            continue  # there (or not ours to read: 403; then the dry runs tell)
        missing.append(namespace)
        ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        status, body = client.apply_dry_run("/api/v1/namespaces/%s" % namespace, ns_obj, FIELD_MANAGER)
        if not 200 <= status < 300:
            errors.extend(_status_errors("(namespace %s)" % namespace, ns_obj, status, body))
        services = sorted({((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL) for fname, obj in items
                           if fname in namespaces[namespace]} - {None})
        prerequisites.append({"kind": "Namespace", "name": namespace, "keys": [], "services": services,
                              "compose": "namespace (does not exist in the cluster yet)"})
        warnings.append({"service": None, "key": "validate.server_dry_run",
                         "message": "namespace %s does not exist yet: its creation passed a dry run, but the %d objects "
                                    "in it were checked against the schema only (the API server refuses even a dry "
                                    "run into a missing namespace); create it before applying"
                                    % (namespace, len(namespaces[namespace]))})
    todo = [entry for entry in plan if entry[3] not in missing]

    def one(entry):
        fname, obj, path, _namespace = entry
        return entry, client.apply_dry_run(path, obj, FIELD_MANAGER)

    workers = max(1, min(DRY_RUN_WORKERS, len(todo)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(one, todo))
    accepted = 0
    for (fname, obj, _path, _namespace), (status, body) in answers:
        if 200 <= status < 300:
            accepted += 1
        else:
            errors.extend(_status_errors(fname, obj, status, body))
    report = {"objects": len(todo), "accepted": accepted, "skipped": len(plan) - len(todo),
              "namespaces_missing": missing}
    return errors, report


def _line(error):
    return "%s: %s %s: %s: %s" % (error["file"], error["kind"], error["name"], error["path"], error["message"])


def failure_message(errors, dest, what):
    objects = {(e["file"]) for e in errors}
    lines = [_line(e) for e in errors[:MAX_LISTED]]
    more = " ... and %d more (see validation_errors)" % (len(errors) - MAX_LISTED) if len(errors) > MAX_LISTED else ""
    return "%s: %d error(s) in %d object(s), nothing written to %s: %s%s" % (
        what, len(errors), len(objects), dest, "; ".join(lines), more)


def check(params, items, prerequisites, warnings, connect=None, environ=None):
    """Validate (file name, object) pairs as configured; returns (report, timings). Raises on the first failing
    stage (schema errors before any request of the dry run)."""
    settings = Settings(params, environ)
    timings = {}
    report = {"objects": len(items), "schema": None, "schema_source": "none", "server_dry_run": None}
    if not settings.enabled or not items:
        return report, timings
    client = None
    try:
        if settings.use_cluster:
            client = (connect or _k8s().connect)(params)
        validator = None
        if settings.schema != "none":
            started = time.monotonic()
            validator, loaded = load_validator(settings, [obj for _fname, obj in items], client)
            report.update(loaded)
            middle = time.monotonic()
            errors = schema_errors(validator, items)
            timings.update(schema_s=round(middle - started, 4), validate_s=round(time.monotonic() - middle, 4))
            if errors:
                raise InputError(failure_message(errors, params.get("dest"), "the manifests do not match %s" % validator.source),
                                 validation_errors=errors, reason="schema")
        if settings.dry_run:
            started = time.monotonic()
            calls_before = client.api_calls
            errors, ran = dry_run(client, validator, items, params.get("namespace") or "default", prerequisites, warnings)
            ran["api_calls"] = client.api_calls - calls_before
            report["server_dry_run"] = ran
            timings["dry_run_s"] = round(time.monotonic() - started, 4)
            if errors:
                raise ApiError(failure_message(errors, params.get("dest"), "the API server at %s refused the server-side "
                                               "dry run" % client.host), validation_errors=errors, reason="server_dry_run")
        if client is not None:
            report["api_calls"] = client.api_calls
    finally:
        if client is not None:
            client.close()
    return report, timings
