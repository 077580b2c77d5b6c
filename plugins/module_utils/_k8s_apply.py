# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side apply of many manifests at once: the k8s_apply runner and the pure functions under it.

The flow of :func:`run`:

1. :func:`load_manifests` reads every file and definition, checks each document (a mapping with apiVersion, kind
   and metadata.name, a valid namespace, Secret data in base64, no object twice) and raises one InputError naming
   every bad file and document before anything is sent: nothing is half-applied because of a bad manifest.
2. :class:`Resolver` maps (group, version, kind) to the resource's plural and scope: a static table for the
   built-in kinds (no request), one discovery request per other group/version (custom resources); kinds whose
   CustomResourceDefinition is in the same set are resolved after the CRD tier.
3. One list per (kind, namespace) reads the live objects (their resourceVersions and managedFields): ``changed``
   is then decided from the apply answers alone, with no request per object (:func:`action_of`: created is HTTP
   201; configured is our field manager's managedFields entry rewritten, which the API server does only when the
   apply changed something, real or dry run; unchanged otherwise), ``preserve_fields`` reads who owns a field, and
   diff mode shows before (listed) and after (answered).
4. Objects are applied tier by tier (:data:`TIERS`), each tier concurrently on a thread pool that shares one
   urllib3 connection pool of the same size: one PATCH (``application/apply-patch+yaml``) per object, except
   objects that :func:`provably_unchanged` shows the apply could not change (same fingerprint annotation, every
   field still owned by our field manager): those cost no request.
5. Optional prune (labelled objects of the field manager that left the set) and rollout wait (one list per
   kind and namespace per poll).

Every HTTP request goes through :class:`_k8s_client.K8sClient` and is counted there. Raises PlatformError, never
calls fail_json.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import os
import re
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import (
    ApiError,
    DependencyError,
    InputError,
    PlatformError,
)

try:
    import yaml
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_YAML = True
    YAML_IMPORT_ERROR = None

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
FINGERPRINT_ANNOTATION = "sophia.ai/k8s-apply-fingerprint"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
REDACTED = "VALUE_REDACTED"
MAX_LISTED_ERRORS = 20
DEFAULT_PRESERVE = [{"kind": "Service", "field": "spec.selector", "managers": ["sophia-bluegreen-cutover"]}]

# Dependency tiers: everything a tier needs exists before it is applied; within a tier objects go concurrently.
TIER_NAMES = ("namespaces", "resource definitions", "configuration and storage", "services", "workloads",
              "policies and custom resources")
TIERS = {
    "Namespace": 0,
    "CustomResourceDefinition": 1,
    "ResourceQuota": 2, "LimitRange": 2, "PriorityClass": 2, "StorageClass": 2, "RuntimeClass": 2,
    "ServiceAccount": 2, "Secret": 2, "ConfigMap": 2, "PersistentVolume": 2, "PersistentVolumeClaim": 2,
    "ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 2, "RoleBinding": 2, "IngressClass": 2,
    "Service": 3, "Endpoints": 3, "EndpointSlice": 3,
    "DaemonSet": 4, "Pod": 4, "ReplicationController": 4, "ReplicaSet": 4, "Deployment": 4, "StatefulSet": 4,
    "Job": 4, "CronJob": 4,
}
DEFAULT_TIER = 5  # PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy, Ingress, webhooks, custom resources

# Built-in kinds: (group, version, kind) -> (resource plural, namespaced). Anything else is discovered.
_BUILTIN_ROWS = """
 v1 Namespace namespaces -
 v1 ConfigMap configmaps ns
 v1 Secret secrets ns
 v1 Service services ns
 v1 ServiceAccount serviceaccounts ns
 v1 PersistentVolumeClaim persistentvolumeclaims ns
 v1 PersistentVolume persistentvolumes -
 v1 Pod pods ns
 v1 PodTemplate podtemplates ns
 v1 ReplicationController replicationcontrollers ns
 v1 ResourceQuota resourcequotas ns
 v1 LimitRange limitranges ns
 v1 Endpoints endpoints ns
 v1 Node nodes -
apps v1 Deployment deployments ns
apps v1 StatefulSet statefulsets ns
apps v1 DaemonSet daemonsets ns
apps v1 ReplicaSet replicasets ns
apps v1 ControllerRevision controllerrevisions ns
batch v1 Job jobs ns
batch v1 CronJob cronjobs ns
policy v1 PodDisruptionBudget poddisruptionbudgets ns
autoscaling v1 HorizontalPodAutoscaler horizontalpodautoscalers ns
autoscaling v2 HorizontalPodAutoscaler horizontalpodautoscalers ns
networking.k8s.io v1 NetworkPolicy networkpolicies ns
networking.k8s.io v1 Ingress ingresses ns
networking.k8s.io v1 IngressClass ingressclasses -
discovery.k8s.io v1 EndpointSlice endpointslices ns
rbac.authorization.k8s.io v1 Role roles ns
rbac.authorization.k8s.io v1 RoleBinding rolebindings ns
rbac.authorization.k8s.io v1 ClusterRole clusterroles -
rbac.authorization.k8s.io v1 ClusterRoleBinding clusterrolebindings -
storage.k8s.io v1 StorageClass storageclasses -
storage.k8s.io v1 CSIDriver csidrivers -
scheduling.k8s.io v1 PriorityClass priorityclasses -
node.k8s.io v1 RuntimeClass runtimeclasses -
coordination.k8s.io v1 Lease leases ns
apiextensions.k8s.io v1 CustomResourceDefinition customresourcedefinitions -
apiregistration.k8s.io v1 APIService apiservices -
admissionregistration.k8s.io v1 ValidatingWebhookConfiguration validatingwebhookconfigurations -
admissionregistration.k8s.io v1 MutatingWebhookConfiguration mutatingwebhookconfigurations -
admissionregistration.k8s.io v1 ValidatingAdmissionPolicy validatingadmissionpolicies -
admissionregistration.k8s.io v1 ValidatingAdmissionPolicyBinding validatingadmissionpolicybindings -
"""
BUILTIN = {}
for _row in _BUILTIN_ROWS.strip("\n").splitlines():
    _cols = _row.split(" ")
    BUILTIN[(_cols[0], _cols[1], _cols[2])] = (_cols[3], _cols[4] == "ns")

