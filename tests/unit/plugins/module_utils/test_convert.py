# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each translation on focused fixture stacks and on the sample stack, through the real kompose binary.

kompose is the pinned binary that ``make setup`` builds (found on PATH or in $SOPHIA_CACHE/bin); nothing is
mocked. One conversion per fixture file, shared by the tests of that file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert, _convert
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
SAMPLE = "examples/sophia-mcp-stack.yml"


def convert(dest, src, **params):
    params = dict({"src": [str(s) for s in (src if isinstance(src, list) else [src])], "dest": str(dest)}, **params)
    return _compose_convert.run(params)


def manifests(dest):
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(Path(dest).glob("*.yaml"))}


class Converted:
    def __init__(self, result, files):
        self.result = result
        self.files = files

    def workload(self, name):
        return self.files.get("deployment-%s.yaml" % name) or self.files["daemonset-%s.yaml" % name]

    def pod(self, name):
        return self.workload(name)["spec"]["template"]["spec"]

    def container(self, name):
        (container,) = self.pod(name)["containers"]
        return container

    def warnings(self, service):
        return {(w["key"], w["message"]) for w in self.result["conversion_warnings"] if w["service"] == service}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = {}

    def get(fixture, **params):
        key = (fixture, repr(sorted(params.items())))
        if key not in cache:
            dest = tmp_path_factory.mktemp("out")
            src = fixture if fixture.startswith("examples/") else FIXTURES / fixture
            result = convert(dest, src, **params)
            cache[key] = Converted(result, manifests(dest))
        return cache[key]

    return get


# --- workloads -------------------------------------------------------------------------------------------------

def test_sample_stack_gives_one_deployment_per_service_named_as_the_service(converted):
    out = converted(SAMPLE)
    services = out.result["services"]
    assert len(services) == 28
    for name, info in services.items():
        workload = out.files["deployment-%s.yaml" % name]
        assert workload["kind"] == "Deployment" and workload["metadata"]["name"] == name
        assert info["kind"] == "Deployment" and info["replicas"] == 1
        assert workload["spec"]["template"]["spec"]["restartPolicy"] == "Always"
        assert "service-%s.yaml" % name in out.files
    kinds = sorted({f["kind"] for f in out.files.values()})
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"]
    assert len(out.files) == 58  # 28 Deployments, 28 Services, the config, the memory store's claim


def test_sample_stack_stateful_service_mounts_its_claim(converted):
    out = converted(SAMPLE)
    claims = {f["metadata"]["name"]: f for f in out.files.values() if f["kind"] == "PersistentVolumeClaim"}
    assert list(claims) == ["ai-memory-data"]
    assert claims["ai-memory-data"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = out.pod("mcp-ai-memory")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/data"]
    assert len(mounts) == 1
    assert volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"] == "ai-memory-data"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MCP_DATA_DIR"] == "/data"


