# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_lambda_cloud: the Lambda Cloud API client (pagination, retries, errors) and the host and group building.

The real Lambda Cloud API cannot be reached from here (no outbound network, no account): the client is driven by
a scripted opener that answers as the API does (fixtures/lambda_cloud/instances.json follows the API's OpenAPI
description, version 1.10.0), with a fake sleep so that Retry-After waits are asserted, not waited. The same
client over real HTTP is tested in tests/integration/lambda_cloud.
"""

from __future__ import annotations

import copy
import email.message
import io
import json
import os
import socket
import urllib.error
from email.utils import formatdate
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _lambda_cloud
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError, InputError

FIXTURE = Path(__file__).parent / "fixtures" / "lambda_cloud" / "instances.json"
DATA = json.loads(FIXTURE.read_text())["data"]
KEY = "secret_unit-test_0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp"
BASE = "https://cloud.lambda.ai/api/v1"


# --- a scripted API ----------------------------------------------------------------------------------------------

def _headers(values=None):
    msg = email.message.Message()
    for name, value in (values or {}).items():
        msg[name] = value
    return msg


class _Response:
    def __init__(self, status, headers, raw):
        self.status, self.headers, self._raw = status, headers, raw

    def read(self):
        return self._raw

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ScriptedOpener:
    """Answers requests in order: (status, headers, body) tuples or exceptions to raise."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []

    def open(self, request, timeout=None):
        self.requests.append({"url": request.full_url, "headers": dict(request.header_items()), "timeout": timeout})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, headers, body = answer
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if status >= 400:
            raise urllib.error.HTTPError(request.full_url, status, "error", _headers(headers), io.BytesIO(raw))
        return _Response(status, _headers(headers), raw)


def client(answers, **kwargs):
    opener = ScriptedOpener(answers)
    sleeps = []
    kwargs.setdefault("retries", 5)
    kwargs.setdefault("max_retry_wait", 60)
    api = _lambda_cloud.Client(kwargs.pop("base_url", BASE), KEY, key_source="environment variable LAMBDA_API_KEY",
                               opener=opener, sleep=sleeps.append, **kwargs)
    return api, opener, sleeps


OK = (200, {}, {"data": DATA})
RATE = (429, {"Retry-After": "2"}, {"error": {"code": "global/rate-limited", "message": "Too many requests."}})
RATE_BARE = (429, {}, {"error": {"code": "global/rate-limited", "message": "Too many requests."}})
ERROR_500 = (500, {}, {"error": {"code": "global/internal-error", "message": "Internal server error."}})


# --- listing and pagination --------------------------------------------------------------------------------------

def test_one_page_one_request_with_bearer_key():
    api, opener, sleeps = client([OK])
    assert [i["id"] for i in api.list_instances()] == [i["id"] for i in DATA]
    assert len(opener.requests) == 1 and sleeps == []
    req = opener.requests[0]
    assert req["url"] == BASE + "/instances"
    assert req["headers"]["Authorization"] == "Bearer " + KEY
    assert req["headers"]["Accept"] == "application/json"
    assert req["timeout"] == 30


def _pages(size, style):
    pages = []
    for start in range(0, len(DATA), size):
        body, headers = {"data": DATA[start:start + size]}, {}
        if start + size < len(DATA):
            if style == "token":
                body["next_page_token"] = "t%d" % (start + size)
            elif style == "cursor":
                body["next_cursor"] = "c%d" % (start + size)
            else:
                headers["Link"] = '<%s/instances?offset=%d>; rel="next"' % (BASE, start + size)
        pages.append((200, headers, body))
    return pages


@pytest.mark.parametrize("style, size, urls", [
    ("token", 5, ["/instances", "/instances?page_token=t5", "/instances?page_token=t10"]),
    ("cursor", 4, ["/instances", "/instances?cursor=c4", "/instances?cursor=c8"]),
    ("link", 6, ["/instances", "/instances?offset=6"]),
])
def test_pages_are_followed_in_order(style, size, urls):
    api, opener, _sleeps = client(_pages(size, style))
    assert [i["id"] for i in api.list_instances()] == [i["id"] for i in DATA]
    assert [r["url"][len(BASE):] for r in opener.requests] == urls
    assert all(r["headers"]["Authorization"] == "Bearer " + KEY for r in opener.requests)


def test_a_next_link_to_another_host_is_refused_and_the_key_not_sent_there():
    api, opener, _sleeps = client([(200, {"Link": '<https://collector.invalid/x>; rel="next"'}, {"data": DATA[:2]})])
    with pytest.raises(ApiError, match="next-page link to another host .https://collector.invalid.; refused"):
        api.list_instances()
    assert len(opener.requests) == 1