# Kinds pruned when prune_kinds is empty (besides the kinds of the applied set): never Namespaces, volumes or CRDs.
DEFAULT_PRUNE_KINDS = ("v1/ConfigMap", "v1/Secret", "v1/Service", "v1/ServiceAccount", "apps/v1/Deployment",
                       "apps/v1/StatefulSet", "apps/v1/DaemonSet", "batch/v1/Job", "batch/v1/CronJob",
                       "policy/v1/PodDisruptionBudget", "autoscaling/v2/HorizontalPodAutoscaler",
                       "networking.k8s.io/v1/NetworkPolicy", "networking.k8s.io/v1/Ingress")
NEVER_PRUNED_BY_DEFAULT = {"Namespace", "PersistentVolumeClaim", "PersistentVolume", "CustomResourceDefinition"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
RETRY_STATUSES = {429, 502, 503, 504}

_API_VERSION = re.compile(r"^(?:([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.:@]*[A-Za-z0-9])?$")
_CONFLICT_MANAGER = re.compile(r'conflict with "([^"]*)"')


# ----------------------------------------------------------------------------------------------- manifests

class Manifest:
    """One object to apply, with where it came from (file and 1-based document number, or definitions[i])."""

    __slots__ = ("source", "index", "obj", "group", "version", "kind", "name", "namespace", "plural", "namespaced",
                 "path", "order", "preserved")

    def __init__(self, source, index, obj, order):
        self.source, self.index, self.obj, self.order = source, index, obj, order
        api_version = obj["apiVersion"]
        self.group, self.version = api_version.rsplit("/", 1) if "/" in api_version else ("", api_version)
        self.kind = obj["kind"]
        self.name = obj["metadata"]["name"]
        self.namespace = obj["metadata"].get("namespace")
        self.plural = self.namespaced = self.path = None
        self.preserved = []

    @property
    def api_version(self):
        return self.obj["apiVersion"]

    @property
    def where(self):
        if self.source == "definitions":
            return "definitions[%d]" % self.index
        return "%s, document %d" % (self.source, self.index)

    @property
    def label(self):
        """'Deployment sophia/mcp-gong' (namespaced) or 'Namespace sophia'."""
        return "%s %s" % (self.kind, "%s/%s" % (self.namespace, self.name) if self.namespace else self.name)

    @property
    def key(self):
        return (self.group, self.kind, self.namespace, self.name)

    def brief(self, action):
        return {"kind": self.kind, "apiVersion": self.api_version, "namespace": self.namespace, "name": self.name,
                "action": action}


def _yaml_loader():
    return getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


def manifest_files(paths):
    """[(path, problem or None)]: each file, and each *.yaml/*.yml/*.json directly in each directory, sorted."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(MANIFEST_SUFFIXES) and not n.startswith("."))
            if not names:
                found.append((path, "is a directory without *.yaml, *.yml or *.json files"))
            found.extend((os.path.join(path, name), None) for name in names)
        elif os.path.isfile(path):
            found.append((path, None))
        else:
            found.append((path, "does not exist"))
    return found


def read_documents(path):
    """[(document number from 1, object or None)] of one file; a List's items count as documents of their own."""
    with open(path, "rb") as handle:
        text = handle.read().decode("utf-8")
    documents = []
    for number, doc in enumerate(yaml.load_all(text, Loader=_yaml_loader()), start=1):
        documents.append((number, doc))
    return documents


def check_object(obj):
    """The problems of one document as a list of strings (empty: it can be applied)."""
    if not isinstance(obj, dict):
        return ["is a %s, not a Kubernetes object (a mapping with apiVersion, kind and metadata)" % type(obj).__name__]
    problems = []
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
        problems.append("apiVersion %r is not 'v1' or 'group/version'" % (api_version,))
    if not isinstance(kind, str) or not _KIND.match(kind):
        problems.append("kind %r is not a Kubernetes kind (CamelCase)" % (kind,))
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return problems + ["has no metadata mapping"]
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append("has no metadata.name (server-side apply needs one; generateName cannot be applied)")
    elif len(name) > 253 or not _NAME.match(name) or name in (".", ".."):
        problems.append("metadata.name %r is not a valid object name" % name)
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace)):
        problems.append("metadata.namespace %r is not a valid namespace name (DNS label)" % (namespace,))
    if kind == "Secret" and isinstance(obj.get("data"), dict):
        for key, value in obj["data"].items():
            if value is None:
                continue
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                problems.append("Secret data key %r is not base64 (put plain text under stringData)" % key)
    for field in ("data", "stringData"):
        if kind == "Secret" and field in obj and not isinstance(obj[field], dict):
            problems.append("Secret %s is not a mapping" % field)
    return problems


