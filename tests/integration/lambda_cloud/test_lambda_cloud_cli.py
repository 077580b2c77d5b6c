# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ansible-inventory`` with the sophia_ai.platform.lambda_cloud plugin, run for real, against a local server.

The real Lambda Cloud API cannot be reached from here (no outbound network, and no account), so
fake_api.FakeLambdaApi replays answers of the shape Lambda's OpenAPI description documents, over real HTTP:
instances of three types in three regions and five states, a refused key, an inactive account, rate limits with
and without Retry-After, server errors, pagination three ways. What is assumed rather than documented is listed in
fake_api's docstring. Every run checks that the API key appears nowhere in the output, at -vvv, errors included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .fake_api import VALID_KEY, FakeLambdaApi

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SERVERS = ["sophia-k3s-server-1", "sophia-k3s-server-2", "sophia-k3s-server-3"]


@pytest.fixture(scope="module")
def api():
    with FakeLambdaApi() as server:
        yield server


@pytest.fixture
def run(api, tmp_path):
    """Write a lambda_cloud.yml for a scenario and run ansible-inventory on it; returns (result, parsed stdout)."""
    api.reset()

    def _run(scenario, extra="", args=("--list",), env=None, key=VALID_KEY, config_name="lambda_cloud.yml",
             source=None):
        if source is None:
            source = tmp_path / config_name
            source.write_text("plugin: sophia_ai.platform.lambda_cloud\nbase_url: %s\n%s" % (api.url(scenario), extra))
        environ = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_")}
        environ.update({"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
                        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0"})
        if key is not None:
            environ["LAMBDA_API_KEY"] = key
        environ.update(env or {})
        started = time.monotonic()
        res = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), *args], env=environ, cwd=tmp_path,
                             capture_output=True, text=True, check=False, timeout=120)
        res.seconds = time.monotonic() - started
        output = res.stdout + res.stderr
        for secret in filter(None, [key, VALID_KEY]):
            assert secret not in output, "the API key leaked into ansible-inventory's output"
        data = None
        if res.returncode == 0 and "--list" in args:  # at -vvvv, the version banner comes before the JSON
            data = json.loads(res.stdout[res.stdout.index("\n{") + 1 if not res.stdout.startswith("{") else 0:],
                              object_hook=_plain)
        return res, data

    return _run


def _plain(obj):
    """ansible-inventory marks the API's strings untrusted ({"__ansible_unsafe": "..."}: never templated); unwrap."""
    return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj


def _members(data, group):
    return sorted(data.get(group, {}).get("hosts", []))


def test_list_builds_groups_and_host_vars(api, run):
    res, data = run("v1")
    assert res.returncode == 0, res.stderr
    assert len(api.seen("v1")) == 1 and api.seen("v1")[0]["key_ok"]
    assert _members(data, "lambda_gpu_1x_gh200") == SERVERS
    assert _members(data, "lambda_gpu_8x_h100_sxm5") == ["sophia-k3s-agent-1"]
    assert _members(data, "lambda_gpu_1x_a10") == ["8c0e2a4b6d7f9a1c3e5f7b9d1a3c5e87", "ad2a4c6d8f9b1c3e5a7b9d1f3c5e7a09",
                                                   "dev-a10", "scratch"]
    assert _members(data, "lambda_region_us_west_1") == ["dev-a10", "scratch"]
    assert _members(data, "lambda_region_us_midwest_1") == ["8c0e2a4b6d7f9a1c3e5f7b9d1a3c5e87",
                                                            "ad2a4c6d8f9b1c3e5a7b9d1f3c5e7a09"]
    assert len(_members(data, "gpu")) == 8  # the active ones: booting, unhealthy and terminated are left out
    hostvars = data["_meta"]["hostvars"]
    assert set(hostvars) == set(_members(data, "lambda_status_active"))
    server = hostvars["sophia-k3s-server-1"]
    assert server["ansible_host"] == "198.51.100.11"
    assert (server["lambda_instance_type"], server["lambda_region"], server["lambda_gpus"]) == \
        ("gpu_1x_gh200", "us-east-3", 1)
    assert server["lambda_private_ip"] == "10.19.8.11"
    assert server["lambda_tags"] == {"swarm": "manager", "phase": "2"}
    assert "jupyter" not in json.dumps(data)  # the Jupyter token is a secret
    assert "host name 'scratch' is taken by another instance" in res.stderr


