# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_network_validate: addresses and ranges of an inventory checked with netaddr (pure; the inventories themselves
are loaded in tests/unit/inventories/test_inventories.py)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _network_validate as nv
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

ALL = {"node_networks": ["10.19.8.0/24"], "swarm_default_addr_pool": ["172.30.0.0/16"], "swarm_subnet_size": 24,
       "docker_bridge_subnets": ["172.17.0.0/16", "172.18.0.0/16"], "k3s_install_cluster_cidr": "10.42.0.0/16",
       "k3s_install_service_cidr": "10.43.0.0/16", "k3s_install_cluster_dns": "10.43.0.10",
       "k3s_install_api_endpoint": "10.19.8.11"}
GROUPS = {"gh200-1": ["k3s_servers", "gpu", "swarm_managers"], "gh200-2": ["k3s_servers", "gpu", "swarm_managers"],
          "gh200-3": ["k3s_servers", "gpu", "swarm_managers"], "gh200-4": ["k3s_agents", "gpu", "swarm_workers"]}


def fleet(**changes):
    """Four GH200 hosts with the plan of inventories/lambda; ``changes``: {host or 'all': {var: value or None}}."""
    hosts = {}
    for n, name in enumerate(sorted(GROUPS), start=1):
        hv = dict(copy.deepcopy(ALL), ansible_host="198.51.100.1%d" % n, k3s_install_node_ip="10.19.8.1%d" % n)
        for target in ("all", name):
            for var, value in (changes.get(target) or {}).items():
                if value is None:
                    hv.pop(var, None)
                else:
                    hv[var] = value
        hosts[name] = {"vars": hv, "groups": list(GROUPS[name])}
    return hosts


def test_the_example_plan_is_clean():
    assert nv.check_inventory(fleet()) == []


