#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mcp_deploy_plan
short_description: Plan the deployment of a converted MCP stack - extra objects, waves, secrets, NodePorts
version_added: 0.1.0
author:
  - Sophia AI platform engineering (@sophia-ai)
description:
  - Reads the manifests that M(sophia_ai.platform.compose_convert) wrote (O(src), its index C(.compose-convert.index)
    naming the files) and returns what role C(sophia_ai.platform.mcp_deploy) applies, wave by wave, with
    M(sophia_ai.platform.k8s_apply). It changes nothing, anywhere.
  - "Adds to the converted objects: the Namespace; the labels C(app.kubernetes.io/part-of) (O(stack)),
    C(sophia.ai/deploy-wave) and C(sophia.ai/service); a PodDisruptionBudget for every workload with two or more
    replicas (O(pdb)); NetworkPolicies (O(network_policies)) - C(default-deny-ingress) for the namespace, and per
    service C(<service>-ingress) allowing the front door (O(front_door)) and the services that depend on it to its
    container ports; a ResourceQuota C(mcp-deploy) (O(quota)); a HorizontalPodAutoscaler (C(autoscaling/v2)) for each
    service whose compose labels ask for one (C(sophia.ai/hpa-max), optional C(sophia.ai/hpa-min) and
    C(sophia.ai/hpa-cpu), under C(deploy.labels) or C(labels))."
  - "Waves: C(non-critical) first, then C(critical), by each service's C(sophia.ai/criticality) label (none counts as
    O(default_criticality)). With O(gpu_wave) the services that ask for C(nvidia.com/gpu) form a wave of their own
    after the others of the same criticality (C(non-critical-gpu), C(critical-gpu)): GPU pods start slowly and
    depend on scarce nodes and the device plugin, so they never hold back the verification of the other services.
    O(waves) selects which waves the role applies (phase 2 - V(non-critical), which includes C(non-critical-gpu))."
  - "Dependencies (for the NetworkPolicies): compose C(depends_on) of the files in O(compose_src), the label or
    annotation C(sophia.ai/depends-on) on the workload (service names separated by commas, spaces, C(.) or C(_) -
    label values allow no commas), and O(dependencies). C(A) depending on C(B) lets C(A)'s pods reach C(B)'s ports.
    An unknown name fails."
  - "Secrets: every Secret a selected service references (volumes, C(secretKeyRef), C(envFrom), image pull secrets)
    must come from O(secret_keys) (the role's Ansible Vault variables), O(secret_file_keys) (files on the controller),
    a Secret manifest in O(src), or, with O(use_existing_secrets), a Secret already in the namespace with the keys.
    Otherwise the task fails before anything is applied, naming each missing Secret, the services that use it and
    the variable to set. The module is given key names only, never values; Secret manifests in O(src) are returned
    as files (C(src) of RV(shared)), never read into the result."
  - "NodePorts: Services keep their converted type (V(ClusterIP) for Swarm's host-mode ports, V(LoadBalancer) for
    ingress-mode ones) unless O(expose=NodePort). A LoadBalancer Service whose port Swarm already publishes on the
    same hosts (O(swarm_ports)) becomes a NodePort Service (O(port_clash=node_port)), or stays a LoadBalancer that
    needs addresses of its own, reported in RV(load_balancer_plan) (O(port_clash=load_balancer)). Every NodePort is
    set explicitly from O(node_port_range), never one Swarm publishes, never one another Service holds, and the one
    a live Service of ours already has is kept, so the plan is stable from run to run."
  - "With a cluster connection (the default; O(live)) the module reads, one list call per kind - every Service (the
    NodePorts in use), the namespace's Secrets (key names only; values are dropped as they are read), and with
    O(prune) the stack's objects, to return the ones that left the stack in RV(prune)."
  - Why our own module instead of C(kubernetes.core) - no module there plans objects from manifests (PDBs, policies,
    quotas, NodePorts); C(kubernetes.core.k8s_info) could read the live state, but one task per kind, and a planner
    in Jinja would not be unit-testable. This one reads files on the controller and is plain Python.
extends_documentation_fragment:
  - sophia_ai.platform._connection
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.INFO_MODULE
  - sophia_ai.platform._attributes.ACTIONGROUP_PLATFORM