def test_graph_with_filters_and_constructed_groups(run):
    extra = """statuses: [active, booting, unhealthy, terminating, terminated]
name_pattern: "^sophia-k3s-"
regions: [us-east-*]
groups:
  k3s_servers: lambda_name is match('sophia-k3s-server-')
  k3s_agents: lambda_name is match('sophia-k3s-agent-') and lambda_status in ['active', 'booting']
keyed_groups:
  - key: lambda_tags.swarm | default('none')
    prefix: swarm
"""
    res, _data = run("v1", extra, args=("--graph",))
    assert res.returncode == 0, res.stderr
    graph = res.stdout
    for line in ("@k3s_servers:", "@k3s_agents:", "@swarm_manager:", "@swarm_worker:", "@swarm_none:",
                 "@lambda_status_booting:", "@lambda_status_terminated:", "@lambda_status_terminating:",
                 "@lambda_status_unhealthy:"):
        assert line in graph, line
    section = graph.split("@k3s_agents:")[1].split("@", 1)[0]
    assert "sophia-k3s-agent-1" in section and "sophia-k3s-agent-2" in section
    assert "sophia-k3s-agent-3" not in section and "sophia-k3s-agent-old" not in section
    assert "dev-a10" not in graph


@pytest.mark.parametrize("scenario, requests, queries", [
    ("paged", 3, [{}, {"page_token": "4"}, {"page_token": "8"}]),
    ("cursor", 3, [{}, {"cursor": "NQ=="}, {"cursor": "MTA="}]),
    ("link", 2, [{}, {"offset": "6"}]),
])
def test_every_page_is_read(api, run, scenario, requests, queries):
    res, data = run(scenario, "statuses: []\n")
    assert res.returncode == 0, res.stderr
    assert len(data["_meta"]["hostvars"]) == 12
    seen = api.seen(scenario)
    assert len(seen) == requests and [r["query"] for r in seen] == queries
    assert all(r["key_ok"] for r in seen)


@pytest.mark.parametrize("scenario, waits_at_least, requests", [
    ("ratelimited", 2.0, 3),       # 429 twice with Retry-After: 1
    ("ratelimited-date", 1.0, 2),  # Retry-After as an HTTP date, 2 s ahead (whole seconds: at least 1 s)
    ("ratelimited-bare", 1.0, 2),  # 429 without Retry-After: backoff 1 s
    ("flaky500", 1.0, 2),
])
def test_rate_limits_and_server_errors_are_retried(api, run, scenario, waits_at_least, requests):
    res, data = run(scenario)
    assert res.returncode == 0, res.stderr
    assert len(data["_meta"]["hostvars"]) == 8
    seen = api.seen(scenario)
    assert len(seen) == requests
    assert seen[-1]["at"] - seen[0]["at"] >= waits_at_least - 0.05


@pytest.mark.parametrize("scenario, extra, words", [
    ("v1", "", ["refused the API key from environment variable LAMBDA_API_KEY (HTTP 401: global/invalid-api-key",
                "Fix: replace the key in environment variable LAMBDA_API_KEY with a valid one"]),
    ("echo-key", "", ["refused the API key", "API key Bearer ******** was invalid"]),
    ("forbidden", "", ["denied the request (HTTP 403: global/account-inactive",
                       "Fix: Make sure you have verified your email address"]),
    ("always429", "retries: 2\n", ["still rate limiting (HTTP 429: global/rate-limited, Too many requests.) after 3 "
                                   "attempts", "or turn on the inventory cache (cache: true)"]),
    ("longwait", "", ["asks to wait 3600s more, beyond max_retry_wait (60s"]),
    ("always500", "retries: 1\n", ["failed (HTTP 500: global/internal-error, Internal server error.) after 2 attempts",
                                   "Fix: the fault is on the API's side"]),
    ("notjson", "", ["answered 200 with something that is not JSON (text/html)", "Fix: check base_url"]),
    ("loop", "", ["sent the same next page twice"]),
    ("link-elsewhere", "", ["next-page link to another host (http://collector.invalid); refused"]),
    ("slow", "timeout: 1\nretries: 0\n", ["could not reach the Lambda Cloud API", "timed out",
                                          "a slow API needs a larger timeout (now 1s)"]),
])
def test_errors_name_the_fix_and_never_the_key(api, run, scenario, extra, words):
    key = "secret_wrong_00000000000000000000000000000000.NoSuchKey" if scenario == "v1" else VALID_KEY
    res, _data = run(scenario, extra, args=("--list", "-vvv"), key=key)
    assert res.returncode != 0
    for word in words:
        assert word in res.stderr, res.stderr[-3000:]
    if scenario == "link-elsewhere":
        assert len(api.seen("link-elsewhere")) == 1  # nothing was sent to the other host