def load_manifests(params):
    """Every object of ``src`` and ``definitions`` as :class:`Manifest`; one InputError naming every bad document
    (file and document number, or definitions[i]) before anything is sent."""
    if not HAS_YAML:
        raise DependencyError("PyYAML is needed to read manifests", exception=YAML_IMPORT_ERROR)
    errors, manifests, seen = [], [], {}

    def add(source, index, obj):
        where = "definitions[%d]" % index if source == "definitions" else "%s, document %d" % (source, index)
        if obj is None:
            return
        if isinstance(obj, dict) and isinstance(obj.get("kind"), str) and obj["kind"].endswith("List") \
                and isinstance(obj.get("items"), list):
            for item in obj["items"]:
                add(source, index, item)
            return
        problems = check_object(obj)
        if problems:
            errors.append({"file": source, "index": index, "message": "%s: %s" % (where, "; ".join(problems))})
            return
        manifest = Manifest(source, index, obj, len(manifests))
        manifests.append(manifest)

    for path, problem in manifest_files(params.get("src") or []):
        if problem:
            errors.append({"file": path, "index": None, "message": "%s %s" % (path, problem)})
            continue
        try:
            documents = read_documents(path)
        except (OSError, UnicodeDecodeError) as exc:
            errors.append({"file": path, "index": None, "message": "%s cannot be read: %s" % (path, exc)})
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = " (line %d, column %d)" % (mark.line + 1, mark.column + 1) if mark else ""
            errors.append({"file": path, "index": None,
                           "message": "%s is not valid YAML%s: %s" % (path, where, getattr(exc, "problem", None) or exc)})
            continue
        for number, doc in documents:
            add(path, number, doc)
    for index, obj in enumerate(params.get("definitions") or []):
        add("definitions", index, copy.deepcopy(obj))
    namespace = params.get("namespace")
    if namespace is not None and not _DNS_LABEL.match(namespace):
        errors.append({"file": None, "index": None, "message": "namespace %r is not a valid namespace name" % namespace})
    for manifest in manifests:
        first = seen.setdefault(manifest.key, manifest)
        if first is not manifest:
            errors.append({"file": manifest.source, "index": manifest.index,
                           "message": "%s: %s %s is also defined at %s" % (manifest.where, manifest.kind, manifest.name,
                                                                           first.where)})
    if not manifests and not errors:
        errors.append({"file": None, "index": None, "message": "no objects to apply in src and definitions"})
    if errors:
        shown = [e["message"] for e in errors[:MAX_LISTED_ERRORS]]
        more = " (and %d more)" % (len(errors) - MAX_LISTED_ERRORS) if len(errors) > MAX_LISTED_ERRORS else ""
        raise InputError("%d manifest problem(s), nothing was applied: %s%s" % (len(errors), " | ".join(shown), more),
                         errors=errors, reason="bad_manifest")
    return manifests


def secret_values(manifests):
    """The values of every Secret's data (base64 and decoded) and stringData: module.no_log_values masks them."""
    values = set()
    for manifest in manifests:
        if manifest.kind != "Secret":
            continue
        for field in ("data", "stringData"):
            for value in (manifest.obj.get(field) or {}).values():
                if value in (None, ""):
                    continue
                values.add(str(value))
                if field == "data":
                    try:
                        values.add(base64.b64decode(str(value)).decode("utf-8"))
                    except (binascii.Error, ValueError, UnicodeDecodeError):
                        pass
    return {value for value in values if len(value.strip()) >= 4}


def redact(obj):
    """A copy of ``obj`` whose Secret values are VALUE_REDACTED (keys kept), also in last-applied annotations."""
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return obj
    obj = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            obj[field] = {key: REDACTED for key in obj[field]}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        obj["metadata"] = dict(obj["metadata"], annotations=dict(
            annotations, **{"kubectl.kubernetes.io/last-applied-configuration": REDACTED}))
    return obj


def redacted_definitions(definitions):
    """``definitions`` with Secret values hidden: what the module echoes as its invocation."""
    if definitions is None:
        return None
    return [redact(obj) if isinstance(obj, dict) else obj for obj in definitions]


# ------------------------------------------------------------------------------------------ resource paths

def split_api_version(api_version):
    return tuple(api_version.rsplit("/", 1)) if "/" in api_version else ("", api_version)


def collection_path(group, version, plural, namespace=None):
    """/api/v1/namespaces/ns/configmaps, /apis/apps/v1/deployments, ..."""
    base = "/apis/%s/%s" % (group, version) if group else "/api/%s" % version
    if namespace:
        base += "/namespaces/%s" % quote(namespace, safe="")
    return "%s/%s" % (base, plural)


def object_path(group, version, plural, namespace, name):
    return "%s/%s" % (collection_path(group, version, plural, namespace), quote(name, safe=""))


def crd_kinds(manifests):
    """{(group, version, kind): (plural, namespaced)} that the CustomResourceDefinitions in the set define."""
    kinds = {}
    for manifest in manifests:
        if manifest.kind != "CustomResourceDefinition" or manifest.group != "apiextensions.k8s.io":
            continue
        spec = manifest.obj.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            if isinstance(version, dict) and version.get("served", True) and names.get("kind"):
                kinds[(spec.get("group"), version.get("name"), names["kind"])] = (
                    names.get("plural") or names["kind"].lower() + "s", spec.get("scope") != "Cluster")
    return kinds


class Resolver:
    """(group, version, kind) -> (plural, namespaced): the static table, then one discovery GET per group/version."""

    def __init__(self, client):
        self.client = client
        self.discovered = {}  # "group/version" -> {kind: (plural, namespaced)} or None (not served)
        self.lock = threading.Lock()

    def discover(self, group, version, refresh=False):
        gv = "%s/%s" % (group, version) if group else version
        with self.lock:
            if gv in self.discovered and not refresh:
                return self.discovered[gv]
        path = "/apis/%s" % gv if group else "/api/%s" % version
        status, answer = self.client.request("GET", path)
        kinds = None
        if status == 200 and isinstance(answer, dict):
            kinds = {r["kind"]: (r["name"], bool(r.get("namespaced")))
                     for r in answer.get("resources") or [] if "/" not in r.get("name", "/")}
        elif status not in (404, 503):
            raise ApiError("discovery of %s failed: HTTP %s %s" % (gv, status, _message(answer)), object=path, status=status)
        with self.lock:
            self.discovered[gv] = kinds
        return kinds

    def resolve(self, group, version, kind, refresh=False):
        if (group, version, kind) in BUILTIN and not refresh:
            return BUILTIN[(group, version, kind)]
        kinds = self.discover(group, version, refresh=refresh)
        return (kinds or {}).get(kind)