def test_a_token_that_repeats_stops_instead_of_looping():
    api, opener, _sleeps = client([(200, {}, {"data": DATA[:1], "next_page_token": "same"})])
    with pytest.raises(ApiError, match="sent the same next page twice"):
        api.list_instances()
    assert len(opener.requests) == 2


def test_pages_are_bounded(monkeypatch):
    monkeypatch.setattr(_lambda_cloud, "MAX_PAGES", 3)
    answers = [(200, {}, {"data": [], "next_page_token": str(n)}) for n in range(10)]
    api, opener, _sleeps = client(answers)
    with pytest.raises(ApiError, match="more than 3 pages"):
        api.list_instances()
    assert len(opener.requests) == 3


# --- retries -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answers, sleeps_wanted", [
    ([RATE, OK], [2.0]),
    ([RATE, RATE, OK], [2.0, 2.0]),
    ([RATE_BARE, RATE_BARE, RATE_BARE, OK], [1.0, 2.0, 4.0]),  # no Retry-After: exponential backoff
    ([ERROR_500, OK], [1.0]),
    ([(503, {"Retry-After": "3"}, b"busy"), OK], [3.0]),
    ([socket.timeout("timed out"), OK], [1.0]),
    ([urllib.error.URLError(TimeoutError("timed out")), OK], [1.0]),
])
def test_transient_answers_are_retried_waiting_what_the_api_asks(answers, sleeps_wanted):
    api, opener, sleeps = client(answers)
    assert len(api.list_instances()) == len(DATA)
    assert sleeps == sleeps_wanted
    assert len(opener.requests) == len(answers)
    assert api.waited == sum(sleeps_wanted)


def test_backoff_is_capped():
    api, _opener, sleeps = client([RATE_BARE] * 8 + [OK], retries=8, max_retry_wait=1000)
    api.list_instances()
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_rate_limited_past_the_retries_fails_with_the_fix():
    api, opener, sleeps = client([RATE], retries=3)
    with pytest.raises(ApiError) as err:
        api.list_instances()
    msg = str(err.value)
    assert "still rate limiting (HTTP 429: global/rate-limited, Too many requests.) after 4 attempts" in msg
    assert "Fix: wait a minute and run again, raise retries or max_retry_wait, or turn on the inventory cache" in msg
    assert len(opener.requests) == 4 and sleeps == [2.0, 2.0, 2.0]
    assert err.value.details["status"] == 429


def test_a_retry_after_beyond_the_budget_fails_at_once():
    api, opener, sleeps = client([(429, {"Retry-After": "3600"}, b"")], max_retry_wait=60)
    with pytest.raises(ApiError, match=r"asks to wait 3600s more, beyond max_retry_wait \(60s, 0s already waited"):
        api.list_instances()
    assert sleeps == [] and len(opener.requests) == 1


def test_the_budget_is_shared_by_all_retries():
    api, opener, sleeps = client([(429, {"Retry-After": "20"}, b"")], retries=10, max_retry_wait=50)
    with pytest.raises(ApiError, match=r"asks to wait 20s more, beyond max_retry_wait \(50s, 40s already waited "
                                       r"over 3 requests\)"):
        api.list_instances()
    assert sleeps == [20.0, 20.0] and len(opener.requests) == 3


@pytest.mark.parametrize("value, now, wanted", [
    ("2", None, 2.0), ("0", None, 0.0), ("1.5", None, 1.5),
    (formatdate(1_000_030, usegmt=True), 1_000_000, 30.0),
    (formatdate(999_000, usegmt=True), 1_000_000, 0.0),  # a date in the past: no wait
    ("soon", None, None), ("", None, None), (None, None, None),
])
def test_retry_after_as_seconds_or_date(value, now, wanted):
    assert _lambda_cloud.parse_retry_after(value, now=now) == wanted


