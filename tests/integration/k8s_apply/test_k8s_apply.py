# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8s_apply against the lab cluster, through ansible-playbook as users run it: first apply creates, a rerun
changes nothing, check mode applies nothing, a conflict with another field manager fails naming it, preserve_fields
keeps a Service selector that ``sophia-bluegreen-cutover`` owns, prune removes only labelled objects of our field
manager, a bad manifest applies nothing, rollouts are waited for, API calls are counted, and an object changed by
another tool since the last run is applied again while the others cost no request.

Real: kube-apiserver v1.34.4 (server-side apply, managedFields, dry run, admission), the controllers, the kwok GPU
nodes that run the test pods (kwok marks them Running; no container starts), ansible-playbook. Nothing is mocked.
Each test works in namespaces of its own (``k8s-apply-it-*``) and deletes them at its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex  # must never appear in any output
KWOK = {"nodeSelector": {"type": "kwok"},
        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]}


@pytest.fixture
def client(lab_kubeconfig):
    api = connect({"kubeconfig": lab_kubeconfig})
    yield api
    api.close()


@pytest.fixture
def namespace(client):
    """A fresh namespace name (created by the module under test), deleted at the end."""
    name = "k8s-apply-it-%s" % uuid.uuid4().hex[:8]
    yield name
    client.request("DELETE", "/api/v1/namespaces/%s" % name)


def play(tmp_path, kubeconfig, *tasks, check=False, diff=False):
    """Run k8s_apply tasks (dicts of module args, or (args, task keywords)); (rc, [results], stdout)."""
    body = []
    for number, task in enumerate(tasks):
        args, extra = task if isinstance(task, tuple) else (task, {})
        body.append(dict({"name": "apply %d" % number, "sophia_ai.platform.k8s_apply": dict({"kubeconfig": kubeconfig}, **args),
                          "ignore_errors": True}, **extra))
    path = tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:6])
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": body}]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), str(path)] + (["--check"] if check else []) + (
        ["--diff"] if diff else [])
    res = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.stdout.startswith("{"), res.stdout[-2000:] + res.stderr[-2000:]
    output = json.loads(res.stdout)
    return res.returncode, [t["hosts"]["localhost"] for t in output["plays"][0]["tasks"]], res.stdout + res.stderr


def stack(namespace, data="v1", selector=None):
    """A Namespace, a ConfigMap, a Secret, a Service, a Deployment (pods on kwok nodes) and a NetworkPolicy."""
    labels = {"app": "web"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": namespace},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": dict(
             KWOK, containers=[{"name": "web", "image": "sophia-platform/mcp-server:lab",
                                "envFrom": [{"configMapRef": {"name": "web"}}]}])}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
         "spec": {"selector": selector or labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": namespace}, "data": {"MODE": data}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web", "namespace": namespace},
         "stringData": {"token": SECRET_VALUE}},
    ]


def get(client, path):
    status, answer = client.request("GET", path)
    return answer if status == 200 else None


def test_create_rerun_check_mode_and_diff(tmp_path, lab_kubeconfig, client, namespace):
    objects = stack(namespace)
    rc, (dry,), out = play(tmp_path, lab_kubeconfig, {"definitions": objects}, check=True, diff=True)
    assert rc == 0 and dry["changed"] and not dry.get("failed"), dry.get("msg")
    assert {o["action"] for o in dry["objects"]} == {"would_create"}
    assert get(client, "/api/v1/namespaces/%s" % namespace) is None  # check mode created nothing
    assert SECRET_VALUE not in out

    rc, (first, second), out = play(tmp_path, lab_kubeconfig, {"definitions": objects}, {"definitions": objects}, diff=True)
    assert rc == 0 and not first.get("failed"), first.get("msg")
    assert first["changed"] and first["counts"] == {"created": 6, "configured": 0, "unchanged": 0, "pruned": 0}
    # applied in tiers: Namespace, then ConfigMap and Secret, then Service, Deployment, NetworkPolicy; listed in input order
    assert [o["kind"] for o in first["objects"]] == ["Namespace", "NetworkPolicy", "Deployment", "Service", "ConfigMap", "Secret"]
    # API calls counted at the transport: one list per kind and namespace, one apply per object, no discovery
    assert first["api_calls"] == 12 and first["api_calls_by_phase"] == {"discovery": 0, "list": 6, "apply": 6}
    assert not second["changed"], second["objects"]
    assert second["counts"] == {"created": 0, "configured": 0, "unchanged": 6, "pruned": 0}
    # every object carries the fingerprint of what was applied and we own all its fields: nothing is sent again
    assert second["not_sent"] == 6 and second["api_calls"] == 6 and second["api_calls_by_phase"]["apply"] == 0
    assert second["diff"] == []
    secret_diff = [d for d in first["diff"] if "Secret" in d["after_header"]][0]
    assert secret_diff["after"]["data"] == {"token": "VALUE_REDACTED"}  # the server turned stringData into data
    assert SECRET_VALUE not in out  # not in results, diff, invocation or warnings
    deployment = get(client, "/apis/apps/v1/namespaces/%s/deployments/web" % namespace)
    assert [e["manager"] for e in deployment["metadata"]["managedFields"] if e["operation"] == "Apply"] == ["sophia-mcp-deploy"]

    changed = stack(namespace, data="v2")
    rc, (would,), out = play(tmp_path, lab_kubeconfig, {"definitions": changed}, check=True, diff=True)
    assert rc == 0 and would["changed"]
    assert [(o["kind"], o["action"]) for o in would["objects"] if o["action"] != "unchanged"] == [("ConfigMap", "would_configure")]
    assert would["diff"][0]["before"]["data"] == {"MODE": "v1"} and would["diff"][0]["after"]["data"] == {"MODE": "v2"}
    assert get(client, "/api/v1/namespaces/%s/configmaps/web" % namespace)["data"] == {"MODE": "v1"}  # nothing applied

    rc, (applied,), _out = play(tmp_path, lab_kubeconfig, ({"definitions": changed, "wait": True, "wait_timeout": 120}, {}))
    assert rc == 0 and applied["changed"], applied.get("msg")
    assert [(o["kind"], o["action"]) for o in applied["objects"] if o["action"] != "unchanged"] == [("ConfigMap", "configured")]
    assert applied["rollouts"] == [{"object": "Deployment %s/web" % namespace, "status": "1/1 updated, 1 available, 1 total"}]
    assert applied["wait_seconds"] >= 0 and applied["api_calls_by_phase"]["wait"] >= 1


