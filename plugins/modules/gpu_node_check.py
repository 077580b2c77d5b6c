#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_node_check
short_description: Check GPU hosts (nvidia-smi) or a cluster's GPU nodes (Kubernetes API) for readiness
version_added: 0.1.0
description:
  - Read-only readiness check for GPU inference, in one of two modes.
  - O(mode=host) runs on a GPU host. It runs C(nvidia-smi -q -x) (or the faster C(--query-gpu) CSV with
    O(query=csv)), returns facts per GPU (index, UUID, product, memory, driver and CUDA versions, ECC mode and
    uncorrected errors, MIG, persistence and compute mode, temperature, power draw and limit, utilisation, PCI
    bus id), and checks them against the options below. It also reports whether the NVIDIA Container Toolkit is
    installed and whether containerd or K3s has an C(nvidia) runtime configured.
  - O(mode=cluster) runs against the Kubernetes API. It lists the GPU nodes (O(gpu_node_selector)), every pod that
    has not ended and the device plugin DaemonSets, one paginated list call per kind and never one call per node,
    and returns per node and in total the GPU resource's capacity, allocatable and requested GPUs (the
    allocation ratio), GPU Feature Discovery labels, Ready and taints, plus the device plugin's desired and
    ready pods and the number of API calls made.
  - Each failed check names the GPU or node, the check, the value seen, the value wanted and how to fix it. With
    O(fail_on_check=true) the task fails listing them; with V(false) it only reports them in RV(failed_checks).
  - Why not kubernetes.core.k8s_info - it returns raw objects through the dynamic client (with its discovery
    requests) and computes nothing; this module reads each list raw (1,000 nodes in well under 2 s on the lab),
    applies the scheduler's effective-request rule to every pod, checks, and counts its API calls. Why our own
    nvidia-smi parsing - no collection parses nvidia-smi's XML or checks GPUs.
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._connection
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.INFO_MODULE
  - sophia_ai.platform._attributes.ACTIONGROUP_PLATFORM
