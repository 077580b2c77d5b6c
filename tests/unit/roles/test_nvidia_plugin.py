# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role ``nvidia_plugin``: its inputs, its README and its templates, without a cluster.

The templates are rendered by ansible-core's own templating engine with the role's defaults and vars, as a play
would render them; the cluster behaviour is the molecule scenario's (molecule/nvidia_plugin). Nothing is mocked.

``python tests/unit/roles/test_nvidia_plugin.py --write-readme`` rewrites the README's variables table from
meta/argument_specs.yml; ``test_readme_matches_argument_specs`` fails while it differs.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import role_readme  # tests/unit/roles/role_readme.py: the README table, shared by the role tests

# Imported at collection time, before a test installs Ansible's collection finder (init_plugin_loader): a module of
# this collection first imported after that goes through the finder, which refuses a collection package that plain
# Python imported before it ("collection metadata was not loaded"); which tests ran first decided it.
from ansible_collections.sophia_ai.platform.plugins.modules.gpu_node_check import argument_spec as gpu_node_check_spec

ROLE = Path(__file__).resolve().parents[3] / "roles" / "nvidia_plugin"


def _spec():
    return role_readme.spec(ROLE)


def readme_table():
    return role_readme.table(ROLE)


def write_readme():
    role_readme.write(ROLE)


def test_every_default_is_declared_with_the_same_value():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = _spec()["options"]
    assert sorted(defaults) == sorted(options)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
        assert name.startswith("nvidia_plugin_"), name
        assert options[name]["description"], name


def test_readme_matches_argument_specs():
    assert role_readme.section(ROLE) == readme_table(), (
        "README.md's variables table differs from meta/argument_specs.yml: "
        "run python tests/unit/roles/test_nvidia_plugin.py --write-readme"
    )


# --- templates, rendered by ansible-core's engine -------------------------------------------------------------

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
    }

    def _render(template, **overrides):
        templar = Templar(loader=loader, variables={**base, **overrides})
        if template.endswith(".j2"):
            return templar.template(trust_as_template((ROLE / "templates" / template).read_text()))
        return templar.template(trust_as_template(template))

    return _render


def _selector_default():
    return dict(pair.split("=", 1) for pair in gpu_node_check_spec()["device_plugin_selector"]["default"].split(","))


