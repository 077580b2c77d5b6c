# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory plugin sophia_ai.platform.lambda_cloud: options, key sources, groups, constructed features and cache.

The plugin is loaded by Ansible's inventory loader and parses real configuration files; only the Lambda Cloud API
is replaced (it cannot be reached from here): ``_lambda_cloud.Client`` becomes a stand-in that returns the
instances of fixtures/lambda_cloud/instances.json (shaped as the API's OpenAPI description, version 1.10.0) and
records the key and options it was given. The HTTP side is tested in tests/integration/lambda_cloud.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.inventory import lambda_cloud
from ansible_collections.sophia_ai.platform.plugins.module_utils import _lambda_cloud
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError

FIXTURE = Path(__file__).resolve().parents[1] / "module_utils" / "fixtures" / "lambda_cloud" / "instances.json"
DATA = json.loads(FIXTURE.read_text())["data"]
KEY = "secret_unit-plugin_00112233445566778899aabbccddeeff.ZyXwVuTsRqPoNmLk"


class FakeClient:
    """Stands in for the Lambda Cloud API client: returns the fixture's instances or raises what it is told."""

    calls = []
    errors = []

    def __init__(self, base_url, api_key, key_source="", **kwargs):
        FakeClient.calls.append({"base_url": base_url, "api_key": api_key, "key_source": key_source, **kwargs})
        self.requests, self.waited = 1, 0.0

    def list_instances(self):
        if FakeClient.errors:
            raise FakeClient.errors[0]
        return json.loads(json.dumps(DATA))


@pytest.fixture
def fake_api(monkeypatch):
    FakeClient.calls, FakeClient.errors = [], []
    monkeypatch.setattr(_lambda_cloud, "Client", FakeClient)
    for var in ("LAMBDA_API_KEY", "LAMBDA_CLOUD_API_KEY", "LAMBDA_API_KEY_FILE", "LAMBDA_CLOUD_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return FakeClient


LOAD_NAME = "ansible_collections.sophia_ai.platform.plugins.inventory.lambda_cloud"


@pytest.fixture(scope="module")
def ansible():
    """(DataLoader, a factory of plugin instances) with the plugin's options registered as Ansible's loader does.

    The plugin is not fetched through ``inventory_loader``: in a pytest session other test modules import this
    collection as plain Python packages first, and Ansible's collection finder then refuses to load a plugin of it
    ("collection metadata was not loaded"). Its documentation, with the ``constructed`` and ``inventory_cache``
    fragments, is registered with the same calls that the loader makes.
    """
    import yaml
    from ansible import constants as C
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import fragment_loader, init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig
    from ansible.utils.plugin_docs import add_fragments

    if AnsibleCollectionConfig.collection_finder is None:  # the doc fragments are found through it
        init_plugin_loader()
    doc = yaml.safe_load(lambda_cloud.DOCUMENTATION)
    add_fragments(doc, lambda_cloud.__file__, fragment_loader=fragment_loader)
    C.config.initialize_plugin_configuration_definitions("inventory", LOAD_NAME, doc["options"])

    def plugin():
        instance = lambda_cloud.InventoryModule()
        instance._load_name = LOAD_NAME  # pylint: disable=protected-access
        return instance

    return DataLoader, plugin


def parse(ansible, tmp_path, config, name="lambda_cloud.yml"):
    from ansible.inventory.data import InventoryData
    data_loader, new_plugin = ansible
    path = tmp_path / name
    path.write_text(config)
    plugin = new_plugin()
    assert plugin.verify_file(str(path))
    inventory = InventoryData()
    plugin.parse(inventory, data_loader(), str(path), cache=False)
    return plugin, inventory, str(path)


def _groups(inventory):
    return {name: sorted(h.name for h in group.get_hosts()) for name, group in inventory.groups.items()
            if name not in ("all", "ungrouped")}


def _vars(inventory, host):
    return inventory.get_host(host).get_vars()


@pytest.mark.parametrize("name, accepted", [
    ("lambda_cloud.yml", True), ("lambda_cloud.yaml", True), ("prod.lambda_cloud.yml", True),
    (".lambda_cloud.yml", True), ("lambda.yml", False), ("hosts.yml", False), ("lambda_cloud.json", False),
])
def test_only_lambda_cloud_files_are_verified(ansible, tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: sophia_ai.platform.lambda_cloud\n")
    assert ansible[1]().verify_file(str(path)) is accepted


def test_default_groups_and_host_vars(ansible, tmp_path, fake_api, monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    _plugin, inventory, _path = parse(ansible, tmp_path, "plugin: sophia_ai.platform.lambda_cloud\n")
    call = fake_api.calls[0]
    assert call["base_url"] == "https://cloud.lambda.ai/api/v1" and call["api_key"] == KEY
    assert call["key_source"] == "environment variable LAMBDA_API_KEY"
    assert (call["timeout"], call["retries"], call["max_retry_wait"]) == (30, 5, 60)
    groups = _groups(inventory)
    servers = ["sophia-k3s-server-1", "sophia-k3s-server-2", "sophia-k3s-server-3"]
    assert groups["lambda_gpu_1x_gh200"] == servers
    assert groups["lambda_gpu_8x_h100_sxm5"] == ["sophia-k3s-agent-1"]
    assert groups["lambda_gpu_1x_a10"] == ["8c0e2a4b6d7f9a1c3e5f7b9d1a3c5e87", "ad2a4c6d8f9b1c3e5a7b9d1f3c5e7a09",
                                           "dev-a10", "scratch"]
    assert groups["lambda_region_us_east_3"] == ["sophia-k3s-agent-1"] + servers
    assert groups["lambda_region_us_west_1"] == ["dev-a10", "scratch"]
    assert groups["lambda_status_active"] == sorted(groups["gpu"])
    assert "lambda_status_booting" not in groups  # statuses default to [active]
    hv = _vars(inventory, "sophia-k3s-server-1")
    assert hv["ansible_host"] == "198.51.100.11" and hv["lambda_private_ip"] == "10.19.8.11"
    assert hv["lambda_gpus"] == 1 and hv["lambda_gpu_description"] == "GH200 (96 GB)"
    assert not any("jupyter" in k for h in inventory.hosts.values() for k in h.get_vars())


def test_constructed_groups_compose_and_keyed_groups(ansible, tmp_path, fake_api, monkeypatch):
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    config = """
plugin: sophia_ai.platform.lambda_cloud
name_pattern: "^sophia-"
statuses: [active, booting, unhealthy]
address: [private_ip, ip]
gpu_group: gpu_hosts
groups:
  k3s_servers: lambda_name is match('sophia-k3s-server-')
  k3s_agents: lambda_name is match('sophia-k3s-agent-')
  swarm_managers: lambda_tags.swarm | default('') == 'manager'
  swarm_workers: lambda_tags.swarm | default('') == 'worker'
compose:
  k3s_install_node_ip: lambda_private_ip
  hourly_usd: lambda_price_cents_per_hour / 100
keyed_groups:
  - key: lambda_tags
    prefix: tag
  - key: lambda_instance_type
    prefix: type
"""
    _plugin, inventory, _path = parse(ansible, tmp_path, config)
    groups = _groups(inventory)
    assert groups["k3s_servers"] == groups["swarm_managers"] == [
        "sophia-k3s-server-1", "sophia-k3s-server-2", "sophia-k3s-server-3"]
    assert groups["k3s_agents"] == groups["swarm_workers"] == [
        "sophia-k3s-agent-1", "sophia-k3s-agent-2", "sophia-k3s-agent-3"]
    assert groups["tag_phase_2"] == ["sophia-k3s-server-1"]
    assert groups["tag_swarm_manager"] == groups["k3s_servers"]
    assert groups["type_gpu_1x_gh200"] == ["sophia-k3s-agent-3"] + groups["k3s_servers"]
    assert "gpu" not in groups and len(groups["gpu_hosts"]) == 6
    assert "dev-a10" not in inventory.hosts  # name_pattern
    hv = _vars(inventory, "sophia-k3s-server-2")
    assert hv["ansible_host"] == hv["k3s_install_node_ip"] == "10.19.8.12"
    assert hv["hourly_usd"] == 1.49
    assert "ansible_host" not in _vars(inventory, "sophia-k3s-agent-2")  # booting, no address yet


def test_strict_fails_on_a_bad_expression(ansible, tmp_path, fake_api, monkeypatch):
    from ansible.errors import AnsibleError
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    config = "plugin: sophia_ai.platform.lambda_cloud\nstrict: true\ncompose:\n  x: lambda_nothing.here\n"
    with pytest.raises(AnsibleError, match="Could not set x for host"):
        parse(ansible, tmp_path, config)
    config = config.replace("strict: true", "strict: false")
    _plugin, inventory, _path = parse(ansible, tmp_path, config)
    assert "x" not in _vars(inventory, "dev-a10")


@pytest.mark.parametrize("config, env, wanted_source", [
    ("api_key: %s\n" % KEY, {"LAMBDA_API_KEY": "other-key"}, "option api_key in {path}"),
    ("api_key_file: {keyfile}\n", {"LAMBDA_API_KEY": "other-key"}, "api_key_file {keyfile}"),
    ("", {"LAMBDA_CLOUD_API_KEY": KEY}, "environment variable LAMBDA_CLOUD_API_KEY"),
    ("", {"LAMBDA_CLOUD_API_KEY": "other-key", "LAMBDA_API_KEY": KEY}, "environment variable LAMBDA_API_KEY"),
    ("", {"LAMBDA_API_KEY_FILE": "{keyfile}"}, "api_key_file {keyfile} (from LAMBDA_API_KEY_FILE)"),
    ("api_key: \"{{{{ lookup('ansible.builtin.env', 'SOPHIA_TEST_KEY') }}}}\"\n", {"SOPHIA_TEST_KEY": KEY},
     "option api_key in {path}"),
])
def test_key_sources_and_precedence(ansible, tmp_path, fake_api, monkeypatch, config, env, wanted_source):
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY + "\n")
    os.chmod(keyfile, 0o600)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(keyfile=keyfile))
    _plugin, _inventory, path = parse(ansible, tmp_path, "plugin: sophia_ai.platform.lambda_cloud\n"
                                      + config.format(keyfile=keyfile))
    assert fake_api.calls[0]["api_key"] == KEY
    assert fake_api.calls[0]["key_source"] == wanted_source.format(path=path, keyfile=keyfile)


def test_no_key_says_where_to_put_one(ansible, tmp_path, fake_api):
    from ansible.errors import AnsibleParserError
    with pytest.raises(AnsibleParserError) as err:
        parse(ansible, tmp_path, "plugin: sophia_ai.platform.lambda_cloud\n")
    assert "no Lambda Cloud API key. Fix: set the environment variable LAMBDA_API_KEY, or api_key_file" in str(err.value)
    assert fake_api.calls == []


def test_a_readable_key_file_is_warned_about(ansible, tmp_path, fake_api, monkeypatch):
    keyfile = tmp_path / "key"
    keyfile.write_text(KEY)
    os.chmod(keyfile, 0o644)
    warnings = []
    from ansible.utils.display import Display
    monkeypatch.setattr(Display, "warning", lambda self, msg, *a, **k: warnings.append(msg))
    parse(ansible, tmp_path, "plugin: sophia_ai.platform.lambda_cloud\napi_key_file: %s\n" % keyfile)
    assert any("readable by group and others (mode 0644). Fix: chmod 600 %s" % keyfile in w for w in warnings)
    assert not any(KEY in w for w in warnings)


def test_api_errors_become_parser_errors_without_the_key(ansible, tmp_path, fake_api, monkeypatch):
    from ansible.errors import AnsibleParserError
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    fake_api.errors = [ApiError("the Lambda Cloud API at X refused the API key from environment variable LAMBDA_API_KEY")]
    with pytest.raises(AnsibleParserError) as err:
        parse(ansible, tmp_path, "plugin: sophia_ai.platform.lambda_cloud\n")
    assert str(err.value).startswith("lambda_cloud: the Lambda Cloud API at X refused")
    assert err.value.__cause__ is None and KEY not in str(err.value)


def test_a_key_with_a_line_break_is_refused_before_any_request(ansible, tmp_path, fake_api, monkeypatch):
    from ansible.errors import AnsibleParserError
    monkeypatch.setenv("LAMBDA_API_KEY", KEY + "\nX-Injected: 1")
    with pytest.raises(AnsibleParserError, match="cannot be sent in an HTTP header") as err:
        parse(ansible, tmp_path, "plugin: sophia_ai.platform.lambda_cloud\n")
    assert KEY not in str(err.value) and fake_api.calls == []


def test_the_cache_holds_the_instances_without_secrets_and_spares_the_api(ansible, tmp_path, fake_api, monkeypatch):
    from ansible.inventory.data import InventoryData
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    cache_dir = tmp_path / "cache"
    config = ("plugin: sophia_ai.platform.lambda_cloud\ncache: true\ncache_plugin: ansible.builtin.jsonfile\n"
              "cache_connection: %s\ncache_timeout: 600\n" % cache_dir)
    plugin, inventory, path = parse(ansible, tmp_path, config)
    plugin.update_cache_if_changed()  # as InventoryManager does after parse()
    assert len(fake_api.calls) == 1
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    text = files[0].read_text()
    assert KEY not in text and "jupyter" not in text and "sophia-k3s-server-1" in text
    # a second parse that may use the cache (cache=True, as ansible-inventory does without --flush-cache)
    plugin = ansible[1]()
    again = InventoryData()
    plugin.parse(again, ansible[0](), path, cache=True)
    assert len(fake_api.calls) == 1
    assert sorted(again.hosts) == sorted(inventory.hosts)
