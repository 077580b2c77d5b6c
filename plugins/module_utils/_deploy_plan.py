# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment plan of role ``mcp_deploy``: converted manifests plus variables in, objects and waves out.

Pure: :func:`build_plan` takes the manifests ``compose_convert`` wrote (as loaded by :func:`load_manifests`), the
options and, optionally, what the cluster holds now (:class:`Live`: Services with their NodePorts, Secrets' key
names, objects of the stack for pruning) and returns plain data. Nothing here talks to an API or reads a secret's
value: Secrets from variables are planned by name and key only (the role builds them in ``no_log`` tasks), and
Secret manifests that ``compose_convert`` wrote are handed on as files (``src``), never read into the plan.

What the plan adds to the converted objects:

- the Namespace; labels ``app.kubernetes.io/part-of`` (the stack) and ``sophia.ai/deploy-wave`` on every object;
- a PodDisruptionBudget per workload with two or more replicas (or an autoscaler minimum of two or more);
- NetworkPolicies: default deny of ingress in the namespace, then per service an allow from the front door
  (namespace / pod selectors, CIDRs) and from the services that declare they depend on it;
- a ResourceQuota (computed from the workloads with headroom, or given);
- HorizontalPodAutoscalers (autoscaling/v2) where the compose service asks through ``sophia.ai/hpa-*`` labels;
- Service types and NodePorts that do not clash with the ports Swarm publishes on the same hosts.

Waves: the ``sophia.ai/criticality`` label splits the services into ``non-critical`` then ``critical``; with
``gpu_wave`` each is followed by a wave of its GPU services (``non-critical-gpu``, ``critical-gpu``), so GPU pods,
slow to start and bound to scarce nodes, never hold back the verification of the others.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    HAS_YAML = False
else:
    HAS_YAML = True