def test_sample_stack_gpu_services(converted):
    out = converted(SAMPLE)
    gpu = sorted(n for n, i in out.result["services"].items() if i["gpus"])
    assert gpu == ["mcp-embeddings", "mcp-llm-gateway", "mcp-reranker", "mcp-whisper"]
    for name in gpu:
        pod = out.pod(name)
        assert out.container(name)["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["nodeSelector"] == {"gpu": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert "NVIDIA_VISIBLE_DEVICES" not in {e["name"] for e in out.container(name)["env"]}
    assert "runtimeClassName" not in out.pod("mcp-gong")


def test_sample_stack_probes_criticality_and_secrets(converted):
    out = converted(SAMPLE)
    gong = out.container("mcp-gong")
    for probe in ("livenessProbe", "readinessProbe"):
        assert gong[probe] == {"exec": {"command": ["mcp-healthcheck"]}, "periodSeconds": 10, "timeoutSeconds": 3,
                               "failureThreshold": 3}
    # every 5 s (Docker's start_interval default) for start_period + retries x interval: 15 s + 3 x 10 s
    assert (gong["startupProbe"]["periodSeconds"], gong["startupProbe"]["failureThreshold"]) == (5, 9)
    assert "livenessProbe" not in out.container("mcp-github")  # no healthcheck in the stack
    assert {"name": "secret-mcp-api-key", "mountPath": "/run/secrets/mcp_api_key", "subPath": "mcp_api_key",
            "readOnly": True} in gong["volumeMounts"]
    assert out.result["prerequisites"][0]["name"] == "mcp-api-key"
    assert out.result["prerequisites"][0]["keys"] == ["mcp_api_key"]
    assert "secret-mcp-api-key.yaml" not in out.files  # external: referenced, never embedded
    crit = {n: i["criticality"] for n, i in out.result["services"].items()}
    assert crit["mcp-gong"] == "critical" and crit["mcp-linear"] == "non-critical"
    assert crit["mcp-web-search"] == "critical"  # unlabelled: the careful default
    for name in ("mcp-gong", "mcp-linear", "mcp-web-search"):
        for obj in (out.workload(name), out.workload(name)["spec"]["template"], out.files["service-%s.yaml" % name]):
            assert obj["metadata"]["labels"]["sophia.ai/criticality"] == crit[name]
    strategy = out.workload("mcp-gong")["spec"]
    assert strategy["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert strategy["minReadySeconds"] == 10
    config = out.files["configmap-mcp-common.yaml"]
    assert config["data"]["mcp-common.yml"].startswith("---\n# Settings shared")
    assert {"name": "config-mcp-common", "mountPath": "/etc/sophia/mcp-common.yml", "subPath": "mcp-common.yml",
            "readOnly": True} in gong["volumeMounts"]


def test_sample_stack_default_criticality_is_configurable(converted):
    out = converted(SAMPLE, default_criticality="non-critical")
    assert out.result["services"]["mcp-web-search"]["criticality"] == "non-critical"
    assert out.result["services"]["mcp-gong"]["criticality"] == "critical"


def test_compose_spec_sample_with_devices(converted):
    out = converted("examples/sophia-mcp-compose.yml", gpus_per_node=4)
    info = out.result["services"]
    assert {n: i["gpus"] for n, i in info.items()} == {
        "mcp-ai-memory": 0, "mcp-embeddings": 1, "mcp-gong": 0, "mcp-llm-gateway": 1, "mcp-reranker": 1, "mcp-whisper": 4}
    assert ("deploy.resources.reservations.devices.device_ids",
            "device_ids ['0'] became a count of 1: Kubernetes cannot pin GPU ids") in out.warnings("mcp-reranker")
    assert ("depends_on", "not carried over: Kubernetes starts pods in any order; readiness probes gate traffic instead") \
        in out.warnings("mcp-gong")
    shm = out.pod("mcp-whisper")["volumes"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(1024 ** 3)}} in shm
    for name in info:  # restart: unless-stopped, ports "9001:9001" (ingress) -> LoadBalancer
        assert info[name]["service_type"] == "LoadBalancer"


def test_requests_are_swarms_reservations_not_the_limits(converted):
    """Swarm reserves only what reservations name; Kubernetes would take a missing request to equal the limit (the
    sample's 0.5 CPU limits would reserve 0.5 CPU per pod: 13 non-critical pods did not fit a 2-CPU lab node)."""
    out = converted(SAMPLE)
    linear = out.container("mcp-linear")["resources"]  # limits cpus 0.50, memory 256M; reservations memory 64M
    assert linear["requests"]["cpu"] == "0"
    assert linear["requests"]["memory"] not in ("0", None) and linear["limits"]["cpu"] in ("500m", "0.5")
    whisper = out.container("mcp-whisper").get("resources") or {}  # no limits: nothing to hold back
    assert "cpu" not in (whisper.get("requests") or {})
    assert whisper["limits"]["nvidia.com/gpu"] == "1" and "nvidia.com/gpu" not in (whisper.get("requests") or {})


# --- GPUs --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service, gpus", [("two-gpus", 2), ("pinned", 2), ("swarm-generic", 1), ("capability-only", 1),
                                           ("cpu-only", 0)])
