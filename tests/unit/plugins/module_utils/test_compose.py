# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_compose: bounded loading, interpolation, merging and validation of compose files (pure, no kompose)."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
BAD = FIXTURES / "bad"


def _write(tmp_path, text, name="compose.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- loading ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture, line, words", [
    ("invalid-yaml.yml.txt", 5, ["invalid YAML", "did not find expected ',' or ']'", "Fix: correct the YAML syntax"]),
    ("services-list.yml", 1, ["'services' is a list, not a mapping", "Fix: write services as a mapping"]),
    ("empty.yml", None, ["the compose file is empty", "Fix: give a file with a top-level 'services' mapping"]),
    ("comments-only.yml", None, ["the compose file is empty"]),
    ("billion-laughs.yml", None, ["refused", "once aliases are expanded (an alias bomb?)"]),
    ("recursive-alias.yml", 2, ["refused", "recursive alias", "Fix: an anchor cannot contain an alias to itself"]),
])
def test_unloadable_files_name_the_file_line_and_fix(fixture, line, words):
    path = str(BAD / fixture)
    with pytest.raises(InputError) as err:
        _compose.load_project([path])
    msg = str(err.value)
    assert msg.startswith(path + (":%d" % line if line else "")), msg
    for word in words:
        assert word in msg
    assert err.value.details["file"] == path
    if line:
        assert err.value.details["line"] == line


def test_billion_laughs_is_refused_quickly_and_in_little_memory():
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(InputError, match="alias bomb"):
        _compose.load_project([str(BAD / "billion-laughs.yml")])
    elapsed = time.monotonic() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2, elapsed
    assert peak < 20 * 1024 * 1024, peak


@pytest.mark.parametrize("payload, words", [
    (b"\x7fELF\x02\x01\x01\x00\x00\x00garbage", ["NUL bytes", "binary, not YAML text", "Fix: give a UTF-8 text file"]),
    (b"services:\n  web:\n    image: \xff\xfe\xfa\n", ["not UTF-8 text", "Fix: give a UTF-8 text file"]),
    (b"services:\n  web:\n    image: a\x1b[0m\n", ["control character", "binary"]),
])
def test_binary_garbage_is_refused(tmp_path, payload, words):
    path = tmp_path / "garbage.yml"
    path.write_bytes(payload)
    with pytest.raises(InputError) as err:
        _compose.load_project([str(path)])
    for word in words:
        assert word in str(err.value)


def test_oversized_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yml"
    path.write_text("services: {}\n# " + "x" * (_compose.MAX_BYTES + 10) + "\n")
    with pytest.raises(InputError, match="larger than 4194304 bytes"):
        _compose.load_project([str(path)])


@pytest.mark.parametrize("text, words", [
    ("services:\n  web:\n    image: x\n    labels: " + "[" * 200 + "]" * 200 + "\n", ["nested more than 64 levels"]),
    ("x: &a [1]\nservices:\n  web: {image: x, labels: {" + ", ".join("k%d: *a" % i for i in range(_compose.MAX_ALIASES + 1))
     + "}}\n", ["more than 10000 YAML aliases"]),
    ("services:\n  web:\n    image: x\n    image: y\n", ["the key 'image' is given twice (first on line 3)"]),
    ("services:\n  web:\n    image: !!binary aGk=\n", ["tag:yaml.org,2002:binary is not allowed"]),
    ("a: 1\n---\nb: 2\n", ["invalid YAML", "expected a single document"]),
])
def test_hostile_or_ambiguous_yaml_is_refused(tmp_path, text, words):
    with pytest.raises(InputError) as err:
        _compose.load_project([_write(tmp_path, text)])
    for word in words:
        assert word in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _compose.load_project([str(tmp_path / "nope.yml")])
    with pytest.raises(InputError, match="is a directory"):
        _compose.load_project([str(tmp_path)])


def test_scalars_resolve_as_compose_go_reads_them(tmp_path):
    text = ("services:\n  web:\n    image: x\n    environment:\n      OCTAL: 0755\n      YES: yes\n      ON: on\n"
            "      PORTS: 80:80\n      FLOAT: 1e3\n      TRUE: true\n      DATE: 2026-01-01\n      NULL: ~\n")
    project = _compose.load_project([_write(tmp_path, text)])
    env = project.services["web"]["environment"]
    assert env == {"OCTAL": "493", "YES": "yes", "ON": "on", "PORTS": "80:80", "FLOAT": "1000", "TRUE": "true",
                   "DATE": "2026-01-01", "NULL": None}