PART_OF = "app.kubernetes.io/part-of"
WAVE_LABEL = "sophia.ai/deploy-wave"
SERVICE_LABEL = "sophia.ai/service"
CRITICALITY = "sophia.ai/criticality"
DEPENDS_ON = "sophia.ai/depends-on"
HPA_MIN, HPA_MAX, HPA_CPU = "sophia.ai/hpa-min", "sophia.ai/hpa-max", "sophia.ai/hpa-cpu"
PROBE_LABEL, PROBE_PATH = "sophia.ai/probe", "sophia.ai/mcp-path"
GPU = "nvidia.com/gpu"
INDEX = ".compose-convert.index"
SHARED = "shared"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
SHARED_KINDS = ("ConfigMap", "Secret", "PersistentVolumeClaim", "ServiceAccount")
# Kinds the plan may create, in the namespace; the prune candidates are read among these.
PRUNE_KINDS = (("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
               ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "PersistentVolumeClaim"),
               ("policy/v1", "PodDisruptionBudget"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
               ("networking.k8s.io/v1", "NetworkPolicy"), ("v1", "ResourceQuota"))
_SPLIT = re.compile(r"[\s,._]+")  # DNS-1123 names hold none of these, so label values can list names with . or _
DEFAULTS = {
    "namespace": "sophia-mcp",
    "stack": "sophia-mcp",
    "waves": [],
    "services": [],
    "gpu_wave": True,
    "default_criticality": "critical",
    "dependencies": {},
    "compose_dependencies": {},
    "network_policies": True,
    "front_door": {"cidrs": [], "namespace_labels": {}, "pod_labels": {}},
    "pdb": True,
    "pdb_policy": "max_unavailable",
    "pdb_value": 1,
    "quota": "auto",
    "quota_headroom": 50,
    "quota_hard": {},
    "hpa": True,
    "hpa_cpu": 80,
    "expose": "keep",
    "swarm_ports": [],
    "k8s_hosts": [],
    "node_port_range": "30000-32767",
    "port_clash": "node_port",
    "secret_keys": {},
    "secret_file_keys": {},
    "use_existing_secrets": True,
    "probe_path": "/mcp",
    "field_manager": "sophia-mcp-deploy",
}


# --- reading the converted manifests ------------------------------------------------------------------------

def load_manifests(directory):
    """The converted manifests in ``directory``: a list of {file, obj}, in file-name order.

    With ``compose_convert``'s index (``.compose-convert.index``) only the files it lists are read (other files
    in the directory are not the stack's); without one, every ``*.yaml`` / ``*.yml`` / ``*.json`` file (multi-document
    YAML allowed). Secret manifests are read for their name and keys only: their data never leaves this function.
    """
    if not HAS_YAML:  # pragma: no cover
        raise InputError("PyYAML is required to read the manifests")
    if not os.path.isdir(directory):
        raise InputError(f"manifests directory {directory} does not exist: run sophia_ai.platform.compose_convert "
                         "with dest set to it first", object=directory, reason="missing")
    index_path = os.path.join(directory, INDEX)
    if os.path.exists(index_path):
        try:
            with open(index_path, encoding="utf-8") as handle:
                names = sorted(json.load(handle).get("files") or {})
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {index_path}: {exc}; run compose_convert again", object=index_path) from None
    else:
        names = sorted(n for n in os.listdir(directory) if n.endswith((".yaml", ".yml", ".json")))
    out = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as handle:
                docs = [d for d in yaml.safe_load_all(handle) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read manifest {path}: {exc}", object=path, reason=type(exc).__name__) from None
        for doc in docs:
            if not isinstance(doc, dict) or not doc.get("kind") or not (doc.get("metadata") or {}).get("name"):
                raise InputError(f"{path} holds something that is not a Kubernetes object (kind and metadata.name)",
                                 object=path, reason="not_an_object")
            if doc["kind"] == "Secret":
                doc = {"apiVersion": doc.get("apiVersion", "v1"), "kind": "Secret",
                       "metadata": {k: v for k, v in doc["metadata"].items() if k in ("name", "namespace")},
                       "keys": sorted(set(doc.get("data") or {}) | set(doc.get("stringData") or {}))}
            out.append({"file": path, "obj": doc})
    if not out:
        raise InputError(f"no manifests in {directory}: run sophia_ai.platform.compose_convert with dest set to it",
                         object=directory, reason="empty")
    return out


def compose_dependencies(project_services):
    """{service: [services it depends on]} from compose ``depends_on`` (list or mapping form)."""
    deps = {}
    for name, svc in (project_services or {}).items():
        value = (svc or {}).get("depends_on") or []
        names = sorted(value) if isinstance(value, dict) else sorted(str(v) for v in value)
        if names:
            deps[name] = names
    return deps


# --- small helpers ---------------------------------------------------------------------------------------------

def _labels(obj):
    return (obj.get("metadata") or {}).get("labels") or {}


def _annotations(obj):
    return (obj.get("metadata") or {}).get("annotations") or {}


def _meta_value(obj, key):
    """A key from the workload's labels, else its annotations, else its pod template's (compose ``labels`` become
    annotations, ``deploy.labels`` labels)."""
    template = ((obj.get("spec") or {}).get("template") or {})
    for source in (_labels(obj), _annotations(obj), _labels(template), _annotations(template)):
        if key in source and source[key] not in (None, ""):
            return str(source[key])
    return None


def _pod_spec(obj):
    return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}


_CPU = re.compile(r"^([0-9.]+)(m?)$")
_MEM_UNITS = {"": 1, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4, "Ki": 1024, "Mi": 1024 ** 2,
              "Gi": 1024 ** 3, "Ti": 1024 ** 4}
_MEM = re.compile(r"^([0-9.]+)(k|M|G|T|Ki|Mi|Gi|Ti)?$")


def cpu_millis(value):
    """'500m' -> 500, '1.5' -> 1500, 2 -> 2000."""
    match = _CPU.match(str(value).strip())
    if not match:
        raise InputError(f"cannot read the CPU quantity {value!r}", reason="bad_quantity")
    number = float(match.group(1))
    return int(math.ceil(number if match.group(2) else number * 1000))


def memory_bytes(value):
    """'256Mi' -> 268435456, '268435456' -> 268435456, '1G' -> 10**9."""
    match = _MEM.match(str(value).strip())
    if not match:
        raise InputError(f"cannot read the memory quantity {value!r}", reason="bad_quantity")
    return int(math.ceil(float(match.group(1)) * _MEM_UNITS[match.group(2) or ""]))


def _percent_or_int(value, total):
    if value is None:
        return 0
    text = str(value)
    if text.endswith("%"):
        return int(math.ceil(total * float(text[:-1]) / 100.0))
    return int(text)


def _port_range(text):
    match = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", str(text))
    if not match or int(match.group(1)) > int(match.group(2)) or int(match.group(1)) < 1 or int(match.group(2)) > 65535:
        raise InputError(f"node_port_range {text!r} is not FIRST-LAST (for example 30000-32767)", key="node_port_range")
    return int(match.group(1)), int(match.group(2))


def _key(obj):
    return (obj["kind"], obj["metadata"]["name"])


# --- live state (read by the module, given here as plain data) ---------------------------------------------------

class Live:
    """What the cluster holds, as read by the module; every part optional (no cluster: an empty Live).

    ``services``: every Service of the cluster (for the NodePorts in use and the ones our Services hold);
    ``secrets``: {name: [key names]} of the target namespace's Secrets (values are never read into it);
    ``objects``: the stack's objects in the namespace (labelled part-of), for pruning.
    """

    def __init__(self, services=None, secrets=None, objects=None):
        self.services = services or []
        self.secrets = secrets or {}
        self.objects = objects or []


# --- the plan ------------------------------------------------------------------------------------------------

class _Service:
    """One compose service: its workload and what the plan derives from it."""

    def __init__(self, workload, file):
        self.workload = workload
        self.file = file
        self.name = workload["metadata"]["name"]
        self.kind = workload["kind"]
        self.criticality = None
        self.gpus = 0
        self.service = None  # its Service object, when it has one
        self.refs = {"ConfigMap": set(), "Secret": set(), "PersistentVolumeClaim": set(), "ServiceAccount": set()}
        self.secret_keys = {}  # secret name -> keys it reads
        self.depends_on = set()
        self.hpa = None
        self.wave = None

    @property
    def selector(self):
        return ((self.workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}

    @property
    def replicas(self):
        if self.kind == "DaemonSet":
            return None
        replicas = (self.workload.get("spec") or {}).get("replicas")
        return 1 if replicas is None else int(replicas)

    def container_ports(self):
        ports = []
        spec = _pod_spec(self.workload)
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                entry = {"port": port["containerPort"], "protocol": port.get("protocol", "TCP")}
                if entry not in ports:
                    ports.append(entry)
        return sorted(ports, key=lambda p: (p["port"], p["protocol"]))


def _scan_refs(svc):
    spec = _pod_spec(svc.workload)
    if spec.get("serviceAccountName"):
        svc.refs["ServiceAccount"].add(spec["serviceAccountName"])
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            name = volume["secret"].get("secretName")
            svc.refs["Secret"].add(name)
            keys = [item["key"] for item in volume["secret"].get("items") or []]
            svc.secret_keys.setdefault(name, set()).update(keys)
        if "configMap" in volume:
            svc.refs["ConfigMap"].add(volume["configMap"].get("name"))
        if "persistentVolumeClaim" in volume:
            svc.refs["PersistentVolumeClaim"].add(volume["persistentVolumeClaim"].get("claimName"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                svc.refs["Secret"].add(source["secret"]["name"])
                svc.secret_keys.setdefault(source["secret"]["name"], set()).update(
                    item["key"] for item in source["secret"].get("items") or [])
            if "configMap" in source:
                svc.refs["ConfigMap"].add(source["configMap"]["name"])
    for pull in spec.get("imagePullSecrets") or []:
        svc.refs["Secret"].add(pull["name"])
        svc.secret_keys.setdefault(pull["name"], set()).add(".dockerconfigjson")
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                svc.refs["Secret"].add(ref["name"])
                svc.secret_keys.setdefault(ref["name"], set()).add(ref["key"])
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                svc.refs["ConfigMap"].add(ref["name"])
        for env_from in container.get("envFrom") or []:
            if "secretRef" in env_from and not env_from["secretRef"].get("optional"):
                svc.refs["Secret"].add(env_from["secretRef"]["name"])
                svc.secret_keys.setdefault(env_from["secretRef"]["name"], set())
            if "configMapRef" in env_from:
                svc.refs["ConfigMap"].add(env_from["configMapRef"]["name"])
        svc.gpus += int(((container.get("resources") or {}).get("limits") or {}).get(GPU, 0) or 0)
    for kind in svc.refs:
        svc.refs[kind].discard(None)


def _hpa_of(svc, options, warnings):
    values = {key: _meta_value(svc.workload, key) for key in (HPA_MIN, HPA_MAX, HPA_CPU)}
    if not options["hpa"] or not any(values.values()):
        return None
    where = f"service {svc.name} (compose label)"
    if svc.kind != "Deployment":
        warnings.append(f"{svc.name}: {HPA_MAX} asks for an autoscaler, but a {svc.kind} cannot be scaled by one; "
                        "no HorizontalPodAutoscaler made")
        return None
    if not values[HPA_MAX]:
        raise InputError(f"{where} sets {HPA_MIN if values[HPA_MIN] else HPA_CPU} but not {HPA_MAX}: an autoscaler "
                         f"needs its maximum. Fix: add the label {HPA_MAX} to the compose service",
                         service=svc.name, key=HPA_MAX)
    try:
        high = int(values[HPA_MAX])
        low = int(values[HPA_MIN]) if values[HPA_MIN] else max(1, svc.replicas or 1)
        cpu = int(values[HPA_CPU]) if values[HPA_CPU] else int(options["hpa_cpu"])
    except ValueError:
        raise InputError(f"{where}: {HPA_MIN}, {HPA_MAX} and {HPA_CPU} must be whole numbers, got "
                         f"{ {k: v for k, v in values.items() if v} }", service=svc.name, key=HPA_MAX) from None
    if low < 1 or high < low or not 1 <= cpu <= 1000:
        raise InputError(f"{where}: need 1 <= {HPA_MIN} ({low}) <= {HPA_MAX} ({high}) and 1 <= {HPA_CPU} ({cpu}) "
                         "<= 1000 (percent of the CPU request)", service=svc.name, key=HPA_MAX)
    containers = _pod_spec(svc.workload).get("containers") or []
    if not all(((c.get("resources") or {}).get("requests") or {}).get("cpu")
               or ((c.get("resources") or {}).get("limits") or {}).get("cpu") for c in containers):
        warnings.append(f"{svc.name}: the autoscaler targets {cpu}% CPU utilisation, but not every container has a CPU "
                        "request (or limit): it cannot compute utilisation until the compose service reserves CPUs")
    return {"min": low, "max": high, "cpu": cpu}


def _dependencies(services, options):
    """Fill each service's depends_on from labels, compose ``depends_on`` and the variable; unknown names fail."""
    for source, mapping in (("compose depends_on", options["compose_dependencies"]),
                            ("mcp_deploy_dependencies", options["dependencies"])):
        for name, deps in (mapping or {}).items():
            if name not in services:
                raise InputError(f"{source} names {name}, not a service of the converted stack ("
                                 f"{', '.join(sorted(services))})", key="dependencies", service=name)
            for dep in ([deps] if isinstance(deps, str) else deps or []):
                if dep not in services:
                    raise InputError(f"{source}: {name} depends on {dep}, not a service of the converted stack",
                                     key="dependencies", service=name)
                services[name].depends_on.add(dep)
    for svc in services.values():
        value = _meta_value(svc.workload, DEPENDS_ON)
        for dep in (d for d in _SPLIT.split(value or "") if d):
            if dep not in services:
                raise InputError(f"service {svc.name}: label {DEPENDS_ON} names {dep}, not a service of the converted "
                                 "stack", service=svc.name, key=DEPENDS_ON)
            svc.depends_on.add(dep)
        svc.depends_on.discard(svc.name)


def _waves(services, options):
    order = ["non-critical", "non-critical-gpu", "critical", "critical-gpu"] if options["gpu_wave"] else \
        ["non-critical", "critical"]
    for svc in services.values():
        crit = _meta_value(svc.workload, CRITICALITY) or options["default_criticality"]
        if crit not in ("critical", "non-critical"):
            raise InputError(f"service {svc.name}: {CRITICALITY} is {crit!r}, not critical or non-critical",
                             service=svc.name, key=CRITICALITY)
        svc.criticality = crit
        svc.wave = crit + ("-gpu" if options["gpu_wave"] and svc.gpus else "")
    present = [w for w in order if any(s.wave == w for s in services.values())]
    wanted = options["waves"] or []
    selected = set()
    for entry in wanted:
        if entry == "all":
            selected.update(order)
        elif entry in ("critical", "non-critical"):
            selected.update(w for w in order if w == entry or w == entry + "-gpu")
        elif entry in order:
            selected.add(entry)
        else:
            raise InputError(f"waves: {entry!r} is not a wave; choose from all, {', '.join(order)}", key="waves")
    if not wanted:
        selected = set(order)
    return list(present), [w for w in present if w in selected]


def _swarm_port_set(options):
    """{(port, protocol)} that Swarm publishes on the hosts K8s runs on."""
    hosts = set(options["k8s_hosts"] or [])
    used = set()
    for entry in options["swarm_ports"] or []:
        if isinstance(entry, dict):
            port = entry.get("published", entry.get("port"))
            protocol = str(entry.get("protocol") or "tcp").upper()
            where = set(entry.get("hosts") or [])
            if hosts and where and not hosts & where:
                continue  # published on other hosts only
        else:
            port, protocol = entry, "TCP"
        if port:
            used.add((int(port), protocol))
    return used


def _plan_ports(services, options, live, warnings):
    """Service types and NodePorts; returns the port report."""
    first, last = _port_range(options["node_port_range"])
    swarm = _swarm_port_set(options)
    ns = options["namespace"]
    live_ours, taken = {}, set()
    for obj in live.services:
        meta = obj.get("metadata") or {}
        for port in (obj.get("spec") or {}).get("ports") or []:
            if port.get("nodePort"):
                if meta.get("namespace") == ns:
                    live_ours[(meta.get("name"), port.get("port"), port.get("protocol", "TCP"))] = port["nodePort"]
                else:
                    taken.add(port["nodePort"])
    reserved = live_ours  # our own Services keep theirs: a port a Service of ours holds is free for it only
    assigned = set(taken)
    report = []
    pending = []
    for name in sorted(services):
        svc = services[name].service
        if svc is None:
            continue
        spec = svc.setdefault("spec", {})
        original = spec.get("type", "ClusterIP")
        kind = original
        if options["expose"] == "NodePort" and kind == "ClusterIP" and spec.get("clusterIP") != "None":
            kind = "NodePort"
        clash = [p for p in spec.get("ports") or [] if (int(p["port"]), p.get("protocol", "TCP")) in swarm]
        if kind == "LoadBalancer" and clash:
            if options["port_clash"] == "node_port":
                kind = "NodePort"
                warnings.append(f"{name}: Swarm already publishes port(s) {', '.join(str(p['port']) for p in clash)} on "
                                "these hosts, where a LoadBalancer Service (K3s's ServiceLB) would bind them too: "
                                "planned as NodePort instead")
            else:
                warnings.append(f"{name}: Swarm already publishes port(s) {', '.join(str(p['port']) for p in clash)} on "
                                "these hosts: this LoadBalancer Service needs load balancer addresses other than the "
                                "hosts' (a MetalLB pool or a cloud load balancer), not K3s's ServiceLB")
        spec["type"] = kind
        for port in spec.get("ports") or []:
            entry = {"service": name, "port": int(port["port"]), "protocol": port.get("protocol", "TCP"),
                     "type": kind, "converted_type": original, "node_port": None,
                     "swarm_clash": (int(port["port"]), port.get("protocol", "TCP")) in swarm, "action": "none"}
            if kind == "LoadBalancer" and entry["swarm_clash"] and options["port_clash"] == "load_balancer":
                entry["action"] = "load_balancer_plan"
            report.append(entry)
            if kind in ("NodePort", "LoadBalancer"):
                pending.append((entry, port))
    # first the ports live Services hold (stable across runs), then new ones from the range, lowest free first
    for entry, port in pending:
        held = reserved.get((entry["service"], entry["port"], entry["protocol"]))
        if held and (held, entry["protocol"]) not in swarm and held not in assigned:
            entry["node_port"], entry["action"] = held, entry["action"] if entry["action"] != "none" else "kept"
            assigned.add(held)
        elif held:
            entry["moved_from"] = held  # Swarm publishes it now: the Service moves to a free port
    assigned.update(reserved.values())  # a stale Service of ours still holds its port until it changes or goes
    candidate = first
    for entry, port in pending:
        if entry["node_port"] is None:
            wanted = port.get("nodePort")
            if wanted and first <= wanted <= last and wanted not in assigned and (wanted, entry["protocol"]) not in swarm:
                entry["node_port"] = wanted
            else:
                while candidate <= last and (candidate in assigned or (candidate, entry["protocol"]) in swarm):
                    candidate += 1
                if candidate > last:
                    raise InputError(f"no free NodePort left in {options['node_port_range']} for {entry['service']} "
                                     f"port {entry['port']}: widen mcp_deploy_node_port_range", key="node_port_range")
                entry["node_port"] = candidate
            if entry["action"] == "none":
                entry["action"] = "moved" if entry.get("moved_from") else "assigned"
            assigned.add(entry["node_port"])
        port["nodePort"] = entry["node_port"]
    return report


def _pod_resources(spec):
    """{resource: (request, limit)} of one pod: containers summed, init containers as their maximum."""
    def of(container, which, name):
        resources = container.get("resources") or {}
        value = (resources.get(which) or {}).get(name)
        if value is None and which == "requests":
            value = (resources.get("limits") or {}).get(name)  # the API server defaults requests to limits
        return value

    totals = {}
    for name, parse in (("cpu", cpu_millis), ("memory", memory_bytes), (GPU, int)):
        for which in ("requests", "limits"):
            main = [of(c, which, name) for c in spec.get("containers") or []]
            init = [of(c, which, name) for c in spec.get("initContainers") or []]
            complete = all(v is not None for v in main + init)
            value = sum(parse(v) for v in main if v is not None)
            value = max([value] + [parse(v) for v in init if v is not None])
            totals[(which, name)] = (value, complete)
    return totals


def _fmt_cpu(millis):
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def _fmt_mem(value):
    return f"{int(math.ceil(value / 1024.0 ** 2))}Mi"


def _quota(services, options, warnings):
    mode = options["quota"]
    if mode == "none":
        return None, None
    if mode == "fixed":
        if not options["quota_hard"]:
            raise InputError("quota is fixed but quota_hard is empty: give the ResourceQuota's hard limits "
                             "(mcp_deploy_quota_hard) or use quota auto", key="quota_hard")
        return {str(k): str(v) for k, v in options["quota_hard"].items()}, {"mode": "fixed"}
    headroom = 1 + float(options["quota_headroom"]) / 100.0
    pods, sums, complete = 0, {}, {}
    for svc in services.values():
        spec = _pod_spec(svc.workload)
        if svc.kind == "DaemonSet":
            count = 1
            warnings.append(f"{svc.name}: a DaemonSet runs a pod per node; the quota counts one (raise "
                            "mcp_deploy_quota_headroom or use a fixed quota on many nodes)")
        else:
            count = svc.hpa["max"] if svc.hpa else (svc.replicas or 0)
            strategy = (svc.workload.get("spec") or {}).get("strategy") or {}
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                count += _percent_or_int((strategy.get("rollingUpdate") or {}).get("maxSurge", "25%"), count)
        pods += count
        for key, (value, whole) in _pod_resources(spec).items():
            sums[key] = sums.get(key, 0) + value * count
            complete[key] = complete.get(key, True) and whole
    hard = {"pods": str(int(math.ceil(pods * headroom)))}
    left_out = []
    for (which, name), total in sorted(sums.items()):
        if name == GPU:
            if which == "requests" and total:
                hard[f"requests.{GPU}"] = str(int(math.ceil(total * headroom)))
            continue
        # a quota on a compute resource makes the API server refuse every pod that does not set it
        if not complete[(which, name)]:
            left_out.append(f"{which}.{name}")
            continue
        value = total * headroom
        hard[f"{which}.{name}"] = _fmt_cpu(int(math.ceil(value))) if name == "cpu" else _fmt_mem(value)
    return hard, {"mode": "auto", "headroom_percent": options["quota_headroom"], "pods_counted": pods,
                  "left_out": left_out}


def _meta(name, namespace, labels):
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def build_plan(manifests, options, live=None):
    """The plan: waves of objects to apply, what each adds, what is missing; raises InputError on bad input.

    ``manifests``: :func:`load_manifests`'s list. ``options``: see DEFAULTS. ``live``: a :class:`Live`.
    """
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in (options or {}).items() if v is not None})
    opts["front_door"] = {**DEFAULTS["front_door"], **(opts.get("front_door") or {})}
    live = live or Live()
    ns, stack = opts["namespace"], opts["stack"]
    warnings = []

    services, others, secret_files = {}, [], {}
    for item in manifests:
        obj = copy.deepcopy(item["obj"])
        obj_ns = (obj.get("metadata") or {}).get("namespace")
        if obj["kind"] == "Secret":
            if obj_ns and obj_ns != ns:
                raise InputError(f"{item['file']}: Secret {obj['metadata']['name']} is in namespace {obj_ns}, the "
                                 f"deployment goes to {ns}: convert with namespace {ns} (or none)",
                                 object=item["file"], reason="namespace_mismatch")
            secret_files[obj["metadata"]["name"]] = {"file": item["file"], "keys": obj["keys"]}
            continue
        if obj["kind"] == "Namespace":
            continue  # the plan makes its own
        if obj_ns and obj_ns != ns:
            warnings.append(f"{os.path.basename(item['file'])}: namespace {obj_ns} replaced by {ns}")
        if obj["kind"] in WORKLOAD_KINDS:
            svc = _Service(obj, item["file"])
            if svc.name in services:
                raise InputError(f"two workloads are named {svc.name} ({services[svc.name].file}, {item['file']})",
                                 object=item["file"], reason="duplicate")
            services[svc.name] = svc
        else:
            others.append(obj)
    if not services:
        raise InputError("the manifests hold no Deployment, DaemonSet or StatefulSet: nothing to deploy",
                         reason="no_workloads")
    for obj in others:
        if obj["kind"] == "Service" and obj["metadata"]["name"] in services:
            services[obj["metadata"]["name"]].service = obj
    for svc in services.values():
        _scan_refs(svc)
        svc.hpa = _hpa_of(svc, opts, warnings)
    _dependencies(services, opts)
    present, selected = _waves(services, opts)
    only = list(opts.get("services") or [])
    unknown = [name for name in only if name not in services]
    if unknown:
        raise InputError(f"services: {', '.join(unknown)} is not a service of the manifests ({', '.join(sorted(services))})"
                         "; fix mcp_deploy_services", key="services", reason="unknown_service", unknown=unknown)
    chosen = set(only) if only else set(services)
    for svc in services.values():
        for dep in sorted(svc.depends_on):
            if present.index(services[dep].wave) > present.index(svc.wave):
                warnings.append(f"{svc.name} ({svc.wave}) depends on {dep}, which comes in a later wave ({services[dep].wave})")

    # --- secrets: every one a selected service references must come from somewhere, before anything is applied
    selected_services = sorted(n for n, s in services.items() if s.wave in selected and n in chosen)
    required = {}
    for name in selected_services:
        for secret in sorted(services[name].refs["Secret"]):
            entry = required.setdefault(secret, {"name": secret, "keys": set(), "services": []})
            entry["keys"].update(services[name].secret_keys.get(secret, set()))
            entry["services"].append(name)
    secret_plan, missing = [], []
    var_keys = {k: set(v or []) for k, v in (opts["secret_keys"] or {}).items()}
    file_keys = {k: set(v or []) for k, v in (opts["secret_file_keys"] or {}).items()}
    for secret in sorted(required):
        entry = required[secret]
        keys = sorted(entry["keys"])
        given = var_keys.get(secret, set()) | file_keys.get(secret, set())
        if secret in var_keys or secret in file_keys:
            source = "variables" if secret in var_keys and secret not in file_keys else (
                "files" if secret not in var_keys else "variables and files")
            lacking = [k for k in keys if k not in given]
        elif secret in secret_files:
            source, lacking = "manifest", [k for k in keys if k not in secret_files[secret]["keys"]]
        elif opts["use_existing_secrets"] and secret in live.secrets:
            source, lacking = "existing", [k for k in keys if k not in live.secrets[secret]]
        else:
            source, lacking = None, keys or ["<any key>"]
        secret_plan.append({"name": secret, "keys": keys, "services": entry["services"], "source": source,
                            "missing_keys": lacking})
        if source is None or lacking:
            missing.append(secret_plan[-1])
    if missing:
        lines = []
        for entry in missing:
            what = "is not given" if entry["source"] is None else (
                f"lacks key(s) {', '.join(entry['missing_keys'])} (from {entry['source']})")
            example = entry["missing_keys"][0] if entry["missing_keys"] != ["<any key>"] else "KEY"
            lines.append(f"Secret {entry['name']} (used by {', '.join(entry['services'])}) {what}: set "
                         f"mcp_deploy_secrets['{entry['name']}']['{example}'] (Ansible Vault) or "
                         f"mcp_deploy_secret_files['{entry['name']}']['{example}'] (a file on the controller)")
        raise InputError("missing secret(s); nothing was applied. " + "; ".join(lines), reason="missing_secret",
                         missing_secrets=[{k: e[k] for k in ("name", "services", "missing_keys")} for e in missing])
    unused = sorted((set(var_keys) | set(file_keys)) - set(required))
    if unused:
        warnings.append(f"secret(s) given in variables but used by no selected service: {', '.join(unused)} "
                        "(applied all the same)")

    ports = _plan_ports(services, opts, live, warnings)
    hard, quota_info = _quota(services, opts, warnings)

    # --- objects, wave by wave --------------------------------------------------------------------------------
    def labelled(obj, wave, service=None):
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = ns
        meta["labels"] = {**(meta.get("labels") or {}), PART_OF: stack, WAVE_LABEL: wave}
        if service:
            meta["labels"][SERVICE_LABEL] = service
        return obj

    base = {PART_OF: stack, WAVE_LABEL: SHARED}
    shared = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {PART_OF: stack}}}]
    if hard:
        shared.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("mcp-deploy", ns, base),
                       "spec": {"hard": hard}})
    if opts["network_policies"]:
        shared.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": _meta("default-deny-ingress", ns, base),
                       "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    # shared objects (ConfigMaps, PVCs, ServiceAccounts): those the selected services reference
    wanted_shared = {(kind, name) for n in selected_services for kind, names in services[n].refs.items()
                     for name in names if kind != "Secret"}
    stray = []
    for obj in others:
        if obj["kind"] == "Service" and obj["metadata"]["name"] in services:
            continue
        if _key(obj) in wanted_shared:
            shared.append(labelled(obj, SHARED))
        elif obj["kind"] in SHARED_KINDS:
            continue  # referenced only by services of waves not selected
        else:
            stray.append(obj)
    for obj in stray:  # anything else compose_convert wrote goes with the first selected wave's shared step
        shared.append(labelled(obj, SHARED))
        warnings.append(f"{obj['kind']} {obj['metadata']['name']} belongs to no service: applied with the shared objects")
    shared_src = sorted(secret_files[s["name"]]["file"] for s in secret_plan if s["source"] == "manifest")

    front = opts["front_door"]
    peers = [{"ipBlock": {"cidr": cidr}} for cidr in front.get("cidrs") or []]
    if front.get("namespace_labels") or front.get("pod_labels"):
        peer = {}
        if front.get("namespace_labels"):
            peer["namespaceSelector"] = {"matchLabels": dict(front["namespace_labels"])}
        if front.get("pod_labels"):
            peer["podSelector"] = {"matchLabels": dict(front["pod_labels"])}
        peers.append(peer)
    dependents = {}
    for svc in services.values():
        for dep in svc.depends_on:
            dependents.setdefault(dep, set()).add(svc.name)

    waves = []
    others_keys = set()  # objects of services left out by ``services``: still the stack's (never pruned)
    for wave in present:
        objects, report = [], []
        for name in sorted(n for n, s in services.items() if s.wave == wave):
            svc = services[name]
            if name not in chosen:
                others_keys |= {_key(svc.workload)} | ({_key(svc.service)} if svc.service is not None else set())
                others_keys |= {(kind, f"{name}{suffix}") for kind, suffix in (
                    ("PodDisruptionBudget", ""), ("HorizontalPodAutoscaler", ""), ("NetworkPolicy", "-ingress"))}
                continue
            workload = labelled(svc.workload, wave, name)
            if svc.hpa:
                workload["spec"].pop("replicas", None)  # the autoscaler owns it; applying it would fight the HPA
            objects.append(workload)
            if svc.service is not None:
                objects.append(labelled(svc.service, wave, name))
            labels = {PART_OF: stack, WAVE_LABEL: wave, SERVICE_LABEL: name}
            floor = svc.hpa["min"] if svc.hpa else (svc.replicas or 0)
            pdb = None
            if opts["pdb"] and svc.kind != "DaemonSet" and floor >= 2:
                key = "maxUnavailable" if opts["pdb_policy"] == "max_unavailable" else "minAvailable"
                pdb = {key: opts["pdb_value"]}
                objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                "metadata": _meta(name, ns, labels),
                                "spec": {**pdb, "selector": {"matchLabels": dict(svc.selector)}}})
            if svc.hpa:
                objects.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                                "metadata": _meta(name, ns, labels),
                                "spec": {"scaleTargetRef": {"apiVersion": workload["apiVersion"], "kind": svc.kind,
                                                            "name": name},
                                         "minReplicas": svc.hpa["min"], "maxReplicas": svc.hpa["max"],
                                         "metrics": [{"type": "Resource", "resource": {
                                             "name": "cpu", "target": {"type": "Utilization",
                                                                       "averageUtilization": svc.hpa["cpu"]}}}]}})
            container_ports = svc.container_ports()
            allowed_from = sorted(dependents.get(name, set()))
            if opts["network_policies"] and container_ports:
                rule_ports = [{"port": p["port"], "protocol": p["protocol"]} for p in container_ports]
                ingress = []
                if peers:
                    ingress.append({"from": copy.deepcopy(peers), "ports": copy.deepcopy(rule_ports)})
                if allowed_from:
                    ingress.append({"from": [{"podSelector": {"matchLabels": dict(services[d].selector)}}
                                             for d in allowed_from], "ports": copy.deepcopy(rule_ports)})
                objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                "metadata": _meta(f"{name}-ingress", ns, labels),
                                "spec": {"podSelector": {"matchLabels": dict(svc.selector)}, "policyTypes": ["Ingress"],
                                         "ingress": ingress}})
            probe = _meta_value(svc.workload, PROBE_LABEL)
            svc_ports = [p for p in ports if p["service"] == name]
            report.append({
                "name": name, "kind": svc.kind, "replicas": svc.replicas, "criticality": svc.criticality,
                "gpus": svc.gpus, "hpa": svc.hpa, "pdb": pdb, "depends_on": sorted(svc.depends_on),
                "allowed_from": allowed_from, "secrets": sorted(svc.refs["Secret"]),
                "service_type": (svc.service or {}).get("spec", {}).get("type"),
                "ports": [{k: p[k] for k in ("port", "protocol", "node_port")} for p in svc_ports],
                "probe": bool(svc_ports) and str(probe).lower() not in ("false", "no", "0", "off"),
                "probe_path": _meta_value(svc.workload, PROBE_PATH) or opts["probe_path"],
            })
        # the Namespace again first: in check mode a wave applied alone into a namespace this run creates is then
        # reported as would-be-created instead of failing a dry run (one request, unchanged otherwise)
        waves.append({"name": wave, "selected": wave in selected and bool(report), "services": report,
                      "definitions": [copy.deepcopy(shared[0])] + objects})

    # --- prune candidates: the stack's objects we applied that the stack no longer has ------------------------
    desired = {_key(o) for o in shared} | {("Secret", s["name"]) for s in secret_plan} | \
        {("Secret", n) for n in set(var_keys) | set(file_keys)} | {("Secret", n) for n in secret_files}
    for wave in waves:
        desired |= {_key(o) for o in wave["definitions"]}
    desired |= others_keys
    # objects of services in waves that are not selected stay: they are still the stack's
    prune = []
    for obj in live.objects:
        meta = obj.get("metadata") or {}
        if _key(obj) in desired or obj.get("kind") == "Namespace":
            continue
        managers = {m.get("manager") for m in meta.get("managedFields") or [] if m.get("operation") == "Apply"}
        if opts["field_manager"] not in managers:
            continue
        prune.append({"apiVersion": obj.get("apiVersion"), "kind": obj["kind"], "namespace": ns,
                      "name": meta.get("name")})
    prune.sort(key=lambda o: (o["kind"], o["name"]))

    selected_waves = [w for w in waves if w["selected"]]
    counts = {"services": len(services), "selected_services": len(selected_services),
              "objects": len(shared) + len(shared_src) + sum(len(w["definitions"]) - 1 for w in selected_waves),
              "pdbs": sum(1 for w in selected_waves for o in w["definitions"] if o["kind"] == "PodDisruptionBudget"),
              "hpas": sum(1 for w in selected_waves for o in w["definitions"] if o["kind"] == "HorizontalPodAutoscaler"),
              "network_policies": sum(1 for o in shared if o["kind"] == "NetworkPolicy") + sum(
                  1 for w in selected_waves for o in w["definitions"] if o["kind"] == "NetworkPolicy")}
    return {
        "namespace": ns,
        "stack": stack,
        "wave_order": present,
        "selected_waves": selected,
        "shared": {"definitions": shared, "src": shared_src},
        "waves": waves,
        "secrets": secret_plan,
        "ports": ports,
        "node_ports": [p for p in ports if p["node_port"]],
        "load_balancer_plan": [p for p in ports if p["action"] == "load_balancer_plan"],
        "quota": {"hard": hard, **(quota_info or {"mode": "none"})},
        "prune": prune,
        "selector": f"{PART_OF}={stack}",
        "counts": counts,
        "plan_warnings": warnings,
    }