@pytest.mark.parametrize("changes, variable, words", [
    # Docker's default pool (a Swarm initialised without --default-addr-pool) holds K3s's defaults: the case
    ({"all": {"swarm_default_addr_pool": None}}, "k3s_install_cluster_cidr",
     "k3s_install_cluster_cidr=10.42.0.0/16 overlaps swarm_default_addr_pool=10.0.0.0/8 (Swarm address pool)"),
    ({"all": {"swarm_default_addr_pool": None}}, "k3s_install_service_cidr",
     "k3s_install_service_cidr=10.43.0.0/16 overlaps swarm_default_addr_pool=10.0.0.0/8"),
    ({"all": {"swarm_default_addr_pool": None}}, "swarm_default_addr_pool",
     "swarm_default_addr_pool=10.0.0.0/8 overlaps node_networks=10.19.8.0/24 (node network)"),
    ({"all": {"swarm_default_addr_pool": None}}, "k3s_install_node_ip",
     "k3s_install_node_ip=10.19.8.11 lies inside swarm_default_addr_pool=10.0.0.0/8"),
    ({"all": {"k3s_install_service_cidr": "10.42.128.0/17", "k3s_install_cluster_dns": "10.42.128.10"}},
     "k3s_install_cluster_cidr", "k3s_install_cluster_cidr=10.42.0.0/16 overlaps k3s_install_service_cidr=10.42.128.0/17"),
    ({"all": {"k3s_install_cluster_cidr": "172.17.0.0/16"}}, "k3s_install_cluster_cidr",
     "overlaps docker_bridge_subnets=172.17.0.0/16 (Docker bridge)"),
    ({"all": {"swarm_network_subnets": ["10.43.7.0/24"]}}, "k3s_install_service_cidr",
     "k3s_install_service_cidr=10.43.0.0/16 overlaps swarm_network_subnets=10.43.7.0/24 (Swarm network)"),
    ({"all": {"node_networks": ["10.0.0.0/9"]}}, "k3s_install_cluster_cidr", "overlaps node_networks=10.0.0.0/9"),
    ({"all": {"k3s_install_cluster_cidr": "10.42.1.0/16"}}, "k3s_install_cluster_cidr",
     "k3s_install_cluster_cidr=10.42.1.0/16 has host bits set: its network is 10.42.0.0/16"),
    ({"all": {"k3s_install_service_cidr": "10.43.0.0"}}, "k3s_install_service_cidr",
     "k3s_install_service_cidr='10.43.0.0' is not a network in CIDR notation"),
    ({"all": {"swarm_default_addr_pool": ["172.30.0.0/33"]}}, "swarm_default_addr_pool", "is not a network"),
    ({"all": {"k3s_install_cluster_dns": "10.42.0.10"}}, "k3s_install_cluster_dns",
     "k3s_install_cluster_dns=10.42.0.10 is not a usable address of k3s_install_service_cidr=10.43.0.0/16"),
    ({"all": {"k3s_install_cluster_dns": "10.43.0.0"}}, "k3s_install_cluster_dns", "is not a usable address"),
    ({"all": {"k3s_install_cluster_dns": "ten"}}, "k3s_install_cluster_dns", "k3s_install_cluster_dns='ten' is not an IP"),
    ({"all": {"swarm_subnet_size": 12}}, "swarm_subnet_size", "swarm_subnet_size=12 does not fit the pools (prefix 16 to 30)"),
    ({"all": {"swarm_subnet_size": "big"}}, "swarm_subnet_size", "swarm_subnet_size=big does not fit"),
    ({"gh200-2": {"k3s_install_node_ip": "10.19.8.11"}}, "k3s_install_node_ip",
     "k3s_install_node_ip=10.19.8.11 is set on 2 hosts (gh200-1, gh200-2)"),
    ({"gh200-3": {"ansible_host": "198.51.100.11"}}, "ansible_host", "ansible_host=198.51.100.11 is set on 2 hosts"),
    ({"gh200-4": {"k3s_install_node_ip": "10.19.9.14"}}, "k3s_install_node_ip",
     "k3s_install_node_ip=10.19.9.14 is outside node_networks (10.19.8.0/24)"),
    ({"gh200-4": {"k3s_install_node_ip": "10.43.0.14"}}, "k3s_install_node_ip",
     "k3s_install_node_ip=10.43.0.14 lies inside k3s_install_service_cidr=10.43.0.0/16 (K3s service range)"),
    ({"gh200-4": {"k3s_install_node_ip": "10.19.8.300"}}, "k3s_install_node_ip", "'10.19.8.300' is not an IP address"),
    ({"gh200-4": {"ansible_host": "10.19.8.14/24"}}, "ansible_host", "'10.19.8.14/24' is not an IP address"),
    ({"gh200-4": {"k3s_install_cluster_cidr": "10.44.0.0/16"}}, "k3s_install_cluster_cidr",
     "k3s_install_cluster_cidr differs between hosts of one cluster: 10.42.0.0/16 on gh200-1, gh200-2, gh200-3; "
     "10.44.0.0/16 on gh200-4"),
])
def test_problems_name_the_variable_and_the_fix(changes, variable, words):
    problems = nv.check_inventory(fleet(**changes))
    hits = [p for p in problems if p["variable"] == variable and words in p["problem"]]
    assert hits, problems
    assert all(p["fix"] for p in problems)


def test_a_range_set_for_every_host_is_reported_once_with_the_hosts():
    problems = nv.check_inventory(fleet(all={"swarm_default_addr_pool": None}))
    cluster = [p for p in problems if p["variable"] == "k3s_install_cluster_cidr"]
    assert len(cluster) == 1
    assert cluster[0]["host"] == "gh200-1,gh200-2,gh200-3,gh200-4"
    assert cluster[0]["fix"] == ("set k3s_install_cluster_cidr to a range clear of every other range of the plan, "
                                 "e.g. 100.64.0.0/16")
    assert "gh200-1,gh200-2,gh200-3,gh200-4: k3s_install_cluster_cidr=10.42.0.0/16 overlaps" in nv.message(problems)