options:
  src:
    description: The directory of converted manifests (M(sophia_ai.platform.compose_convert)'s O(sophia_ai.platform.compose_convert#module:dest)).
    type: path
    required: true
  namespace:
    description: The namespace of every object (the converted manifests' own namespace is replaced, with a warning).
    type: str
    default: sophia-mcp
  stack:
    description: Value of the C(app.kubernetes.io/part-of) label on every object; pruning selects on it.
    type: str
    default: sophia-mcp
  waves:
    description:
      - The waves to plan for applying; empty - all. V(non-critical) and V(critical) include their C(-gpu) wave.
      - Choices - V(all), V(non-critical), V(non-critical-gpu), V(critical), V(critical-gpu).
    type: list
    elements: str
    default: []
  services:
    description:
      - Only these services of the selected waves (empty - all of them), for example the ones a phase 3 run cuts
        over. The other services' objects are left as they are (never pruned). A name the manifests do not have
        fails the task before anything is planned.
    type: list
    elements: str
    default: []
  gpu_wave:
    description: Give GPU services a wave of their own after the other services of the same criticality.
    type: bool
    default: true
  default_criticality:
    description: Criticality of services without the C(sophia.ai/criticality) label.
    type: str
    choices: [critical, non-critical]
    default: critical
  dependencies:
    description: 'More dependencies, C({service: [services it calls]}).'
    type: dict
    default: {}
  compose_src:
    description: The compose files the manifests came from, read only for C(depends_on) (merged as compose_convert merges them).
    type: list
    elements: path
    default: []
  compose_env:
    description: Variables to interpolate O(compose_src) with (as compose_convert's O(sophia_ai.platform.compose_convert#module:env)).
    type: dict
    default: {}
  network_policies:
    description: Plan the NetworkPolicies (default deny of ingress, allows from the front door and dependents).
    type: bool
    default: true
  front_door:
    description:
      - Who may reach every service's ports. Without any entry only the declared dependents may (and, on most
        network plugins, the node itself, for probes).
      - Traffic through a NodePort from another node arrives from that node's address (SNAT); list the nodes' or the
        pod network's CIDR where the front door reaches NodePorts.
    type: dict
    default: {}
    suboptions:
      cidrs:
        description: Addresses of the front door's hosts (C(ipBlock)).
        type: list
        elements: str
        default: []
      namespace_labels:
        description: Labels of the front door's namespace (C(namespaceSelector)), when it runs in the cluster.
        type: dict
        default: {}
      pod_labels:
        description: Labels of the front door's pods (C(podSelector); with O(front_door.namespace_labels), both must match).
        type: dict
        default: {}
  pdb:
    description: Plan a PodDisruptionBudget for every workload with two or more replicas (or an autoscaler minimum of two or more).
    type: bool
    default: true
  pdb_policy:
    description: V(max_unavailable) sets C(maxUnavailable), V(min_available) C(minAvailable), to O(pdb_value).
    type: str
    choices: [max_unavailable, min_available]
    default: max_unavailable
  pdb_value:
    description: The number of pods for O(pdb_policy).
    type: int
    default: 1
  quota:
    description:
      - V(auto) - a ResourceQuota from the sum over all waves of replicas (an autoscaler's maximum, plus the rolling
        update's surge) times each pod's requests and limits, plus O(quota_headroom) percent. A CPU or memory request or
        limit goes in only when every container sets it (the API server refuses pods that do not set a resource a
        quota tracks); C(pods) and C(requests.nvidia.com/gpu) always. V(fixed) - O(quota_hard). V(none) - no quota.
    type: str
    choices: [auto, fixed, none]
    default: auto
  quota_headroom:
    description: Percent added to the computed quota.
    type: int
    default: 50
  quota_hard:
    description: 'The ResourceQuota''s C(spec.hard) with O(quota=fixed), for example C({pods: "60", requests.cpu: "24"}).'
    type: dict
    default: {}
  hpa:
    description: Plan the HorizontalPodAutoscalers the compose labels ask for (their workloads' C(spec.replicas) is then left to the autoscaler).
    type: bool
    default: true
  hpa_cpu:
    description: Target CPU utilisation (percent of the request) when C(sophia.ai/hpa-cpu) is not set.
    type: int
    default: 80
  expose:
    description:
      - V(keep) - Service types as converted.
      - V(NodePort) - every ClusterIP Service with ports becomes a NodePort Service (for a front door outside the cluster).
    type: str
    choices: [keep, NodePort]
    default: keep
  swarm_ports:
    description:
      - Ports Swarm publishes on the hosts the cluster's nodes run on - integers (TCP) or dicts with C(published)
        (or C(port)), C(protocol) and optionally C(hosts), as in C(sophia_ai.platform.swarm_audit)'s C(services[].ports).
    type: list
    elements: raw
    default: []
  k8s_hosts:
    description: The cluster's hosts; an entry of O(swarm_ports) whose C(hosts) share none of them does not clash.
    type: list
    elements: str
    default: []
  node_port_range:
    description: The API server's C(--service-node-port-range) (K3s's and Kubernetes' default 30000-32767).
    type: str
    default: 30000-32767
  port_clash:
    description: What a LoadBalancer Service on a port Swarm publishes becomes - V(node_port), or V(load_balancer) (kept, reported in RV(load_balancer_plan)).
    type: str
    choices: [node_port, load_balancer]
    default: node_port
  secret_keys:
    description: 'The Secrets the role has values for in variables, C({secret: [key, ...]}) - key names only.'
    type: dict
    default: {}
  secret_file_keys:
    description: 'The Secrets the role has files for, C({secret: [key, ...]}) - key names only.'
    type: dict
    default: {}
  use_existing_secrets:
    description: A referenced Secret that no variable gives is fine when the namespace already has it with the keys.
    type: bool
    default: true
  probe_path:
    description: MCP endpoint path probed on each service (a workload label or annotation C(sophia.ai/mcp-path) wins; C(sophia.ai/probe=false) skips one).
    type: str
    default: /mcp
  field_manager:
    description: The field manager the role applies with; only objects it applied are prune candidates.
    type: str
    default: sophia-mcp-deploy
  prune:
    description: Read the stack's objects in the namespace and return those that are no longer in the stack (RV(prune)).
    type: bool
    default: false
  live:
    description: Read the cluster (NodePorts in use, existing Secrets, prune candidates). V(false) plans from the files alone.
    type: bool
    default: true
notes:
  - "Services with an autoscaler - the applied Deployment leaves out C(spec.replicas), which the autoscaler owns:
    applying it would reset the scale on every run."
  - "The NetworkPolicies restrict ingress only; egress stays open. The lab's kube-router (and most network plugins)
    let the node itself reach its pods, which is how the role's probes and kubelet health checks get through."
seealso:
  - module: sophia_ai.platform.compose_convert
  - module: sophia_ai.platform.k8s_apply
"""

EXAMPLES = r"""
- name: Plan the non-critical wave of the converted stack
  sophia_ai.platform.mcp_deploy_plan:
    src: build/manifests
    namespace: sophia
    waves: [non-critical]
    expose: NodePort
    swarm_ports: "{{ audit.services | map(attribute='ports') | flatten }}"
    secret_keys:
      mcp-api-key: [mcp_api_key]
    front_door:
      cidrs: [10.0.10.0/24]
    kubeconfig: ~/.kube/k3s.yaml
  register: plan

- name: Plan offline, in check mode too (the module only reads)
  sophia_ai.platform.mcp_deploy_plan:
    src: build/manifests
    live: false
  check_mode: true
"""

RETURN = r"""
namespace:
  description: The namespace.
  returned: always
  type: str
  sample: sophia
wave_order:
  description: The waves of the stack, in the order they are applied.
  returned: always
  type: list
  elements: str
  sample: [non-critical, non-critical-gpu, critical, critical-gpu]
selected_waves:
  description: The waves O(waves) selected.
  returned: always
  type: list
  elements: str
  sample: [non-critical, non-critical-gpu]
shared:
  description:
    - Applied before the first wave - C(definitions) (the Namespace, the ResourceQuota, C(default-deny-ingress), the
      ConfigMaps and volumes the selected services use) and C(src) (Secret manifest files, applied from disk).
  returned: always
  type: dict
  sample: {definitions: [{apiVersion: v1, kind: Namespace, metadata: {name: sophia}}], src: []}
waves:
  description:
    - Every wave - C(name), C(selected), C(definitions) (the objects to apply) and C(services) (per service -
      C(name), C(kind), C(replicas), C(criticality), C(gpus), C(hpa), C(pdb), C(depends_on), C(allowed_from),
      C(secrets), C(service_type), C(ports) with their C(node_port), C(probe), C(probe_path)).
  returned: always
  type: list
  elements: dict
  sample:
    - name: non-critical
      selected: true
      definitions: []
      services:
        - {name: mcp-linear, kind: Deployment, replicas: 2, criticality: non-critical, gpus: 0, hpa: null,
           pdb: {maxUnavailable: 1}, depends_on: [], allowed_from: [], secrets: [mcp-api-key],
           service_type: NodePort, ports: [{port: 9008, protocol: TCP, node_port: 30001}], probe: true,
           probe_path: /mcp}
secrets:
  description:
    - Each Secret the selected services reference - C(name), C(keys), C(services), C(source) (V(variables), V(files),
      V(manifest), V(existing)), C(missing_keys). Never a value.
  returned: always
  type: list
  elements: dict
  sample: [{name: mcp-api-key, keys: [mcp_api_key], services: [mcp-linear], source: variables, missing_keys: []}]
ports:
  description:
    - Every Service port - C(service), C(port), C(protocol), C(type), C(converted_type), C(node_port), C(swarm_clash)
      (Swarm publishes that port), C(action) (V(none), V(kept), V(assigned), V(moved), V(load_balancer_plan)).
  returned: always
  type: list
  elements: dict
  sample: [{service: mcp-linear, port: 9008, protocol: TCP, type: NodePort, converted_type: ClusterIP, node_port: 30001,
            swarm_clash: false, action: kept}]
node_ports:
  description: The entries of RV(ports) that have a NodePort.
  returned: always
  type: list
  elements: dict
load_balancer_plan:
  description: LoadBalancer Services on ports Swarm publishes on the same hosts; they need load balancer addresses other than the hosts'.
  returned: always
  type: list
  elements: dict
quota:
  description: The ResourceQuota's C(hard) (null without one), C(mode), and for V(auto) the C(headroom_percent), C(pods_counted) and what was C(left_out).
  returned: always
  type: dict
  sample: {hard: {pods: "75", requests.nvidia.com/gpu: "9"}, mode: auto, headroom_percent: 50, pods_counted: 50,
           left_out: [requests.cpu]}
prune:
  description: The stack's objects in the namespace, applied by O(field_manager), that the stack no longer has (with O(prune)).
  returned: always
  type: list
  elements: dict
  sample: [{apiVersion: apps/v1, kind: Deployment, namespace: sophia, name: mcp-retired}]
selector:
  description: The label selector of the stack's objects.
  returned: always
  type: str
  sample: app.kubernetes.io/part-of=sophia-mcp
counts:
  description: C(services), C(selected_services), C(objects), C(pdbs), C(hpas), C(network_policies) of the selected waves.
  returned: always
  type: dict
plan_warnings:
  description: What the plan could not do as asked, or did differently (also sent as Ansible warnings).
  returned: always
  type: list
  elements: str
live:
  description: Whether the cluster was read.
  returned: always
  type: bool
api_calls:
  description: HTTP requests sent to the API server.
  returned: always
  type: int
  sample: 2
msg:
  description: The plan in one line.
  returned: always
  type: str
  sample: "13 of 28 services in namespace sophia: waves non-critical (12), non-critical-gpu (1), critical (12) skipped, ..."
missing_secrets:
  description: With the failure for missing secrets - C(name), C(services) and C(missing_keys) of each.
  returned: failure
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._args import connection_spec
from ansible_collections.sophia_ai.platform.plugins.module_utils._compose import load_project
from ansible_collections.sophia_ai.platform.plugins.module_utils._deploy_plan import run
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect


def argument_spec():
    spec = connection_spec()
    spec.update(
        src={"type": "path", "required": True},
        namespace={"type": "str", "default": "sophia-mcp"},
        stack={"type": "str", "default": "sophia-mcp"},
        waves={"type": "list", "elements": "str", "default": []},
        services={"type": "list", "elements": "str", "default": []},
        gpu_wave={"type": "bool", "default": True},
        default_criticality={"type": "str", "choices": ["critical", "non-critical"], "default": "critical"},
        dependencies={"type": "dict", "default": {}},
        compose_src={"type": "list", "elements": "path", "default": []},
        compose_env={"type": "dict", "default": {}},
        network_policies={"type": "bool", "default": True},
        front_door={"type": "dict", "default": {}, "options": {
            "cidrs": {"type": "list", "elements": "str", "default": []},
            "namespace_labels": {"type": "dict", "default": {}},
            "pod_labels": {"type": "dict", "default": {}},
        }},
        pdb={"type": "bool", "default": True},
        pdb_policy={"type": "str", "choices": ["max_unavailable", "min_available"], "default": "max_unavailable"},
        pdb_value={"type": "int", "default": 1},
        quota={"type": "str", "choices": ["auto", "fixed", "none"], "default": "auto"},
        quota_headroom={"type": "int", "default": 50},
        quota_hard={"type": "dict", "default": {}},
        hpa={"type": "bool", "default": True},
        hpa_cpu={"type": "int", "default": 80},
        expose={"type": "str", "choices": ["keep", "NodePort"], "default": "keep"},
        swarm_ports={"type": "list", "elements": "raw", "default": []},
        k8s_hosts={"type": "list", "elements": "str", "default": []},
        node_port_range={"type": "str", "default": "30000-32767"},
        port_clash={"type": "str", "choices": ["node_port", "load_balancer"], "default": "node_port"},
        secret_keys={"type": "dict", "default": {}, "no_log": False},  # key names, never values
        secret_file_keys={"type": "dict", "default": {}, "no_log": False},
        use_existing_secrets={"type": "bool", "default": True},
        probe_path={"type": "str", "default": "/mcp"},
        field_manager={"type": "str", "default": "sophia-mcp-deploy"},
        prune={"type": "bool", "default": False},
        live={"type": "bool", "default": True},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    client = None
    try:
        if module.params["live"]:
            client = connect(module.params)
        result = run(module.params, client=client, project_loader=load_project)
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    finally:
        if client is not None:
            client.close()
    for line in result["plan_warnings"]:
        module.warn(line)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
