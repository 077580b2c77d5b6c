# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role ``k3s_install``: its inputs, README and templates, without a host.

The templates are rendered by ansible-core's own templating engine with the role's defaults and vars and an
inventory (three servers, one GPU agent), as a play would render them, then parsed as YAML. What K3s does with them
is the molecule scenario's (molecule/k3s_install). Nothing is mocked.

``python tests/unit/roles/test_k3s_install_templates.py --write-readme`` rewrites the README's variables table from
meta/argument_specs.yml; ``test_readme_matches_argument_specs`` fails while it differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

import role_readme  # tests/unit/roles/role_readme.py: the README table, shared by the role tests

ROLE = Path(__file__).resolve().parents[3] / "roles" / "k3s_install"


def _spec():
    return role_readme.spec(ROLE)


def readme_table():
    return role_readme.table(ROLE)


def write_readme():
    role_readme.write(ROLE)


SERVERS = ["srv-1", "srv-2", "srv-3"]
INVENTORY = {
    "groups": {"k3s_servers": SERVERS, "k3s_agents": ["gpu-1"], "gpu": ["gpu-1"],
               "all": SERVERS + ["gpu-1"]},
    "hostvars": {
        "srv-1": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.11"}, "nodename": "srv-1",
                                    "architecture": "x86_64"}},
        "srv-2": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.12"}, "nodename": "srv-2"}},
        "srv-3": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.13"}, "nodename": "srv-3"}},
        "gpu-1": {"ansible_facts": {"default_ipv4": {"address": "192.0.2.21"}, "nodename": "gpu-1"}},
    },
}


def test_every_default_is_declared_with_the_same_value():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = _spec()["options"]
    assert sorted(defaults) == sorted(options)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
        assert name.startswith("k3s_install_"), name
        assert options[name]["description"], name
        assert options[name]["type"] in ("str", "int", "bool", "list", "dict"), name


def test_internal_vars_are_prefixed():
    internal = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert all(name.startswith("__k3s_install_") for name in internal)


def test_readme_matches_argument_specs():
    assert role_readme.section(ROLE) == readme_table(), (
        "README.md's variables table differs from meta/argument_specs.yml: "
        "run python tests/unit/roles/test_k3s_install_templates.py --write-readme")


@pytest.fixture(scope="module")
def render():
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader()
    loader = DataLoader()
    base = {
        **loader.load_from_file(str(ROLE / "defaults" / "main.yml"), trusted_as_template=True),
        **loader.load_from_file(str(ROLE / "vars" / "main.yml"), trusted_as_template=True),
        "ansible_search_path": [str(ROLE)],
        "ansible_managed": "Ansible managed",
        "ansible_play_hosts": SERVERS + ["gpu-1"],
        **INVENTORY,
    }

    def _render(template, host, **overrides):
        variables = {**base, "inventory_hostname": host, "ansible_facts": INVENTORY["hostvars"][host]["ansible_facts"],
                     **overrides}
        templar = Templar(loader=loader, variables=variables)
        if template.endswith(".j2"):
            return templar.template(trust_as_template((ROLE / "templates" / template).read_text()))
        return templar.template(trust_as_template(template))

    return _render


def _config(render, host, **overrides):
    return yaml.safe_load(render("config.yaml.j2", host, **overrides))


def test_first_server_starts_the_cluster(render):
    config = _config(render, "srv-1")
    assert config["cluster-init"] is True
    assert "server" not in config and "token" not in config
    assert config["token-file"] == "/etc/rancher/k3s/cluster-token"
    assert config["cluster-cidr"] == "10.42.0.0/16" and config["service-cidr"] == "10.43.0.0/16"
    assert config["flannel-backend"] == "vxlan"
    assert config["disable"] == ["traefik", "servicelb"]
    assert config["https-listen-port"] == 6443
    assert config["write-kubeconfig-mode"] == "0600"
    assert "node-label" not in config and "tls-san" not in config and "cluster-dns" not in config


def test_joining_server_points_at_the_first(render):
    config = _config(render, "srv-2", k3s_install_node_ip="192.0.2.112", k3s_install_tls_san=["k3s.example.internal"],
                     k3s_install_cluster_cidr="172.20.0.0/16", k3s_install_service_cidr="172.21.0.0/16",
                     k3s_install_cluster_dns="172.21.0.10", k3s_install_flannel_backend="wireguard-native")
    assert "cluster-init" not in config
    assert config["server"] == "https://192.0.2.11:6443"
    assert config["node-ip"] == "192.0.2.112"
    assert config["tls-san"] == ["k3s.example.internal"]
    assert (config["cluster-cidr"], config["service-cidr"], config["cluster-dns"]) == (
        "172.20.0.0/16", "172.21.0.0/16", "172.21.0.10")
    assert config["flannel-backend"] == "wireguard-native"