def test_k3s_defaults_apply_to_k3s_hosts_that_set_nothing():
    hosts = fleet(all={"k3s_install_cluster_cidr": None, "k3s_install_service_cidr": None,
                       "k3s_install_cluster_dns": None, "swarm_default_addr_pool": ["10.40.0.0/14"]})
    words = [p["problem"] for p in nv.check_inventory(hosts)]
    assert "k3s_install_cluster_cidr=10.42.0.0/16 overlaps swarm_default_addr_pool=10.40.0.0/14 (Swarm address pool)" \
        in words


def test_hosts_outside_the_groups_get_no_defaults():
    hosts = {"bastion": {"vars": {"ansible_host": "bastion.example.com"}, "groups": ["ops"]}}
    assert nv.check_inventory(hosts) == []
    plan = nv.host_plan("bastion", hosts["bastion"]["vars"], ["ops"])
    assert plan["ranges"] == {}


@pytest.mark.parametrize("servers, problem", [(1, False), (2, True), (3, False), (4, True), (5, False)])
def test_embedded_etcd_needs_an_odd_number_of_servers(servers, problem):
    hosts = {"s%d" % n: {"vars": dict(ALL, k3s_install_node_ip="10.19.8.%d" % (20 + n)), "groups": ["k3s_servers"]}
             for n in range(servers)}
    found = [p for p in nv.check_inventory(hosts) if p["variable"] == "k3s_servers"]
    assert bool(found) is problem
    if problem:
        assert found[0]["problem"] == ("k3s_servers has %d hosts: embedded etcd needs an odd number to keep a "
                                       "majority" % servers)


@pytest.mark.parametrize("value, ok", [
    ("k3s.sophia.example", True), ("10.19.8.11", True), ("2001:db8::11", True), ("bad_name!", False),
    ("10.42.0.5", False),  # inside the pod range
])
def test_api_endpoint_may_be_a_name_or_an_address_outside_the_ranges(value, ok):
    problems = [p for p in nv.check_inventory(fleet(all={"k3s_install_api_endpoint": value}))
                if p["variable"] == "k3s_install_api_endpoint"]
    assert (problems == []) is ok, problems


@pytest.mark.parametrize("left, right, wanted", [
    ("10.42.0.0/16,10.43.0.0/16", ["10.0.0.0/8"], [["10.42.0.0/16", "10.0.0.0/8"], ["10.43.0.0/16", "10.0.0.0/8"]]),
    (["10.42.0.0/16"], "172.30.0.0/16", []),
    (["10.42.0.0/16", "10.42.255.0/24", "10.43.0.0/16"], None, [["10.42.0.0/16", "10.42.255.0/24"]]),
    (["fd00:42::/56"], ["fd00::/8", "10.0.0.0/8"], [["fd00:42::/56", "fd00::/8"]]),
    ([], ["10.0.0.0/8"], []),
    ("10.0.0.0/31", "10.0.0.1/32", [["10.0.0.0/31", "10.0.0.1/32"]]),
])
def test_cidr_overlaps(left, right, wanted):
    assert nv.cidr_overlaps(left, right) == wanted


@pytest.mark.parametrize("value, words", [
    ("10.42.0.0", "is not a network in CIDR notation"), ("10.42.0.1/16", "has host bits set"),
    ("banana/8", "is not a network"), (None, "is not a network"),
])
def test_cidr_overlaps_refuses_what_is_not_a_network(value, words):
    with pytest.raises(InputError, match=words):
        nv.cidr_overlaps([value] if value is not None else ["None"], ["10.0.0.0/8"])


@pytest.mark.parametrize("value, ok", [("10.0.0.1", True), ("::1", True), ("10.0.0.256", False),
                                       ("10.0.0.1/32", False), ("", False), ("host", False)])
def test_parse_ip(value, ok):
    if ok:
        assert str(nv.parse_ip(value, "x")) == value
    else:
        with pytest.raises(InputError, match="x=.* is not an IP address. Fix: set x"):
            nv.parse_ip(value, "x")