# --- errors ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, words", [
    ((401, {}, {"error": {"code": "global/invalid-api-key", "message": "API key was invalid, expired, or deleted.",
                          "suggestion": "Check your API key or create a new one, then try again."}}),
     ["refused the API key from environment variable LAMBDA_API_KEY (HTTP 401: global/invalid-api-key",
      "Fix: replace the key in environment variable LAMBDA_API_KEY with a valid one",
      "https://cloud.lambda.ai/api-keys/cloud-api"]),
    ((403, {}, {"error": {"code": "global/account-inactive", "message": "Your account is inactive.",
                          "suggestion": "Make sure you have verified your email address."}}),
     ["denied the request (HTTP 403: global/account-inactive", "Fix: Make sure you have verified your email"]),
    ((404, {}, {"error": {"code": "global/not-found", "message": "The requested resource was not found."}}),
     ["/instances does not exist (HTTP 404", "Fix: base_url should be the API's root, like "
      "https://cloud.lambda.ai/api/v1"]),
    ((500, {}, {"error": {"code": "global/internal-error", "message": "Internal server error."}}),
     ["failed (HTTP 500: global/internal-error, Internal server error.) after 3 attempts",
      "Fix: the fault is on the API's side"]),
    ((502, {}, b"<html>Bad gateway</html>"), ["failed (HTTP 502) after 3 attempts"]),
    ((418, {}, b""), ["answered HTTP 418", "Fix: check base_url"]),
    ((200, {"Content-Type": "text/html"}, b"<html>hello</html>"),
     ["answered 200 with something that is not JSON (text/html)", "Fix: check base_url"]),
    ((200, {}, {"instances": []}), ["JSON without a list of instances under 'data' (keys: instances)"]),
    ((200, {}, {"data": {"id": "x"}}), ["JSON without a list of instances under 'data' (keys: data)"]),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
     ["could not reach the Lambda Cloud API at https://cloud.lambda.ai/api/v1: [Errno 111] Connection refused",
      "Fix: check base_url (default https://cloud.lambda.ai/api/v1), DNS, the proxy (HTTPS_PROXY)"]),
    (socket.timeout("timed out"), ["could not reach the Lambda Cloud API", "timed out",
                                   "a slow API needs a larger timeout (now 30s)"]),
])
def test_errors_say_what_failed_and_the_fix(answer, words):
    api, _opener, _sleeps = client([answer], retries=2, max_retry_wait=1000)
    with pytest.raises(ApiError) as err:
        api.list_instances()
    for word in words:
        assert word in str(err.value)
    assert KEY not in str(err.value)


def test_the_key_is_redacted_even_when_the_api_echoes_it():
    echo = (401, {}, {"error": {"code": "global/invalid-api-key", "message": "key Bearer %s is unknown" % KEY,
                                "suggestion": "use another than %s" % KEY}})
    api, _opener, _sleeps = client([echo])
    with pytest.raises(ApiError) as err:
        api.list_instances()
    assert KEY not in str(err.value) and KEY not in repr(err.value.details)
    assert "key Bearer ******** is unknown" in str(err.value)
    assert err.value.__cause__ is None


@pytest.mark.parametrize("base_url", ["ftp://cloud.lambda.ai/api/v1", "cloud.lambda.ai/api/v1", "http://"])
def test_base_url_must_be_http(base_url):
    with pytest.raises(InputError, match="is not an http.s. URL. Fix: set base_url"):
        _lambda_cloud.Client(base_url, KEY)


@pytest.mark.parametrize("key", ["two words", "line\nbreak", "tab\tkey", "ключ", ""])
def test_a_key_that_cannot_be_sent_is_refused_without_echoing_it(key):
    with pytest.raises(InputError) as err:
        _lambda_cloud.check_key_shape(key, "api_key_file /k")
    assert "cannot be sent in an HTTP header" in str(err.value) and "api_key_file /k" in str(err.value)
    if key:
        assert key not in str(err.value)


def test_redact_replaces_the_plain_and_quoted_forms():
    secret = "se/cret+key"
    assert _lambda_cloud.redact("a se/cret+key b se%2Fcret%2Bkey", secret) == "a ******** b ********"
    assert _lambda_cloud.redact("nothing", "") == "nothing"


# --- the key's source --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("candidates, wanted", [
    ([("api_key", "Direct", "k1"), ("api_key_file", "Direct", "/f")], "api_key"),
    ([("api_key", "env: LAMBDA_API_KEY", "k1"), ("api_key_file", "Direct", "/f")], "api_key_file"),
    ([("api_key", "env: LAMBDA_API_KEY", "k1"), ("api_key_file", "env: LAMBDA_API_KEY_FILE", "/f")], "api_key"),
    ([("api_key", "default", None), ("api_key_file", "env: LAMBDA_API_KEY_FILE", "/f")], "api_key_file"),
    ([("api_key", "default", None), ("api_key_file", "default", None)], None),
    ([("api_key", "Direct", ""), ("api_key_file", "default", None)], None),
])
def test_a_key_in_the_configuration_wins_over_the_environment(candidates, wanted):
    chosen = _lambda_cloud.choose_key_source(candidates)
    assert (chosen[0] if chosen else None) == wanted