options:
  mode:
    description:
      - V(host) checks the GPUs of the host the task runs on; V(cluster) checks the GPU nodes of a Kubernetes
        cluster through its API (the connection options apply only to this mode).
    type: str
    required: true
    choices: [host, cluster]
  fail_on_check:
    description:
      - Fail the task when a check fails, listing every failed check and how to fix it.
      - With V(false) the task succeeds and reports the failed checks in RV(failed_checks).
    type: bool
    default: true
  nvidia_smi_path:
    description:
      - O(mode=host). The nvidia-smi binary; a name is looked up on E(PATH) (and C(/usr/bin), C(/usr/local/bin)).
    type: str
    default: nvidia-smi
  query:
    description:
      - O(mode=host). V(xml) runs C(nvidia-smi -q -x) (every fact). V(csv) runs C(nvidia-smi --query-gpu=...),
        faster on hosts with many GPUs, but without the CUDA version (O(min_cuda_version) needs V(xml)).
    type: str
    choices: [xml, csv]
    default: xml
  min_driver_version:
    description:
      - O(mode=host). Lowest NVIDIA driver version wanted, for example V(550.54.15).
    type: str
  min_cuda_version:
    description:
      - O(mode=host). Lowest CUDA version the driver must support (as nvidia-smi reports it), for example V(12.4).
    type: str
  expected_gpu_count:
    description:
      - O(mode=host). Exact number of GPUs the host must show. Without it, a host with no GPU fails.
    type: int
  product:
    description:
      - O(mode=host). Regular expression every GPU's product name must match (Python C(re.search)), for example
        V(H100|GH200).
    type: str
  max_ecc_uncorrected:
    description:
      - O(mode=host). Most uncorrected ECC errors allowed per GPU (volatile and aggregate counts); a GPU with
        ECC disabled fails this check.
    type: int
  require_persistence:
    description:
      - O(mode=host). Every GPU must have persistence mode enabled.
    type: bool
    default: false
  mig_mode:
    description:
      - O(mode=host). The MIG mode every GPU must be in. A GPU without MIG support counts as V(disabled).
    type: str
    choices: [enabled, disabled]
  max_temperature:
    description:
      - O(mode=host). Hottest GPU temperature allowed, in degrees Celsius.
    type: int
  containerd_config_paths:
    description:
      - O(mode=host). containerd configuration files searched for a runtime named C(nvidia).
    type: list
    elements: path
    default:
      - /etc/containerd/config.toml
      - /var/lib/rancher/k3s/agent/etc/containerd/config.toml
      - /var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl
  toolkit_search_paths:
    description:
      - O(mode=host). Directories searched for the NVIDIA Container Toolkit's binaries (C(nvidia-container-runtime),
        C(nvidia-ctk), C(nvidia-container-cli)). Empty means E(PATH) plus the usual system directories and
        C(/usr/local/nvidia/toolkit).
    type: list
    elements: path
    default: []
  require_container_toolkit:
    description:
      - O(mode=host). Fail when the NVIDIA Container Toolkit is not installed.
    type: bool
    default: false
  require_nvidia_runtime:
    description:
      - O(mode=host). Fail when no containerd configuration in O(containerd_config_paths) has an C(nvidia) runtime.
    type: bool
    default: false
  gpu_node_selector:
    description:
      - O(mode=cluster). Label selector of the GPU nodes. An empty string selects every node.
    type: str
    default: gpu=true
  gpu_resource:
    description:
      - O(mode=cluster). The extended resource the device plugin advertises.
    type: str
    default: nvidia.com/gpu
  device_plugin_namespace:
    description:
      - O(mode=cluster). Namespace of the device plugin DaemonSet.
    type: str
    default: kube-system
  device_plugin_selector:
    description:
      - O(mode=cluster). Label selector of the device plugin DaemonSet(s).
    type: str
    default: app.kubernetes.io/name=nvidia-device-plugin
  min_gpu_nodes:
    description:
      - O(mode=cluster). Fewest nodes that must match O(gpu_node_selector).
    type: int
  min_total_gpus:
    description:
      - O(mode=cluster). Fewest allocatable GPUs over all GPU nodes.
    type: int
  require_ready:
    description:
      - O(mode=cluster). Every GPU node must be Ready.
    type: bool
    default: true
  require_gpu_resource:
    description:
      - O(mode=cluster). Every GPU node must advertise at least one allocatable O(gpu_resource).
    type: bool
    default: true
  require_device_plugin:
    description:
      - O(mode=cluster). A device plugin DaemonSet must exist with every desired pod ready.
      - Off by default because O(require_gpu_resource) already needs a device plugin on each node; turn it on
        once the plugin is deployed (for example after role C(sophia_ai.platform.nvidia_plugin)).
    type: bool
    default: false
  api_page_size:
    description:
      - O(mode=cluster). Objects per list request (C(limit)); each kind is listed in pages of this size.
    type: int
    default: 500
notes:
  - The module never changes anything; C(changed) is always V(false) and check mode runs the same checks.
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Check a GH200 host before it joins the cluster
  sophia_ai.platform.gpu_node_check:
    mode: host
    expected_gpu_count: 1
    product: GH200|H100
    min_driver_version: "550.54.15"
    min_cuda_version: "12.4"
    max_ecc_uncorrected: 0
    require_persistence: true
    mig_mode: disabled
    max_temperature: 85

- name: Report, without failing, what an 8x H100 host has
  sophia_ai.platform.gpu_node_check:
    mode: host
    query: csv
    expected_gpu_count: 8
    fail_on_check: false
  register: gpu_host

- name: Check the cluster's GPU nodes and the device plugin
  sophia_ai.platform.gpu_node_check:
    mode: cluster
    kubeconfig: /etc/rancher/k3s/k3s.yaml
    min_gpu_nodes: 2
    require_device_plugin: true
  register: gpu_cluster

- name: Show the allocation ratio (the utilisation goal is measured against it)
  ansible.builtin.debug:
    msg: "{{ gpu_cluster.totals.allocation_ratio }}"

