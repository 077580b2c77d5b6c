# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""K3s pre-flight, pure layer, on real captures.

fixtures/k3s_preflight/lab-host: /proc/net/{tcp,tcp6,udp,udp6,route,ipv6_route} of this lab machine, and its Docker
Engine's ``GET /info`` (Swarm part) and ``GET /networks``: a Swarm manager with the default pool 10.0.0.0/8, the lab
cluster's kubelet on 10250/tcp and its pod bridge cni-sophia0 (10.42.0.0/24).
fixtures/k3s_preflight/standin-server: the same files of a molecule node running the k3s stand-in (real etcd on
2379-2380), with the owners of its sockets (pid, comm, parent) read from /proc/<pid>/fd there.
Nothing is mocked.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError
from ansible_collections.sophia_ai.platform.plugins.module_utils._k3s_preflight import (
    check_networks,
    check_ports,
    default_cluster_dns,
    failure_message,
    parse_ipv6_route,
    parse_proc_net,
    parse_route,
    preflight,
    read_host,
    required_ports,
    suggest_free,
    swarm_networks,
    swarm_ports,
)

FIXTURES = Path(__file__).parent / "fixtures" / "k3s_preflight"
LAB, STANDIN = FIXTURES / "lab-host", FIXTURES / "standin-server"


def _text(folder, name):
    return (folder / name).read_text()


def _host(folder, holders=None):
    sockets = []
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        sockets += parse_proc_net(_text(folder, name), proto)
    routes = parse_route(_text(folder, "route")) + parse_ipv6_route(_text(folder, "ipv6_route"))
    return {"sockets": sockets, "routes": routes, "interfaces": ["eth0", "lo"], "holders": holders or {}}


def _lab_swarm():
    return swarm_networks(json.loads(_text(LAB, "docker_info.json")), json.loads(_text(LAB, "docker_networks.json")))


def _params(**overrides):
    params = {"role": "server", "cluster_cidr": "10.42.0.0/16", "service_cidr": "10.43.0.0/16", "cluster_dns": None,
              "flannel_backend": "vxlan", "api_port": 6443, "embedded_etcd": True, "k3s_process_names": None,
              "ignore_interfaces": None}
    params.update(overrides)
    return params


# --- parsers on the real captures -------------------------------------------------------------------------------

def test_proc_net_listening_sockets_of_the_lab_host():
    tcp = parse_proc_net(_text(LAB, "tcp"), "tcp")
    tcp6 = parse_proc_net(_text(LAB, "tcp6"), "tcp")
    udp = parse_proc_net(_text(LAB, "udp"), "udp")
    # the sample MCP services listen on 9001-9028 (IPv4 and IPv6), the kubelet's healthz on 127.0.0.1:10248
    assert {s["port"] for s in tcp} >= set(range(9001, 9029)) | {10248}
    assert {"address": "127.0.0.1", "port": 10248} in [{k: s[k] for k in ("address", "port")} for s in tcp]
    # Swarm's manager port and gossip on IPv6 (any address), the kubelet on 10250
    assert {(s["address"], s["port"]) for s in tcp6} >= {("::", 2377), ("::", 7946), ("::", 10250)}
    # established connections are not bound ports
    assert len(tcp) < len(_text(LAB, "tcp").splitlines()) - 1
    assert [(s["port"], s["inode"] > 0) for s in udp] == [(4789, True)]


def test_routes_of_the_lab_host():
    routes = parse_route(_text(LAB, "route"))
    assert {"network": "10.42.0.0/24", "interface": "cni-sophia0"} in routes
    assert {"network": "172.17.0.0/16", "interface": "docker0"} in routes
    assert all(r["network"] != "0.0.0.0/0" for r in routes)
    six = parse_ipv6_route(_text(LAB, "ipv6_route"))
    assert six and all(not r["network"].startswith(("fe80", "ff")) and not r["network"].endswith("/128") for r in six)


def test_swarm_of_the_lab_host():
    swarm = _lab_swarm()
    assert swarm["active"] and swarm["manager"]
    assert swarm["default_addr_pools"] == ["10.0.0.0/8"] and swarm["data_path_port"] == 4789
    by_name = {n["name"]: n for n in swarm["networks"]}
    assert by_name["ingress"]["subnets"] == ["10.0.0.0/24"]
    assert by_name["sophia-swarm-lab"]["subnets"] == ["172.31.250.0/24"]
    assert by_name["host"]["subnets"] == []
    assert [(p["port"], p["proto"]) for p in swarm_ports(swarm)] == [
        (2377, "tcp"), (7946, "tcp"), (7946, "udp"), (4789, "udp")]


def test_a_swarm_worker_is_assumed_on_the_default_pool():
    info = {"Swarm": {"LocalNodeState": "active", "ControlAvailable": False, "Cluster": None}}
    swarm = swarm_networks(info, [])
    assert swarm["default_addr_pools"] == ["10.0.0.0/8"] and swarm["default_addr_pools_assumed"]
    assert (2377, "tcp") not in [(p["port"], p["proto"]) for p in swarm_ports(swarm)]
    assert swarm_networks({"Swarm": {"LocalNodeState": "inactive"}}, [])["active"] is False