def test_merge_keys_and_lines_are_kept():
    project = _compose.load_project(["examples/sophia-mcp-stack.yml"])
    gong = project.services["mcp-gong"]
    assert gong["image"] == "sophia-platform/mcp-server:lab"
    assert gong["configs"] == [{"source": "mcp_common", "target": "/etc/sophia/mcp-common.yml", "mode": 292}]
    file, line = project.locate(("services", "mcp-gong", "ports"))
    assert file == "examples/sophia-mcp-stack.yml"
    assert Path(file).read_text().splitlines()[line - 1].strip() == "ports:"


# --- interpolation ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, env, expected", [
    ("${A}", {"A": "1"}, "1"),
    ("$A-$B", {"A": "1"}, "1-"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:-${B:-nested}}", {}, "nested"),
    ("${A:+set}", {"A": "x"}, "set"),
    ("${A+set}", {"A": ""}, "set"),
    ("${A:+set}", {"A": ""}, ""),
    ("$${A} costs $$5", {"A": "1"}, "${A} costs $5"),
    ("${A:?must be set}", {"A": "ok"}, "ok"),
    ("trailing $", {}, "trailing $"),
])
def test_interpolation_follows_compose(tmp_path, value, env, expected):
    path = _write(tmp_path, "services:\n  web:\n    image: x\n    environment:\n      V: '%s'\n" % value)
    project = _compose.load_project([path], env=env)
    assert project.services["web"]["environment"]["V"] == expected


@pytest.mark.parametrize("value, env, words", [
    ("${A:?the release tag}", {}, ["required variable A is unset: the release tag", "Fix: set A in the module's env"]),
    ("${A:?}", {"A": ""}, ["required variable A is empty: required"]),
    ("${A?}", {}, ["required variable A is unset"]),
    ("${A", {}, ["'${' without its '}'"]),
    ("${1A}", {}, ["is not a variable name"]),
    ("${A!x}", {}, ["unexpected '!x' after A"]),
])
def test_interpolation_errors_name_service_key_and_line(tmp_path, value, env, words):
    path = _write(tmp_path, "services:\n  web:\n    image: x\n    environment:\n      V: '%s'\n" % value)
    with pytest.raises(InputError) as err:
        _compose.load_project([path], env=env)
    msg = str(err.value)
    assert msg.startswith(path + ":5: service 'web', key 'environment.V'"), msg
    for word in words:
        assert word in msg


def test_env_files_then_env_win_in_order(tmp_path):
    first = tmp_path / "a.env"
    first.write_text("# comment\nTAG=from-a\nexport OTHER='quoted # not a comment'\nLATE=a\n")
    second = tmp_path / "b.env"
    second.write_text("LATE=b # trailing comment\nMULTI=\"x\\ny\"\n")
    path = _write(tmp_path, "services:\n  web:\n    image: 'x:${TAG}'\n    environment: [O=$OTHER, L=$LATE, M=$MULTI]\n")
    project = _compose.load_project([path], env_files=[str(first), str(second)], env={})
    assert project.services["web"]["image"] == "x:from-a"
    assert project.services["web"]["environment"] == {"O": "quoted # not a comment", "L": "b", "M": "x\ny"}
    project = _compose.load_project([path], env_files=[str(first)], env={"TAG": 7})
    assert project.services["web"]["image"] == "x:7"


def test_env_files_must_exist_and_be_key_value(tmp_path):
    path = _write(tmp_path, "services:\n  web: {image: x}\n")
    with pytest.raises(InputError) as err:
        _compose.load_project([path], env_files=[str(tmp_path / "missing.env")])
    assert "env_files entry does not exist" in str(err.value) and str(tmp_path / "missing.env") in str(err.value)
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=1\nthis is not a pair\n")
    with pytest.raises(InputError) as err:
        _compose.load_project([path], env_files=[str(bad)])
    assert str(err.value).startswith("%s:2: line is not KEY=VALUE" % bad)


def test_extension_fields_are_not_interpolated(tmp_path):
    path = _write(tmp_path, "x-note: '${UNSET:?never evaluated}'\nservices:\n  web: {image: x}\n")
    assert list(_compose.load_project([path]).services) == ["web"]


