# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_k8s_apply's pure parts: manifests and their errors, tiers, paths, changed detection, preserve_fields, redaction,
prune kinds, rollout states and conflict messages; and the runner against a fake client that records requests
(it answers like kube-apiserver for the few paths the runner uses). The real API server is used in
tests/integration/k8s_apply/.
"""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _k8s_apply as ka
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}
SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}


def manifests_of(*objects, namespace="shop"):
    items = ka.load_manifests({"definitions": list(objects)})
    ka.assign_paths(items, {(m.group, m.version, m.kind): ka.BUILTIN[(m.group, m.version, m.kind)] for m in items},
                    namespace)
    return items


# ------------------------------------------------------------------------------------------------ loading

def test_files_directories_and_documents_are_read_in_order(tmp_path):
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n---\n---\n"
                                     "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: three}}\n")
    (tmp_path / "a.json").write_text(json.dumps(CM))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / ".hidden.yaml").write_text("{")
    items = ka.load_manifests({"src": [str(tmp_path)], "definitions": [DEPLOY]})
    assert [(m.kind, m.name, m.index) for m in items] == [
        ("ConfigMap", "cfg", 1), ("ConfigMap", "two", 1), ("Secret", "three", 3), ("Deployment", "web", 0)]
    assert items[0].where.endswith("a.json, document 1") and items[3].where == "definitions[0]"


@pytest.mark.parametrize("text, expected", [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\nkind: ConfigMap\nmetadata: {name: x}\n",
     "document 2: apiVersion None"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n", "document 1: has no metadata.name"),
    ("apiVersion: v1\nkind: configMap\nmetadata: {name: x}\n", "kind 'configMap' is not a Kubernetes kind"),
    ("apiVersion: apps/v1/x\nkind: Deployment\nmetadata: {name: x}\n", "apiVersion 'apps/v1/x'"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}\n", "metadata.name 'a/b' is not a valid object name"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: Bad_NS}\n", "metadata.namespace 'Bad_NS'"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {k: 'not base64!'}\n", "data key 'k' is not base64"),
    ("- just\n- a list\n", "document 1: is a list, not a Kubernetes object"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n", "is not valid YAML (line"),
])
def test_a_bad_document_is_named_by_file_and_number(tmp_path, text, expected):
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        ka.load_manifests({"src": [str(path)]})
    assert expected in str(err.value)
    assert "nothing was applied" in str(err.value)
    assert all(e["file"] == str(path) for e in err.value.details["errors"])


def test_every_problem_is_listed_at_once_and_duplicates_are_refused(tmp_path):
    (tmp_path / "missing-dir").mkdir()
    with pytest.raises(InputError) as err:
        ka.load_manifests({"src": [str(tmp_path / "nope.yaml"), str(tmp_path / "missing-dir")],
                           "definitions": [CM, CM, {"kind": "Service"}]})
    messages = [e["message"] for e in err.value.details["errors"]]
    assert any("nope.yaml does not exist" in m for m in messages)
    assert any("missing-dir is a directory without" in m for m in messages)
    assert any(m.startswith("definitions[2]:") for m in messages)
    assert any("definitions[1]: ConfigMap cfg is also defined at definitions[0]" in m for m in messages)


def test_nothing_to_apply_is_an_error():
    with pytest.raises(InputError, match="no objects"):
        ka.load_manifests({"definitions": []})


# ------------------------------------------------------------------------------------------ paths and tiers

@pytest.mark.parametrize("args, path", [
    (("", "v1", "configmaps", "shop", "cfg"), "/api/v1/namespaces/shop/configmaps/cfg"),
    (("", "v1", "namespaces", None, "shop"), "/api/v1/namespaces/shop"),
    (("apps", "v1", "deployments", "shop", "web"), "/apis/apps/v1/namespaces/shop/deployments/web"),
    (("rbac.authorization.k8s.io", "v1", "clusterroles", None, "system:view"),
     "/apis/rbac.authorization.k8s.io/v1/clusterroles/system%3Aview"),
])
def test_object_paths(args, path):
    assert ka.object_path(*args) == path


def test_namespaces_are_defaulted_and_dropped_from_cluster_scoped_objects():
    items = manifests_of(dict(CM), dict(NS, metadata={"name": "shop", "namespace": "ignored"}),
                         dict(DEPLOY, metadata={"name": "web", "namespace": "other"}), namespace=None)
    by_kind = {m.kind: m for m in items}
    assert by_kind["ConfigMap"].namespace == "default" and by_kind["ConfigMap"].obj["metadata"]["namespace"] == "default"
    assert by_kind["Namespace"].namespace is None and "namespace" not in by_kind["Namespace"].obj["metadata"]
    assert by_kind["Deployment"].path == "/apis/apps/v1/namespaces/other/deployments/web"


def test_tiers_put_dependencies_first_and_keep_input_order_within_a_tier():
    objects = [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"}},
        dict(DEPLOY), dict(SVC), dict(CM, metadata={"name": "z"}), dict(CM, metadata={"name": "a"}),
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"}},
        dict(NS), {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
    ]
    items = ka.load_manifests({"definitions": objects})
    order = [(tier, [m.kind + "/" + m.name for m in members]) for tier, members in ka.tiers_of(items)]
    assert order == [(0, ["Namespace/shop"]), (1, ["CustomResourceDefinition/widgets.example.com"]),
                     (2, ["ConfigMap/z", "ConfigMap/a", "ServiceAccount/sa"]), (3, ["Service/web"]),
                     (4, ["Deployment/web"]), (5, ["NetworkPolicy/deny", "Widget/w"])]


def test_kinds_a_crd_of_the_set_defines():
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "w.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1", "served": True}, {"name": "v0", "served": False}]}}
    assert ka.crd_kinds(ka.load_manifests({"definitions": [crd]})) == {("example.com", "v1", "Widget"): ("widgets", True)}


# ------------------------------------------------------------------------------------------ changed detection

def entry(manager, time, fields=None, operation="Apply", subresource=None):
    out = {"manager": manager, "operation": operation, "time": time, "fieldsV1": fields or {"f:data": {}}}
    if subresource:
        out["subresource"] = subresource
    return out


def obj(rv, generation=1, managed=()):
    return {"kind": "Deployment", "metadata": {"name": "web", "resourceVersion": rv, "generation": generation,
                                               "managedFields": list(managed)}, "spec": {}}


ME = "sophia-mcp-deploy"
T1, T2 = "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"


@pytest.mark.parametrize("status, answer, live, check_mode, action", [
    (201, obj("5", managed=[entry(ME, T1)]), None, False, "created"),
    (201, obj("5"), None, True, "would_create"),
    (200, obj("5"), None, True, "would_create"),  # a dry run where the list saw nothing
    (200, obj("5", managed=[entry(ME, T1)]), None, False, "configured"),
    # a no-op apply: same entry, same resourceVersion
    (200, obj("5", managed=[entry(ME, T1)]), obj("5", managed=[entry(ME, T1)]), False, "unchanged"),
    # our apply changed something: the entry's time moved
    (200, obj("6", managed=[entry(ME, T2)]), obj("5", managed=[entry(ME, T1)]), False, "configured"),
    # ... or its field set did
    (200, obj("6", managed=[entry(ME, T1, {"f:spec": {}})]), obj("5", managed=[entry(ME, T1)]), False, "configured"),
    # first apply of ours onto an object another tool created
    (200, obj("6", managed=[entry("kubectl", T1, operation="Update"), entry(ME, T2)]),
     obj("5", managed=[entry("kubectl", T1, operation="Update")]), False, "configured"),
    # a controller wrote the status since the list: resourceVersion moved, our entry did not, generation did not
    (200, obj("7", managed=[entry(ME, T1), entry("kube-controller-manager", T2, subresource="status")]),
     obj("5", managed=[entry(ME, T1)]), False, "unchanged"),
    # a spec change within the same second as our last apply: only the generation tells
    (200, obj("7", generation=2, managed=[entry(ME, T1)]), obj("5", managed=[entry(ME, T1)]), False, "configured"),
    # dry runs: the entry's time moves when the apply would change something
    (200, obj("5", managed=[entry(ME, T2)]), obj("5", managed=[entry(ME, T1)]), True, "would_configure"),
    (200, obj("5", managed=[entry(ME, T1)]), obj("5", managed=[entry(ME, T1)]), True, "unchanged"),
])
def test_action_of(status, answer, live, check_mode, action):
    assert ka.action_of(status, answer, live, check_mode, ME) == action


def test_normalised_drops_bookkeeping_and_status():
    live = obj("5", managed=[entry(ME, T1)])
    live["status"] = {"replicas": 1}
    live["metadata"].update(uid="u", creationTimestamp=T1, labels={"a": "b"})
    assert ka.normalised(live) == {"kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "b"}}, "spec": {}}
    assert ka.normalised(None) == {}


# ------------------------------------------------------------------------------------ skipping proven no-ops

SERVICE_BODY = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], "ipFamilies": ["IPv4"]}}
SERVICE_FIELDS = {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {
    "f:selector": {},  # an atomic map
    "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:targetPort": {}}},  # protocol defaulted
    "f:ipFamilies": {'v:"IPv4"': {}}}}


@pytest.mark.parametrize("fields, owned", [
    (SERVICE_FIELDS, True),
    # another manager took targetPort (changed it): it left our entry
    ({**SERVICE_FIELDS, "f:spec": {**SERVICE_FIELDS["f:spec"], "f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:port": {}}}}}, False),
    # a map listed as a leaf is an atomic one (managedFields list a granular map only through its keys)
    ({**SERVICE_FIELDS, "f:metadata": {"f:labels": {}}}, True),
    # someone removed our label, or took it over
    ({**SERVICE_FIELDS, "f:metadata": {"f:labels": {"f:other": {}}}}, False),
    ({**SERVICE_FIELDS, "f:metadata": {"f:annotations": {"f:note": {}}}}, False),
    # a port element of ours under another key (a different port)
    ({**SERVICE_FIELDS, "f:spec": {**SERVICE_FIELDS["f:spec"], "f:ports": {'k:{"port":81,"protocol":"TCP"}': {}}}}, False),
    ({**SERVICE_FIELDS, "f:spec": {**SERVICE_FIELDS["f:spec"], "f:ipFamilies": {'v:"IPv6"': {}}}}, False),
    ({**SERVICE_FIELDS, "f:spec": {**SERVICE_FIELDS["f:spec"], "f:ports": {"i:0": {}}}}, False),  # not understood: apply
    ({}, False),
])
def test_owns_all(fields, owned):
    assert ka.owns_all(SERVICE_BODY, fields) is owned


def test_a_fingerprint_is_stable_and_changes_with_the_manifest():
    body, digest = ka.with_fingerprint(SERVICE_BODY)
    assert body["metadata"]["annotations"] == {ka.FINGERPRINT_ANNOTATION: digest} and "annotations" not in SERVICE_BODY["metadata"]
    assert ka.with_fingerprint(json.loads(json.dumps(SERVICE_BODY)))[1] == digest
    assert ka.with_fingerprint(ka.without_path(SERVICE_BODY, ["spec", "selector"]))[1] != digest


def live_of(body, fields, manager=ME, **metadata):
    out = json.loads(json.dumps(body))
    out["metadata"].update(metadata)
    out["metadata"]["managedFields"] = [entry(manager, T1, fields)]
    return out


def test_provably_unchanged():
    body, digest = ka.with_fingerprint(SERVICE_BODY)
    fields = json.loads(json.dumps(SERVICE_FIELDS))
    fields["f:metadata"]["f:annotations"] = {"f:" + ka.FINGERPRINT_ANNOTATION: {}}
    assert ka.provably_unchanged(body, digest, live_of(body, fields), ME)
    assert not ka.provably_unchanged(body, digest, None, ME)  # not there
    assert not ka.provably_unchanged(body, digest, live_of(body, fields, manager="other"), ME)  # never applied by us
    assert not ka.provably_unchanged(body, digest, live_of(body, fields, deletionTimestamp=T1), ME)  # being deleted
    older = ka.with_fingerprint(dict(SERVICE_BODY, spec={}))[0]
    assert not ka.provably_unchanged(body, digest, live_of(older, fields), ME)  # we applied something else last time
    no_annotation = json.loads(json.dumps(fields))
    del no_annotation["f:metadata"]["f:annotations"]
    assert not ka.provably_unchanged(body, digest, live_of(body, no_annotation), ME)  # the annotation was taken over


# ------------------------------------------------------------------------------------------ preserve_fields

CUTOVER = "sophia-bluegreen-cutover"


def live_service(*managed):
    return {"kind": "Service", "metadata": {"name": "web", "managedFields": list(managed)},
            "spec": {"selector": {"app": "web", "slot": "green"}}}


@pytest.mark.parametrize("live, expected", [
    (None, []),  # nothing live yet: apply everything
    (live_service(entry(ME, T1, {"f:spec": {"f:selector": {"f:app": {}}}})), []),  # only we own it
    (live_service(entry(CUTOVER, T1, {"f:spec": {"f:selector": {"f:slot": {}}}})), [("spec.selector", CUTOVER)]),
    (live_service(entry(CUTOVER, T1, {"f:spec": {"f:selector": {}}}, operation="Update")), [("spec.selector", CUTOVER)]),
    (live_service(entry(CUTOVER, T1, {"f:metadata": {"f:labels": {}}})), []),  # the cutover owns something else
    (live_service(entry("someone-else", T1, {"f:spec": {"f:selector": {}}})), []),  # not a listed manager
])
def test_fields_to_preserve(live, expected):
    rules = ka.preserve_rules(ka.DEFAULT_PRESERVE)
    assert ka.fields_to_preserve(SVC, live, rules) == expected


def test_a_preserved_field_is_left_out_of_the_applied_object_only():
    body = ka.without_path(SVC, ["spec", "selector"])
    assert body == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {}}
    assert SVC["spec"]["selector"] == {"app": "web"}  # the manifest itself is untouched
    assert ka.without_path(SVC, ["spec", "ports"]) == SVC
    assert ka.fields_to_preserve(CM, live_service(entry(CUTOVER, T1, {"f:spec": {"f:selector": {}}})),
                                 ka.preserve_rules(ka.DEFAULT_PRESERVE)) == []  # another kind


def test_a_preserve_rule_needs_kind_field_and_managers():
    with pytest.raises(InputError, match=r"preserve_fields\[0\]"):
        ka.preserve_rules([{"kind": "Service", "field": "spec.selector", "managers": []}])


# -------------------------------------------------------------------------------------------------- secrets

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "key", "annotations": {
    "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"token":"c3VwZXJzZWNyZXQ="}}'}},
    "data": {"token": base64.b64encode(b"supersecret").decode()}, "stringData": {"plain": "hunter22"}}


def test_secret_values_are_redacted_with_their_keys_kept():
    shown = ka.redact(SECRET)
    assert shown["data"] == {"token": ka.REDACTED} and shown["stringData"] == {"plain": ka.REDACTED}
    assert "c3VwZXJzZWNyZXQ" not in json.dumps(shown)
    assert SECRET["data"]["token"] != ka.REDACTED  # the original is untouched
    assert ka.redact(CM) is CM
    assert ka.redacted_definitions(None) is None
    assert ka.redacted_definitions([SECRET, CM])[0]["stringData"] == {"plain": ka.REDACTED}


def test_secret_values_for_no_log_include_the_decoded_value():
    values = ka.secret_values(ka.load_manifests({"definitions": [SECRET, dict(CM, data={"a": "visible"})]}))
    assert {"supersecret", SECRET["data"]["token"], "hunter22"} <= values
    assert "visible" not in values


# ------------------------------------------------------------------------------------------------- failures

def test_a_conflict_names_the_object_the_field_the_other_manager_and_the_fixes():
    item = manifests_of(dict(DEPLOY))[0]
    answer = {"kind": "Status", "code": 409, "reason": "Conflict",
              "message": 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas',
              "details": {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-edit" using apps/v1',
                                      "field": ".spec.replicas"}]}}
    failed = ka.failure(item, 409, answer, ME)
    assert failed["conflicts"] == [{"field": ".spec.replicas", "manager": "kubectl-edit"}]
    for part in ("Deployment shop/web", "definitions[0]", ".spec.replicas (owned by kubectl-edit)", "force_conflicts: true",
                 "preserve_fields"):
        assert part in failed["message"]


@pytest.mark.parametrize("status, answer, expected", [
    (404, {"message": 'namespaces "shop" not found', "reason": "NotFound"}, "namespace shop does not exist"),
    (404, {"message": "404 page not found\n"}, "does not serve apps/v1 Deployment"),
    (500, {"message": ".bogus: field not declared in schema"}, "HTTP 500"),
])
def test_other_failures(status, answer, expected):
    assert expected in ka.failure(manifests_of(dict(DEPLOY))[0], status, answer, ME)["message"]


# ---------------------------------------------------------------------------------------------------- prune

@pytest.mark.parametrize("prune_kinds, expected", [
    (["Deployment", "v1/ConfigMap", "example.com/v1/Widget"],
     [("apps", "v1", "Deployment"), ("", "v1", "ConfigMap"), ("example.com", "v1", "Widget")]),
    (["HorizontalPodAutoscaler"], [("autoscaling", "v2", "HorizontalPodAutoscaler")]),
])
def test_prune_kinds(prune_kinds, expected):
    assert ka.prune_kind_list({"prune_kinds": prune_kinds}, manifests_of(dict(CM))) == expected


def test_default_prune_kinds_never_hold_namespaces_volumes_or_crds():
    kinds = ka.prune_kind_list({}, manifests_of(dict(NS), dict(CM), {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                                                     "metadata": {"name": "data"}}))
    names = {kind for _group, _version, kind in kinds}
    assert {"ConfigMap", "Deployment", "Service", "NetworkPolicy"} <= names
    assert not names & {"Namespace", "PersistentVolumeClaim", "CustomResourceDefinition"}


@pytest.mark.parametrize("bad", ["Widget", "a/b/c/d"])
def test_bad_prune_kinds(bad):
    with pytest.raises(InputError, match="prune_kinds"):
        ka.prune_kind_list({"prune_kinds": [bad]}, manifests_of(dict(CM)))


def test_managed_by():
    assert ka.managed_by(obj("1", managed=[entry(ME, T1)]), ME)
    assert not ka.managed_by(obj("1", managed=[entry("helm", T1)]), ME)


# ------------------------------------------------------------------------------------------------- rollouts

def workload(kind, spec, status, generation=1):
    return {"kind": kind, "metadata": {"name": "w", "generation": generation}, "spec": spec,
            "status": dict({"observedGeneration": 1}, **status)}


@pytest.mark.parametrize("item, done, failed", [
    (workload("Deployment", {"replicas": 2}, {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}), True, False),
    (workload("Deployment", {"replicas": 2}, {"updatedReplicas": 2, "replicas": 3, "availableReplicas": 2}), False, False),
    (workload("Deployment", {"replicas": 2}, {"updatedReplicas": 1, "replicas": 2, "availableReplicas": 2}), False, False),
    (workload("Deployment", {"replicas": 1}, {"updatedReplicas": 1, "replicas": 1, "availableReplicas": 1}, generation=2),
     False, False),
    (workload("Deployment", {"replicas": 1}, {"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded",
                                                              "message": "timed out"}]}), False, True),
    (workload("StatefulSet", {"replicas": 2}, {"readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "a",
                                               "updateRevision": "a"}), True, False),
    (workload("StatefulSet", {"replicas": 2}, {"readyReplicas": 2, "updatedReplicas": 2, "currentRevision": "a",
                                               "updateRevision": "b"}), False, False),
    (workload("DaemonSet", {}, {"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}), True, False),
    (workload("DaemonSet", {}, {"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}), False, False),
    (workload("Job", {}, {"conditions": [{"type": "Complete", "status": "True"}]}), True, False),
    (workload("Job", {}, {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}), False, True),
    (workload("Job", {}, {"active": 1}), False, False),
])
def test_rollout_state(item, done, failed):
    state = ka.rollout_state(item)
    assert state[0] is done and (state[1] is not None) is failed


# ---------------------------------------------------------------------------------- the runner, fake client

class FakeClient:
    """Records requests; answers lists from ``live``, applies as created (201) or as no-ops (200), a Status for
    the paths in ``fail``, and discovery for ``served`` group/versions. Stands in for kube-apiserver only where the
    runner's control flow (tiers, early failure, counting) is tested; apply semantics are the real server's, in
    tests/integration/k8s_apply/."""

    def __init__(self, live=(), fail=None, served=None):
        self.requests = []
        self.live = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in live}
        self.fail = fail or {}
        self.served = served or {}

    @property
    def api_calls(self):
        return len(self.requests)

    def list_all(self, api_version, kind, namespace=None, label_selector=None, field_selector=None, limit=500):
        self.requests.append(("LIST", api_version, kind, namespace, field_selector))
        plurals = {k: plural for (_group, _version, k), (plural, _namespaced) in ka.BUILTIN.items()}
        return [o for o in self.live.values() if plurals.get(o["kind"]) == kind and o["metadata"].get("namespace") == namespace]

    def request(self, method, path, query=None, body=None, content_type="application/json"):
        self.requests.append((method, path))
        if method == "GET":
            if path in self.served:
                return 200, {"resources": self.served[path]}
            return 404, {"message": "404 page not found"}
        if path in self.fail:
            return self.fail[path]
        sent = json.loads(body)
        key = (sent["kind"], sent["metadata"].get("namespace"), sent["metadata"]["name"])
        if key in self.live:
            return 200, self.live[key]
        return 201, dict(sent, metadata=dict(sent["metadata"], resourceVersion="1"))


def run(client, objects, **params):
    params.setdefault("namespace", "shop")
    return ka.run(dict(params), client, ka.load_manifests({"definitions": objects}), check_mode=params.pop("check", False))


def test_the_runner_lists_once_per_kind_and_applies_in_tiers():
    client = FakeClient()
    result = run(client, [dict(DEPLOY), dict(SVC), dict(CM), dict(CM, metadata={"name": "cfg2"}), dict(NS)])
    patches = [r[1] for r in client.requests if r[0] == "PATCH"]
    assert patches[0] == "/api/v1/namespaces/shop" and patches[-1] == "/apis/apps/v1/namespaces/shop/deployments/web"
    assert patches.index("/api/v1/namespaces/shop/services/web") > patches.index("/api/v1/namespaces/shop/configmaps/cfg2")
    lists = [r for r in client.requests if r[0] == "LIST"]
    assert len(lists) == 4  # namespaces, configmaps (both), services, deployments
    assert result["counts"] == {"created": 5, "configured": 0, "unchanged": 0, "pruned": 0} and result["changed"]
    assert result["api_calls"] == 9 and result["api_calls_by_phase"] == {"discovery": 0, "list": 4, "apply": 5}
    assert [o["name"] for o in result["objects"]] == ["web", "web", "cfg", "cfg2", "shop"]  # input order


def test_an_unserved_kind_fails_before_anything_is_applied():
    client = FakeClient()
    with pytest.raises(InputError, match="does not serve kind Widget in apiVersion example.com/v1") as err:
        run(client, [dict(CM), {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}])
    assert [method for method, *_rest in client.requests] == ["GET"]
    assert err.value.details["reason"] == "unknown_kind"


def test_a_discovered_kind_gets_its_plural_and_scope():
    client = FakeClient(served={"/apis/example.com/v1": [{"name": "widgets", "kind": "Widget", "namespaced": True},
                                                         {"name": "widgets/status", "kind": "Widget", "namespaced": True}]})
    run(client, [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}])
    assert ("PATCH", "/apis/example.com/v1/namespaces/shop/widgets/w") in client.requests


def test_a_failed_tier_stops_the_later_tiers():
    conflict = (409, {"reason": "Conflict", "message": "Apply failed", "details": {"causes": [
        {"message": 'conflict with "other"', "field": ".data.a"}]}})
    client = FakeClient(fail={"/api/v1/namespaces/shop/configmaps/cfg": conflict})
    with pytest.raises(ApiError) as err:
        run(client, [dict(DEPLOY), dict(CM), dict(CM, metadata={"name": "cfg2"})])
    assert "tiers after 'configuration and storage' were not applied" in str(err.value)
    assert not any("deployments" in r[1] for r in client.requests if r[0] == "PATCH")
    assert err.value.details["objects"] == [{"kind": "ConfigMap", "apiVersion": "v1", "namespace": "shop", "name": "cfg2",
                                             "action": "created"}]
    assert err.value.details["errors"][0]["conflicts"] == [{"field": ".data.a", "manager": "other"}]


def test_check_mode_does_not_send_into_a_namespace_it_would_create():
    client = FakeClient()
    result = run(client, [dict(NS), dict(CM)], check=True)
    assert [o["action"] for o in result["objects"]] == ["would_create", "would_create"]
    patches = [r for r in client.requests if r[0] == "PATCH"]
    assert patches == [("PATCH", "/api/v1/namespaces/shop")]  # the Namespace itself is dry-run
