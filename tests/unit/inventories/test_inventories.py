# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's inventories, loaded by Ansible's InventoryManager as ``-i inventories/<name>`` loads them, and
their addresses and network ranges checked with netaddr (module_utils/_network_validate.py, the code behind the
``sophia_ai.platform.network_problems`` filter).

inventories/lambda is the static production example (Lambda GH200 hosts); inventories/lab is the embedded lab.
The lab's own ranges live in its scripts (scripts/lab-cluster.sh, scripts/swarm-lab.sh): they are read from there,
so that a change in a script is checked here too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _network_validate as nv

REPO = Path(__file__).resolve().parents[3]
HIDDEN = ("all", "ungrouped")


@pytest.fixture(scope="module")
def load():
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    # Only built-in plugins are needed (yaml inventory, host_group_vars): no collection finder is installed here.
    def _load(name):
        loader = DataLoader()
        inventory = InventoryManager(loader=loader, sources=[str(REPO / "inventories" / name)])
        variables = VariableManager(loader=loader, inventory=inventory)
        hosts = {}
        for host in inventory.get_hosts():
            hostvars = variables.get_vars(host=host, include_hostvars=False)
            hosts[host.name] = {"vars": hostvars, "groups": sorted(g.name for g in host.get_groups()
                                                                   if g.name not in HIDDEN)}
        groups = {g: sorted(h.name for h in inventory.groups[g].get_hosts()) for g in inventory.groups
                  if g not in HIDDEN}
        return hosts, groups

    return _load


def _plan(hosts):
    """Only the variables the check reads (the rest may be templates that need a play to render)."""
    return {name: {"vars": {k: v for k, v in entry["vars"].items() if k in nv.VARS_READ}, "groups": entry["groups"]}
            for name, entry in hosts.items()}


# --- inventories/lambda ------------------------------------------------------------------------------------------

def test_lambda_has_the_phase2_groups(load):
    hosts, groups = load("lambda")
    servers, agents = groups["k3s_servers"], groups["k3s_agents"]
    assert servers == ["gh200-1", "gh200-2", "gh200-3"]  # HA: three servers with embedded etcd
    assert agents and not set(servers) & set(agents)
    assert groups["gpu"] == sorted(hosts)  # every GH200 has a GPU
    assert sorted(groups["swarm_managers"] + groups["swarm_workers"]) == sorted(hosts)
    assert not set(groups["swarm_managers"]) & set(groups["swarm_workers"])
    assert len(groups["swarm_managers"]) % 2 == 1  # Raft majority
    assert sorted(servers + agents) == sorted(hosts)


def test_lambda_reads_only_the_static_example(load):
    """.lambda_cloud.yml (the plugin's example) sits in the directory as a dot file: -i inventories/lambda skips it."""
    assert (REPO / "inventories" / "lambda" / ".lambda_cloud.yml").is_file()
    hosts, _groups = load("lambda")
    assert sorted(hosts) == ["gh200-1", "gh200-2", "gh200-3", "gh200-4", "gh200-5"]
    assert not any(h.startswith("lambda") or "lambda_id" in e["vars"] for h, e in hosts.items())


def test_lambda_network_plan_is_clean(load):
    hosts, _groups = load("lambda")
    problems = nv.check_inventory(_plan(hosts))
    assert problems == [], nv.message(problems)


def test_lambda_addresses_and_ranges_are_what_netaddr_accepts(load):
    hosts, _groups = load("lambda")
    for name, entry in hosts.items():
        hv = entry["vars"]
        public = nv.parse_ip(hv["ansible_host"], "ansible_host")
        private = nv.parse_ip(hv["k3s_install_node_ip"], "k3s_install_node_ip")
        assert public.version == private.version == 4, name
        assert any(private in nv.parse_cidr(n, "node_networks") for n in hv["node_networks"]), name
        assert not public.is_ipv4_private_use() and private.is_ipv4_private_use(), name
        service = nv.parse_cidr(hv["k3s_install_service_cidr"], "k3s_install_service_cidr")
        assert nv.parse_ip(hv["k3s_install_cluster_dns"], "k3s_install_cluster_dns") in service
        k3s = [hv["k3s_install_cluster_cidr"], hv["k3s_install_service_cidr"]]
        assert nv.cidr_overlaps(k3s, hv["swarm_default_addr_pool"] + hv["docker_bridge_subnets"]) == []
        assert nv.cidr_overlaps(k3s + hv["swarm_default_addr_pool"], hv["node_networks"]) == []