# --- merging ---------------------------------------------------------------------------------------------------

def test_files_merge_as_docker_stack_deploy_does():
    project = _compose.load_project([str(FIXTURES / "merge-base.yml"), str(FIXTURES / "merge-override.yml")])
    api = project.services["api"]
    assert sorted(project.services) == ["api", "cache", "extra"]
    assert api["image"] == "example/api:2"
    assert api["environment"] == {"A": "1", "B": "2", "C": "3"}
    assert [(p["published"], p["target"]) for p in api["ports"]] == [(8080, 80), (9090, 90)]
    assert api["command"] == ["serve", "--debug"]
    assert api["deploy"]["replicas"] == 3
    assert api["deploy"]["labels"] == {"team": "core"}
    assert api["deploy"]["placement"]["constraints"] == ["node.labels.zone == eu-1", "node.labels.disk == ssd"]
    file, _line = project.locate(("services", "api", "image"))
    assert file.endswith("merge-override.yml")
    file, _line = project.locate(("services", "cache", "image"))
    assert file.endswith("merge-base.yml")


def test_keyed_lists_merge_by_key(tmp_path):
    base = _write(tmp_path, "services:\n  web:\n    image: x\n    secrets: [a, {source: b, target: one}]\n"
                  "    volumes: ['d1:/data', 'd2:/logs']\nsecrets: {a: {external: true}, b: {external: true}}\n"
                  "volumes: {d1: {}, d2: {}, d3: {}}\n", "a.yml")
    over = _write(tmp_path, "services:\n  web:\n    secrets: [{source: b, target: two}]\n    volumes: ['d3:/data']\n", "b.yml")
    web = _compose.load_project([base, over]).services["web"]
    assert web["secrets"] == [{"source": "a"}, {"source": "b", "target": "two"}]
    assert sorted((v["target"], v["source"]) for v in web["volumes"]) == [("/data", "d3"), ("/logs", "d2")]


# --- validation ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture, line, words", [
    ("gpu-count-string.yml", 9, ["service 'infer'", "key 'deploy.resources.reservations.devices.0.count'",
                                 "GPU count 'two' is not a whole number", "Fix: give a whole number of GPUs"]),
    ("gpu-count-negative.yml", 8, ["key 'deploy.resources.reservations.generic_resources.0.discrete_resource_spec.value'",
                                   "GPU count -1 is negative", "Fix: give 0 or more GPUs"]),
    ("port-out-of-range.yml", 6, ["service 'web', key 'ports.1'", "published port 70000 is out of range",
                                  "Fix: use a port from 1 to 65535"]),
    ("duplicate-port.yml", 8, ["service 'second', key 'ports.0'", "port 9005/tcp is also published by service 'first'",
                               "duplicate-port.yml:4)", "Fix: publish a different port"]),
    ("required-var.yml", 3, ["service 'web', key 'image'", "required variable WEB_TAG is unset: set WEB_TAG to the release"]),
    ("no-image.yml", 2, ["service 'web', key 'image': no image", "Fix: add image:"]),
    ("bad-name.yml", 2, ["'Web_Server' is not a valid Kubernetes name", "Fix: rename the service, e.g. to 'web-server'"]),
    ("traversal-name.yml", 2, ["'../../etc' is not a valid Kubernetes name", "would put files outside dest"]),
    ("job-mode.yml", 5, ["deploy.mode 'replicated-job' has no Deployment or DaemonSet equivalent"]),
])
def test_invalid_stacks_fail_with_file_line_service_key_and_fix(fixture, line, words):
    path = str(BAD / fixture)
    with pytest.raises(InputError) as err:
        _compose.load_project([path])
    msg = str(err.value)
    assert msg.startswith("%s:%d: " % (path, line)), msg
    for word in words:
        assert word in msg
    assert err.value.details["fix"]


def test_build_only_service_is_told_to_push_an_image(tmp_path):
    path = _write(tmp_path, "services:\n  builder:\n    build: ./src\n")
    with pytest.raises(InputError, match="build and push the image, then set image"):
        _compose.load_project([path])