def test_gpu_reservations(converted, service, gpus):
    out = converted("gpu.yml")
    assert out.result["services"][service]["gpus"] == gpus
    pod = out.pod(service)
    limits = (out.container(service).get("resources") or {}).get("limits") or {}
    if gpus:
        assert limits["nvidia.com/gpu"] == str(gpus)
        assert pod["runtimeClassName"] == "nvidia" and pod["nodeSelector"]["gpu"] == "true"
    else:
        assert "nvidia.com/gpu" not in limits and "runtimeClassName" not in pod and "nodeSelector" not in pod


def test_gpu_warnings(converted):
    out = converted("gpu.yml")
    assert ("deploy.resources.reservations.devices.device_ids",
            "device_ids ['0', '3'] became a count of 2: Kubernetes cannot pin GPU ids") in out.warnings("pinned")
    assert ("deploy.resources.reservations.generic_resources",
            "generic resource kind 'SSD' is not a GPU kind: not carried over") in out.warnings("swarm-generic")
    assert any(k == "environment.NVIDIA_VISIBLE_DEVICES" for k, _m in out.warnings("pinned"))


def test_gpu_node_label_is_configurable(converted):
    out = converted("gpu.yml", gpu_node_label="nvidia.com/gpu.present=true")
    assert out.pod("two-gpus")["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # the stack's own constraint and the GPU label are both kept
    assert out.pod("swarm-generic")["nodeSelector"] == {"gpu": "true", "nvidia.com/gpu.present": "true"}


def test_count_all_with_gpus_per_node(converted, tmp_path):
    with pytest.raises(InputError, match="set the module's gpus_per_node"):
        convert(tmp_path / "out", FIXTURES / "gpu-all.yml")
    assert not (tmp_path / "out").exists()
    out = converted("gpu-all.yml", gpus_per_node=8)
    assert out.container("whole-node")["resources"]["limits"]["nvidia.com/gpu"] == "8"


# --- probes ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service, handler", [
    ("exec-cmd", {"exec": {"command": ["mcp-healthcheck", "/readyz"]}}),
    ("http-curl", {"httpGet": {"path": "/healthz?full=1", "port": 8080}}),
    ("http-wget", {"httpGet": {"path": "/ping", "port": 80}}),
    ("tcp-nc", {"tcpSocket": {"port": 5432}}),
    # probe commands are not expanded by Kubernetes (only command/args/env are), so no $$ escaping here
    ("shell-exec", {"exec": {"command": ["/bin/sh", "-c", "pg_isready -U $POSTGRES_USER && test -f /ready"]}}),
    ("curl-no-fail", {"exec": {"command": ["curl", "http://localhost/"]}}),
    ("remote-url", {"exec": {"command": ["curl", "-f", "http://db:5432/"]}}),
])
def test_healthcheck_handlers(converted, service, handler):
    container = converted("healthcheck.yml").container(service)
    for probe in ("livenessProbe", "readinessProbe"):
        assert {k: v for k, v in container[probe].items() if k in ("exec", "httpGet", "tcpSocket")} == handler


def test_healthcheck_timings(converted):
    out = converted("healthcheck.yml")
    exec_cmd = out.container("exec-cmd")
    assert exec_cmd["livenessProbe"]["periodSeconds"] == 10
    assert exec_cmd["livenessProbe"]["timeoutSeconds"] == 3
    assert exec_cmd["readinessProbe"]["failureThreshold"] == 5
    # the start period's checks: every 5 s (Docker's default start_interval), as long as Docker waits (45 s + 5 x 10 s)
    assert exec_cmd["startupProbe"] == {"exec": {"command": ["mcp-healthcheck", "/readyz"]}, "periodSeconds": 5,
                                        "timeoutSeconds": 3, "failureThreshold": 19}
    assert out.container("start-interval")["startupProbe"]["periodSeconds"] == 2  # start_interval: 2s
    assert out.container("start-interval")["startupProbe"]["failureThreshold"] == 23  # (16 s + 3 x 10 s) / 2 s
    assert not out.warnings("start-interval")
    assert out.container("http-curl")["readinessProbe"]["periodSeconds"] == 90
    assert out.container("http-wget")["readinessProbe"]["periodSeconds"] == 1  # 500ms: Kubernetes' minimum
    assert out.container("tcp-nc")["livenessProbe"]["timeoutSeconds"] == 30  # Docker's default
    assert "startupProbe" not in out.container("tcp-nc")
    assert out.result["services"]["exec-cmd"]["probes"] == ["startup", "readiness", "liveness"]