def assign_paths(manifests, resolved, default_namespace):
    """Set plural, scope, namespace and object URL of each manifest from ``resolved`` {(g, v, kind): (plural, ns)}."""
    for manifest in manifests:
        plural, namespaced = resolved[(manifest.group, manifest.version, manifest.kind)]
        manifest.plural, manifest.namespaced = plural, namespaced
        metadata = manifest.obj["metadata"]
        if namespaced:
            manifest.namespace = manifest.namespace or default_namespace or "default"
            metadata["namespace"] = manifest.namespace
        else:
            manifest.namespace = None
            metadata.pop("namespace", None)
        manifest.path = object_path(manifest.group, manifest.version, plural, manifest.namespace, manifest.name)


def tiers_of(manifests):
    """[(tier number, [manifests in input order])] in apply order."""
    tiers = {}
    for manifest in manifests:
        tiers.setdefault(TIERS.get(manifest.kind, DEFAULT_TIER), []).append(manifest)
    return sorted(tiers.items())


# ------------------------------------------------------------------------------------ managed fields logic

def owns_field(fields_v1, path):
    """True when a managedFields entry's fieldsV1 holds ``path`` (['spec', 'selector']) or something under it."""
    node = fields_v1
    for part in path:
        if not isinstance(node, dict) or ("f:" + part) not in node:
            return False
        node = node["f:" + part]
    return True


def _has_path(obj, path):
    node = obj
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def without_path(obj, path):
    """A copy of ``obj`` without the field at ``path`` (copied only along the path)."""
    if not path or not isinstance(obj, dict) or path[0] not in obj:
        return obj
    out = dict(obj)
    if len(path) == 1:
        del out[path[0]]
    else:
        out[path[0]] = without_path(obj[path[0]], path[1:])
    return out


def preserve_rules(rules):
    """Checked preserve_fields: [(kind, [path parts], set of managers)]."""
    checked = []
    for number, rule in enumerate(rules or []):
        kind, field, managers = rule.get("kind"), rule.get("field"), rule.get("managers")
        if not kind or not field or not managers:
            raise InputError("preserve_fields[%d] needs kind, field and managers" % number, key="preserve_fields")
        checked.append((kind, [part for part in field.split(".") if part], set(managers)))
    return checked


def fields_to_preserve(manifest_obj, live, rules):
    """[(dotted field, manager)] of ``rules`` that the live object's other managers own and the manifest sets."""
    if not live:
        return []
    kept = []
    entries = (live.get("metadata") or {}).get("managedFields") or []
    for kind, path, managers in rules:
        if kind != manifest_obj.get("kind") or not _has_path(manifest_obj, path):
            continue
        for entry in entries:
            if entry.get("manager") in managers and owns_field(entry.get("fieldsV1") or {}, path):
                kept.append((".".join(path), entry["manager"]))
                break
    return kept


def managed_by(live, field_manager):
    return any(entry.get("manager") == field_manager for entry in (live.get("metadata") or {}).get("managedFields") or [])


# --------------------------------------------------------------------------------------- change detection

