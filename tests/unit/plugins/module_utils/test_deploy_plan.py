# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment planner of role mcp_deploy on real converted stacks.

The manifests are what compose_convert writes (through the pinned kompose binary that ``make setup`` builds, as in
test_convert.py) for the sample fleet (examples/), the integration tests' small stack and focused fixtures; nothing
is mocked. The live cluster state is given as plain data (``Live``), and ``run`` reads it through a fake client
(no cluster in a unit test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert
from ansible_collections.sophia_ai.platform.plugins.module_utils import _deploy_plan as dp
from ansible_collections.sophia_ai.platform.plugins.module_utils._compose import load_project
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

REPO = Path(__file__).resolve().parents[4]
SAMPLE = [REPO / "examples" / "sophia-mcp-stack.yml", REPO / "examples" / "sophia-mcp-stack.ha.yml"]
COMPOSE_SPEC = REPO / "examples" / "sophia-mcp-compose.yml"
SMALL = REPO / "tests" / "integration" / "mcp_deploy" / "stack.yml"
FIXTURES = Path(__file__).parent / "fixtures"
AUTOSCALED = FIXTURES / "deploy_plan" / "autoscaled.yml"
SECRETS = FIXTURES / "compose" / "secrets-configs.yml"
KEY = {"mcp-api-key": ["mcp_api_key"]}
BOTH = {"mcp-api-key": ["mcp_api_key"], "mcp-admin-token": ["mcp_admin_token"]}  # the small stack's two secrets

NON_CRITICAL = ["mcp-apify", "mcp-asana", "mcp-estuary", "mcp-figma", "mcp-google-drive", "mcp-intercom", "mcp-jira",
                "mcp-lambda-labs", "mcp-linear", "mcp-notion", "mcp-pinecone", "mcp-zendesk"]
CRITICAL = ["mcp-ai-memory", "mcp-codegen", "mcp-github", "mcp-gong", "mcp-hubspot", "mcp-portkey", "mcp-postgres",
            "mcp-salesforce", "mcp-sentry", "mcp-slack", "mcp-snowflake", "mcp-web-search"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """compose_convert's output directory for a stack (converted once per module)."""
    cache = {}

    def get(name, src, **params):
        if name not in cache:
            dest = tmp_path_factory.mktemp(name)
            _compose_convert.run(dict({"src": [str(s) for s in src], "dest": str(dest)}, **params))
            cache[name] = dest
        return cache[name]

    return get


@pytest.fixture(scope="module")
def sample(converted):
    return dp.load_manifests(str(converted("sample", SAMPLE, namespace="sophia")))


@pytest.fixture(scope="module")
def small(converted):
    return dp.load_manifests(str(converted("small", [SMALL])))


@pytest.fixture(scope="module")
def autoscaled(converted):
    return dp.load_manifests(str(converted("autoscaled", [AUTOSCALED])))


def plan_of(manifests, live=None, **options):
    return dp.build_plan(manifests, dict({"namespace": "sophia"}, **options), live)


def wave(plan, name):
    return next(w for w in plan["waves"] if w["name"] == name)


def objects(plan, kind=None, selected_only=True):
    out = list(plan["shared"]["definitions"])
    for entry in plan["waves"]:
        if entry["selected"] or not selected_only:
            out += entry["definitions"][1:]  # the first is the Namespace again
    return [o for o in out if kind is None or o["kind"] == kind]


def named(plan, kind, name):
    return next(o for o in objects(plan, kind, selected_only=False) if o["metadata"]["name"] == name)


# --- waves -------------------------------------------------------------------------------------------------------

def test_sample_stack_waves_by_criticality_with_gpu_services_last(sample):
    plan = plan_of(sample, secret_keys=KEY)
    assert plan["wave_order"] == ["non-critical", "non-critical-gpu", "critical", "critical-gpu"]
    members = {w["name"]: [s["name"] for s in w["services"]] for w in plan["waves"]}
    assert members == {"non-critical": NON_CRITICAL, "non-critical-gpu": ["mcp-reranker"], "critical": CRITICAL,
                       "critical-gpu": ["mcp-embeddings", "mcp-llm-gateway", "mcp-whisper"]}
    assert plan["counts"]["services"] == plan["counts"]["selected_services"] == 28
    # every wave starts with the Namespace (check mode of a wave alone), then the workloads and their objects
    assert all(w["definitions"][0]["kind"] == "Namespace" for w in plan["waves"])


@pytest.mark.parametrize("waves, gpu_wave, selected", [
    ([], True, ["non-critical", "non-critical-gpu", "critical", "critical-gpu"]),
    (["non-critical"], True, ["non-critical", "non-critical-gpu"]),
    (["non-critical"], False, ["non-critical"]),
    (["critical-gpu"], True, ["critical-gpu"]),
    (["all"], False, ["non-critical", "critical"]),
])
def test_wave_selection(sample, waves, gpu_wave, selected):
    plan = plan_of(sample, waves=waves, gpu_wave=gpu_wave, secret_keys=KEY)
    assert plan["selected_waves"] == selected
    assert [w["name"] for w in plan["waves"] if w["selected"]] == selected
    if not gpu_wave:
        assert "mcp-reranker" in [s["name"] for s in wave(plan, "non-critical")["services"]]


def test_services_narrow_the_selected_waves(sample):
    """phase 3 deploys only the services it cuts over: the others' objects are neither planned nor pruned."""
    live = dp.Live(objects=[_live("Deployment", "mcp-slack", "sophia-mcp-deploy"),
                            _live("NetworkPolicy", "mcp-slack-ingress", "sophia-mcp-deploy", "networking.k8s.io/v1"),
                            _live("Deployment", "mcp-retired", "sophia-mcp-deploy")])
    plan = plan_of(sample, live=live, waves=["critical"], services=["mcp-gong", "mcp-embeddings"], secret_keys=KEY)
    assert plan["selected_waves"] == ["critical", "critical-gpu"]
    assert {w["name"]: [s["name"] for s in w["services"]] for w in plan["waves"] if w["selected"]} == {
        "critical": ["mcp-gong"], "critical-gpu": ["mcp-embeddings"]}
    assert plan["counts"]["selected_services"] == 2
    assert sorted(o["metadata"]["name"] for o in objects(plan, "Deployment")) == ["mcp-embeddings", "mcp-gong"]
    assert [o["name"] for o in plan["prune"]] == ["mcp-retired"]


def test_unknown_service_fails(sample):
    with pytest.raises(InputError, match="services: mcp-nope is not a service of the manifests") as err:
        plan_of(sample, services=["mcp-gong", "mcp-nope"], secret_keys=KEY)
    assert err.value.details["reason"] == "unknown_service"


def test_unknown_wave_fails(sample):
    with pytest.raises(InputError, match="'gpu' is not a wave"):
        plan_of(sample, waves=["gpu"], secret_keys=KEY)


@pytest.mark.parametrize("default, wave_name", [("critical", "critical"), ("non-critical", "non-critical")])
def test_unlabelled_services_follow_default_criticality(sample, default, wave_name):
    # compose_convert labels every workload (its own default_criticality); manifests from elsewhere may not be
    manifests = json.loads(json.dumps(sample))
    for item in manifests:
        if item["obj"]["kind"] == "Deployment" and item["obj"]["metadata"]["name"] == "mcp-web-search":
            del item["obj"]["metadata"]["labels"][dp.CRITICALITY]
            del item["obj"]["spec"]["template"]["metadata"]["labels"][dp.CRITICALITY]
    plan = plan_of(manifests, default_criticality=default, secret_keys=KEY)
    assert "mcp-web-search" in [s["name"] for s in wave(plan, wave_name)["services"]]


def test_every_object_is_labelled_and_in_the_namespace(sample):
    plan = plan_of(sample, namespace="mcp-prod", stack="fleet", secret_keys=KEY)
    for obj in objects(plan):
        if obj["kind"] == "Namespace":
            assert obj["metadata"] == {"name": "mcp-prod", "labels": {dp.PART_OF: "fleet"}}
            continue
        assert obj["metadata"]["namespace"] == "mcp-prod"
        assert obj["metadata"]["labels"][dp.PART_OF] == "fleet"
    gong = named(plan, "Deployment", "mcp-gong")["metadata"]["labels"]
    assert gong[dp.WAVE_LABEL] == "critical" and gong[dp.SERVICE_LABEL] == "mcp-gong"
    assert any("namespace sophia replaced by mcp-prod" in w for w in plan["plan_warnings"])
    assert plan["selector"] == "app.kubernetes.io/part-of=fleet"


# --- PodDisruptionBudgets ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, key", [("max_unavailable", "maxUnavailable"), ("min_available", "minAvailable")])
def test_pdb_for_every_service_with_two_replicas(sample, policy, key):
    plan = plan_of(sample, pdb_policy=policy, secret_keys=KEY)
    pdbs = objects(plan, "PodDisruptionBudget")
    # the HA override runs four critical services with two replicas
    assert sorted(p["metadata"]["name"] for p in pdbs) == ["mcp-gong", "mcp-hubspot", "mcp-salesforce", "mcp-slack"]
    gong = named(plan, "PodDisruptionBudget", "mcp-gong")
    assert gong["spec"] == {key: 1, "selector": {"matchLabels": {"io.kompose.service": "mcp-gong"}}}
    assert named(plan, "Deployment", "mcp-gong")["spec"]["replicas"] == 2


def test_no_pdb_when_off_or_single_replica(sample, small):
    assert objects(plan_of(sample, pdb=False, secret_keys=KEY), "PodDisruptionBudget") == []
    plan = plan_of(small, waves=["non-critical"], secret_keys=KEY)
    assert [p["metadata"]["name"] for p in objects(plan, "PodDisruptionBudget")] == ["mcp-alpha"]


# --- secrets -------------------------------------------------------------------------------------------------------

def test_missing_secret_fails_naming_secret_services_and_variable(sample):
    with pytest.raises(InputError) as err:
        plan_of(sample)
    msg = str(err.value)
    assert msg.startswith("missing secret(s); nothing was applied.")
    assert "Secret mcp-api-key (used by mcp-github, mcp-gong," in msg
    assert "mcp_deploy_secrets['mcp-api-key']['mcp_api_key']" in msg
    assert "mcp_deploy_secret_files['mcp-api-key']['mcp_api_key']" in msg
    (missing,) = err.value.details["missing_secrets"]
    assert missing["name"] == "mcp-api-key" and len(missing["services"]) == 11


@pytest.mark.parametrize("options, live_secrets, source, missing", [
    ({"secret_keys": KEY}, {}, "variables", None),
    ({"secret_file_keys": KEY}, {}, "files", None),
    ({"secret_keys": {"mcp-api-key": ["other"]}}, {}, None, "lacks key(s) mcp_api_key (from variables)"),
    ({}, {"mcp-api-key": ["mcp_api_key"]}, "existing", None),
    ({}, {"mcp-api-key": ["token"]}, None, "lacks key(s) mcp_api_key (from existing)"),
    ({"use_existing_secrets": False}, {"mcp-api-key": ["mcp_api_key"]}, None, "mcp-api-key (used by"),
])
def test_secret_sources(sample, options, live_secrets, source, missing):
    live = dp.Live(secrets=live_secrets)
    if missing:
        with pytest.raises(InputError, match=r".*" + missing.replace("(", r"\(").replace(")", r"\)")):
            plan_of(sample, live=live, **options)
        return
    (entry,) = plan_of(sample, live=live, **options)["secrets"]
    assert entry["source"] == source and entry["keys"] == ["mcp_api_key"] and entry["missing_keys"] == []


def test_secret_of_a_wave_not_selected_is_not_required(small):
    # mcp_admin_token is used by the critical mcp-gamma only
    plan = plan_of(small, waves=["non-critical"], secret_keys=KEY)
    assert [s["name"] for s in plan["secrets"]] == ["mcp-api-key"]
    with pytest.raises(InputError, match=r"Secret mcp-admin-token \(used by mcp-gamma\) is not given"):
        plan_of(small, secret_keys=KEY)


def test_converted_secret_manifests_are_passed_as_files_and_never_read(converted):
    directory = converted("secrets", [SECRETS])
    value = (FIXTURES / "compose" / "secret.txt").read_text().strip()
    plan = plan_of(dp.load_manifests(str(directory)), namespace="sophia",
                   secret_keys={"production-api-token": ["api_token"], "relative-target": ["relative_target"]})
    by_name = {s["name"]: s for s in plan["secrets"]}
    assert by_name["db-password"]["source"] == "manifest"
    assert plan["shared"]["src"] == [str(directory / "secret-db-password.yaml")]
    assert "Secret" not in {o["kind"] for o in objects(plan)}
    assert value not in json.dumps(plan)
    # ConfigMaps the services mount are shared objects
    assert {o["metadata"]["name"] for o in objects(plan, "ConfigMap")} == {"app-conf"}


# --- network policies ----------------------------------------------------------------------------------------------

def test_default_deny_and_front_door(small):
    plan = plan_of(small, waves=["non-critical"], secret_keys=KEY,
                   front_door={"cidrs": ["10.0.10.0/24"], "namespace_labels": {"name": "edge"},
                               "pod_labels": {"app": "haproxy"}})
    deny = named(plan, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    beta = named(plan, "NetworkPolicy", "mcp-beta-ingress")["spec"]
    assert beta["podSelector"] == {"matchLabels": {"io.kompose.service": "mcp-beta"}}
    assert beta["ingress"] == [{"from": [{"ipBlock": {"cidr": "10.0.10.0/24"}},
                                         {"namespaceSelector": {"matchLabels": {"name": "edge"}},
                                          "podSelector": {"matchLabels": {"app": "haproxy"}}}],
                                "ports": [{"port": 9102, "protocol": "TCP"}]}]


@pytest.mark.parametrize("compose, dependencies, allowed", [
    # the label sophia.ai/depends-on on mcp-gamma (deploy.labels)
    (False, {}, ["mcp-gamma"]),
    # plus compose depends_on (mcp-beta) and the variable
    (True, {}, ["mcp-beta", "mcp-gamma"]),
    (False, {"mcp-beta": ["mcp-alpha"]}, ["mcp-beta", "mcp-gamma"]),
])
def test_dependencies_allow_callers(small, compose, dependencies, allowed):
    options = {"secret_keys": KEY, "waves": ["non-critical"], "dependencies": dependencies}
    if compose:
        options["compose_dependencies"] = dp.compose_dependencies(load_project([str(SMALL)]).services)
    plan = plan_of(small, **options)
    alpha = named(plan, "NetworkPolicy", "mcp-alpha-ingress")["spec"]
    # no front door given: only the callers, to alpha's container port
    assert alpha["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"io.kompose.service": name}}}
                                          for name in allowed], "ports": [{"port": 9101, "protocol": "TCP"}]}]
    assert wave(plan, "non-critical")["services"][0]["allowed_from"] == allowed
    assert named(plan, "NetworkPolicy", "mcp-beta-ingress")["spec"]["ingress"] == []


def test_compose_depends_on_of_the_compose_spec_sample():
    assert dp.compose_dependencies(load_project([str(COMPOSE_SPEC)], gpus_per_node=8).services) == {"mcp-gong": ["mcp-ai-memory"]}


@pytest.mark.parametrize("options, message", [
    ({"dependencies": {"mcp-beta": ["mcp-nope"]}}, "mcp-beta depends on mcp-nope, not a service"),
    ({"dependencies": {"mcp-nope": ["mcp-alpha"]}}, "mcp_deploy_dependencies names mcp-nope"),
])
def test_unknown_dependency_fails(small, options, message):
    with pytest.raises(InputError, match=message):
        plan_of(small, secret_keys=BOTH, **options)


def test_label_lists_dependencies_with_dots_or_underscores(autoscaled):
    plan = plan_of(autoscaled)
    services = {s["name"]: s for w in plan["waves"] for s in w["services"]}
    assert services["annotated"]["depends_on"] == ["meshed", "scaled"]
    assert services["scaled"]["allowed_from"] == ["annotated"]
    # a service of an earlier wave calling one of a later wave is reported
    assert any("annotated (non-critical) depends on meshed" in w for w in plan["plan_warnings"])


def test_no_network_policies_when_off(small):
    assert objects(plan_of(small, secret_keys=BOTH, network_policies=False), "NetworkPolicy") == []


# --- quota ---------------------------------------------------------------------------------------------------------

def test_auto_quota_counts_only_resources_every_pod_sets(sample):
    quota = plan_of(sample, secret_keys=KEY)["quota"]
    # 28 services, four with 2 replicas, most with maxSurge 0 (stop-first): 50 pods with the surges, + 50 %
    assert quota["pods_counted"] == 50 and quota["hard"]["pods"] == "75"
    # 6 GPUs asked (one per GPU service, whisper's generic resource too) x surge x 1.5
    assert quota["hard"]["requests.nvidia.com/gpu"] == "9"
    # some services set no limits: a quota on them would make the API server refuse those pods
    assert sorted(quota["left_out"]) == ["limits.cpu", "limits.memory", "requests.cpu", "requests.memory"]
    assert set(quota["hard"]) == {"pods", "requests.nvidia.com/gpu"}


def test_auto_quota_with_every_resource_set(small):
    plan = plan_of(small, waves=["non-critical"], secret_keys=KEY, quota_headroom=0)
    quota = named(plan, "ResourceQuota", "mcp-deploy")["spec"]["hard"]
    # all three services (not only the selected wave): 2+1+1 replicas, each with a 25 % surge (1 pod): 7 pods
    assert quota == {"pods": "7", "requests.cpu": "140m", "limits.cpu": "3500m", "requests.memory": "448Mi",
                     "limits.memory": "1792Mi"}
    assert plan["quota"]["left_out"] == []


@pytest.mark.parametrize("options, hard", [
    ({"quota": "fixed", "quota_hard": {"pods": 20, "requests.cpu": "4"}}, {"pods": "20", "requests.cpu": "4"}),
    ({"quota": "none"}, None),
])
def test_fixed_or_no_quota(small, options, hard):
    plan = plan_of(small, secret_keys=BOTH, **options)
    assert plan["quota"]["hard"] == hard
    assert len(objects(plan, "ResourceQuota")) == (1 if hard else 0)


def test_fixed_quota_needs_limits(small):
    with pytest.raises(InputError, match="quota_hard is empty"):
        plan_of(small, secret_keys=BOTH, quota="fixed")


# --- autoscalers ---------------------------------------------------------------------------------------------------

def test_hpa_from_compose_labels_and_annotations(autoscaled):
    plan = plan_of(autoscaled)
    scaled = named(plan, "HorizontalPodAutoscaler", "scaled")
    assert scaled["apiVersion"] == "autoscaling/v2"
    assert scaled["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
        "minReplicas": 2, "maxReplicas": 6,
        "metrics": [{"type": "Resource",
                     "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
    # the autoscaler owns the scale: the applied Deployment leaves replicas out
    assert "replicas" not in named(plan, "Deployment", "scaled")["spec"]
    # minimum 2: a PDB; the annotated one (compose `labels`) gets the default CPU target and no PDB (minimum 1)
    assert named(plan, "PodDisruptionBudget", "scaled")["spec"]["maxUnavailable"] == 1
    annotated = named(plan, "HorizontalPodAutoscaler", "annotated")["spec"]
    assert (annotated["minReplicas"], annotated["maxReplicas"]) == (1, 3)
    assert annotated["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert {o["metadata"]["name"] for o in objects(plan, "PodDisruptionBudget")} == {"scaled", "meshed"}
    # no CPU request: the autoscaler cannot compute utilisation, said so
    assert any(w.startswith("annotated: the autoscaler targets 80%") for w in plan["plan_warnings"])
    # the quota counts the autoscalers' maximum
    assert plan["quota"]["pods_counted"] == (6 + 2) + (3 + 1) + (3 + 1)  # maxima plus 25 % surges


def test_hpa_off(autoscaled):
    plan = plan_of(autoscaled, hpa=False)
    assert objects(plan, "HorizontalPodAutoscaler") == []
    assert named(plan, "Deployment", "scaled")["spec"]["replicas"] == 1


@pytest.mark.parametrize("labels, message", [
    ({"sophia.ai/hpa-min": "2"}, "sets sophia.ai/hpa-min but not sophia.ai/hpa-max"),
    ({"sophia.ai/hpa-max": "many"}, "must be whole numbers"),
    ({"sophia.ai/hpa-max": "2", "sophia.ai/hpa-min": "3"}, r"need 1 <= sophia.ai/hpa-min \(3\) <= sophia.ai/hpa-max \(2\)"),
])
def test_bad_hpa_labels_fail(small, labels, message):
    manifests = json.loads(json.dumps(small))
    alpha = next(m["obj"] for m in manifests if m["obj"]["kind"] == "Deployment" and m["obj"]["metadata"]["name"] == "mcp-alpha")
    alpha["metadata"]["labels"].update(labels)
    with pytest.raises(InputError, match=message) as err:
        plan_of(manifests, secret_keys=BOTH)
    assert err.value.details["service"] == "mcp-alpha"


# --- Services, NodePorts and Swarm's ports -------------------------------------------------------------------------

def test_converted_service_types_are_kept_by_default(sample):
    plan = plan_of(sample, secret_keys=KEY)
    assert {p["type"] for p in plan["ports"]} == {"ClusterIP"}
    assert plan["node_ports"] == [] and plan["load_balancer_plan"] == []


def test_expose_nodeport_assigns_stable_ports_clear_of_swarm(sample):
    swarm = [30000, {"published": 30002, "protocol": "tcp", "mode": "ingress"}, {"published": 30003, "protocol": "udp"}]
    plan = plan_of(sample, secret_keys=KEY, expose="NodePort", swarm_ports=swarm)
    ports = {p["service"]: p["node_port"] for p in plan["node_ports"]}
    assert len(ports) == 28 and len(set(ports.values())) == 28
    # sorted by service name, lowest free first: 30000 and 30002 are Swarm's (TCP); 30003 only for UDP
    assert [ports[n] for n in ("mcp-ai-memory", "mcp-apify", "mcp-asana")] == [30001, 30003, 30004]
    svc = named(plan, "Service", "mcp-ai-memory")["spec"]
    assert svc["type"] == "NodePort" and svc["ports"][0]["nodePort"] == 30001
    # a second plan with the first one's ports live keeps every one of them, even when a new Swarm port would
    # have come first
    live = dp.Live(services=[{"metadata": {"name": o["metadata"]["name"], "namespace": "sophia"}, "spec": o["spec"]}
                             for o in objects(plan, "Service")])
    again = plan_of(sample, live=live, secret_keys=KEY, expose="NodePort", swarm_ports=swarm + [30010])
    moved = {p["service"]: p for p in again["node_ports"] if p["node_port"] != ports[p["service"]]}
    assert {p["action"] for p in again["node_ports"] if p["service"] not in moved} == {"kept"}
    # only the service that held 30010 moves, to a port no one holds
    (entry,) = moved.values()
    assert ports[entry["service"]] == 30010 and entry["action"] == "moved"
    assert entry["node_port"] not in ports.values()


def test_node_ports_held_elsewhere_are_skipped_and_range_exhaustion_fails(small):
    live = dp.Live(services=[{"metadata": {"name": "other", "namespace": "elsewhere"},
                              "spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}}])
    plan = plan_of(small, live=live, secret_keys=KEY, expose="NodePort", node_port_range="31000-31003",
                   waves=["non-critical"])
    # every service of the stack gets its port now (a later wave then finds it planned the same way)
    assert [(p["service"], p["node_port"]) for p in plan["node_ports"]] == [
        ("mcp-alpha", 31001), ("mcp-beta", 31002), ("mcp-gamma", 31003)]
    with pytest.raises(InputError, match="no free NodePort left in 31000-31002 for mcp-gamma port 9103"):
        plan_of(small, live=live, secret_keys=BOTH, expose="NodePort", node_port_range="31000-31002")


@pytest.mark.parametrize("clash, kind, action", [
    ("node_port", "NodePort", "assigned"),
    ("load_balancer", "LoadBalancer", "load_balancer_plan"),
])
def test_load_balancer_on_a_swarm_port(autoscaled, clash, kind, action):
    plan = plan_of(autoscaled, port_clash=clash, swarm_ports=[{"published": 9203, "protocol": "tcp"}])
    (entry,) = [p for p in plan["ports"] if p["service"] == "meshed"]
    assert entry["converted_type"] == "LoadBalancer" and entry["type"] == kind and entry["swarm_clash"]
    assert entry["action"] == action and entry["node_port"] == 30000
    assert plan["load_balancer_plan"] == ([entry] if clash == "load_balancer" else [])
    assert any(w.startswith("meshed: Swarm already publishes port(s) 9203") for w in plan["plan_warnings"])


def test_swarm_ports_on_other_hosts_do_not_clash(autoscaled):
    swarm = [{"published": 9203, "protocol": "tcp", "hosts": ["swarm-only-1"]}]
    plan = plan_of(autoscaled, swarm_ports=swarm, k8s_hosts=["gh200-1", "gh200-2"])
    (entry,) = [p for p in plan["ports"] if p["service"] == "meshed"]
    assert entry["type"] == "LoadBalancer" and not entry["swarm_clash"]


@pytest.mark.parametrize("text", ["30000", "32767-30000", "0-10", "a-b"])
def test_bad_node_port_range(small, text):
    with pytest.raises(InputError, match="is not FIRST-LAST"):
        plan_of(small, secret_keys=BOTH, expose="NodePort", node_port_range=text)


def test_probe_settings_from_labels(autoscaled):
    plan = plan_of(autoscaled)
    services = {s["name"]: s for w in plan["waves"] for s in w["services"]}
    assert services["annotated"]["probe"] is False
    assert services["meshed"]["probe_path"] == "/sse"
    assert services["scaled"]["probe"] is True and services["scaled"]["probe_path"] == "/mcp"


# --- prune -----------------------------------------------------------------------------------------------------------

def _live(kind, name, manager, api_version="apps/v1"):
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "managedFields": [{"manager": manager, "operation": "Apply"}]}}


def test_prune_candidates(small):
    live = dp.Live(objects=[
        _live("Deployment", "mcp-retired", "sophia-mcp-deploy"),           # left the stack: pruned
        _live("Deployment", "mcp-gamma", "sophia-mcp-deploy"),             # a wave not selected: stays
        _live("Deployment", "mcp-hand-made", "someone-else"),              # not ours: stays
        _live("Service", "mcp-alpha", "sophia-mcp-deploy", "v1"),          # in the stack
        _live("PodDisruptionBudget", "mcp-beta", "sophia-mcp-deploy", "policy/v1"),  # no longer made: pruned
        _live("Secret", "mcp-api-key", "sophia-mcp-deploy", "v1"),          # given in variables
    ])
    plan = plan_of(small, live=live, waves=["non-critical"], secret_keys=KEY)
    assert plan["prune"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "sophia", "name": "mcp-retired"},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "namespace": "sophia", "name": "mcp-beta"},
    ]


# --- loading and the runner ----------------------------------------------------------------------------------------

def test_load_manifests_reads_the_index_only(converted, tmp_path):
    directory = converted("small", [SMALL])
    manifests = dp.load_manifests(str(directory))
    index = json.loads((directory / ".compose-convert.index").read_text())
    assert sorted({Path(m["file"]).name for m in manifests}) == sorted(index["files"])


@pytest.mark.parametrize("files, message", [
    ({}, "no manifests in"),
    ({"x.yaml": "- not\n- an object\n"}, "is not a Kubernetes object"),
    ({"x.yaml": "kind: [\n"}, "cannot read manifest"),
])
def test_load_manifests_errors(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=message):
        dp.load_manifests(str(tmp_path))
    with pytest.raises(InputError, match="does not exist"):
        dp.load_manifests(str(tmp_path / "absent"))


def test_no_workloads(tmp_path):
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
    with pytest.raises(InputError, match="no Deployment"):
        plan_of(dp.load_manifests(str(tmp_path)))


class FakeClient:
    """Answers list_all from plain data and counts the calls (no cluster in a unit test)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    @property
    def api_calls(self):
        return len(self.calls)

    def list_all(self, api_version, kind, namespace=None, label_selector=None, field_selector=None, limit=500):
        self.calls.append((api_version, kind, namespace, label_selector))
        return json.loads(json.dumps(self.answers.get(kind, [])))


def test_run_reads_the_cluster_once_per_kind_and_drops_secret_values(converted):
    client = FakeClient({
        "Service": [{"metadata": {"name": "mcp-alpha", "namespace": "sophia"},
                     "spec": {"type": "NodePort", "ports": [{"port": 9101, "protocol": "TCP", "nodePort": 31234}]}}],
        "Secret": [{"metadata": {"name": "mcp-api-key"}, "data": {"mcp_api_key": "c2VjcmV0LXZhbHVl"}}],
        "Deployment": [_live("Deployment", "mcp-retired", "sophia-mcp-deploy")],
    })
    params = {"src": str(converted("small", [SMALL])), "namespace": "sophia", "waves": ["non-critical"],
              "expose": "NodePort", "prune": True, "compose_src": [str(SMALL)]}
    plan = dp.run(params, client=client, project_loader=load_project)
    assert plan["secrets"][0]["source"] == "existing"
    assert "c2VjcmV0LXZhbHVl" not in json.dumps(plan)
    assert {p["service"]: (p["node_port"], p["action"]) for p in plan["node_ports"]} == {
        "mcp-alpha": (31234, "kept"), "mcp-beta": (30000, "assigned"), "mcp-gamma": (30001, "assigned")}
    assert [p["name"] for p in plan["prune"]] == ["mcp-retired"]
    assert plan["api_calls"] == 2 + len(dp.PRUNE_KINDS)
    assert client.calls[0] == ("v1", "Service", None, None)
    assert all(call[3] == "app.kubernetes.io/part-of=sophia-mcp" for call in client.calls[2:])
    # compose depends_on came from the compose file
    assert wave(plan, "non-critical")["services"][0]["allowed_from"] == ["mcp-beta", "mcp-gamma"]
    assert plan["msg"].startswith("2 of 3 services in namespace sophia: waves non-critical (2), critical (1) skipped")
    assert plan["changed"] is False and plan["live"] is True


def test_run_offline(converted):
    plan = dp.run({"src": str(converted("small", [SMALL])), "waves": ["non-critical"], "secret_keys": KEY})
    assert plan["live"] is False and plan["api_calls"] == 0 and plan["prune"] == []
    assert plan["namespace"] == "sophia-mcp"


@pytest.mark.parametrize("value, millis", [("500m", 500), ("1.5", 1500), (2, 2000), ("0.25", 250)])
def test_cpu_quantities(value, millis):
    assert dp.cpu_millis(value) == millis


@pytest.mark.parametrize("value, size", [("256Mi", 268435456), ("268435456", 268435456), ("1G", 10 ** 9),
                                         ("64Ki", 65536)])
def test_memory_quantities(value, size):
    assert dp.memory_bytes(value) == size


@pytest.mark.parametrize("function, value", [(dp.cpu_millis, "lots"), (dp.memory_bytes, "1 GB")])
def test_bad_quantities(function, value):
    with pytest.raises(InputError, match="cannot read"):
        function(value)
