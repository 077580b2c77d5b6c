# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role mcp_deploy through ansible-playbook against the lab cluster, with real MCP servers.

tests/integration/mcp_deploy/stack.yml is converted by compose_convert (the real kompose) and its non-critical
wave deployed by the role (k8s_apply, wait, mcp_probe): real pods of the sample image on the lab's real node, real
NetworkPolicies enforced by kube-router, a real ResourceQuota admission. Nothing is mocked. The tests run in file
order on one deployment (module fixture) in a namespace of their own, deleted at the end.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml

from ..cluster import conftest as cluster
from ..cluster.lab import wait_for

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
STACK = HERE / "stack.yml"
PROBER = (HERE.parent / "cluster" / "prober.py").read_text()
SECRET_VALUE = f"never-logged-{uuid.uuid4().hex}"
CUTOVER = "sophia-bluegreen-cutover"

# the lab cluster's fixtures (tests/integration/cluster/conftest.py)
lab_kubeconfig = cluster.lab_kubeconfig
api = cluster.api


def run_role(repo, tmp, kubeconfig, namespace, *args, secrets=True, **role_vars):
    """Convert the stack and run the role on it; (CompletedProcess, mcp_deploy_result or None)."""
    result_file = tmp / f"result-{uuid.uuid4().hex[:6]}.json"
    variables = {
        "mcp_deploy_manifests_dir": str(tmp / "manifests"),
        "mcp_deploy_namespace": namespace,
        "mcp_deploy_waves": ["non-critical"],
        "mcp_deploy_kubeconfig": kubeconfig,
        "mcp_deploy_compose_src": [str(STACK)],
        "mcp_deploy_front_door_pod_labels": {"role": "front-door"},
        "mcp_deploy_probe_deadline": 90,
        **({"mcp_deploy_secrets": {"mcp-api-key": {"mcp_api_key": SECRET_VALUE}}} if secrets else {}),
        **role_vars,
    }
    play = [{"name": "mcp_deploy", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "Convert", "sophia_ai.platform.compose_convert": {"src": [str(STACK)], "dest": str(tmp / "manifests")},
         "check_mode": False},
        {"name": "Deploy", "ansible.builtin.include_role": {"name": "sophia_ai.platform.mcp_deploy"}, "vars": variables},
        {"name": "Keep the result", "ansible.builtin.copy": {"content": "{{ mcp_deploy_result | to_json }}",
                                                             "dest": str(result_file)},
         "check_mode": False, "changed_when": False},
    ]}]
    path = tmp / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(path), *args], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return res, result


def recap(res):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", res.stdout)
    assert match, res.stdout[-3000:]
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


def namespace_exists(api, name):  # noqa: F811 (the fixture's name)
    try:
        kubernetes.client.CoreV1Api(api).read_namespace(name)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_namespace(api, name):  # noqa: F811
    if namespace_exists(api, name):
        kubernetes.client.CoreV1Api(api).delete_namespace(name)
        wait_for(lambda: not namespace_exists(api, name), timeout=120, what=f"namespace {name} to go")


@pytest.fixture(scope="module")
def deployment(repo, lab_kubeconfig, api, tmp_path_factory):  # noqa: F811
    """The first run of the role, at -vvv (to show that no secret value is printed even there)."""
    tmp = tmp_path_factory.mktemp("mcp_deploy")
    namespace = f"mcpd-{uuid.uuid4().hex[:6]}"
    try:
        res, result = run_role(repo, tmp, lab_kubeconfig, namespace, "-vvv")
        yield {"tmp": tmp, "namespace": namespace, "res": res, "result": result, "kubeconfig": lab_kubeconfig}
    finally:
        delete_namespace(api, namespace)


def test_first_run_deploys_the_non_critical_wave_only(deployment, api):  # noqa: F811
    res, result, namespace = deployment["res"], deployment["result"], deployment["namespace"]
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    assert recap(res)["changed"] >= 3
    (wave,) = result["waves"]
    assert wave["name"] == "non-critical" and wave["changed"] is True
    assert wave["services"] == ["mcp-alpha", "mcp-beta"] and wave["probed"] == ["mcp-alpha", "mcp-beta"]
    assert wave["counts"]["created"] >= 7
    apps = kubernetes.client.AppsV1Api(api)
    deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(namespace).items}
    assert sorted(deployments) == ["mcp-alpha", "mcp-beta"]  # mcp-gamma is critical: a later wave
    assert deployments["mcp-alpha"].status.ready_replicas == 2
    assert deployments["mcp-alpha"].metadata.labels["sophia.ai/deploy-wave"] == "non-critical"
    core = kubernetes.client.CoreV1Api(api)
    secret = core.read_namespaced_secret("mcp-api-key", namespace)
    assert base64.b64decode(secret.data["mcp_api_key"]).decode() == SECRET_VALUE
    # only the selected wave's secret was needed and applied
    assert [s["name"] for s in result["secrets"]] == ["mcp-api-key"]
    assert "mcp-admin-token" not in [s.metadata.name for s in core.list_namespaced_secret(namespace).items]
    # the value appears nowhere in the output, even at -vvv
    assert SECRET_VALUE not in res.stdout + res.stderr
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in res.stdout + res.stderr