def fingerprint(body):
    """A digest of the object as applied (canonical JSON), stored in FINGERPRINT_ANNOTATION."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()[:32]


def with_fingerprint(body):
    """(the body with its fingerprint annotation, the fingerprint)."""
    digest = fingerprint(body)
    metadata = dict(body.get("metadata") or {})
    metadata["annotations"] = dict(metadata.get("annotations") or {}, **{FINGERPRINT_ANNOTATION: digest})
    return dict(body, metadata=metadata), digest


_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


def _keyed_element(children, element):
    """The fieldsV1 child (``k:{...}``) of a list of maps that names ``element`` (a missing ``protocol`` is TCP,
    the API server's default for port lists)."""
    for key, sub in children.items():
        if not key.startswith("k:"):
            continue
        try:
            wanted = json.loads(key[2:])
        except ValueError:
            return None
        if all(element.get(name, "TCP" if name == "protocol" else None) == value for name, value in wanted.items()):
            return sub
    return None


def owns_all(body, fields, path=()):
    """True when the managedFields tree ``fields`` (a fieldsV1) holds every field that ``body`` sets: the field
    manager still owns all of it (nobody changed, took or removed one of its fields since it applied ``body``)."""
    if isinstance(body, (dict, list)) and path and fields == {}:
        return True  # an atomic map or list (a label selector, a node selector, args), owned as a whole
    if isinstance(body, dict):
        for key, value in body.items():
            if path + (key,) in _IDENTITY:
                continue
            sub = fields.get("f:" + key) if isinstance(fields, dict) else None
            if sub is None or not owns_all(value, sub, path + (key,)):
                return False
        return True
    if isinstance(body, list):
        children = {key: sub for key, sub in (fields or {}).items() if key != "."}
        for element in body:
            if isinstance(element, dict):
                sub = _keyed_element(children, element)
                if sub is None or not owns_all(element, sub, path + ("[]",)):
                    return False
            elif "v:" + json.dumps(element, separators=(",", ":")) not in children:
                return False
        return True
    return True


def provably_unchanged(body, digest, live, manager):
    """True when applying ``body`` (with its fingerprint ``digest``) again cannot change the live object: the live
    object carries the same fingerprint (``manager`` applied exactly this body last time) and ``manager`` still owns
    every field of it (another tool that changed, took over or removed one of them would own it now, or it would be
    gone). Then the apply is skipped: zero requests for an unchanged object."""
    metadata = (live or {}).get("metadata") or {}
    if not live or metadata.get("deletionTimestamp") or (metadata.get("annotations") or {}).get(FINGERPRINT_ANNOTATION) != digest:
        return False
    entry = applied_entry(live, manager)
    return bool(entry) and owns_all(body, entry.get("fieldsV1") or {})


_NOISE = ("resourceVersion", "generation", "uid", "creationTimestamp", "selfLink", "managedFields")


def normalised(obj):
    """The object without server bookkeeping (metadata noise, managedFields) and status: what a diff shows."""
    if not obj:
        return {}
    out = {key: value for key, value in obj.items() if key != "status"}
    out["metadata"] = {key: value for key, value in (obj.get("metadata") or {}).items() if key not in _NOISE}
    return out


def applied_entry(obj, manager):
    """The managedFields entry of ``manager``'s applies (not a subresource) in ``obj``, or None."""
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource"):
            return entry
    return None


def action_of(status, answer, live, check_mode, manager):
    """created / configured / unchanged (would_create / would_configure in check mode) from one apply answer and
    the live object listed before it, with no request of its own.

    The API server rewrites a field manager's managedFields entry (its fields and its timestamp) only when that
    manager's apply changed the object, in a real run and in a dry run alike; a no-op apply leaves the entry and
    the resourceVersion as they were. So a changed entry is a change. With the entry unchanged, an unmoved
    resourceVersion is no change; a moved one is a controller's write since the list (a rollout writing status)
    unless the generation moved too (a spec change made within the same second as the previous apply).
    """
    if status == 201 or (check_mode and live is None):
        return "would_create" if check_mode else "created"
    if live is None:
        return "configured"
    if applied_entry(answer, manager) != applied_entry(live, manager):
        return "would_configure" if check_mode else "configured"
    if check_mode:
        return "unchanged"
    before, after = live.get("metadata") or {}, (answer or {}).get("metadata") or {}
    if before.get("resourceVersion") == after.get("resourceVersion"):
        return "unchanged"
    return "configured" if after.get("generation", 0) != before.get("generation", 0) else "unchanged"


def _message(answer):
    if isinstance(answer, dict):
        return str(answer.get("message") or "").strip() or json.dumps(answer)[:300]
    return str(answer)[:300]


def failure(manifest, status, answer, field_manager):
    """One failed apply as a dict with a message that says what to do."""
    answer = answer if isinstance(answer, dict) else {"message": str(answer)}
    reason = answer.get("reason")
    message = _message(answer)
    out = {"object": manifest.label, "kind": manifest.kind, "namespace": manifest.namespace, "name": manifest.name,
           "file": manifest.source, "index": manifest.index, "status": status, "reason": reason}
    if status == 409 and reason == "Conflict":
        causes = (answer.get("details") or {}).get("causes") or []
        conflicts = []
        for cause in causes:
            found = _CONFLICT_MANAGER.search(cause.get("message") or "")
            conflicts.append({"field": cause.get("field"), "manager": found.group(1) if found else None})
        out["conflicts"] = conflicts
        managers = sorted({c["manager"] for c in conflicts if c["manager"]})
        fields = ", ".join("%s (owned by %s)" % (c["field"], c["manager"]) for c in conflicts)
        out["message"] = ("%s (%s): apply conflicts with field manager(s) %s on %s. Fix: change these fields through "
                          "the tool that owns them (%s), leave them out of the manifest (or list them in "
                          "preserve_fields), or set force_conflicts: true to take them over as %s."
                          % (manifest.label, manifest.where, ", ".join(managers) or "?", fields or message,
                             ", ".join(managers) or "?", field_manager))
    elif status == 404 and "namespaces" in message and "not found" in message:
        out["message"] = "%s (%s): namespace %s does not exist: create it (a Namespace manifest in the set) first" % (
            manifest.label, manifest.where, manifest.namespace)
    elif status == 404:
        out["message"] = ("%s (%s): the API server does not serve %s %s (%s): check apiVersion, or install its "
                          "CustomResourceDefinition" % (manifest.label, manifest.where, manifest.api_version,
                                                        manifest.kind, message))
    else:
        out["message"] = "%s (%s): HTTP %s %s: %s" % (manifest.label, manifest.where, status, reason or "", message)
    return out


# ---------------------------------------------------------------------------------------------- rollouts

def rollout_state(obj):
    """(done, failed message or None, one-line status) of a Deployment, StatefulSet, DaemonSet or Job."""
    kind = obj.get("kind")
    spec, status, metadata = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    if kind != "Job" and status.get("observedGeneration", 0) < metadata.get("generation", 0):
        return False, None, "waiting for the controller to see generation %s" % metadata.get("generation")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
        available = status.get("availableReplicas", 0)
        progressing = conditions.get("Progressing") or {}
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return False, "progress deadline exceeded: %s" % progressing.get("message"), "failed"
        line = "%d/%d updated, %d available, %d total" % (updated, want, available, total)
        failure_condition = conditions.get("ReplicaFailure") or {}
        if failure_condition.get("status") == "True":
            line += "; %s" % failure_condition.get("message")
        return updated >= want and total <= updated and available >= updated, None, line
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
        strategy = spec.get("updateStrategy") or {}
        line = "%d/%d ready, %d updated" % (ready, want, updated)
        if strategy.get("type") == "OnDelete":
            return ready >= want, None, line
        partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
        revision_done = partition > 0 or status.get("updateRevision") == status.get("currentRevision")
        return ready >= want and updated >= want - partition and revision_done, None, line
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        updated, available = status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0)
        return updated >= desired and available >= desired, None, "%d/%d updated, %d available" % (updated, desired, available)
    if kind == "Job":
        if (conditions.get("Complete") or {}).get("status") == "True":
            return True, None, "complete"
        failed = conditions.get("Failed") or {}
        if failed.get("status") == "True":
            return False, "job failed: %s" % (failed.get("message") or failed.get("reason")), "failed"
        return False, None, "%d succeeded, %d active" % (status.get("succeeded", 0), status.get("active", 0))
    return True, None, "no rollout"


# ------------------------------------------------------------------------------------------------ runner

