# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_convert's ``validate`` option: which schema and whether a dry run, error reports and messages.

Pure checks: no cluster is contacted here (the server-side dry run runs against the lab's real API server in
tests/integration/cluster/test_compose_convert_validate.py). The Status bodies below are the ones the lab's
kube-apiserver v1.34.4 answered to server-side apply dry runs.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _validation
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError


@pytest.fixture
def cache(tmp_path):
    """A SOPHIA_CACHE with the set-up's schema directory in it (empty: only its presence counts here)."""
    environ = {"SOPHIA_CACHE": str(tmp_path)}
    os.makedirs(_validation.default_schema_dir(environ))
    return environ


@pytest.mark.parametrize("params, schema, dry_run", [
    ({}, "SETUP", False),
    ({"validate": {"schema": "auto"}}, "SETUP", False),
    ({"validate": None}, "SETUP", False),
    ({"kubeconfig": "/k"}, "server", True),
    ({"context": "lab"}, "server", True),
    ({"host": "https://h:6443", "api_key": "t"}, "server", True),
    ({"kubeconfig": "/k", "validate": {"server_dry_run": False}}, "server", False),
    ({"kubeconfig": "/k", "validate": {"schema": "/s/v3"}}, "/s/v3", True),
    ({"validate": {"schema": "none"}}, "none", False),
    ({"kubeconfig": "/k", "validate": {"schema": "none"}}, "none", True),
    ({"validate": {"schema": "/s/v3/"}}, "/s/v3", False),
    ({"validate": {"schema": "server"}}, "server", True),
    ({"validate": {"schema": "server", "server_dry_run": False}}, "server", False),
    ({"validate": {"server_dry_run": True}}, "server", True),
    ({"validate": {"schema": "/s/v3", "server_dry_run": True}}, "/s/v3", True),
])
def test_settings(cache, params, schema, dry_run):
    settings = _validation.Settings(params, cache)
    expected = _validation.default_schema_dir(cache) if schema == "SETUP" else schema
    assert (settings.schema, settings.dry_run) == (expected, dry_run)
    assert settings.cache_dir == os.path.join(cache["SOPHIA_CACHE"], "openapi")
    assert settings.enabled is (schema != "none" or dry_run)


def test_a_relative_schema_path_is_made_absolute(cache):
    assert _validation.Settings({"validate": {"schema": "schemas/v3"}}, cache).schema == os.path.abspath("schemas/v3")


def test_an_empty_schema_option(cache):
    with pytest.raises(InputError) as caught:
        _validation.Settings({"validate": {"schema": " "}}, cache)
    assert str(caught.value) == "validate.schema is empty. Fix: auto, server, none or the path of an OpenAPI v3 directory"


@pytest.mark.parametrize("options", [{"server_dry_run": True}, {"schema": "server"}])
def test_asking_for_the_cluster_without_options_falls_back_to_kubeconfig(cache, tmp_path, monkeypatch, options):
    """No connection option: KUBECONFIG is read (here a file that is not there), as every module of the collection does."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = _validation.Settings({"validate": options}, cache)
    assert (settings.use_cluster, settings.dry_run, settings.schema) == (True, True, "server")
    with pytest.raises(InputError) as caught:
        _validation.check({"validate": options, "dest": "d"}, [("configmap-x.yaml", {"kind": "ConfigMap"})], [], [],
                          environ=cache)
    assert str(caught.value).startswith("could not load the kubeconfig %s: " % (tmp_path / "no-such-kubeconfig"))


def test_auto_without_any_schema_says_what_to_give(tmp_path):
    environ = {"SOPHIA_CACHE": str(tmp_path)}
    with pytest.raises(InputError) as caught:
        _validation.Settings({}, environ)
    message = str(caught.value)
    assert message.startswith("validation is on and found no Kubernetes OpenAPI schema: no cluster connection was given "
                              "and %s does not exist. Fix: give kubeconfig" % _validation.default_schema_dir(environ))
    assert "validate.schema: none" in message
    assert caught.value.details["key"] == "validate.schema"


def test_validation_off_checks_nothing(tmp_path):
    report, timings = _validation.check({"validate": {"schema": "none"}, "dest": "d"},
                                        [("configmap-x.yaml", {"kind": "Nonsense"})], [], [], environ={"SOPHIA_CACHE": str(tmp_path)})
    assert report == {"objects": 1, "schema": None, "schema_source": "none", "server_dry_run": None}
    assert timings == {}


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mcp-gong", "namespace": "t"}}
INVALID = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Invalid", "code": 422,
           "message": 'Deployment.apps "mcp-gong" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes',
           "details": {"name": "mcp-gong", "group": "apps", "kind": "Deployment", "causes": [
               {"reason": "FieldValueTooLong", "message": "Too long: may not be more than 262144 bytes",
                "field": "metadata.annotations"}]}}
QUOTA = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
         "message": 'deployments.apps "mcp-gong" is forbidden: exceeded quota: no-deployments, requested: '
                    "count/deployments.apps=1, used: count/deployments.apps=0, limited: count/deployments.apps=0",
         "details": {"name": "mcp-gong", "group": "apps", "kind": "deployments"}}


@pytest.mark.parametrize("status, body, errors", [
    (422, INVALID, [("metadata.annotations", "Too long: may not be more than 262144 bytes (HTTP 422 Invalid)")]),
    (403, QUOTA, [("(object)", QUOTA["message"] + " (HTTP 403 Forbidden)")]),
    (500, {"message": "failed to create typed patch object"}, [("(object)", "failed to create typed patch object (HTTP 500 )")]),
    (502, None, [("(object)", "HTTP 502 (HTTP 502 )")]),
])
def test_dry_run_errors_name_the_file_object_and_field(status, body, errors):
    found = _validation._status_errors("deployment-mcp-gong.yaml", DEPLOYMENT, status, body)  # pylint: disable=protected-access
    assert [(e["path"], e["message"]) for e in found] == errors
    assert {(e["file"], e["kind"], e["name"], e["check"], e["status"]) for e in found} == {
        ("deployment-mcp-gong.yaml", "Deployment", "mcp-gong", "server_dry_run", status)}


def test_failure_message_lists_twenty_errors_and_counts_the_rest():
    errors = [{"file": "deployment-s%d.yaml" % i, "kind": "Deployment", "name": "s%d" % i, "path": "spec.replicas",
               "message": "expected integer (int32), got string \"2\""} for i in range(23)]
    message = _validation.failure_message(errors, "/out", "the manifests do not match X")
    assert message.startswith('the manifests do not match X: 23 error(s) in 23 object(s), nothing written to /out: '
                              'deployment-s0.yaml: Deployment s0: spec.replicas: expected integer (int32), got string "2"; ')
    assert message.count("; ") == 19
    assert message.endswith(" ... and 3 more (see validation_errors)")