def summary(plan):
    """One line for the task's msg."""
    waves = ", ".join(f"{w['name']} ({len(w['services'])})" + ("" if w["selected"] else " skipped")
                      for w in plan["waves"])
    return (f"{plan['counts']['selected_services']} of {plan['counts']['services']} services in namespace "
            f"{plan['namespace']}: waves {waves}; {plan['counts']['objects']} objects, {plan['counts']['pdbs']} PDBs, "
            f"{plan['counts']['hpas']} HPAs, {plan['counts']['network_policies']} NetworkPolicies, "
            f"{len(plan['node_ports'])} NodePorts, {len(plan['prune'])} to prune")


# --- runner: what the module calls ------------------------------------------------------------------------------

OPTION_NAMES = tuple(k for k in DEFAULTS)


def read_live(client, options, want_prune):
    """What the plan needs from the cluster, in one list call per kind: every Service (NodePorts), the namespace's
    Secrets reduced to their key names at once (values are dropped as they are read), and, for pruning, the stack's
    objects of each kind the plan makes."""
    namespace, stack = options["namespace"], options["stack"]
    services = [{"metadata": {k: (s.get("metadata") or {}).get(k) for k in ("name", "namespace")},
                 "spec": {"ports": [{k: p.get(k) for k in ("port", "protocol", "nodePort")}
                                    for p in (s.get("spec") or {}).get("ports") or []]}}
                for s in client.list_all("v1", "Service")]
    secrets = {}
    if options.get("use_existing_secrets", True):
        for secret in client.list_all("v1", "Secret", namespace=namespace):
            secrets[secret["metadata"]["name"]] = sorted(secret.get("data") or {})
            secret.pop("data", None)
    objects = []
    if want_prune:
        for api_version, kind in PRUNE_KINDS:
            for obj in client.list_all(api_version, kind, namespace=namespace, label_selector=f"{PART_OF}={stack}"):
                objects.append({"apiVersion": obj.get("apiVersion", api_version), "kind": obj.get("kind", kind),
                                "metadata": {"name": obj["metadata"]["name"],
                                             "managedFields": [{"manager": m.get("manager"),
                                                                "operation": m.get("operation")}
                                                               for m in obj["metadata"].get("managedFields") or []]}})
    return Live(services=services, secrets=secrets, objects=objects)


def run(params, client=None, project_loader=None):
    """Read the manifests (and compose files for ``depends_on``), read the cluster when ``client`` is given, plan.

    ``project_loader``: ``_compose.load_project`` (passed in so this module needs no compose parser unless asked).
    """
    options = {k: params.get(k) for k in OPTION_NAMES if params.get(k) is not None}
    manifests = load_manifests(params["src"])
    if params.get("compose_src"):
        project = project_loader(params["compose_src"], env=params.get("compose_env") or {})
        options["compose_dependencies"] = compose_dependencies(project.services)
    merged = {**DEFAULTS, **options}
    live = read_live(client, merged, bool(params.get("prune"))) if client is not None else Live()
    plan = build_plan(manifests, options, live)
    if not params.get("prune"):
        plan["prune"] = []
    plan["live"] = client is not None
    plan["api_calls"] = client.api_calls if client is not None else 0
    plan["msg"] = summary(plan)
    plan["changed"] = False
    return plan