# --- address ranges ------------------------------------------------------------------------------------------

SWARM_DEFAULT = {"active": True, "manager": True, "default_addr_pools": ["10.0.0.0/8"], "networks": []}
SWARM_LAB_POOL = {"active": True, "manager": True, "default_addr_pools": ["172.30.0.0/16"],
                  "networks": [{"name": "sophia_mcp", "driver": "overlay", "scope": "swarm",
                                "subnets": ["172.30.0.0/24"]}]}
NO_SWARM = {"active": False, "default_addr_pools": [], "networks": []}


@pytest.mark.parametrize("cluster, service, swarm, routes, clashing, suggestions", [
    # Swarm's default pool contains K3s's defaults: both clash, with two different free suggestions
    ("10.42.0.0/16", "10.43.0.0/16", SWARM_DEFAULT, [], ["k3s_install_cluster_cidr", "k3s_install_service_cidr"],
     ["172.16.0.0/16", "172.17.0.0/16"]),
    # the lab's Swarm pool 172.30.0.0/16 leaves K3s's defaults alone
    ("10.42.0.0/16", "10.43.0.0/16", SWARM_LAB_POOL, [], [], []),
    # ... but a cluster CIDR inside it clashes with the pool and the overlay's subnet
    ("172.30.128.0/17", "10.43.0.0/16", SWARM_LAB_POOL, [], ["k3s_install_cluster_cidr"], ["10.0.0.0/17"]),
    # no Swarm, a host route (docker0) in the way; the suggestion skips the route
    ("172.16.0.0/12", "10.43.0.0/16", NO_SWARM, [{"network": "172.17.0.0/16", "interface": "docker0"}],
     ["k3s_install_cluster_cidr"], ["10.0.0.0/12"]),
    # K3s's own bridge on a rerun is not a clash
    ("10.42.0.0/16", "10.43.0.0/16", NO_SWARM, [{"network": "10.42.0.0/24", "interface": "cni0"}], [], []),
    # cluster and service CIDRs overlapping each other
    ("10.42.0.0/16", "10.42.128.0/17", NO_SWARM, [], ["k3s_install_service_cidr"], ["10.0.0.0/17"]),
])
def test_network_clashes(cluster, service, swarm, routes, clashing, suggestions):
    clashes = check_networks(cluster, service, default_cluster_dns(service), swarm, routes)
    assert [c["variable"] for c in clashes] == clashing
    assert [c["suggestion"] for c in clashes] == suggestions
    for clash in clashes:
        assert clash["msg"].startswith(clash["variable"] + "=")
        assert "Fix: set %s" % clash["variable"] in clash["msg"]


def test_the_suggestion_itself_is_free():
    used = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/13", "172.24.0.0/14")]
    assert suggest_free(16, 4, used) == "172.28.0.0/16"
    assert suggest_free(8, 4, used) is None  # no /8 in the private ranges besides 10/8


def test_dual_stack_and_dns():
    clashes = check_networks("10.42.0.0/16,fd42::/56", "10.43.0.0/16,fd43::/112", "10.44.0.10", NO_SWARM,
                             [{"network": "fd42::/64", "interface": "eth0"}])
    assert [(c["variable"], c["value"]) for c in clashes] == [
        ("k3s_install_cluster_cidr", "fd42::/56"), ("k3s_install_cluster_dns", "10.44.0.10")]
    assert clashes[0]["suggestion"].startswith("fd00:")
    assert clashes[1]["suggestion"] == "10.43.0.10"
    assert default_cluster_dns("10.43.0.0/16") == "10.43.0.10"


@pytest.mark.parametrize("value", ["10.42.0.0/33", "10.42.0.1/16", "not-a-cidr"])
def test_bad_cidr_names_the_variable(value):
    with pytest.raises(InputError) as err:
        check_networks(value, "10.43.0.0/16", None, NO_SWARM, [])
    assert err.value.details["variable"] == "k3s_install_cluster_cidr"


# --- ports ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("role, backend, expected", [
    ("server", "vxlan", [(6443, "tcp"), (2379, "tcp"), (2380, "tcp"), (10250, "tcp"), (8472, "udp")]),
    ("server", "wireguard-native", [(6443, "tcp"), (2379, "tcp"), (2380, "tcp"), (10250, "tcp"), (51820, "udp"),
                                    (51821, "udp")]),
    ("agent", "vxlan", [(10250, "tcp"), (8472, "udp")]),
    ("agent", "host-gw", [(10250, "tcp")]),
])
def test_required_ports(role, backend, expected):
    assert [(p["port"], p["proto"]) for p in required_ports(role, backend)] == expected