@pytest.mark.parametrize("service", ["disabled", "none", "image-default", "no-healthcheck"])
def test_services_without_usable_healthcheck_get_no_probe(converted, service):
    out = converted("healthcheck.yml")
    container = out.container(service)
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert out.result["services"][service]["probes"] == []
    if service == "image-default":
        assert any(k == "healthcheck.test" for k, _m in out.warnings(service))


# --- placement -------------------------------------------------------------------------------------------------

def test_placement_constraints_and_preferences(converted):
    out = converted("placement.yml")
    pod = out.pod("labelled")
    assert pod["nodeSelector"] == {"zone": "eu-1", "kubernetes.io/hostname": "gpu-host-1", "kubernetes.io/arch": "arm64",
                                   "kubernetes.io/os": "linux"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]}]
    assert pod["topologySpreadConstraints"] == [{"labelSelector": {"matchLabels": {"io.kompose.service": "labelled"}},
                                                 "maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "ScheduleAnyway"}]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [{"labelSelector": {"matchLabels": {"io.kompose.service": "labelled"}}, "topologyKey": "kubernetes.io/hostname"}]
    assert ("deploy.placement.constraints",
            "constraint 'node.id == 2ivku8v2gvtg4' is not carried over: Kubernetes nodes have no node.id") in out.warnings("labelled")


@pytest.mark.parametrize("service, operator", [("managers", "Exists"), ("workers", "DoesNotExist")])
def test_node_role(converted, service, operator):
    terms = converted("placement.yml").pod(service)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"] == [{"key": "node-role.kubernetes.io/control-plane", "operator": operator}]


# --- rollout ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service, kind, strategy, min_ready", [
    ("stop-first", "Deployment", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 2}}, 15),
    ("start-first", "Deployment", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, None),
    ("all-at-once", "Deployment", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}, None),
    ("defaults", "Deployment", None, None),
    ("on-failure", "Deployment", None, None),
    ("node-agent", "DaemonSet", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, None),
    ("with-volume", "Deployment", {"type": "Recreate"}, None),
])
def test_update_config(converted, service, kind, strategy, min_ready):
    out = converted("rollout.yml")
    workload = out.workload(service)
    assert workload["kind"] == kind and workload["metadata"]["name"] == service
    assert workload["spec"].get("strategy" if kind == "Deployment" else "updateStrategy") == strategy
    assert workload["spec"].get("minReadySeconds") == min_ready
    assert workload["spec"]["template"]["spec"]["restartPolicy"] == "Always"


def test_rollout_warnings(converted):
    out = converted("rollout.yml")
    assert out.workload("stop-first")["spec"]["replicas"] == 4
    assert any(k == "deploy.rollback_config" for k, _m in out.warnings("stop-first"))
    assert any(k == "deploy.update_config.failure_action" for k, _m in out.warnings("stop-first"))
    assert ("deploy.restart_policy.condition", "condition on-failure is not carried over: a Deployment's pods always "
            "restart (kompose would have made a bare Pod)") in out.warnings("on-failure")
    assert any(k == "deploy.restart_policy.max_attempts" for k, _m in out.warnings("on-failure"))
    assert any(k == "deploy.update_config" and "Recreate" in m for k, m in out.warnings("with-volume"))


# --- secrets, configs, volumes, ports, labels, env -----------------------------------------------------------------

