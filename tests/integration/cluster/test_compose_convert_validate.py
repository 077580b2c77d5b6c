# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_convert with validation against the lab cluster, through ansible-playbook: the API server's own OpenAPI
schema (fetched once, then cached by its hash), and a server-side dry run of every object (one request each,
nothing stored); refusals the schema cannot see (a namespace quota, annotations over the API server's size limit)
fail the task with the file, object, field and reason, and nothing is written; a namespace that does not exist
yet is reported, not created.

Real: kube-apiserver v1.34.4 (its /openapi/v3, admission with ResourceQuota, validation), the quota controller,
kompose, ansible-playbook. Nothing is mocked.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert, _openapi, _validation
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect

from .lab import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLE = Path("examples/sophia-mcp-stack.yml").resolve()
OBJECTS = 58  # 28 Deployments, 28 Services, 1 ConfigMap, 1 PersistentVolumeClaim (the memory store)


def run_playbook(repo, tmp_path, args_list):
    """Run one compose_convert task per entry of ``args_list``; (rc, [task results])."""
    tasks = [{"name": "convert %d" % i, "sophia_ai.platform.compose_convert": args, "ignore_errors": True}
             for i, args in enumerate(args_list)]
    play = tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:6])
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(play)], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.stdout.startswith("{"), res.stdout[-2000:] + res.stderr[-2000:]
    output = json.loads(res.stdout)
    return res.returncode, [task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]]


def snapshot(directory):
    if not Path(directory).exists():
        return None
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in sorted(Path(directory).iterdir())}


def args(dest, kubeconfig, namespace, cache_dir, **extra):
    base = {"src": [str(SAMPLE)], "dest": str(dest), "namespace": namespace, "kubeconfig": kubeconfig,
            "validate": {"cache_dir": str(cache_dir)}}
    base.update(extra)
    return base


def workloads(api, namespace):
    apps = kubernetes.client.AppsV1Api(api)
    core = kubernetes.client.CoreV1Api(api)
    return (len(apps.list_namespaced_deployment(namespace).items), len(core.list_namespaced_service(namespace).items),
            len(core.list_namespaced_config_map(namespace, label_selector="io.kompose.service").items))


def test_schema_from_the_api_server_and_a_dry_run_of_every_object(repo, lab_kubeconfig, api, namespace, tmp_path):
    dest, cache_dir = tmp_path / "manifests", tmp_path / "schema-cache"
    rc, (first, second) = run_playbook(repo, tmp_path, [args(dest, lab_kubeconfig, namespace, cache_dir)] * 2)
    assert rc == 0, first.get("msg")
    for result in (first, second):
        validation = result["validation"]
        assert validation["schema_source"] == "server" and validation["schema"].startswith("https://")
        assert validation["documents"] == ["api/v1", "apis/apps/v1"]
        assert validation["objects"] == OBJECTS
        assert validation["server_dry_run"] == {"objects": OBJECTS, "accepted": OBJECTS, "skipped": 0,
                                                "namespaces_missing": [], "api_calls": 1 + OBJECTS}
    # first run: the index, the two documents, the namespace, one dry run per object; then the documents come
    # from the cache (by the hash the server publishes)
    assert first["validation"]["cache"]["misses"] == 2 and first["validation"]["api_calls"] == 1 + 2 + 1 + OBJECTS
    assert second["validation"]["cache"]["hits"] == 2 and second["validation"]["api_calls"] == 1 + 1 + OBJECTS
    assert first["changed"] is True and second["changed"] is False
    assert len(list(cache_dir.glob("*.json"))) == 2
    assert workloads(api, namespace) == (0, 0, 0)  # a dry run stores nothing


def test_a_namespace_quota_refuses_the_deployments_and_nothing_is_written(repo, lab_kubeconfig, api, namespace, tmp_path):
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "no-deployments"},
                                                      "spec": {"hard": {"count/deployments.apps": "0"}}})
    wait_for(lambda: (core.read_namespaced_resource_quota("no-deployments", namespace).status.hard or {}),
             timeout=60, what="the quota controller to fill the quota's status")
    dest = tmp_path / "manifests"
    rc, (result,) = run_playbook(repo, tmp_path, [args(dest, lab_kubeconfig, namespace, tmp_path / "cache")])
    assert rc == 0 and result["failed"] is True  # ignore_errors: the play goes on, the task failed
    message = result["msg"]
    assert message.startswith("the API server at https://")
    assert "refused the server-side dry run: 28 error(s) in 28 object(s), nothing written to %s: " % dest in message
    assert ('deployment-mcp-ai-memory.yaml: Deployment mcp-ai-memory: (object): deployments.apps "mcp-ai-memory" is '
            "forbidden: exceeded quota: no-deployments") in message
    errors = result["validation_errors"]
    assert sorted(e["file"] for e in errors) == sorted("deployment-%s.yaml" % e["name"] for e in errors)
    assert len(errors) == 28 and {(e["kind"], e["status"], e["check"]) for e in errors} == {("Deployment", 403, "server_dry_run")}
    assert all("exceeded quota: no-deployments" in e["message"] for e in errors)
    assert snapshot(dest) is None
    assert sorted(p for p in os.listdir(tmp_path) if not p.startswith("play-")) == ["cache"]  # no staging directory left