def test_pdb_for_the_two_replica_service_and_quota(deployment, api):  # noqa: F811
    namespace = deployment["namespace"]
    pdbs = kubernetes.client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(namespace).items
    assert [p.metadata.name for p in pdbs] == ["mcp-alpha"]
    pdb = pdbs[0]
    assert pdb.spec.max_unavailable == 1
    assert pdb.spec.selector.match_labels == {"io.kompose.service": "mcp-alpha"}
    # the disruption controller sees both pods healthy, so one may go
    wait_for(lambda: (kubernetes.client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("mcp-alpha", namespace)
                      .status.disruptions_allowed == 1), timeout=60, what="the PDB's status")
    quota = kubernetes.client.CoreV1Api(api).read_namespaced_resource_quota("mcp-deploy", namespace)
    assert quota.spec.hard["pods"] == "11" and quota.spec.hard["requests.cpu"] == "210m"


def blocked(error):
    """A connection a NetworkPolicy stopped: rejected (kube-router's REJECT) or dropped."""
    return any(word in error for word in ("refused", "timed out", "unreachable"))


def start_prober(api, namespace, name, labels):  # noqa: F811
    """A pod that makes requests from inside the pod network (tests/integration/cluster/prober.py); the test asks it
    at its pod IP from the host. It sets requests and limits: the namespace's quota tracks them."""
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{
            "name": "probe", "image": "sophia-platform/mcp-server:lab", "imagePullPolicy": "Never",
            "command": ["/opt/mcp/bin/python", "-c", PROBER],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}},
        }]},
    })

    def ready_ip():
        pod = core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        return pod.status.pod_ip if statuses and all(c.ready for c in statuses) else None

    ip = wait_for(ready_ip, timeout=90, what=f"probe pod {name} to be ready")

    def ask(**query):
        url = f"http://{ip}:8000/?" + "&".join(f"{k}={urllib.parse.quote(str(v), safe='')}" for k, v in query.items())
        with urllib.request.urlopen(url, timeout=15) as resp:
            return json.loads(resp.read())

    return ask


def test_network_policies_deny_and_allow_for_real(deployment, api):  # noqa: F811
    namespace = deployment["namespace"]
    core = kubernetes.client.CoreV1Api(api)
    front = start_prober(api, namespace, "front-door", {"role": "front-door"})
    stranger = start_prober(api, namespace, "stranger", {"role": "other"})
    try:
        ips = {name: core.read_namespaced_service(name, namespace).spec.cluster_ip for name in ("mcp-alpha", "mcp-beta")}
        for name, port in (("mcp-alpha", 9101), ("mcp-beta", 9102)):
            url = f"http://{ips[name]}:{port}/readyz"
            # the front door reaches every service ...
            assert wait_for(lambda url=url: front(url=url)["ok"], timeout=30, what=f"the front door to reach {name}")
            # ... a pod that is neither the front door nor a declared caller does not (kube-router rejects the
            # connection; the same URL answers the front door in the same second)
            refused = stranger(url=url, timeout=3)
            assert refused["ok"] is False and blocked(refused["error"]), refused
            assert front(url=url)["ok"] is True
        # the policy names the declared callers of mcp-alpha: mcp-beta (compose depends_on) and mcp-gamma (label)
        policy = kubernetes.client.NetworkingV1Api(api).read_namespaced_network_policy("mcp-alpha-ingress", namespace)
        callers = [peer.pod_selector.match_labels for rule in policy.spec.ingress for peer in rule._from
                   if peer.pod_selector and "io.kompose.service" in peer.pod_selector.match_labels]
        assert callers == [{"io.kompose.service": "mcp-beta"}, {"io.kompose.service": "mcp-gamma"}]
    finally:
        for name in ("front-door", "stranger"):
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_a_caller_reaches_its_dependency_and_nothing_else(deployment, api):  # noqa: F811
    """A pod with mcp-beta's labels (a declared caller of mcp-alpha) reaches mcp-alpha's pods but not mcp-beta's
    (nobody declared a dependency on mcp-beta). Pod IPs, not the Service: this prober carries beta's selector labels."""
    namespace = deployment["namespace"]
    core = kubernetes.client.CoreV1Api(api)
    caller = start_prober(api, namespace, "caller", {"io.kompose.service": "mcp-beta", "role": "caller"})
    try:
        pods = {p.metadata.labels["io.kompose.service"]: p.status.pod_ip
                for p in core.list_namespaced_pod(namespace, label_selector="io.kompose.service").items
                if p.metadata.name != "caller"}
        # kube-router lets a new pod's address into the allowing rule at its next sync: wait for it, as for the
        # front door above
        alpha = f"http://{pods['mcp-alpha']}:9101/readyz"
        assert wait_for(lambda: caller(url=alpha, timeout=5)["ok"], timeout=30, what="the caller to reach mcp-alpha")
        denied = caller(url=f"http://{pods['mcp-beta']}:9102/readyz", timeout=3)
        assert denied["ok"] is False and blocked(denied["error"]), denied
    finally:
        core.delete_namespaced_pod("caller", namespace, grace_period_seconds=0)
        wait_for(lambda: "caller" not in [p.metadata.name for p in core.list_namespaced_pod(namespace).items],
                 timeout=60, what="the caller pod to go")