class _Applier:
    """The state of one run: client, options, live objects, results."""

    def __init__(self, client, params, check_mode):
        self.client = client
        self.check_mode = check_mode
        self.field_manager = params.get("field_manager") or "sophia-mcp-deploy"
        self.force = bool(params.get("force_conflicts"))
        self.concurrency = max(1, min(int(params.get("concurrency") or 16), 64))
        self.always_apply = bool(params.get("always_apply"))
        self.rules = preserve_rules(DEFAULT_PRESERVE if params.get("preserve_fields") is None else params["preserve_fields"])
        self.live = {}  # (group, kind, namespace, name) -> live object
        self.phase_calls = {}

    def count(self, phase, since):
        self.phase_calls[phase] = self.phase_calls.get(phase, 0) + self.client.api_calls - since

    def request(self, method, path, query=None, body=None, content_type="application/json"):
        """client.request, retried on 429/502/503/504 and on connection errors (apply is idempotent)."""
        delay = 0.2
        for attempt in range(5):
            try:
                status, answer = self.client.request(method, path, query, body, content_type)
            except ApiError:
                if attempt == 4:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            if status not in RETRY_STATUSES or attempt == 4:
                return status, answer
            time.sleep(delay)
            delay *= 2
        return status, answer  # not reached

    def list_live(self, pool, groups):
        """Fill self.live from one list per (group, version, plural, namespace); a group of one object is listed
        with a field selector on its name."""
        def one(entry):
            (group, version, plural, namespace), names = entry
            api_version = "%s/%s" % (group, version) if group else version
            selector = "metadata.name=%s" % next(iter(names)) if len(names) == 1 else None
            return self.client.list_all(api_version, plural, namespace, field_selector=selector)

        for items in pool.map(one, list(groups.items())):
            for item in items:
                metadata = item.get("metadata") or {}
                group = split_api_version(item.get("apiVersion") or "v1")[0]
                self.live[(group, item.get("kind"), metadata.get("namespace"), metadata.get("name"))] = item

    def apply_one(self, manifest, pending_namespaces):
        """(action, answer, failure dict or None) for one manifest."""
        live = self.live.get(manifest.key)
        body = manifest.obj
        manifest.preserved = fields_to_preserve(body, live, self.rules)
        for field, _manager in manifest.preserved:
            body = without_path(body, field.split("."))
        body, digest = with_fingerprint(body)
        if self.check_mode and (manifest.namespace in pending_namespaces or manifest.plural is None):
            return "would_create", None, None  # its namespace or CRD is created by this run: a dry run cannot tell
        if not self.always_apply and provably_unchanged(body, digest, live, self.field_manager):
            return "unchanged", None, None  # no request: answer None
        query = [("fieldManager", self.field_manager), ("fieldValidation", "Strict")]
        if self.force:
            query.append(("force", "true"))
        if self.check_mode:
            query.append(("dryRun", "All"))
        status, answer = self.request("PATCH", manifest.path, query, json.dumps(body, separators=(",", ":")),
                                      APPLY_CONTENT_TYPE)
        if status not in (200, 201):
            return None, answer, failure(manifest, status, answer, self.field_manager)
        return action_of(status, answer, live, self.check_mode, self.field_manager), answer, None


def _diff_entry(manifest, live, answer):
    header = "%s %s" % (manifest.api_version, manifest.label)
    return {"before_header": header if live else "%s (absent)" % header, "after_header": header,
            "before": redact(normalised(live)) if live else {}, "after": redact(normalised(answer)) if answer else
            redact(normalised(manifest.obj))}


def _raise_failures(failures, results, applier, started, extra=""):
    shown = [f["message"] for f in failures[:MAX_LISTED_ERRORS]]
    more = " (and %d more)" % (len(failures) - MAX_LISTED_ERRORS) if len(failures) > MAX_LISTED_ERRORS else ""
    raise ApiError("%d object(s) failed to apply%s: %s%s" % (len(failures), extra, " | ".join(shown), more),
                   errors=failures, objects=results, api_calls=applier.client.api_calls,
                   apply_seconds=round(time.monotonic() - started, 3), reason="apply_failed")


def size_connection_pool(client, size):
    """One urllib3 pool of ``size`` connections shared by the threads (urllib3 otherwise keeps 10 and discards)."""
    rest_client = getattr(getattr(client, "api_client", None), "rest_client", None)
    pool_manager = getattr(rest_client, "pool_manager", None)
    if hasattr(pool_manager, "connection_pool_kw"):
        pool_manager.connection_pool_kw["maxsize"] = size
        pool_manager.clear()


def resolve_all(resolver, manifests, errors_out):
    """{(g, v, kind): (plural, namespaced)} for every kind served now; kinds a CRD of the set defines -> None; the
    others (not served) -> None and an entry in ``errors_out``."""
    defined = crd_kinds(manifests)
    resolved = {}
    for gvk in sorted({(m.group, m.version, m.kind) for m in manifests}):
        found = resolver.resolve(*gvk)
        if found is None and gvk in defined:
            resolved[gvk] = None  # after the CRD tier
        elif found is None:
            resolved[gvk] = None
            where = [m.where for m in manifests if (m.group, m.version, m.kind) == gvk]
            errors_out.append({"file": None, "index": None, "message": "%s: the API server does not serve kind %s in "
                               "apiVersion %s (check apiVersion, or install its CustomResourceDefinition)" % (
                                   ", ".join(where[:3]) + (" ..." if len(where) > 3 else ""), gvk[2],
                                   "%s/%s" % gvk[:2] if gvk[0] else gvk[1])})
        else:
            resolved[gvk] = found
    return resolved