def test_what_the_schema_accepts_and_the_server_refuses_leaves_dest_as_it_was(repo, lab_kubeconfig, api, namespace, tmp_path):
    dest, cache_dir = tmp_path / "manifests", tmp_path / "cache"
    rc, (good,) = run_playbook(repo, tmp_path, [args(dest, lab_kubeconfig, namespace, cache_dir)])
    assert rc == 0 and good["changed"] is True
    before = snapshot(dest)
    assert len(before) == OBJECTS + 1  # and the index
    huge = {"sophia.ai/notes": "x" * 300000}  # a string, as the schema wants; over the API server's 256 KiB limit
    rc, (bad,) = run_playbook(repo, tmp_path, [args(dest, lab_kubeconfig, namespace, cache_dir, annotations=huge)])
    assert bad["failed"] is True
    assert snapshot(dest) == before  # nothing written, not even the index
    errors = bad["validation_errors"]  # every object; the Deployments twice (their pod template carries them too)
    assert len({e["file"] for e in errors}) == OBJECTS and len(errors) == OBJECTS + 28
    assert {(e["path"], e["message"], e["status"], e["reason"], e["check"]) for e in errors} == {
        (path, "Too long: may not be more than 262144 bytes (HTTP 422 Invalid)", 422, "Invalid", "server_dry_run")
        for path in ("metadata.annotations", "spec.template.annotations")}  # (the API server's own field path)
    assert "configmap-mcp-common.yaml: ConfigMap mcp-common: metadata.annotations: Too long: may not be more than " \
           "262144 bytes (HTTP 422 Invalid)" in bad["msg"]
    assert bad["msg"].endswith("... and %d more (see validation_errors)" % (OBJECTS + 28 - 20))
    # the schema passed it (an annotation is a string): without the dry run the same task writes
    rc, (schema_only,) = run_playbook(repo, tmp_path, [args(dest, lab_kubeconfig, namespace, cache_dir, annotations=huge,
                                                            validate={"cache_dir": str(cache_dir), "server_dry_run": False})])
    assert schema_only.get("failed") is not True and schema_only["changed"] is True
    assert schema_only["validation"]["server_dry_run"] is None and schema_only["validation"]["schema_source"] == "server"
    after = snapshot(dest)
    assert set(after) == set(before) and all(after[name] != before[name] for name in before)


def test_a_namespace_that_does_not_exist_yet_is_reported_not_created(repo, lab_kubeconfig, api, tmp_path):
    missing = "t-missing-%s" % uuid.uuid4().hex[:8]
    dest = tmp_path / "manifests"
    rc, (result,) = run_playbook(repo, tmp_path, [args(dest, lab_kubeconfig, missing, tmp_path / "cache")])
    assert rc == 0 and result.get("failed") is not True, result.get("msg")
    dry = result["validation"]["server_dry_run"]
    assert dry == {"objects": 0, "accepted": 0, "skipped": OBJECTS, "namespaces_missing": [missing], "api_calls": 2}
    assert {"kind": "Namespace", "name": missing} == {k: v for k, v in result["prerequisites"][-1].items() if k in ("kind", "name")}
    assert len(result["prerequisites"][-1]["services"]) == 28
    assert any(w.startswith("compose_convert: validate.server_dry_run: namespace %s does not exist yet: its creation passed "
                            "a dry run, but the %d objects in it were checked against the schema only" % (missing, OBJECTS))
               for w in result["warnings"])
    names = [ns.metadata.name for ns in kubernetes.client.CoreV1Api(api).list_namespace().items]
    assert missing not in names
    assert len(list(dest.glob("*.yaml"))) == OBJECTS


def test_the_servers_schema_knows_enumerations_the_files_do_not(lab_kubeconfig, tmp_path):
    dest = tmp_path / "out"
    _compose_convert.run({"src": [str(SAMPLE)], "dest": str(dest), "validate": {"schema": "none"}})
    obj = yaml.safe_load((dest / "deployment-mcp-gong.yaml").read_text())
    broken = copy.deepcopy(obj)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    client = connect({"kubeconfig": lab_kubeconfig})
    try:
        tables = _openapi.server_tables(client, ["apis/apps/v1"], _openapi.SchemaCache(str(tmp_path / "cache")))
        assert [r.split("?")[0] for r in client.requests] == ["GET /openapi/v3", "GET /openapi/v3/apis/apps/v1"]
    finally:
        client.close()
    from_server = _openapi.Validator(tables)
    assert from_server.validate(obj) == []
    assert from_server.validate(broken) == [("spec.template.spec.containers[0].imagePullPolicy",
                                             '"Sometimes" is not one of "Always", "IfNotPresent", "Never"')]
    from_files = _openapi.Validator(_openapi.directory_tables(_validation.default_schema_dir(), ["apis/apps/v1"],
                                                              _openapi.SchemaCache(None)))
    assert from_files.validate(broken) == []  # k8s.io/kubernetes' committed files carry no enum