def test_a_conflict_with_another_field_manager_fails_and_names_it(tmp_path, lab_kubeconfig, client, namespace):
    objects = stack(namespace)[:1] + stack(namespace)[4:5]  # Namespace and ConfigMap
    rc, (first,), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects})
    assert rc == 0 and first["changed"]
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": namespace}, "data": {"MODE": "hand-edited"}}
    status, _answer = client.request("PATCH", "/api/v1/namespaces/%s/configmaps/web" % namespace,
                                     [("fieldManager", "other-tool"), ("force", "true")], json.dumps(other),
                                     "application/apply-patch+yaml")
    assert status == 200

    rc, (conflict,), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects})
    assert conflict["failed"]  # (ignore_errors: the play goes on)
    assert "other-tool" in conflict["msg"] and ".data.MODE" in conflict["msg"] and "force_conflicts" in conflict["msg"]
    assert conflict["errors"][0]["conflicts"] == [{"field": ".data.MODE", "manager": "other-tool"}]
    assert conflict["errors"][0]["object"] == "ConfigMap %s/web" % namespace
    assert get(client, "/api/v1/namespaces/%s/configmaps/web" % namespace)["data"] == {"MODE": "hand-edited"}
    rc, (forced,), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects, "force_conflicts": True})
    assert not forced.get("failed") and forced["changed"]
    assert get(client, "/api/v1/namespaces/%s/configmaps/web" % namespace)["data"] == {"MODE": "v1"}


def test_preserve_fields_keeps_the_selector_the_cutover_owns(tmp_path, lab_kubeconfig, client, namespace):
    objects = stack(namespace)[:1] + stack(namespace)[3:4]  # Namespace and Service (selector app=web)
    rc, (first,), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects})
    assert rc == 0 and first["changed"]
    cutover = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
               "spec": {"selector": {"app": "web-green"}}}
    status, _answer = client.request("PATCH", "/api/v1/namespaces/%s/services/web" % namespace,
                                     [("fieldManager", "sophia-bluegreen-cutover"), ("force", "true")], json.dumps(cutover),
                                     "application/apply-patch+yaml")
    assert status == 200

    rc, (rerun, again, unpreserved), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects}, {"definitions": objects},
                                                 {"definitions": objects, "preserve_fields": []})
    assert not rerun.get("failed"), rerun.get("msg")
    assert rerun["preserved"] == [{"object": "Service %s/web" % namespace, "field": "spec.selector",
                                   "manager": "sophia-bluegreen-cutover"}]
    assert not again["changed"] and again["preserved"] == rerun["preserved"]
    assert get(client, "/api/v1/namespaces/%s/services/web" % namespace)["spec"]["selector"] == {"app": "web-green"}
    # without preserve_fields the same rerun would take the selector back: it is a conflict instead
    assert unpreserved["failed"] and "sophia-bluegreen-cutover" in unpreserved["msg"] and ".spec.selector" in unpreserved["msg"]
    assert get(client, "/api/v1/namespaces/%s/services/web" % namespace)["spec"]["selector"] == {"app": "web-green"}