def test_secrets_and_configs(converted):
    out = converted("secrets-configs.yml")
    api = out.container("api")
    mounts = {m["mountPath"]: m for m in api["volumeMounts"]}
    assert mounts["/run/secrets/db_password"]["subPath"] == "secret.txt"
    assert mounts["/etc/api/token"]["subPath"] == "api_token"
    assert mounts["/run/secrets/creds.json"]["subPath"] == "relative_target"
    assert mounts["/etc/app/app.conf"]["subPath"] == "app.conf"
    assert mounts["/shared_settings"]["subPath"] == "shared_settings"
    assert all(m["readOnly"] for m in mounts.values())
    volumes = {v["name"]: v for v in out.pod("api")["volumes"]}
    assert volumes["secret-api-token"]["secret"] == {
        "secretName": "production-api-token", "items": [{"key": "api_token", "path": "api_token", "mode": 0o400}]}
    assert volumes["config-app-conf"]["configMap"]["items"] == [{"key": "app.conf", "path": "app.conf", "mode": 0o444}]
    secret = out.files["secret-db-password.yaml"]
    assert secret["data"] == {"secret.txt": "bm90LWEtcmVhbC1wYXNzd29yZAo="}
    assert out.files["configmap-app-conf.yaml"]["data"] == {"app.conf": "log_level: debug\n"}
    prereqs = {(p["kind"], p["name"]): p for p in out.result["prerequisites"]}
    assert sorted(prereqs) == [("ConfigMap", "shared-settings"), ("Secret", "production-api-token"), ("Secret", "relative-target")]
    assert prereqs[("Secret", "production-api-token")]["keys"] == ["api_token"]
    assert ("secrets.uid", "uid 1000 of relative_target is not carried over: Kubernetes sets no per-file owner "
            "(use securityContext.fsGroup)") in out.warnings("api")
    assert out.result["services"]["worker"]["files"] == ["configmap-app-conf.yaml", "deployment-worker.yaml", "secret-db-password.yaml"]


def test_secret_manifest_is_private(tmp_path):
    convert(tmp_path / "out", FIXTURES / "secrets-configs.yml")
    assert (tmp_path / "out" / "secret-db-password.yaml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out" / "deployment-api.yaml").stat().st_mode & 0o777 == 0o644


def test_volumes(converted):
    out = converted("volumes.yml", storage_class="local-path")
    pod = out.pod("db")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pgdata"]["persistentVolumeClaim"] == {"claimName": "pgdata"}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": str(256 * 1024 ** 2)}
    assert volumes["tmpfs-scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": str(64 * 1024 ** 2)}
    assert volumes["tmpfs-run-cache"]["emptyDir"] == {"medium": "Memory"}
    assert volumes["anon-anonymous"]["emptyDir"] == {}
    pvc = out.files["persistentvolumeclaim-pgdata.yaml"]
    assert pvc["spec"]["storageClassName"] == "local-path"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert out.files["persistentvolumeclaim-backups.yaml"]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert "persistentvolumeclaim-models.yaml" not in out.files
    assert {"kind": "PersistentVolumeClaim", "name": "models", "keys": [], "services": ["db"],
            "compose": "volumes.models (external)"} in out.result["prerequisites"]
    assert not any("claim" in name for name in volumes)  # kompose's PVCs for bind mounts/tmpfs are not made
    warnings = out.warnings("db")
    assert any(k == "volumes" and "bind mount ./local-dir:/host-dir is not carried over" in m for k, m in warnings)
    assert any(k == "volumes.backups.driver_opts" for k, _m in warnings)
    assert out.workload("db")["spec"]["strategy"] == {"type": "Recreate"}


def test_ports_pick_the_service_type(converted):
    out = converted("ports.yml")
    mesh = out.files["service-mesh.yaml"]["spec"]
    assert mesh["type"] == "LoadBalancer"
    assert sorted((p["port"], p.get("targetPort")) for p in mesh["ports"]) == [(8080, 80), (8443, 443), (9000, 9000), (9001, 9001)]
    assert out.files["service-host-only.yaml"]["spec"]["type"] == "ClusterIP"
    udp = out.files["service-udp.yaml"]["spec"]
    assert udp["ports"][0]["protocol"] == "UDP" and udp["type"] == "LoadBalancer"
    assert "service-internal.yaml" not in out.files
    assert out.result["services"]["internal"]["service_type"] is None
    assert any(k == "ports.mode" for k, _m in out.warnings("host-only"))
    assert any(k == "ports" and "host_ip 127.0.0.1" in m for k, m in out.warnings("mesh"))


@pytest.mark.parametrize("service, value", [("deploy-label", "non-critical"), ("container-label", "non-critical"),
                                            ("unlabelled", "critical"), ("both", "critical")])