@pytest.mark.parametrize("option, origin, label", [
    ("api_key", "env: LAMBDA_API_KEY", "environment variable LAMBDA_API_KEY"),
    ("api_key", "env: LAMBDA_CLOUD_API_KEY", "environment variable LAMBDA_CLOUD_API_KEY"),
    ("api_key", "Direct", "option api_key in /inv/lambda_cloud.yml"),
    ("api_key_file", "Direct", "option api_key_file in /inv/lambda_cloud.yml"),
])
def test_key_source_labels(option, origin, label):
    assert _lambda_cloud.key_source_label(option, origin, "/inv/lambda_cloud.yml") == label


@pytest.mark.parametrize("mode, warning", [
    (0o600, None), (0o400, None),
    (0o640, "readable by its group (mode 0640). Fix: chmod 600"),
    (0o604, "readable by others (mode 0604)"),
    (0o644, "readable by group and others (mode 0644)"),
])
def test_key_file_permissions_are_checked(tmp_path, mode, warning):
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    os.chmod(path, mode)
    key, warnings = _lambda_cloud.read_key_file(str(path))
    assert key == KEY
    if warning:
        assert len(warnings) == 1 and warning in warnings[0] and str(path) in warnings[0]
    else:
        assert warnings == []
    assert all(KEY not in w for w in warnings)


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "cannot be read (No such file or directory)"),
    (lambda p: p.mkdir(), "is not a regular file"),
    (lambda p: p.write_text("  \n"), "is empty. Fix: write the API key into it"),
])
def test_unusable_key_files_are_named(tmp_path, make, words):
    path = tmp_path / "key"
    make(path)
    with pytest.raises(InputError) as err:
        _lambda_cloud.read_key_file(str(path))
    assert words in str(err.value) and str(path) in str(err.value)
    assert err.value.details["file"] == str(path)


# --- host variables, filters and groups -------------------------------------------------------------------------

def _by_name(name):
    return next(i for i in DATA if i["name"] == name)


def test_host_vars_are_prefixed_and_leave_the_jupyter_secret_out():
    hv = _lambda_cloud.host_vars(_by_name("sophia-k3s-server-1"))
    assert hv == {
        "lambda_id": "0920582c7ff041399e34823a0be62549", "lambda_name": "sophia-k3s-server-1",
        "lambda_status": "active", "lambda_ip": "198.51.100.11", "lambda_private_ip": "10.19.8.11",
        "lambda_hostname": "198-51-100-11", "lambda_region": "us-east-3",
        "lambda_region_description": "Washington DC, USA", "lambda_instance_type": "gpu_1x_gh200",
        "lambda_instance_type_description": "1x GH200 (96 GB)", "lambda_gpu_description": "GH200 (96 GB)",
        "lambda_price_cents_per_hour": 149, "lambda_vcpus": 64, "lambda_memory_gib": 432, "lambda_storage_gib": 4096,
        "lambda_gpus": 1, "lambda_ssh_key_names": ["sophia-ops"], "lambda_file_system_names": ["sophia-models"],
        "lambda_is_reserved": True, "lambda_tags": {"swarm": "manager", "phase": "2"},
    }
    assert "jt0920582c" not in json.dumps(hv)


def test_host_vars_of_a_booting_instance_without_addresses():
    hv = _lambda_cloud.host_vars(_by_name("sophia-k3s-agent-2"))
    assert (hv["lambda_ip"], hv["lambda_private_ip"], hv["lambda_hostname"]) == ("", "", "")
    assert hv["lambda_gpus"] == 8 and hv["lambda_status"] == "booting"


@pytest.mark.parametrize("kwargs, names", [
    ({}, ["", "dev-a10", "scratch", "scratch", "sophia-k3s-agent-1", "sophia-k3s-server-1", "sophia-k3s-server-2",
          "sophia-k3s-server-3"]),
    ({"statuses": ["booting", "unhealthy"]}, ["sophia-k3s-agent-2", "sophia-k3s-agent-3"]),
    ({"statuses": []}, sorted(i["name"] for i in DATA)),
    ({"name_pattern": "^sophia-k3s-server-"}, ["sophia-k3s-server-1", "sophia-k3s-server-2", "sophia-k3s-server-3"]),
    ({"name_pattern": "agent", "statuses": ["active", "booting"]}, ["sophia-k3s-agent-1", "sophia-k3s-agent-2"]),
    ({"regions": ["us-west-*"]}, ["dev-a10", "scratch"]),
    ({"instance_types": ["gpu_*_a10"], "regions": ["us-midwest-1"]}, ["", "scratch"]),
    ({"instance_types": ["gpu_8x_h100_sxm5"], "statuses": []},
     ["sophia-k3s-agent-1", "sophia-k3s-agent-2", "sophia-k3s-agent-old", "sophia-k3s-agent-x"]),
])
def test_select_filters(kwargs, names):
    assert sorted(i["name"] for i in _lambda_cloud.select(DATA, **kwargs)) == names