def test_the_lab_host_kubelet_holds_10250():
    host = _host(LAB)
    inode = next(s["inode"] for s in host["sockets"] if s["port"] == 10250)
    holders = {inode: {"pid": 24743, "comm": "kubelet", "exe": "/root/.cache/sophia-platform/bin/kubelet",
                       "ancestors": []}}
    clashes, reports = check_ports(required_ports("server", "vxlan"), host["sockets"], holders, _lab_swarm())
    assert [c["value"] for c in clashes] == ["10250/tcp"]
    assert "kubelet (pid 24743)" in clashes[0]["msg"] and "cannot move" in clashes[0]["msg"]
    assert [r["port"] for r in reports if r["free"]] == [6443, 2379, 2380, 8472]


def test_a_rerun_on_a_k3s_server_passes():
    holders = {int(k): v for k, v in json.loads(_text(STANDIN, "holders.json")).items()}
    host = _host(STANDIN, holders)
    clashes, reports = check_ports(required_ports("server", "vxlan"), host["sockets"], holders, NO_SWARM)
    assert clashes == []
    assert all(r["held_by_k3s"] and not r["free"] for r in reports)
    # etcd holds 2379-2380; it is K3s's because its parent is the k3s process
    etcd = next(r for r in reports if r["port"] == 2379)
    assert {h["comm"] for h in etcd["holders"]} == {"etcd"}


def test_the_same_sockets_held_by_something_else_clash():
    holders = {int(k): dict(v, comm="nginx", ancestors=[]) for k, v in
               json.loads(_text(STANDIN, "holders.json")).items()}
    host = _host(STANDIN, holders)
    clashes, _reports = check_ports(required_ports("server", "vxlan"), host["sockets"], holders, NO_SWARM)
    by_value = {c["value"]: c for c in clashes}
    assert sorted(by_value) == ["10250/tcp", "2379/tcp", "2380/tcp", "6443/tcp", "8472/udp"]
    assert by_value["6443/tcp"]["variable"] == "k3s_install_api_port"
    assert "set k3s_install_flannel_backend" in by_value["8472/udp"]["msg"]


@pytest.mark.parametrize("interfaces, clash", [([], True), (["flannel.1"], False)])
def test_kernel_vxlan_socket(interfaces, clash):
    sockets = [{"proto": "udp", "address": "0.0.0.0", "port": 8472, "inode": 0}]
    clashes, _reports = check_ports(required_ports("agent", "vxlan"), sockets, {}, NO_SWARM, interfaces)
    assert bool(clashes) is clash


def test_swarm_data_path_port_on_flannels_port():
    swarm = dict(SWARM_DEFAULT, data_path_port=8472)
    clashes, _reports = check_ports(required_ports("agent", "vxlan"), [], {}, swarm)
    assert [c["value"] for c in clashes] == ["8472/udp"]
    assert "Docker Swarm" in clashes[0]["msg"]
    clashes, _reports = check_ports(required_ports("server", "vxlan", api_port=2377), [], {}, swarm)
    assert "k3s_install_api_port" in [c["variable"] for c in clashes]


# --- everything together, and the readers ----------------------------------------------------------------------

def test_preflight_on_the_lab_host_names_every_variable():
    host = _host(LAB)
    result = preflight(_params(), host, (json.loads(_text(LAB, "docker_info.json")),
                                         json.loads(_text(LAB, "docker_networks.json"))))
    assert not result["ok"]
    assert [c["variable"] for c in result["clashes"]] == [
        "k3s_install_cluster_cidr", "k3s_install_service_cidr", None]
    assert result["k3s"]["cluster_dns"] == "10.43.0.10"
    message = failure_message(result["clashes"])
    assert message.startswith("K3s pre-flight found 3 clashes; nothing was installed.")
    assert "10.0.0.0/8 (Swarm default address pool)" in message
    assert "10.42.0.0/24 (route on interface cni-sophia0)" in message
    clean = preflight(_params(cluster_cidr="172.20.0.0/16", service_cidr="172.21.0.0/16", role="agent",
                              flannel_backend="host-gw"), dict(host, sockets=[]),
                      (json.loads(_text(LAB, "docker_info.json")), json.loads(_text(LAB, "docker_networks.json"))))
    assert clean["ok"] and clean["swarm"]["engine"]


def test_preflight_without_a_docker_engine():
    result = preflight(_params(role="agent"), _host(STANDIN), None)
    assert result["swarm"]["engine"] is False and result["swarm"]["ports"] == []


def test_read_host_on_a_captured_tree(tmp_path):
    (tmp_path / "net").mkdir()
    for name in ("tcp", "tcp6", "udp", "udp6", "route", "ipv6_route"):
        (tmp_path / "net" / name).write_text(_text(LAB, name))
    host = read_host(proc_root=str(tmp_path), sys_class_net=str(tmp_path / "none"), ports={(10250, "tcp")})
    assert [(s["port"], s["proto"]) for s in host["sockets"]] == [(10250, "tcp")]
    assert host["holders"] == {} and host["interfaces"] == []
    assert {"network": "10.42.0.0/24", "interface": "cni-sophia0"} in host["routes"]