def test_prune_removes_only_labelled_objects_of_our_field_manager(tmp_path, lab_kubeconfig, client, namespace):
    label = {"app.kubernetes.io/part-of": "k8s-apply-it"}

    def cm(name, labels=None):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "data": {"k": name}}

    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    rc, (first,), _out = play(tmp_path, lab_kubeconfig, {"definitions": [ns, cm("keep", label), cm("gone", label), cm("bare")]})
    assert rc == 0 and first["counts"]["created"] == 4
    foreign = cm("foreign", label)  # labelled, but another tool's
    status, _answer = client.request("PATCH", "/api/v1/namespaces/%s/configmaps/foreign" % namespace,
                                     [("fieldManager", "other-tool")], json.dumps(foreign), "application/apply-patch+yaml")
    assert status == 201

    smaller = {"definitions": [ns, cm("keep", label)], "prune": True, "prune_selector": "app.kubernetes.io/part-of=k8s-apply-it"}
    rc, (dry,), _out = play(tmp_path, lab_kubeconfig, smaller, check=True)
    assert rc == 0 and dry["changed"]
    assert [(o["name"], o["action"]) for o in dry["objects"] if o["action"] != "unchanged"] == [("gone", "would_prune")]
    assert get(client, "/api/v1/namespaces/%s/configmaps/gone" % namespace) is not None

    rc, (pruned, again), _out = play(tmp_path, lab_kubeconfig, smaller, smaller)
    assert rc == 0 and pruned["changed"] and pruned["counts"]["pruned"] == 1
    assert [(o["name"], o["action"]) for o in pruned["objects"] if o["action"] == "pruned"] == [("gone", "pruned")]
    assert not again["changed"]
    names = {item["metadata"]["name"] for item in client.list_all("v1", "configmaps", namespace)}
    assert {"keep", "bare", "foreign"} <= names and "gone" not in names  # unlabelled and foreign objects stay


def test_a_bad_manifest_applies_nothing(tmp_path, lab_kubeconfig, client, namespace):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    objects = stack(namespace)
    (manifests / "00-namespace.yaml").write_text(yaml.safe_dump(objects[0]))
    nameless = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": namespace}}
    (manifests / "10-config.yaml").write_text(yaml.safe_dump_all([objects[4], nameless]))
    (manifests / "20-service.yaml").write_text(yaml.safe_dump(objects[3]))
    rc, (result,), _out = play(tmp_path, lab_kubeconfig, {"src": [str(manifests)]})
    assert result["failed"]
    assert "10-config.yaml, document 2: has no metadata.name" in result["msg"] and "nothing was applied" in result["msg"]
    assert result["errors"][0]["index"] == 2
    assert get(client, "/api/v1/namespaces/%s" % namespace) is None  # not even the Namespace of the first file


def test_a_kind_the_server_does_not_serve_applies_nothing(tmp_path, lab_kubeconfig, client, namespace):
    objects = stack(namespace)[:1] + [{"apiVersion": "example.sophia.ai/v1", "kind": "Widget",
                                       "metadata": {"name": "w", "namespace": namespace}}]
    rc, (result,), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects})
    assert result["failed"] and "does not serve kind Widget in apiVersion example.sophia.ai/v1" in result["msg"]
    assert result["api_calls"] == 1  # the one discovery request
    assert get(client, "/api/v1/namespaces/%s" % namespace) is None


def test_only_objects_another_tool_changed_are_sent_again(tmp_path, lab_kubeconfig, client, namespace):
    objects = stack(namespace)
    rc, (first,), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects})
    assert rc == 0 and first["counts"]["created"] == 6
    # another tool removes a label of ours from the Deployment (an Update, as kubectl edit sends)
    status, _answer = client.request("PATCH", "/apis/apps/v1/namespaces/%s/deployments/web" % namespace,
                                     [("fieldManager", "kubectl-edit")],
                                     [{"op": "add", "path": "/metadata/labels", "value": {"team": "x"}}],
                                     "application/json-patch+json")
    assert status == 200
    status, _answer = client.request("PATCH", "/apis/apps/v1/namespaces/%s/deployments/web" % namespace,
                                     [("fieldManager", "kubectl-edit")], [{"op": "replace", "path": "/spec/template/spec/containers/0/image",
                                                                           "value": "other:tag"}], "application/json-patch+json")
    assert status == 200
    rc, (conflict, forced, again, always), _out = play(tmp_path, lab_kubeconfig, {"definitions": objects},
                                                       {"definitions": objects, "force_conflicts": True},
                                                       {"definitions": objects}, {"definitions": objects, "always_apply": True})
    assert conflict["failed"] and "kubectl-edit" in conflict["msg"] and "image" in conflict["msg"]
    assert [(o["kind"], o["action"]) for o in forced["objects"] if o["action"] != "unchanged"] == [("Deployment", "configured")]
    assert forced["not_sent"] == 5 and forced["api_calls_by_phase"]["apply"] == 1
    image = get(client, "/apis/apps/v1/namespaces/%s/deployments/web" % namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "sophia-platform/mcp-server:lab"
    assert not again["changed"] and again["not_sent"] == 6
    assert not always["changed"] and always["not_sent"] == 0 and always["api_calls_by_phase"]["apply"] == 6
