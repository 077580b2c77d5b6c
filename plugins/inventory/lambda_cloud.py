# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lambda_cloud
short_description: Lambda Cloud GPU instances as an inventory
version_added: 0.1.0
author: Sophia AI platform engineering (@sophia-ai)
description:
  - Reads the instances of a Lambda Cloud account (C(GET /instances) of the Lambda Cloud API) and makes each one a
    host, with C(lambda_*) host variables and default groups by instance type, region, status and GPUs.
  - Uses a YAML configuration file whose name ends with C(lambda_cloud.yml) or C(lambda_cloud.yaml).
  - Default groups - C(lambda_<instance type>) (for example C(lambda_gpu_1x_gh200)), C(lambda_region_<region>)
    (C(lambda_region_us_east_3)), C(lambda_status_<status>) and O(gpu_group) for instances with GPUs; names are
    lower case with anything but letters, digits and C(_) turned into C(_). O(compose), O(groups) and
    O(keyed_groups) build the collection's own groups (C(k3s_servers), C(k3s_agents), C(swarm_managers),
    C(swarm_workers)) from names or tags, as the C(ansible.builtin.constructed) plugin does.
  - Host variables - C(lambda_id), C(lambda_name), C(lambda_status), C(lambda_ip), C(lambda_private_ip),
    C(lambda_hostname), C(lambda_region), C(lambda_region_description), C(lambda_instance_type),
    C(lambda_instance_type_description), C(lambda_gpu_description), C(lambda_price_cents_per_hour),
    C(lambda_vcpus), C(lambda_memory_gib), C(lambda_storage_gib), C(lambda_gpus), C(lambda_ssh_key_names),
    C(lambda_file_system_names), C(lambda_is_reserved), C(lambda_tags) (a dict), and C(ansible_host) from
    O(address). The instance's Jupyter token and URL are secrets and are never kept.
  - The API key is read from O(api_key), the environment (E(LAMBDA_API_KEY), E(LAMBDA_CLOUD_API_KEY)) or
    O(api_key_file). It is never printed, logged, cached or put in an error message, at any verbosity.
  - Rate limits - the API allows about one request per second. Answers 429 and 5xx are retried up to O(retries)
    times, waiting as long as C(Retry-After) says (else 1, 2, 4 ... seconds, at most 30), within O(max_retry_wait)
    seconds in all; then the plugin fails, saying what to do. O(cache) spares the API on repeated runs.
  - Pagination - version 1 of the API returns every instance in one answer. Should it page, the plugin follows a
    C(next_page_token) (sent back as C(page_token)), a C(next_cursor) (sent back as C(cursor)) or a
    C(Link rel=next) header on the same host, up to 100 pages.
  - Written for this collection because no Lambda Cloud inventory plugin exists in any collection that ships
    with Ansible.
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
notes:
  - The configuration file must be named C(lambda_cloud.yml) or C(lambda_cloud.yaml), or end with it
    (C(prod.lambda_cloud.yml)); other files are left to other plugins.
  - The collection keeps an example at C(inventories/lambda/.lambda_cloud.yml), a dot file so that
    C(-i inventories/lambda) reads only the static example while C(-i inventories/lambda/.lambda_cloud.yml) reads
    the API with the same C(group_vars).
options:
  plugin:
    description: The name of this plugin; always C(sophia_ai.platform.lambda_cloud).
    type: str
    required: true
    choices: [sophia_ai.platform.lambda_cloud, lambda_cloud]
  api_key:
    description:
      - The Lambda Cloud API key. Secret - prefer the environment or O(api_key_file), or an Ansible Vault value.
      - A value written in this configuration file wins over one from the environment; from the same place,
        O(api_key) wins over O(api_key_file). When both environment variables are set, E(LAMBDA_API_KEY) wins.
    type: str
    env:
      - name: LAMBDA_CLOUD_API_KEY
      - name: LAMBDA_API_KEY
  api_key_file:
    description:
      - A file that holds only the API key (one line). The plugin warns when the group or others may read it
        (mode other than 0600 or 0400).
    type: path
    env:
      - name: LAMBDA_API_KEY_FILE
  base_url:
    description:
      - The API's root; C(/instances) is appended. C(https://cloud.lambdalabs.com/api/v1) is the API's older
        name. Tests point it at a local server.
    type: str
    default: https://cloud.lambda.ai/api/v1
    env:
      - name: LAMBDA_CLOUD_BASE_URL
  statuses:
    description: Only instances in these states become hosts; empty for all.
    type: list
    elements: str
    default: [active]
  name_pattern:
    description: Only instances whose name matches this regular expression (searched, not anchored) become hosts.
    type: str
  regions:
    description: Only instances in these regions (shell patterns, for example C(us-east-*)); empty for all.
    type: list
    elements: str
    default: []
  instance_types:
    description: Only instances of these types (shell patterns, for example C(gpu_*_gh200)); empty for all.
    type: list
    elements: str
    default: []
  hostnames:
    description:
      - What names a host, in order of preference - the first field the instance has and no other host took.
        Two instances with the same name - the second one falls to the next choice (a warning says so).
    type: list
    elements: str
    choices: [name, hostname, id, ip, private_ip]
    default: [name, id]
  address:
    description:
      - What C(ansible_host) is, in order of preference - the first field the instance has. Empty - no
        C(ansible_host) (use O(compose)).
    type: list
    elements: str
    choices: [ip, private_ip, hostname]
    default: [ip]
  gpu_group:
    description: The group of instances with GPUs (C(specs.gpus) > 0); empty for none.
    type: str
    default: gpu
  timeout:
    description: Seconds to wait for each answer of the API.
    type: int
    default: 30
  retries:
    description: How many times a request answered 429, 5xx or not at all (timeout) is retried.
    type: int
    default: 5
  max_retry_wait:
    description: Seconds that all retries of one run may wait in all; a C(Retry-After) beyond it fails at once.
    type: int
    default: 60