@pytest.mark.parametrize("snippet, words", [
    ("ports: ['abc:80']", ["published port 'abc' is not a port number"]),
    ("ports: ['0:80']", ["published port 0 is out of range"]),
    ("ports: [{target: 80, protocol: icmp}]", ["protocol 'icmp' is not tcp, udp or sctp"]),
    ("ports: ['9000-9001:80-82']", ["differ in length"]),
    ("deploy: {replicas: -1}", ["replicas -1 is not a whole number >= 0"]),
    ("deploy: {update_config: {order: random}}", ["order 'random' is not start-first or stop-first"]),
    ("deploy: {update_config: {delay: soon}}", ["'soon' is not a duration"]),
    ("deploy: {placement: {constraints: ['node.labels.gpu']}}", ["is not 'attribute == value'"]),
    ("healthcheck: {test: [RUN, x]}", ["must start with CMD, CMD-SHELL or NONE"]),
    ("healthcheck: {test: [CMD, x], retries: many}", ["retries 'many' is not a whole number"]),
    ("secrets: [nope]", ["secret 'nope' is not defined at the top level"]),
    ("volumes: ['nope:/data']", ["volume 'nope' is not defined at the top level"]),
    ("deploy: {resources: {reservations: {devices: [{driver: nvidia, count: 1, device_ids: ['0']}]}}}",
     ["count and device_ids are both set"]),
    ("deploy: {resources: {reservations: {devices: [{driver: nvidia, count: true}]}}}", ["GPU count True is not a number"]),
    ("deploy: {resources: {reservations: {generic_resources: [{discrete_resource_spec: {kind: GPU, value: 1.5}}]}}}",
     ["GPU count 1.5 is not a whole number"]),
])
def test_more_invalid_settings(tmp_path, snippet, words):
    path = _write(tmp_path, "services:\n  web:\n    image: x\n    %s\n" % snippet)
    with pytest.raises(InputError) as err:
        _compose.load_project([path])
    msg = str(err.value)
    assert "service 'web'" in msg and path in msg
    for word in words:
        assert word in msg


def test_count_all_needs_gpus_per_node():
    path = str(FIXTURES / "gpu-all.yml")
    with pytest.raises(InputError) as err:
        _compose.load_project([path])
    assert "count: all (or no count) asks for every GPU of a node" in str(err.value)
    assert "set the module's gpus_per_node" in str(err.value)
    project = _compose.load_project([path], gpus_per_node=8)
    count, notes = _compose.gpu_request(project, "whole-node", project.services["whole-node"]["deploy"], 8)
    assert count == 8
    assert notes == [("deploy.resources.reservations.devices.count", "count: all became 8 GPUs (gpus_per_node)")]


def test_top_level_names_must_make_distinct_kubernetes_names(tmp_path):
    path = _write(tmp_path, "services:\n  web: {image: x}\nsecrets:\n  db_pass: {file: a}\n  db-pass: {file: b}\n")
    with pytest.raises(InputError, match="'db_pass' and 'db-pass' both become the Kubernetes name 'db-pass'"):
        _compose.load_project([path])


def test_services_subset_must_exist():
    with pytest.raises(InputError, match="services: mcp-nope not in the compose files"):
        _compose.load_project(["examples/sophia-mcp-stack.yml"], services=["mcp-gong", "mcp-nope"])
    project = _compose.load_project(["examples/sophia-mcp-stack.yml"], services=["mcp-gong", "mcp-slack"])
    assert list(project.services) == ["mcp-gong", "mcp-slack"]


@pytest.mark.parametrize("value, seconds", [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), (5, 5), ("0", 0)])
def test_durations(value, seconds):
    assert _compose.parse_duration(value, None, "k") == pytest.approx(seconds)


@pytest.mark.parametrize("ports, expected", [
    (["80"], [(None, 80, "tcp", "ingress")]),
    (["8080:80/udp"], [(8080, 80, "udp", "ingress")]),
    (["127.0.0.1:8080:80"], [(8080, 80, "tcp", "ingress")]),
    (["[::1]:8080:80"], [(8080, 80, "tcp", "ingress")]),
    (["9000-9001:9000-9001"], [(9000, 9000, "tcp", "ingress"), (9001, 9001, "tcp", "ingress")]),
    ([{"target": 80, "published": "8080", "mode": "host"}], [(8080, 80, "tcp", "host")]),
    ([80, "80"], [(None, 80, "tcp", "ingress")]),
])
def test_port_syntaxes(ports, expected):
    got = _compose.normalise_ports(ports, None)
    assert [(p["published"], p["target"], p["protocol"], p["mode"]) for p in got] == expected