- name: The same in check mode (the module only reads)
  sophia_ai.platform.gpu_node_check:
    mode: cluster
  check_mode: true
"""

RETURN = r"""
mode:
  description: The mode that ran.
  returned: always
  type: str
  sample: host
summary:
  description: One line on what was found and how many checks failed.
  returned: always
  type: str
  sample: "1 GPU (NVIDIA H100 80GB HBM3), driver 580.159.04, CUDA 13.0: 8 checks passed"
failed_checks:
  description:
    - Every failed check. In host mode each has C(gpu), in cluster mode C(node).
  returned: always
  type: list
  elements: dict
  contains:
    gpu:
      description: Host mode. The GPU as C(index (uuid)), V(all) for a host-wide check, V(none) when no GPU exists.
      type: str
      returned: in host mode
      sample: 0 (GPU-fd7e79c7-ec19-b833-57e2-b303fa4aade0)
    node:
      description: Cluster mode. The node's name, or null for a cluster-wide check.
      type: str
      returned: in cluster mode
      sample: kwok-gpu-0001
    check:
      description: The option that failed.
      type: str
      returned: always
      sample: min_driver_version
    seen:
      description: The value found.
      type: str
      returned: always
      sample: 535.54.03
    wanted:
      description: The value the option asks for.
      type: str
      returned: always
      sample: ">= 550.54.15"
    fix:
      description: How to fix it.
      type: str
      returned: always
      sample: install the NVIDIA driver branch with this version or newer, then reboot
    msg:
      description: All of the above in one sentence.
      type: str
      returned: always
      sample: "GPU 0 (GPU-fd7e...): check min_driver_version failed: seen 535.54.03, wanted >= 550.54.15. Fix: ..."
nvidia_smi:
  description: Host mode. The nvidia-smi that ran.
  returned: in host mode
  type: str
  sample: /usr/bin/nvidia-smi
driver_version:
  description: Host mode. The NVIDIA driver version.
  returned: in host mode
  type: str
  sample: 580.159.04
cuda_version:
  description: Host mode. The highest CUDA version the driver supports (null with O(query=csv)).
  returned: in host mode
  type: str
  sample: "13.0"
gpu_count:
  description: Host mode. Number of GPUs found.
  returned: in host mode
  type: int
  sample: 1
gpus:
  description: Host mode. Facts per GPU; a fact nvidia-smi reports as N/A is null.
  returned: in host mode
  type: list
  elements: dict
  sample:
    - index: 0
      uuid: GPU-fd7e79c7-ec19-b833-57e2-b303fa4aade0
      product: NVIDIA H100 80GB HBM3
      pci_bus_id: "00000000:00:06.0"
      driver_version: 580.159.04
      cuda_version: "13.0"
      memory_total_mib: 81559
      memory_used_mib: 0
      memory_free_mib: 81079
      ecc_mode: Enabled
      ecc_mode_pending: Enabled
      ecc_uncorrected_volatile: 0
      ecc_uncorrected_aggregate: 0
      mig_mode: Disabled
      mig_mode_pending: Disabled
      persistence_mode: Enabled
      compute_mode: Default
      temperature_c: 40
      power_draw_w: 122.29
      power_limit_w: 700.0
      utilization_gpu_pct: 0
      utilization_memory_pct: 0
container_runtime:
  description: Host mode. The NVIDIA Container Toolkit's binaries and the containerd configurations read.
  returned: in host mode
  type: dict
  sample:
    container_toolkit:
      installed: true
      binaries: {nvidia-container-runtime: /usr/bin/nvidia-container-runtime, nvidia-ctk: /usr/bin/nvidia-ctk,
                 nvidia-container-cli: /usr/bin/nvidia-container-cli}
    containerd:
      - {path: /var/lib/rancher/k3s/agent/etc/containerd/config.toml, exists: true, nvidia_runtime: true,
         default_runtime: null}
    nvidia_runtime_configured: true