def test_rerun_changes_nothing(repo, deployment):
    res, result = run_role(repo, deployment["tmp"], deployment["kubeconfig"], deployment["namespace"])
    assert res.returncode == 0, res.stdout[-5000:]
    assert recap(res)["changed"] == 0, res.stdout[-5000:]
    assert result["waves"][0]["counts"] == {"created": 0, "configured": 0, "unchanged": 8, "pruned": 0}


def test_a_cutover_selector_survives_a_rerun(repo, deployment, api):  # noqa: F811
    namespace = deployment["namespace"]
    core = kubernetes.client.CoreV1Api(api)
    selector = {"io.kompose.service": "mcp-alpha", "sophia.ai/criticality": "non-critical"}
    core.patch_namespaced_service("mcp-alpha", namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "mcp-alpha", "namespace": namespace},
        "spec": {"selector": selector}}, field_manager=CUTOVER, force=True, _content_type="application/apply-patch+yaml")
    # the first rerun may record once that the role no longer claims the selector (k8s_apply's fingerprint of what
    # it applies changes: at most the one Service is configured), and must leave the cutover's selector alone
    res, result = run_role(repo, deployment["tmp"], deployment["kubeconfig"], deployment["namespace"])
    assert res.returncode == 0, res.stdout[-5000:]
    assert result["waves"][0]["counts"]["configured"] <= 1 and result["waves"][0]["counts"]["created"] == 0
    assert core.read_namespaced_service("mcp-alpha", namespace).spec.selector == selector
    # from then on a rerun changes nothing
    res, result = run_role(repo, deployment["tmp"], deployment["kubeconfig"], deployment["namespace"])
    assert res.returncode == 0, res.stdout[-5000:]
    assert recap(res)["changed"] == 0, res.stdout[-5000:]
    service = core.read_namespaced_service("mcp-alpha", namespace)
    assert service.spec.selector == selector
    owners = [m.manager for m in service.metadata.managed_fields if "f:selector" in json.dumps(m.fields_v1)]
    assert owners == [CUTOVER]
    # and the service still answers over MCP through it
    assert result["waves"][0]["probed"] == ["mcp-alpha", "mcp-beta"]


def test_missing_secret_applies_nothing(repo, lab_kubeconfig, api, tmp_path):  # noqa: F811
    namespace = f"mcpd-{uuid.uuid4().hex[:6]}"
    try:
        res, result = run_role(repo, tmp_path, lab_kubeconfig, namespace, secrets=False, mcp_deploy_use_existing_secrets=False)
        assert res.returncode != 0 and result is None
        assert recap(res)["failed"] == 1
        out = res.stdout + res.stderr
        assert "missing secret(s); nothing was applied" in out
        assert "Secret mcp-api-key (used by mcp-alpha, mcp-beta) is not given" in out
        assert "mcp_deploy_secrets['mcp-api-key']['mcp_api_key']" in out
        assert not namespace_exists(api, namespace)
    finally:
        delete_namespace(api, namespace)


def test_check_mode_creates_nothing(repo, lab_kubeconfig, api, tmp_path):  # noqa: F811
    namespace = f"mcpd-{uuid.uuid4().hex[:6]}"
    try:
        res, result = run_role(repo, tmp_path, lab_kubeconfig, namespace, "--check", "--diff")
        assert res.returncode == 0, res.stdout[-5000:]
        assert result["waves"][0]["probed"] == []
        assert result["waves"][0]["changed"] is True
        assert not namespace_exists(api, namespace)
        assert SECRET_VALUE not in res.stdout + res.stderr
    finally:
        delete_namespace(api, namespace)