def test_a_bad_name_pattern_names_the_option():
    with pytest.raises(InputError, match="name_pattern '\\[' is not a regular expression"):
        _lambda_cloud.select(DATA, name_pattern="[")


def test_build_hosts_names_groups_and_addresses():
    hosts, warnings = _lambda_cloud.build_hosts(_lambda_cloud.select(DATA, statuses=["active", "booting"]))
    by_name = {h["name"]: h for h in hosts}
    assert sorted(by_name) == ["8c0e2a4b6d7f9a1c3e5f7b9d1a3c5e87", "ad2a4c6d8f9b1c3e5a7b9d1f3c5e7a09", "dev-a10",
                               "scratch", "sophia-k3s-agent-1", "sophia-k3s-agent-2", "sophia-k3s-server-1",
                               "sophia-k3s-server-2", "sophia-k3s-server-3"]
    # two instances named scratch: the one sorted first by id keeps the name, the other falls to its id
    assert by_name["scratch"]["vars"]["lambda_id"] == "9d1f3b5c7e8a0b2d4f6a8c0e2b4d6f98"
    assert warnings == ["Lambda instance ad2a4c6d8f9b1c3e5a7b9d1f3c5e7a09: host name 'scratch' is taken by another "
                        "instance; named 'ad2a4c6d8f9b1c3e5a7b9d1f3c5e7a09' instead"]
    assert by_name["sophia-k3s-server-1"]["groups"] == ["lambda_gpu_1x_gh200", "lambda_region_us_east_3",
                                                        "lambda_status_active", "gpu"]
    assert by_name["sophia-k3s-server-1"]["vars"]["ansible_host"] == "198.51.100.11"
    assert "ansible_host" not in by_name["sophia-k3s-agent-2"]["vars"]  # booting: no address yet
    assert by_name["sophia-k3s-agent-2"]["groups"] == ["lambda_gpu_8x_h100_sxm5", "lambda_region_us_east_3",
                                                       "lambda_status_booting", "gpu"]


@pytest.mark.parametrize("hostnames, address, name, ansible_host", [
    (["name", "id"], ["ip"], "sophia-k3s-server-2", "198.51.100.12"),
    (["private_ip", "name"], ["private_ip", "ip"], "10.19.8.12", "10.19.8.12"),
    (["hostname"], ["hostname"], "198-51-100-12", "198-51-100-12"),
    (["id"], [], "1b3f4a9e2c8d4e0f9a7b6c5d4e3f2a10", None),
])
def test_hostname_and_address_preferences(hostnames, address, name, ansible_host):
    hosts, _warnings = _lambda_cloud.build_hosts([_by_name("sophia-k3s-server-2")], hostnames, address)
    assert hosts[0]["name"] == name
    assert hosts[0]["vars"].get("ansible_host") == ansible_host


def test_gpu_group_only_for_instances_with_gpus():
    cpu = copy.deepcopy(_by_name("dev-a10"))
    cpu["instance_type"]["specs"]["gpus"] = 0  # the fixture's types all have GPUs; a 0-GPU type for this branch
    cpu["name"] = "cpu-box"
    hosts, _warnings = _lambda_cloud.build_hosts([cpu, _by_name("dev-a10")], gpu_group="gpu_hosts")
    groups = {h["name"]: h["groups"] for h in hosts}
    assert "gpu_hosts" not in groups["cpu-box"] and "gpu_hosts" in groups["dev-a10"]
    hosts, _warnings = _lambda_cloud.build_hosts([_by_name("dev-a10")], gpu_group="")
    assert hosts[0]["groups"] == ["lambda_gpu_1x_a10", "lambda_region_us_west_1", "lambda_status_active"]


@pytest.mark.parametrize("prefix, value, wanted", [
    ("lambda_", "gpu_1x_gh200", "lambda_gpu_1x_gh200"),
    ("lambda_region_", "us-east-3", "lambda_region_us_east_3"),
    ("lambda_", "GPU 8x H100 (SXM5)", "lambda_gpu_8x_h100__sxm5_"),
])
def test_group_names_are_valid(prefix, value, wanted):
    assert _lambda_cloud.group_name(prefix, value) == wanted
