#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k3s_preflight
short_description: Check, before K3s is installed, that its address ranges and ports are free beside Docker Swarm
version_added: 0.1.0
description:
  - Runs on the host where K3s is about to be installed (often a host that already runs Docker Swarm) and reads,
    without changing anything, what would clash with K3s.
  - "Address ranges: K3s's cluster CIDR (O(cluster_cidr)) and service CIDR (O(service_cidr)) must not overlap each
    other, Swarm's default address pools (C(GET /info) of the local Docker Engine: C(Swarm.Cluster.DefaultAddrPool);
    Swarm's own default is C(10.0.0.0/8), which contains K3s's defaults C(10.42.0.0/16) and C(10.43.0.0/16)), the
    IPAM subnets of every Docker network (C(GET /networks), Swarm overlays and local bridges alike), nor the host's
    routes (C(/proc/net/route), C(/proc/net/ipv6_route); the default route, link-local, multicast and routes on
    K3s's own interfaces such as C(cni0) and C(flannel.1) are left out). The cluster DNS address must lie inside the
    service CIDR."
  - "Ports: K3s's ports must be free - C(6443/tcp) (O(api_port)), C(10250/tcp), C(2379-2380/tcp) on servers with
    embedded etcd, C(8472/udp) with the vxlan flannel backend, C(51820-51821/udp) with wireguard-native - read from
    C(/proc/net/tcp), C(tcp6), C(udp), C(udp6). A socket held by K3s itself (the process or one of its ancestors is
    named like O(k3s_process_names), or a kernel VXLAN / WireGuard socket while flannel's interface exists) is not a
    clash, so a rerun on an installed node passes. None of them may be one of Swarm's ports either - C(2377/tcp)
    (managers), C(7946/tcp+udp) and the data path port (C(4789/udp) by default, C(DataPathPort) in C(GET /info))."
  - Each clash names the role variable to change (C(k3s_install_cluster_cidr), C(k3s_install_service_cidr),
    C(k3s_install_cluster_dns), C(k3s_install_api_port), C(k3s_install_flannel_backend)) and, for a range, the first
    free private range of the same size. With O(fail_on_clash) the task fails listing them; nothing has been
    installed at that point when the role runs it first.
  - A host without a Docker Engine (no socket at O(docker_host)) has no Swarm to clash with; RV(swarm.engine) is
    then false. C(GET /swarm) is never asked, since it returns the join tokens.
  - Why our own module - C(community.docker.docker_host_info) and C(docker_swarm_info) need the Docker SDK for
    Python on every host and say nothing about K3s, routes or sockets; nothing in C(ansible.builtin) reads socket
    owners. This module uses the Python standard library only (the Engine API over its unix socket, C(ipaddress)
    rather than netaddr, which managed hosts often lack), so it runs on any managed host.
author:
  - Sophia AI platform engineering (@sophia-ai)
extends_documentation_fragment:
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.INFO_MODULE
options:
  role:
    description: What the host will be - a K3s V(server) (API, embedded etcd) or an V(agent).
    type: str
    choices: [server, agent]
    default: server
  cluster_cidr:
    description: K3s's pod network (C(--cluster-cidr)); a comma-separated IPv4,IPv6 pair for dual stack.
    type: str
    default: 10.42.0.0/16
  service_cidr:
    description: K3s's Service network (C(--service-cidr)); a comma-separated IPv4,IPv6 pair for dual stack.
    type: str
    default: 10.43.0.0/16
  cluster_dns:
    description: The cluster DNS Service address (C(--cluster-dns)); default the tenth address of O(service_cidr).
    type: str
  flannel_backend:
    description: K3s's flannel backend (C(--flannel-backend)); it decides the UDP ports checked.
    type: str
    choices: [vxlan, host-gw, wireguard-native, none]
    default: vxlan
  api_port:
    description: K3s's supervisor and API port (C(--https-listen-port)), servers only.
    type: int
    default: 6443
  embedded_etcd:
    description: Servers run embedded etcd (C(--cluster-init) / joined servers), so C(2379-2380/tcp) are checked.
    type: bool
    default: true
  docker_host:
    description:
      - The local Docker Engine, V(unix:///path) or plain V(tcp://HOST:PORT). A unix socket that does not exist
        means no engine runs here, and the Swarm checks are skipped.
    type: str
    default: unix:///var/run/docker.sock
  k3s_process_names:
    description: Process names (C(comm) or executable basename) whose sockets are K3s's own.
    type: list
    elements: str
    default: [k3s, k3s-server, k3s-agent, k3s-init]
  ignore_interfaces:
    description: Interfaces whose routes are K3s's own (its pod network on a rerun) and are not clashes.
    type: list
    elements: str
    default: [cni0, flannel.1, flannel-v6.1, flannel-wg, flannel-wg-v6, kube-ipvs0]
  fail_on_clash:
    description: Fail when anything clashes (in check mode too); V(false) only reports in RV(clashes).
    type: bool
    default: true
notes:
  - Reads C(/proc/<pid>/fd) to name a port's holder; run it as root (C(become)) or holders show as unknown.
"""

EXAMPLES = r"""
- name: Check K3s's ranges and ports beside Swarm, before installing anything
  sophia_ai.platform.k3s_preflight:
    role: server
    cluster_cidr: 172.20.0.0/16
    service_cidr: 172.21.0.0/16
    flannel_backend: vxlan
  become: true

- name: Only report (check mode works the same; the module never changes anything)
  sophia_ai.platform.k3s_preflight:
    role: agent
    fail_on_clash: false
  check_mode: true
  register: preflight

- name: Show what clashes
  ansible.builtin.debug:
    msg: "{{ preflight.clashes | map(attribute='msg') | list }}"
"""

RETURN = r"""
ok:
  description: True when nothing clashes.
  returned: always
  type: bool
  sample: false
clashes:
  description: Every clash, each naming the variable to change and, for a range, a free one of the same size.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: network
      variable: k3s_install_cluster_cidr
      value: 10.42.0.0/16
      conflicts_with: [{network: 10.0.0.0/8, source: Swarm default address pool}]
      suggestion: 172.16.0.0/16
      msg: "k3s_install_cluster_cidr=10.42.0.0/16 overlaps 10.0.0.0/8 (Swarm default address pool). Fix: ..."
k3s:
  description: The K3s settings checked, the cluster DNS address filled in.
  returned: always
  type: dict
  sample: {role: server, cluster_cidr: 10.42.0.0/16, service_cidr: 10.43.0.0/16, cluster_dns: 10.43.0.10,
           flannel_backend: vxlan}
swarm:
  description: What the local Docker Engine said about Swarm and its networks, and Swarm's ports on this host.
  returned: always
  type: dict
  contains:
    engine:
      description: Whether a Docker Engine answered at O(docker_host).
      type: bool
    active:
      description: Whether this host is in a Swarm.
      type: bool
    manager:
      description: Whether it is a manager (2377/tcp then counts as Swarm's).
      type: bool
    default_addr_pools:
      description: Swarm's default address pools (C(10.0.0.0/8) assumed on a worker, which cannot read them).
      type: list
      elements: str
    data_path_port:
      description: Swarm's VXLAN data path port.
      type: int
    networks:
      description: Each Docker network with its IPAM subnets.
      type: list
      elements: dict
    ports:
      description: Swarm's ports on this host.
      type: list
      elements: dict
  sample: {engine: true, active: true, manager: true, default_addr_pools: [10.0.0.0/8], data_path_port: 4789,
           networks: [{name: ingress, driver: overlay, scope: swarm, subnets: [10.0.0.0/24]}], ports: []}
host_routes:
  description: The host's routes that were compared (network and interface).
  returned: always
  type: list
  elements: dict
  sample: [{network: 172.17.0.0/16, interface: docker0}]
ports:
  description: Each port K3s needs, whether it is free, held by K3s itself, and who holds it.
  returned: always
  type: list
  elements: dict
  sample: [{port: 6443, proto: tcp, purpose: K3s supervisor and Kubernetes API, variable: k3s_install_api_port,
            free: true, held_by_k3s: false, holders: []}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._k3s_preflight import (
    K3S_INTERFACES,
    K3S_PROCESS_NAMES,
    failure_message,
    preflight,
    read_docker,
    read_host,
    required_ports,
)


def argument_spec():
    return {
        "role": {"type": "str", "choices": ["server", "agent"], "default": "server"},
        "cluster_cidr": {"type": "str", "default": "10.42.0.0/16"},
        "service_cidr": {"type": "str", "default": "10.43.0.0/16"},
        "cluster_dns": {"type": "str"},
        "flannel_backend": {"type": "str", "choices": ["vxlan", "host-gw", "wireguard-native", "none"],
                            "default": "vxlan"},
        "api_port": {"type": "int", "default": 6443},
        "embedded_etcd": {"type": "bool", "default": True},
        "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
        "k3s_process_names": {"type": "list", "elements": "str", "default": list(K3S_PROCESS_NAMES)},
        "ignore_interfaces": {"type": "list", "elements": "str", "default": list(K3S_INTERFACES)},
        "fail_on_clash": {"type": "bool", "default": True},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        ports = required_ports(params["role"], params["flannel_backend"], params["api_port"],
                               params["embedded_etcd"])
        wanted = {(p["port"], p["proto"]) for p in ports}
        wanted |= {(2377, "tcp"), (7946, "tcp"), (7946, "udp"), (4789, "udp")}
        result = preflight(params, read_host(ports=wanted), read_docker(params["docker_host"]))
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    if result["clashes"] and params["fail_on_clash"]:
        module.fail_json(msg=failure_message(result["clashes"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