"""

EXAMPLES = r"""
# lambda_cloud.yml: every active instance, key from LAMBDA_API_KEY
plugin: sophia_ai.platform.lambda_cloud

---
# The collection's groups from instance names, connecting over the private network
plugin: sophia_ai.platform.lambda_cloud
api_key_file: ~/.config/lambda/api_key
name_pattern: "^sophia-"
instance_types: [gpu_1x_gh200]
address: [private_ip, ip]
groups:
  k3s_servers: lambda_name is match('sophia-k3s-server-')
  k3s_agents: lambda_name is match('sophia-k3s-agent-')
  swarm_managers: lambda_tags.swarm | default('') == 'manager'
  swarm_workers: lambda_tags.swarm | default('') == 'worker'
compose:
  k3s_install_node_ip: lambda_private_ip
keyed_groups:
  - key: lambda_tags
    prefix: tag

---
# Cached for an hour in JSON files, so that repeated runs do not ask the API
plugin: sophia_ai.platform.lambda_cloud
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/sophia-platform/inventory
cache_timeout: 3600
"""

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

from ansible_collections.sophia_ai.platform.plugins.module_utils import _lambda_cloud  # noqa: E402
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError  # noqa: E402


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Lambda Cloud instances as hosts; the API and the pure logic are in module_utils/_lambda_cloud.py."""

    NAME = "sophia_ai.platform.lambda_cloud"

    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        if path.endswith(("lambda_cloud.yml", "lambda_cloud.yaml")):
            return True
        self.display.vvv("lambda_cloud: skipping %s: the file name must end with lambda_cloud.yml or "
                         "lambda_cloud.yaml" % path)
        return False

    def _api_key(self, path):
        candidates = []
        for option in ("api_key", "api_key_file"):
            value, origin = self.get_option_and_origin(option)
            if option == "api_key" and isinstance(value, str) and self.templar.is_template(value):
                value = self.templar.template(value)
            candidates.append((option, origin, value))
        chosen = _lambda_cloud.choose_key_source(candidates)
        if chosen is None:
            raise PlatformError("no Lambda Cloud API key. Fix: set the environment variable LAMBDA_API_KEY, or "
                                "api_key_file (or api_key, a Vault value) in %s; create a key at %s"
                                % (path, _lambda_cloud.KEY_PAGE))
        option, origin, value = chosen
        source = _lambda_cloud.key_source_label(option, origin, path)
        if option == "api_key_file":
            key, warnings = _lambda_cloud.read_key_file(value)
            source = "api_key_file %s" % value if not (origin or "").startswith("env:") else \
                "api_key_file %s (from LAMBDA_API_KEY_FILE)" % value
            for warning in warnings:
                self.display.warning(warning)
        else:
            key = str(value).strip()
        return _lambda_cloud.check_key_shape(key, source), source

    def _fetch(self, path):
        key, source = self._api_key(path)
        client = _lambda_cloud.Client(self.get_option("base_url"), key, key_source=source,
                                      timeout=self.get_option("timeout"), retries=self.get_option("retries"),
                                      max_retry_wait=self.get_option("max_retry_wait"),
                                      log=lambda msg: self.display.vvv("lambda_cloud: %s" % _lambda_cloud.redact(msg, key)))
        try:
            instances = client.list_instances()
        finally:
            self.display.vvv("lambda_cloud: %d request(s), %.1fs waited for retries" % (client.requests, client.waited))
        return instances

    def _populate(self, instances):
        chosen = _lambda_cloud.select(instances, self.get_option("statuses"), self.get_option("name_pattern"),
                                      self.get_option("regions"), self.get_option("instance_types"))
        hosts, warnings = _lambda_cloud.build_hosts(chosen, self.get_option("hostnames"), self.get_option("address"),
                                                    self.get_option("gpu_group"))
        for warning in warnings:
            self.display.warning(warning)
        strict = self.get_option("strict")
        for host in hosts:
            name = self.inventory.add_host(host["name"])
            for var, value in host["vars"].items():
                self.inventory.set_variable(name, var, value)
            for group in host["groups"]:
                self.inventory.add_child(self.inventory.add_group(group), name)
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        instances = None
        if use_cache:
            try:
                instances = self._cache[cache_key]
            except KeyError:
                update_cache = True
        try:
            if instances is None:
                # Only the instances' public fields are cached (never the key; the Jupyter token is dropped).
                instances = [_public(i) for i in self._fetch(path)]
            if update_cache:
                self._cache[cache_key] = instances
            self._populate(instances)
        except PlatformError as exc:
            raise AnsibleParserError("lambda_cloud: %s" % exc) from None


def _public(instance):
    return {k: v for k, v in instance.items() if k not in ("jupyter_token", "jupyter_url")}
