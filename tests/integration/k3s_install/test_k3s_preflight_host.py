# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k3s_preflight for real on this machine, run by ansible-playbook on localhost (connection local).

The machine's Docker Engine is real (a single-node Swarm may or may not be active here; the test neither leaves
nor initialises it); the test adds a Docker network of its own (removed at the end) and listens on a port of its
own, and expects the module to find both, naming the variable to change. Nothing is mocked.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.integration

NETWORK = "sophia-k3s-preflight-test"


def run_module(tmp: Path, args: dict, *extra: str) -> dict:
    playbook = tmp / f"play-{len(list(tmp.glob('play-*')))}.yml"
    playbook.write_text(json.dumps([{"name": "k3s_preflight", "hosts": "localhost", "gather_facts": False,
                                     "tasks": [{"name": "preflight", "sophia_ai.platform.k3s_preflight": args,
                                                "ignore_errors": True}]}]))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook), *extra],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.stdout.lstrip().startswith("{"), res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture(scope="module")
def own_network(engine):
    """A bridge network of this test on a /24 that nothing on this machine uses yet."""
    used = []
    for net in engine.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet"):
                used.append(ipaddress.ip_network(cfg["Subnet"], strict=False))
    free = [str(net) for net in ipaddress.ip_network("192.168.0.0/16").subnets(new_prefix=24)
            if not any(net.overlaps(other) for other in used)]
    assert free, "no free /24 in 192.168.0.0/16 on this machine"
    subnet = free[0]
    for stale in engine.networks.list(names=[NETWORK]):
        stale.remove()
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    network = engine.networks.create(NETWORK, driver="bridge", ipam=ipam)
    yield subnet
    network.remove()


def test_the_machine_as_it_is(engine, tmp_path):
    """Defaults against this machine's real Swarm: when it is active on Swarm's default pool (10.0.0.0/8), K3s's
    defaults clash and the message names both variables; whatever the case, the module reports Swarm's state."""
    info = engine.info()
    result = run_module(tmp_path, {"fail_on_clash": False})
    assert result["swarm"]["engine"] is True
    swarm_active = info["Swarm"]["LocalNodeState"] == "active"
    assert result["swarm"]["active"] is swarm_active
    pools = result["swarm"]["default_addr_pools"]
    if swarm_active and any(ipaddress.ip_network("10.42.0.0/16").overlaps(ipaddress.ip_network(p)) for p in pools):
        variables = [c["variable"] for c in result["clashes"]]
        assert "k3s_install_cluster_cidr" in variables and "k3s_install_service_cidr" in variables
        cluster = next(c for c in result["clashes"] if c["variable"] == "k3s_install_cluster_cidr")
        assert {"network": pools[0], "source": "Swarm default address pool"} in cluster["conflicts_with"]
        suggestion = ipaddress.ip_network(cluster["suggestion"])
        assert not any(suggestion.overlaps(ipaddress.ip_network(p)) for p in pools)
    names = {n["name"] for n in result["swarm"]["networks"]}
    assert {"bridge", "host"} <= names


def test_a_docker_network_and_a_held_port_fail_naming_the_variables(engine, own_network, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        args = {"cluster_cidr": own_network, "service_cidr": "198.18.0.0/16", "api_port": port, "role": "server",
                "flannel_backend": "host-gw"}
        failed = run_module(tmp_path, args)
        checked = run_module(tmp_path, args, "--check")
    assert failed.get("failed") is True
    assert failed["msg"].startswith("K3s pre-flight found")
    by_variable = {c["variable"]: c for c in failed["clashes"]}
    assert "k3s_install_cluster_cidr" in by_variable and "k3s_install_api_port" in by_variable
    net_clash = by_variable["k3s_install_cluster_cidr"]
    assert {"network": own_network, "source": f"Docker network {NETWORK} (bridge, local)"} in net_clash["conflicts_with"]
    assert net_clash["suggestion"] and not ipaddress.ip_network(net_clash["suggestion"]).overlaps(
        ipaddress.ip_network(own_network))
    port_clash = by_variable["k3s_install_api_port"]
    assert port_clash["value"] == f"{port}/tcp"
    assert port_clash["conflicts_with"][0]["pid"] == os.getpid()
    # check mode reads the same and fails the same: the module never changes anything
    assert checked.get("failed") is True and checked["clashes"] == failed["clashes"]
    assert failed["changed"] is False


def test_no_engine_means_no_swarm_checks(tmp_path):
    result = run_module(tmp_path, {"docker_host": f"unix://{tmp_path}/absent.sock", "fail_on_clash": False,
                                   "cluster_cidr": "198.18.0.0/16", "service_cidr": "198.19.0.0/16"})
    assert result["swarm"]["engine"] is False and result["swarm"]["ports"] == []
    assert [c for c in result["clashes"] if c["kind"] == "network"] == []