def test_criticality_label(converted, service, value):
    out = converted("criticality.yml", labels={"app.kubernetes.io/part-of": "sophia"}, annotations={"owner": "platform"})
    workload = out.workload(service)
    for meta in (workload["metadata"], workload["spec"]["template"]["metadata"]):
        assert meta["labels"]["sophia.ai/criticality"] == value
        assert meta["labels"]["app.kubernetes.io/part-of"] == "sophia"
        assert meta["annotations"]["owner"] == "platform"
        assert "sophia.ai/criticality" not in meta.get("annotations", {})
    assert out.result["services"][service]["criticality"] == value


def test_other_labels_keep_kompose_placement(converted):
    out = converted("criticality.yml")
    assert out.workload("deploy-label")["metadata"]["labels"]["team"] == "search"
    assert out.workload("container-label")["spec"]["template"]["metadata"]["annotations"] == {"com.example.owner": "data"}


def test_environment_env_file_and_dollars(converted):
    out = converted("env.yml", env={"TAG": "v2", "FROM_MODULE_ENV": "yes", "EMPTY": ""})
    container = out.container("app")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["image"] == "example/app:v2"
    assert env == {"LOG_LEVEL": "info", "REGION": "eu 1", "FROM_FILE": "file", "FROM_MODULE_ENV": "yes",
                   "LITERAL": "cost $$5 and $$(HOME)", "DEFAULTED": "fallback", "EMPTY_DEFAULT": "was-empty",
                   "NESTED": "v2", "PLUS": "tag-is-set"}
    assert container["args"] == ["sh", "-c", "echo $$HOME"]
    assert ("environment.NOT_SET_ANYWHERE",
            "NOT_SET_ANYWHERE has no value and is not in the module's env or env_files: left out") in out.warnings("app")
    assert "envFrom" not in container and not any(f.startswith("configmap-") for f in out.files)


def test_namespace_on_every_object(converted):
    out = converted("secrets-configs.yml", namespace="sophia")
    assert {f["metadata"].get("namespace") for f in out.files.values()} == {"sophia"}
    assert {p["namespace"] for p in out.result["prerequisites"]} == {"sophia"}


def test_unknown_keys_are_reported(tmp_path):
    path = tmp_path / "stack.yml"
    path.write_text("services:\n  web:\n    image: x\n    ulimits: {nofile: 1024}\n    init: true\n    logging: {driver: syslog}\n"
                    "    networks: {front: {aliases: [www]}}\n    deploy: {resources: {limits: {pids: 10}}, rollback: x}\n"
                    "    labels: {kompose.controller.type: statefulset}\nnetworks: {front: {}}\ninclude: [other.yml]\n"
                    "x-anything: {a: 1}\nname: stack\n")
    result = convert(tmp_path / "out", path)
    keys = {w["key"] for w in result["conversion_warnings"] if w["service"] == "web"}
    assert {"ulimits", "init", "logging", "networks.front.aliases", "deploy.resources.limits.pids", "deploy.rollback",
            "labels.kompose.controller.type"} <= keys
    top = {w["key"] for w in result["conversion_warnings"] if w["service"] is None}
    assert top == {"include"}
    assert (tmp_path / "out" / "deployment-web.yaml").exists()


def test_services_subset(tmp_path):
    result = convert(tmp_path / "out", SAMPLE, services=["mcp-gong", "mcp-whisper"])
    assert sorted(result["services"]) == ["mcp-gong", "mcp-whisper"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.yaml")) == [
        "configmap-mcp-common.yaml", "deployment-mcp-gong.yaml", "deployment-mcp-whisper.yaml",
        "service-mcp-gong.yaml", "service-mcp-whisper.yaml"]


def test_output_has_no_kompose_noise_or_host_details(converted):
    out = converted(SAMPLE)
    for name in out.result["files"]:
        assert name.endswith(".yaml") and "/" not in name
    text = "".join(_convert.dump_yaml(f) for f in out.files.values())
    for noise in ("creationTimestamp", "kompose.cmd", "kompose.version", "status:", "/work/", "&id", "*id"):
        assert noise not in text


# --- probe handler table (pure) ----------------------------------------------------------------------------------