def test_api_endpoint_is_the_join_address_and_a_san(render):
    config = _config(render, "srv-3", k3s_install_api_endpoint="k3s-vip.example.internal",
                     k3s_install_tls_san=["k3s-vip.example.internal", "10.9.9.9"])
    assert config["server"] == "https://k3s-vip.example.internal:6443"
    assert config["tls-san"] == ["k3s-vip.example.internal", "10.9.9.9"]
    ipv6 = _config(render, "gpu-1", k3s_install_api_endpoint="2001:db8::10")
    assert ipv6["server"] == "https://[2001:db8::10]:6443"


def test_gpu_agent(render):
    config = _config(render, "gpu-1", k3s_install_node_labels=["sophia.ai/pool=gh200"],
                     k3s_install_node_taints=["nvidia.com/gpu=present:NoSchedule"])
    assert config["server"] == "https://192.0.2.11:6443"
    assert config["node-label"] == ["sophia.ai/pool=gh200", "gpu=true"]
    assert config["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    # server-only flags are not given to an agent (k3s agent refuses them)
    for key in ("cluster-init", "cluster-cidr", "service-cidr", "disable", "tls-san", "flannel-backend",
                "https-listen-port", "write-kubeconfig-mode"):
        assert key not in config, key


def test_non_gpu_server_has_no_gpu_label(render):
    config = _config(render, "srv-2", k3s_install_node_labels=["zone=a"])
    assert config["node-label"] == ["zone=a"]


def test_extra_config_and_awkward_values_stay_yaml(render):
    config = _config(render, "srv-1", k3s_install_extra_config={
        "kubelet-arg": ["fail-cgroupv1=false", "max-pods=250"], "protect-kernel-defaults": True,
        "node-name": "weird: name # not a comment"})
    assert config["kubelet-arg"] == ["fail-cgroupv1=false", "max-pods=250"]
    assert config["protect-kernel-defaults"] is True
    assert config["node-name"] == "weird: name # not a comment"


def test_registries(render):
    registries = {"mirrors": {"docker.io": {"endpoint": ["https://registry.example.internal:5000"]}},
                  "configs": {"registry.example.internal:5000": {"auth": {"username": "k3s", "password": "s3cret"}}}}
    parsed = yaml.safe_load(render("registries.yaml.j2", "srv-1", k3s_install_registries=registries))
    assert parsed == registries


@pytest.mark.parametrize("host, role, service", [("srv-1", "server", "k3s"), ("gpu-1", "agent", "k3s-agent")])
def test_service_files(render, host, role, service):
    unit = render("k3s.service.j2", host)
    assert f"ExecStart=/usr/local/bin/k3s {role}\n" in unit
    assert "Type=notify" in unit and "KillMode=process" in unit and "Restart=always" in unit
    lab = render("k3s-lab-service.sh.j2", host)
    assert lab.startswith("#!/bin/sh\n")
    assert f"/usr/local/bin/k3s {role} >>/var/log/{service}.log 2>&1 &" in lab
    assert f"/run/{service}.child.pid" in lab


@pytest.mark.parametrize("arch, binary, images, sums", [
    ("x86_64", "k3s", "k3s-airgap-images-amd64.tar.zst", "sha256sum-amd64.txt"),
    ("aarch64", "k3s-arm64", "k3s-airgap-images-arm64.tar.zst", "sha256sum-arm64.txt"),  # Lambda GH200
])
def test_release_asset_urls(render, arch, binary, images, sums):
    facts = {"architecture": arch, "nodename": "srv-1", "default_ipv4": {"address": "192.0.2.11"}}
    url = render("{{ __k3s_install_download_base }}/{{ __k3s_install_binary_name }} {{ __k3s_install_images_name }}"
                 " {{ __k3s_install_checksums_name }}", "srv-1", ansible_facts=facts)
    assert url == (f"https://github.com/k3s-io/k3s/releases/download/v1.33.7%2Bk3s1/{binary} {images} {sums}")
    mirror = render("{{ __k3s_install_download_base }}", "srv-1", ansible_facts=facts, k3s_install_mode="airgap",
                    k3s_install_airgap_url="https://mirror.example.internal/k3s/v1.33.7+k3s1/")
    assert mirror == "https://mirror.example.internal/k3s/v1.33.7+k3s1"


def test_node_names_and_upgrade_order_inputs(render):
    hostvars = {h: dict(v) for h, v in INVENTORY["hostvars"].items()}
    hostvars["gpu-1"]["k3s_install_node_name"] = "gh200-a"
    names = render("{{ __k3s_install_node_names }}", "srv-1", hostvars=hostvars)
    assert names == {"srv-1": "srv-1", "srv-2": "srv-2", "srv-3": "srv-3", "gpu-1": "gh200-a"}


if __name__ == "__main__":
    if "--write-readme" in sys.argv:
        write_readme()