def _wait_resolved(resolver, gvk, timeout):
    deadline = time.monotonic() + timeout
    while True:
        found = resolver.resolve(*gvk, refresh=True)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def prune_kind_list(params, manifests):
    """[(group, version, kind)] to prune: prune_kinds ('Kind' of a built-in, or 'group/version/Kind'), or by
    default the kinds of the set and DEFAULT_PRUNE_KINDS, without Namespaces, volumes and CRDs."""
    wanted = params.get("prune_kinds") or []
    out = []
    if not wanted:
        in_set = {"%s/%s" % (m.api_version, m.kind) for m in manifests if m.kind not in NEVER_PRUNED_BY_DEFAULT}
        wanted = list(DEFAULT_PRUNE_KINDS) + sorted(in_set)
    for entry in wanted:
        parts = entry.split("/")
        if len(parts) == 1:
            of_set = {(m.group, m.version, m.kind) for m in manifests if m.kind == entry}
            matches = sorted({gvk for gvk in BUILTIN if gvk[2] == entry} | of_set)
            if not matches:
                raise InputError("prune_kinds: %r is not a built-in kind; write it as group/version/Kind" % entry,
                                 key="prune_kinds")
            preferred = [gvk for gvk in matches if gvk in of_set] or matches
            gvk = preferred[-1]
        elif len(parts) in (2, 3):
            gvk = ("", parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])
        else:
            raise InputError("prune_kinds: %r is not Kind, v1/Kind or group/version/Kind" % entry, key="prune_kinds")
        # one version per (group, kind): the same objects are served under every version
        if all((g, k) != (gvk[0], gvk[2]) for g, _v, k in out):
            out.append(gvk)
    return out


def run(params, client, manifests, check_mode=False, want_diff=False):
    """Apply ``manifests`` (from :func:`load_manifests`); the module result without ansible's own keys."""
    started = time.monotonic()
    applier = _Applier(client, params, check_mode)
    size_connection_pool(client, applier.concurrency)
    resolver = Resolver(client)
    mark = client.api_calls
    errors = []
    resolved = resolve_all(resolver, manifests, errors)
    applier.count("discovery", mark)
    if errors:
        raise InputError("%d kind(s) the API server does not serve, nothing was applied: %s" % (
            len(errors), " | ".join(e["message"] for e in errors)), errors=errors, reason="unknown_kind",
            api_calls=client.api_calls)
    ready = [m for m in manifests if resolved[(m.group, m.version, m.kind)]]
    assign_paths(ready, resolved, params.get("namespace"))
    for manifest in manifests:
        if manifest.plural is None and manifest.namespace is None:
            manifest.namespace = params.get("namespace") or "default"  # provisional, fixed after the CRD tier

    results = {}
    failures = []
    diffs = []
    not_sent = 0
    with ThreadPoolExecutor(max_workers=applier.concurrency) as pool:
        mark = client.api_calls
        groups = {}
        for manifest in ready:
            groups.setdefault((manifest.group, manifest.version, manifest.plural, manifest.namespace), set()).add(manifest.name)
        applier.list_live(pool, groups)
        applier.count("list", mark)
        namespaces_created = {m.name for m in ready if m.kind == "Namespace" and m.key not in applier.live}
        pending_namespaces = set()
        if check_mode:
            pending_namespaces = namespaces_created

        mark = client.api_calls
        for tier, members in tiers_of(manifests):
            unresolved = [m for m in members if m.plural is None]
            for manifest in unresolved:
                gvk = (manifest.group, manifest.version, manifest.kind)
                if not check_mode:
                    found = _wait_resolved(resolver, gvk, 60) if resolved.get(gvk) is None else resolved[gvk]
                    if not found:
                        failures.append({"object": manifest.label, "file": manifest.source, "index": manifest.index,
                                         "message": "%s (%s): its CustomResourceDefinition was applied but %s %s was "
                                         "not served within 60 s" % (manifest.label, manifest.where, manifest.api_version,
                                                                     manifest.kind)})
                        continue
                    resolved[gvk] = found
                    manifest.namespace = manifest.obj["metadata"].get("namespace")
                    assign_paths([manifest], resolved, params.get("namespace"))
            if failures:
                break
            todo = [m for m in members if m.plural is not None or check_mode]
            answers = list(pool.map(lambda m: applier.apply_one(m, pending_namespaces), todo))
            for manifest, (action, answer, failed) in zip(todo, answers):
                if failed:
                    failures.append(failed)
                    continue
                results[manifest.order] = manifest.brief(action)
                if action == "unchanged" and answer is None:
                    not_sent += 1
                if want_diff and action not in ("unchanged",):
                    diffs.append((manifest.order, _diff_entry(manifest, applier.live.get(manifest.key), answer)))
            if failures:
                break
        applier.count("apply", mark)
        objects = [results[order] for order in sorted(results)]
        if failures:
            _raise_failures(failures, objects, applier, started,
                            extra=" (tiers after '%s' were not applied)" % TIER_NAMES[tier])

        pruned = []
        if params.get("prune"):
            mark = client.api_calls
            for brief, item in prune(applier, pool, params, manifests, resolver):
                pruned.append(brief)
                if want_diff:
                    header = "%s %s %s" % (brief["apiVersion"], brief["kind"], "/".join(
                        part for part in (brief["namespace"], brief["name"]) if part))
                    diffs.append((len(manifests) + len(pruned), {"before_header": header, "after_header": "%s (pruned)" % header,
                                                                 "before": redact(normalised(item)), "after": {}}))
            applier.count("prune", mark)
    apply_seconds = time.monotonic() - started

    wait_seconds = 0.0
    rollouts = []
    if params.get("wait") and not check_mode:
        mark = client.api_calls
        wait_started = time.monotonic()
        rollouts = wait_for_rollouts(applier, [m for m in manifests if m.kind in WORKLOADS and m.plural],
                                     float(params.get("wait_timeout") or 300), objects, apply_seconds)
        wait_seconds = time.monotonic() - wait_started
        applier.count("wait", mark)

    objects.extend(pruned)
    counts = {"created": 0, "configured": 0, "unchanged": 0, "pruned": 0}
    for entry in objects:
        counts[{"would_create": "created", "would_configure": "configured", "would_prune": "pruned"}.get(
            entry["action"], entry["action"])] += 1
    changed = bool(counts["created"] or counts["configured"] or counts["pruned"])
    preserved = [{"object": m.label, "field": field, "manager": manager} for m in manifests for field, manager in m.preserved]
    result = {
        "changed": changed,
        "objects": objects,
        "counts": counts,
        "preserved": preserved,
        "not_sent": not_sent,
        "rollouts": rollouts,
        "api_calls": client.api_calls,
        "api_calls_by_phase": applier.phase_calls,
        "apply_seconds": round(apply_seconds, 3),
        "wait_seconds": round(wait_seconds, 3),
        "msg": "%s%d objects: %d created, %d configured, %d unchanged (%d without a request), %d pruned in %.2f s "
               "(%d API calls)" % ("check mode, would apply " if check_mode else "", len(objects), counts["created"],
                                   counts["configured"], counts["unchanged"], not_sent, counts["pruned"], apply_seconds,
                                   client.api_calls),
    }
    if want_diff:
        result["diff"] = [entry for _order, entry in sorted(diffs, key=lambda pair: pair[0])]
    return result