nodes:
  description:
    - Cluster mode. Each GPU node with its GPU capacity, allocatable, requested (the effective requests of the pods
      on it that have not ended), free, allocation ratio, Ready, taints and GPU Feature Discovery labels.
  returned: in cluster mode
  type: list
  elements: dict
  sample:
    - name: kwok-gpu-0004
      ready: true
      ready_reason: null
      ready_message: null
      unschedulable: false
      taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]
      capacity: 8
      allocatable: 8
      requested: 2
      free: 6
      allocation_ratio: 0.25
      gpu_pods: 1
      product: NVIDIA-H100-80GB-HBM3
      gfd_labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3, nvidia.com/gpu.count: "8"}
totals:
  description: Cluster mode. Sums over the GPU nodes; C(pending_requested) counts GPUs that unscheduled pods ask for.
  returned: in cluster mode
  type: dict
  sample:
    gpu_nodes: 9
    ready_nodes: 9
    nodes_advertising_gpus: 9
    capacity: 26
    allocatable: 26
    requested: 2
    free: 24
    allocation_ratio: 0.0769
    gpu_pods: 1
    pending_requested: 0
    pending_pods: 0
device_plugin:
  description: Cluster mode. The device plugin DaemonSets found and their desired and ready pods.
  returned: in cluster mode
  type: dict
  sample:
    found: true
    namespace: kube-system
    selector: app.kubernetes.io/name=nvidia-device-plugin
    daemonsets: [{name: nvidia-device-plugin, namespace: kube-system, desired: 2, current: 2, ready: 2,
                  available: 2, updated: 2}]
    desired: 2
    ready: 2
api_calls:
  description: Cluster mode. HTTP requests sent to the API server (counted at the HTTP layer).
  returned: in cluster mode
  type: int
  sample: 4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._args import connection_spec
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._gpu_cluster import run_cluster_check
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect
from ansible_collections.sophia_ai.platform.plugins.module_utils._nvidia_smi import (
    DEFAULT_CONTAINERD_CONFIGS,
    run_host_check,
)


def argument_spec():
    spec = connection_spec()
    spec.update(
        mode={"type": "str", "required": True, "choices": ["host", "cluster"]},
        fail_on_check={"type": "bool", "default": True},
        nvidia_smi_path={"type": "str", "default": "nvidia-smi"},
        query={"type": "str", "choices": ["xml", "csv"], "default": "xml"},
        min_driver_version={"type": "str"},
        min_cuda_version={"type": "str"},
        expected_gpu_count={"type": "int"},
        product={"type": "str"},
        max_ecc_uncorrected={"type": "int"},
        require_persistence={"type": "bool", "default": False},
        mig_mode={"type": "str", "choices": ["enabled", "disabled"]},
        max_temperature={"type": "int"},
        containerd_config_paths={"type": "list", "elements": "path", "default": list(DEFAULT_CONTAINERD_CONFIGS)},
        toolkit_search_paths={"type": "list", "elements": "path", "default": []},
        require_container_toolkit={"type": "bool", "default": False},
        require_nvidia_runtime={"type": "bool", "default": False},
        gpu_node_selector={"type": "str", "default": "gpu=true"},
        gpu_resource={"type": "str", "default": "nvidia.com/gpu"},
        device_plugin_namespace={"type": "str", "default": "kube-system"},
        device_plugin_selector={"type": "str", "default": "app.kubernetes.io/name=nvidia-device-plugin"},
        min_gpu_nodes={"type": "int"},
        min_total_gpus={"type": "int"},
        require_ready={"type": "bool", "default": True},
        require_gpu_resource={"type": "bool", "default": True},
        require_device_plugin={"type": "bool", "default": False},
        api_page_size={"type": "int", "default": 500},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        if module.params["mode"] == "host":
            result = run_host_check(module.params, module.run_command)
        else:
            client = connect(module.params)
            try:
                result = run_cluster_check(module.params, client)
            finally:
                client.close()
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    if module.params["fail_on_check"] and result["failed_checks"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