def test_an_unreachable_base_url_names_the_fix(run, tmp_path):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = tmp_path / "lambda_cloud.yml"
    source.write_text("plugin: sophia_ai.platform.lambda_cloud\nbase_url: http://127.0.0.1:%d/api/v1\n" % port)
    res, _data = run("v1", source=source, args=("--list", "-vvv"))
    assert res.returncode != 0
    assert "could not reach the Lambda Cloud API at http://127.0.0.1:%d/api/v1" % port in res.stderr
    assert "Connection refused" in res.stderr and "Fix: check base_url" in res.stderr


def test_the_key_never_shows_at_vvvv_even_from_the_config_file(api, run):
    """The key written in the configuration file (not recommended, but allowed) stays out of every line."""
    res, data = run("v1", "api_key: %s\n" % VALID_KEY, args=("--list", "-vvvv"), key=None)
    assert res.returncode == 0, res.stderr
    assert api.seen("v1")[0]["key_ok"]
    assert len(data["_meta"]["hostvars"]) == 8


def test_no_key_says_where_to_set_one(api, run):
    res, _data = run("v1", key=None)
    assert res.returncode != 0
    assert "no Lambda Cloud API key. Fix: set the environment variable LAMBDA_API_KEY, or api_key_file" in res.stderr
    assert api.seen("v1") == []


def test_key_file_with_loose_permissions_is_warned_about(api, run, tmp_path):
    keyfile = tmp_path / "api_key"
    keyfile.write_text(VALID_KEY + "\n")
    keyfile.chmod(0o644)
    res, data = run("v1", "api_key_file: %s\n" % keyfile, key=None)
    assert res.returncode == 0, res.stderr
    assert "is readable by group and others (mode 0644). Fix: chmod 600" in " ".join(res.stderr.split())
    keyfile.chmod(0o600)
    res, data = run("v1", "api_key_file: %s\n" % keyfile, key=None)
    assert res.returncode == 0 and "readable by" not in res.stderr
    assert len(data["_meta"]["hostvars"]) == 8


def test_the_cache_spares_the_api_and_holds_no_secret(api, run, tmp_path):
    cache = tmp_path / "cache"
    extra = ("cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\ncache_timeout: 600\n"
             % cache)
    res, first = run("v1", extra)
    assert res.returncode == 0, res.stderr
    res, second = run("v1", extra)
    assert res.returncode == 0, res.stderr
    assert len(api.seen("v1")) == 1 and first == second
    text = "".join(p.read_text() for p in cache.iterdir())
    assert VALID_KEY not in text and "jupyter" not in text and "sophia-k3s-server-1" in text
    res, _third = run("v1", extra, args=("--list", "--flush-cache"))
    assert res.returncode == 0 and len(api.seen("v1")) == 2


def test_the_collections_example_builds_the_phase2_groups_with_the_lambda_group_vars(api, run, tmp_path):
    """inventories/lambda/.lambda_cloud.yml, as committed, read through the local API (LAMBDA_CLOUD_BASE_URL), with
    inventories/lambda/group_vars applied: the hosts get the network plan of the static example."""
    workdir = tmp_path / "lambda"
    shutil.copytree(REPO / "inventories" / "lambda", workdir)
    res, data = run("v1", source=workdir / ".lambda_cloud.yml", env={"LAMBDA_CLOUD_BASE_URL": api.url("v1")})
    assert res.returncode == 0, res.stderr
    assert _members(data, "k3s_servers") == SERVERS == _members(data, "swarm_managers")
    assert _members(data, "k3s_agents") == []  # the fixture's GH200 agent is unhealthy, its H100 ones are no GH200
    hostvars = data["_meta"]["hostvars"]
    assert set(hostvars) == set(SERVERS)  # only active GH200 instances named sophia-*
    assert _members(data, "gpu") == SERVERS and _members(data, "tag_swarm_manager") == SERVERS
    for name in SERVERS:
        assert hostvars[name]["k3s_install_node_ip"] == hostvars[name]["lambda_private_ip"]
        assert hostvars[name]["k3s_install_cluster_cidr"] == "10.42.0.0/16"  # from group_vars/all.yml
        assert hostvars[name]["k3s_install_tls_san"]  # from group_vars/k3s_servers.yml