def prune(applier, pool, params, manifests, resolver):
    """Delete (or in check mode report) the objects labelled prune_selector, managed by field_manager, of the prune
    kinds, in the namespaces of the set, that the set no longer holds."""
    selector = params.get("prune_selector")
    if not selector:
        raise InputError("prune needs prune_selector (a label selector such as app.kubernetes.io/part-of=sophia), so "
                         "that only objects labelled for this stack are deleted", key="prune_selector")
    namespaces = sorted({m.namespace for m in manifests if m.namespaced} | (
        {params["namespace"]} if params.get("namespace") else set()))
    keys = {m.key for m in manifests}
    lists = []
    for group, version, kind in prune_kind_list(params, manifests):
        found = resolver.resolve(group, version, kind)
        if not found:
            continue
        plural, namespaced = found
        api_version = "%s/%s" % (group, version) if group else version
        for namespace in (namespaces if namespaced else [None]):
            lists.append((api_version, plural, namespace, group, version))

    def listing(entry):
        api_version, plural, namespace, _group, _version = entry
        return entry, applier.client.list_all(api_version, plural, namespace, label_selector=selector)

    victims = []
    for (api_version, plural, _namespace, group, version), items in pool.map(listing, lists):
        for item in items:
            metadata = item.get("metadata") or {}
            key = (group, item.get("kind"), metadata.get("namespace"), metadata.get("name"))
            if key in keys or metadata.get("deletionTimestamp") or not managed_by(item, applier.field_manager):
                continue
            victims.append((object_path(group, version, plural, metadata.get("namespace"), metadata["name"]),
                            {"kind": item.get("kind"), "apiVersion": api_version, "namespace": metadata.get("namespace"),
                             "name": metadata["name"]}, item))

    def delete(victim):
        path, brief, item = victim
        if applier.check_mode:
            return (dict(brief, action="would_prune"), item), None
        status, answer = applier.request("DELETE", path, [("propagationPolicy", "Background")])
        if status in (200, 202, 404):
            return (dict(brief, action="pruned"), item), None
        return None, "%s %s/%s: prune failed: HTTP %s %s" % (
            brief["kind"], brief["namespace"], brief["name"], status, _message(answer))

    done, errors = [], []
    for entry, error in pool.map(delete, victims):
        if error:
            errors.append(error)
        else:
            done.append(entry)
    if errors:
        raise ApiError("%d object(s) could not be pruned: %s" % (len(errors), " | ".join(errors[:MAX_LISTED_ERRORS])),
                       errors=errors, objects=[brief for brief, _item in done], reason="prune_failed")
    return sorted(done, key=lambda pair: (pair[0]["kind"], pair[0]["namespace"] or "", pair[0]["name"]))


def wait_for_rollouts(applier, workloads, timeout, objects, apply_seconds):
    """Poll one list per (kind, namespace) until every workload has rolled out; PlatformError on failure/timeout."""
    if not workloads:
        return []
    groups = {}
    for manifest in workloads:
        groups.setdefault((manifest.group, manifest.version, manifest.plural, manifest.namespace), []).append(manifest)
    deadline = time.monotonic() + timeout
    interval = 0.25
    states = {}
    while True:
        for (group, version, plural, namespace), members in groups.items():
            api_version = "%s/%s" % (group, version) if group else version
            selector = "metadata.name=%s" % members[0].name if len(members) == 1 else None
            live = {item["metadata"]["name"]: item
                    for item in applier.client.list_all(api_version, plural, namespace, field_selector=selector)}
            for manifest in members:
                obj = live.get(manifest.name)
                states[manifest.order] = (manifest,) + (rollout_state(obj) if obj else (False, None, "not found"))
        failed = [(m, why) for m, _done, why, _line in states.values() if why]
        if failed:
            raise PlatformError("rollout failed: %s" % " | ".join("%s: %s" % (m.label, why) for m, why in failed),
                                objects=objects, reason="rollout_failed", apply_seconds=round(apply_seconds, 3))
        waiting = [(m, line) for m, done, _why, line in states.values() if not done]
        if not waiting:
            break
        if time.monotonic() > deadline:
            shown = "; ".join("%s: %s" % (m.label, line) for m, line in waiting[:MAX_LISTED_ERRORS])
            raise PlatformError("%d rollout(s) not finished after %.0f s (wait_timeout): %s" % (len(waiting), timeout, shown),
                                objects=objects, reason="rollout_timeout", apply_seconds=round(apply_seconds, 3),
                                waiting=[{"object": m.label, "status": line} for m, line in waiting])
        time.sleep(interval)
        interval = min(interval * 1.5, 2.0)
    return [{"object": m.label, "status": line} for _order, (m, _done, _why, line) in sorted(states.items())]