@pytest.mark.parametrize("overrides, config, pull_secrets", [
    ({}, False, None),
    ({"nvidia_plugin_time_slicing_replicas": 4, "nvidia_plugin_image_pull_secrets": ["registry-a", "registry-b"]},
     True, [{"name": "registry-a"}, {"name": "registry-b"}]),
])
def test_device_plugin_daemonset(render, overrides, config, pull_secrets):
    ds = yaml.safe_load(render("device-plugin-daemonset.yaml.j2", **overrides))
    pod = ds["spec"]["template"]
    # gpu_node_check's default device_plugin_selector finds this DaemonSet, and the selector matches its pods
    assert _selector_default().items() <= ds["metadata"]["labels"].items()
    assert ds["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"gpu": "true"}
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    container = spec["containers"][0]
    assert container["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.19.1"
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["FAIL_ON_INIT_ERROR"] == "true" and env["MIG_STRATEGY"] == "none"
    assert ("CONFIG_FILE" in env) is config
    assert ("sophia.ai/config-sha256" in pod["metadata"].get("annotations", {})) is config
    assert [v["name"] for v in spec["volumes"]] == ["kubelet-device-plugins-dir"] + (["config"] if config else [])
    assert spec["volumes"][0]["hostPath"] == {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}
    assert spec.get("imagePullSecrets") == pull_secrets


def test_lab_settings_reach_the_daemonsets(render):
    lab = {"nvidia_plugin_image": "docker.io/sophia-platform/nvidia-device-plugin:v0.19.1-abc",
           "nvidia_plugin_fail_on_init_error": False, "nvidia_plugin_mig_strategy": "mixed",
           "nvidia_plugin_use_runtime_class": False, "nvidia_plugin_kubelet_dir": "/srv/kubelet"}
    for template in ("device-plugin-daemonset.yaml.j2", "gfd-daemonset.yaml.j2"):
        spec = yaml.safe_load(render(template, **lab))["spec"]["template"]["spec"]
        env = {item["name"]: item.get("value") for item in spec["containers"][0]["env"]}
        assert spec["containers"][0]["image"] == lab["nvidia_plugin_image"]
        assert env["FAIL_ON_INIT_ERROR"] == "false" and env["MIG_STRATEGY"] == "mixed"
        assert "runtimeClassName" not in spec
    plugin = yaml.safe_load(render("device-plugin-daemonset.yaml.j2", **lab))["spec"]["template"]["spec"]
    assert plugin["volumes"][0]["hostPath"]["path"] == "/srv/kubelet/device-plugins"


def test_gfd_daemonset_writes_labels_for_node_feature_discovery(render):
    ds = yaml.safe_load(render("gfd-daemonset.yaml.j2"))
    assert ds["metadata"]["name"] == "gpu-feature-discovery"
    # not the device plugin: gpu_node_check's selector must not count it
    assert not _selector_default().items() <= ds["metadata"]["labels"].items()
    container = ds["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["command"] == ["/usr/bin/gpu-feature-discovery"]
    assert env["USE_NODE_FEATURE_API"] == "false"
    assert ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"] == {
        "path": "/etc/kubernetes/node-feature-discovery/features.d", "type": "DirectoryOrCreate"}


@pytest.mark.parametrize("replicas, mig", [(2, "none"), (8, "single")])
def test_time_slicing_config(render, replicas, mig):
    config = yaml.safe_load(render("device-plugin-config.yaml.j2", nvidia_plugin_time_slicing_replicas=replicas,
                                   nvidia_plugin_mig_strategy=mig))
    assert config["version"] == "v1"
    assert config["flags"] == {"migStrategy": mig, "failOnInitError": True}
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": replicas}]


def _go_template_as_toml(text):
    """K3s's Go template with its own actions taken out: what remains is the TOML the role adds."""
    assert '{{ template "base" . }}' in text
    return tomllib.loads(re.sub(r"\{\{.*?\}\}", "false", text.replace('{{ template "base" . }}', "")))


@pytest.mark.parametrize("version, path, file_name", [
    (2, ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "nvidia"), "config.toml.tmpl"),
    (3, ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "nvidia"), "config-v3.toml.tmpl"),
])
def test_k3s_containerd_template(render, version, path, file_name):
    settings = {"nvidia_plugin_k3s_containerd_config_version": version,
                "nvidia_plugin_runtime_path": "/opt/nvidia/bin/nvidia-container-runtime"}
    runtime = _go_template_as_toml(render("containerd-config.toml.tmpl.j2", **settings))
    for key in path:
        runtime = runtime[key]
    assert runtime == {"runtime_type": "io.containerd.runc.v2",
                       "options": {"BinaryName": "/opt/nvidia/bin/nvidia-container-runtime", "SystemdCgroup": False}}
    assert render("{{ __nvidia_plugin_k3s_template }}", **settings) == f"/var/lib/rancher/k3s/agent/etc/containerd/{file_name}"


@pytest.mark.parametrize("runtime_path, finds", [
    ("/usr/bin/nvidia-container-runtime", True),  # the apt packages' place
    ("/usr/local/nvidia/toolkit/nvidia-container-runtime", True),  # the GPU Operator's
    ("/usr/local/bin/nvidia-container-runtime", False),
    ("/opt/nvidia/nvidia-container-runtime", False),
    ("/usr/bin/nvidia-container-runtime-cdi", False),  # another binary: K3s's `nvidia` runtime is this name only
])
def test_template_only_where_k3s_does_not_find_the_runtime(render, runtime_path, finds):
    assert render("{{ __nvidia_plugin_k3s_finds_runtime | bool }}", nvidia_plugin_runtime_path=runtime_path) is finds


@pytest.mark.parametrize("version, packages", [
    ("1.19.0-1", ["nvidia-container-toolkit=1.19.0-1", "nvidia-container-toolkit-base=1.19.0-1",
                  "libnvidia-container-tools=1.19.0-1", "libnvidia-container1=1.19.0-1"]),
    ("", ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
          "libnvidia-container1"]),
])
def test_toolkit_packages_pinned_together(render, version, packages):
    assert render("{{ __nvidia_plugin_toolkit_install }}", nvidia_plugin_toolkit_version=version) == packages


@pytest.mark.parametrize("selector, expected", [
    ({"gpu": "true"}, "gpu=true"),
    ({"gpu": "true", "nvidia.com/gpu.present": "true"}, "gpu=true,nvidia.com/gpu.present=true"),
])
def test_wait_uses_the_daemonset_node_selector(render, selector, expected):
    assert render("{{ __nvidia_plugin_gpu_node_selector }}", nvidia_plugin_node_selector=selector) == expected


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-readme"]:
        write_readme()
    else:
        sys.exit(f"usage: {sys.argv[0]} --write-readme")