@pytest.mark.parametrize("change, variable", [
    # the Swarm on Docker's default pool (docker swarm init without --default-addr-pool): the clash
    ({"swarm_default_addr_pool": ["10.0.0.0/8"]}, "k3s_install_cluster_cidr"),
    ({"k3s_install_service_cidr": "172.18.0.0/16", "k3s_install_cluster_dns": "172.18.0.10"},
     "k3s_install_service_cidr"),
    ({"k3s_install_cluster_dns": "10.42.0.10"}, "k3s_install_cluster_dns"),
    ({"node_networks": ["10.19.9.0/24"]}, "k3s_install_node_ip"),
])
def test_lambda_plan_with_a_wrong_value_is_caught(load, change, variable):
    hosts, _groups = load("lambda")
    plan = _plan(hosts)
    for entry in plan.values():
        entry["vars"].update(change)
    assert variable in {p["variable"] for p in nv.check_inventory(plan)}


# --- inventories/lab ---------------------------------------------------------------------------------------------

def test_lab_loads_with_its_swarm_manager(load):
    hosts, groups = load("lab")
    assert "lab-swarm" in groups["swarm_managers"]
    assert hosts["lab-swarm"]["vars"]["ansible_connection"] == "local"


def test_lab_addresses_are_valid(load):
    hosts, _groups = load("lab")
    hv = hosts["lab-swarm"]["vars"]
    for var in ("lab_swarm_advertise_addr", "front_door_bind_address"):
        assert nv.parse_ip(hv[var], var).is_loopback(), var


def test_lab_network_plan_is_clean(load):
    hosts, _groups = load("lab")
    problems = nv.check_inventory(_plan(hosts))
    assert problems == [], nv.message(problems)


def _script_value(script, name):
    match = re.search(r"^%s=(?:\$\{[A-Z_]+:-)?([0-9a-f.:/]+)\}?$" % name,
                      (REPO / "scripts" / script).read_text(), re.MULTILINE)
    assert match, "%s not found in scripts/%s" % (name, script)
    return match.group(1)


def _lab_cluster(pool):
    """The lab cluster's K3s-like ranges (scripts/lab-cluster.sh) on a K3s node beside a Swarm on ``pool``."""
    k3s = {"k3s_install_cluster_cidr": _script_value("lab-cluster.sh", "POD_CIDR"),
           "k3s_install_service_cidr": _script_value("lab-cluster.sh", "SERVICE_CIDR"),
           "k3s_install_cluster_dns": _script_value("lab-cluster.sh", "CLUSTER_DNS"),
           "swarm_default_addr_pool": [pool],
           "swarm_subnet_size": 24}
    return {"lab-node": {"vars": k3s, "groups": ["k3s_servers", "swarm_managers"]}}


def test_lab_cluster_ranges_clear_the_multi_node_swarm_labs_pool():
    pool = _script_value("swarm-lab.sh", "ADDR_POOL")
    assert pool == "172.30.0.0/16"
    problems = nv.check_inventory(_lab_cluster(pool))
    assert problems == [], nv.message(problems)


def test_lab_cluster_ranges_inside_dockers_default_pool_are_reported():
    """A Swarm initialised without a pool is on Docker's 10.0.0.0/8 (as the single-node lab Swarm of playbooks/lab.yml
    is when this was written), which holds the lab cluster's 10.42.0.0/16 and 10.43.0.0/16: the check reports what
    K3s's pre-flight would refuse on such a host."""
    problems = nv.check_inventory(_lab_cluster("10.0.0.0/8"))
    assert {p["variable"] for p in problems} == {"k3s_install_cluster_cidr", "k3s_install_service_cidr"}