@pytest.mark.parametrize("test, kind", [
    (["CMD", "curl", "--fail", "http://localhost:9000/"], "httpGet"),
    (["CMD", "curl", "-f", "-o", "/dev/null", "https://localhost/"], "httpGet"),
    (["CMD", "curl", "-f", "-o", "out.txt", "http://localhost/"], "exec"),
    (["CMD", "curl", "-f", "-H", "X: y", "http://localhost/"], "exec"),
    (["CMD", "wget", "-qO-", "http://localhost:8000/health"], "httpGet"),
    (["CMD", "wget", "-O", "/tmp/x", "http://localhost/"], "exec"),
    (["CMD-SHELL", "curl -f http://localhost/ || exit"], "httpGet"),
    (["CMD-SHELL", "curl -f http://localhost:$PORT/"], "exec"),
    (["CMD-SHELL", "curl -f 'http://localhost/ | grep ok"], "exec"),
    (["CMD", "nc", "-zv", "-w", "2", "127.0.0.1", "6379"], "tcpSocket"),
    (["CMD", "nc", "localhost", "6379"], "exec"),
    (["CMD", "/usr/bin/curl", "-sf", "http://[::1]:81/x"], "httpGet"),
])
def test_probe_handler_table(test, kind):
    _handler, got = _convert.probe_handler(test)
    assert got == kind


def test_https_probe_scheme():
    handler, _kind = _convert.probe_handler(["CMD", "curl", "-fk", "https://localhost:8443/h"])
    assert handler == {"httpGet": {"path": "/h", "port": 8443, "scheme": "HTTPS"}}


def test_shared_fixture_dir_is_clean():
    # the fixtures are inputs only: a conversion must never write next to them
    assert not list(FIXTURES.glob("*.yaml"))
    assert shutil.which("kompose") or Path("~/.cache/sophia-platform/bin/kompose").expanduser().exists()


# --- manifest YAML (pure) ----------------------------------------------------------------------------------------

TRICKY = ["yes", "No", "on", "y", "~", "", "0755", "0o17", "0x1f", "1:20", "12:30:00", "2026-01-01", "1e3", "1_000", ".inf",
          "-x", "-", " lead", "trail ", "x: y", "a:", "#c", "a #b", "@at", "9001", "true", "null", "nvidia.com/gpu",
          "$$HOME", "nginx:1", "500m", "::1", "ü", "a\nb\n", "a\nb", "a\n\n", "\ttab\n", "é\n", "line\n  indented\n",
          "\u2028x\n", "quote \" and \\ backslash", "{not: a map}", "[1]", "*alias", "&anchor", "!tag", "%pct", "`tick`", "a\x85b\n", "x\x9fy\n", "\ufeffbom"]


@pytest.mark.parametrize("value", TRICKY)
def test_manifest_yaml_round_trips_every_scalar(value):
    data = {"k": value, "list": [value], "nested": {value or "empty": {"x": [value, {"y": value}]}}}
    text = _convert.manifest_yaml(data)
    assert yaml.safe_load(text) == data


def test_manifest_yaml_layout():
    data = {"b": [{"x": 1, "w": [1, 2]}, []], "a": {}, "c": "multi\nline\n", "d": None, "e": False, "f": 1.5,
            "g": [[1], {}], "y": "\x85"}
    assert _convert.manifest_yaml(data) == (
        "a: {}\nb:\n- w:\n  - 1\n  - 2\n  x: 1\n- []\nc: |\n  multi\n  line\nd: null\ne: false\nf: 1.5\ng:\n-\n  - 1\n- {}\n"
        "\"y\": \"\\u0085\"\n")
    assert yaml.safe_load(_convert.manifest_yaml(data)) == data


def test_every_written_file_is_header_plus_canonical_yaml(tmp_path):
    for fixture in ("secrets-configs.yml", "volumes.yml", "healthcheck.yml"):
        dest = tmp_path / fixture
        convert(dest, FIXTURES / fixture, storage_class="local-path")
        for path in dest.glob("*.yaml"):
            text = path.read_text()
            assert text.startswith(_convert.HEADER)
            assert text == _convert.HEADER + _convert.manifest_yaml(yaml.safe_load(text))
