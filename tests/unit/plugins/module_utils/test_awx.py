# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_awx: survey questions from argument specs, what a survey leaves out, the playbook scan, the import document."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _awx
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

REPO = Path(__file__).resolve().parents[4]


# --- question: one argument-spec option -> one survey question ----------------------------------------------------

@pytest.mark.parametrize("option, expected", [
    ({"type": "str", "default": "x", "description": "A."},
     {"type": "text", "default": "x", "min": 0, "max": 1024, "required": False, "question_description": "A."}),
    ({"type": "path", "default": "/etc", "description": ["Two", "lines."]},
     {"type": "text", "default": "/etc", "question_description": "Two lines."}),
    ({"type": "int", "default": 300}, {"type": "integer", "default": 300}),
    ({"type": "float", "default": 60}, {"type": "float", "default": 60.0}),
    ({"type": "bool", "default": True}, {"type": "multiplechoice", "choices": ["true", "false"], "default": "true"}),
    ({"type": "bool", "default": False}, {"type": "multiplechoice", "default": "false"}),
    ({"type": "str", "choices": ["a", "b"], "default": "b"},
     {"type": "multiplechoice", "choices": ["a", "b"], "default": "b"}),
    ({"type": "int", "choices": [2, 3], "default": 2},
     {"type": "multiplechoice", "choices": ["2", "3"], "default": "2"}),
    ({"type": "list", "elements": "str", "choices": ["x", "y", "z"], "default": ["x", "z"]},
     {"type": "multiselect", "choices": ["x", "y", "z"], "default": "x\nz"}),
    ({"type": "list", "elements": "str", "default": ["a", "b"]},
     {"type": "textarea", "default": '["a", "b"]', "max": 4096}),
    ({"type": "dict", "default": {"b": 1, "a": 2}}, {"type": "textarea", "default": '{"a": 2, "b": 1}'}),
    ({"type": "dict", "default": {}}, {"type": "textarea"}),
    ({"type": "str", "no_log": True, "default": ""}, {"type": "password", "default": ""}),
    ({"type": "str", "required": True}, {"type": "text", "required": True}),
])
def test_question_maps_the_option(option, expected):
    item = _awx.question("some_option", option)
    assert item["variable"] == item["question_name"] == "some_option"
    for key, value in expected.items():
        assert item[key] == value, key
    if "default" not in expected:
        assert "default" not in item


def test_question_without_a_default_has_none():
    assert "default" not in _awx.question("x", {"type": "int"})
    assert "default" not in _awx.question("x", {"type": "bool"})


def test_question_rejects_a_type_no_survey_fits():
    with pytest.raises(InputError, match="option weird has type 'raw'"):
        _awx.question("weird", {"type": "raw"})


# --- what stays out of a survey ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, option, reason", [
    ("a", {"type": "str", "default": "x"}, ""),
    ("set_by_play", {"type": "str"}, "set by the playbook"),
    ("in_inventory", {"type": "int"}, "set by an inventory"),
    ("derived", {"type": "str", "default": "{{ other }}/x"}, "default derived from other settings"),
    ("derived_list", {"type": "list", "choices": ["{{ x }}"], "default": ["{% raw %}"]},
     "default derived from other settings"),
    ("a_list", {"type": "list", "elements": "str", "default": []}, "structured value"),
    ("a_dict", {"type": "dict", "default": {}}, "structured value"),
    ("a_choice_list", {"type": "list", "choices": ["x"], "default": []}, ""),
])
def test_survey_excluded(name, option, reason):
    got = _awx.survey_excluded(name, option, {"set_by_play"}, {"in_inventory"})
    assert got.startswith(reason) if reason else got == ""


# --- reading playbooks and inventories -----------------------------------------------------------------------------

@pytest.mark.parametrize("playbook, roles", [
    ("playbooks/phase1.yml", ["front_door", "swarm_stabilize"]),
    ("playbooks/phase2.yml", ["k3s_install", "nvidia_plugin", "mcp_deploy", "front_door"]),
    ("playbooks/phase3.yml", ["mcp_deploy", "front_door"]),
    ("playbooks/rollback.yml", []),
])
def test_playbook_scan_finds_the_roles(playbook, roles):
    assert _awx.playbook_scan(str(REPO), playbook)["roles"] == roles


def test_playbook_scan_follows_include_tasks_and_collects_what_the_play_sets(tmp_path):
    (tmp_path / "roles" / "r1" / "meta").mkdir(parents=True)
    (tmp_path / "pb" / "tasks").mkdir(parents=True)
    (tmp_path / "pb" / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "all", "roles": ["sophia_ai.platform.r0"],
        "tasks": [{"block": [{"ansible.builtin.include_role": {"name": "sophia_ai.platform.r1"},
                              "vars": {"r1_wired": 1}}],
                   "rescue": [{"ansible.builtin.include_tasks": "tasks/more.yml"}]},
                  {"ansible.builtin.set_fact": {"fact_one": 1, "cacheable": True}},
                  {"ansible.builtin.include_role": {"name": "other.collection.role"}}]}]))
    (tmp_path / "pb" / "tasks" / "more.yml").write_text(yaml.safe_dump([
        {"ansible.builtin.import_role": {"name": "r2"}},
        {"ansible.builtin.include_tasks": {"file": "more.yml"}}]))  # a loop back: read once
    scan = _awx.playbook_scan(str(tmp_path), "pb/play.yml")
    assert scan["roles"] == ["r0", "r1", "r2"]
    assert {"r1_wired", "fact_one"} <= scan["sets"] and "cacheable" not in scan["sets"]
    assert scan["files"] == ["pb/play.yml", "pb/tasks/more.yml"]


def test_playbook_scan_refuses_a_templated_role_name(tmp_path):
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "all", "tasks": [
        {"ansible.builtin.include_role": {"name": "{{ which }}"}}]}]))
    with pytest.raises(InputError, match="play.yml includes a role whose name is not a literal"):
        _awx.playbook_scan(str(tmp_path), "play.yml")


def test_playbook_variables_of_phase1():
    got = {v["name"]: v for v in _awx.playbook_variables(str(REPO), "playbooks/phase1.yml", "phase1_")}
    assert list(got)[:3] == ["phase1_docker_host", "phase1_stack", "phase1_report_dir"]
    assert got["phase1_traffic_rate"]["default"] == 2
    assert got["phase1_front_door"]["default"] is True
    assert "default" not in got["phase1_report_dir"]  # templated: derived from lab_state_dir
    assert "host-mode ports answer only where a task runs" in got["phase1_front_door_servers"]["description"]


def test_playbook_variables_of_rollback_and_phase2():
    rollback = {v["name"]: v for v in _awx.playbook_variables(str(REPO), "playbooks/rollback.yml", "rollback_")}
    assert set(rollback) == {"rollback_services", "rollback_reason", "rollback_force"}
    assert rollback["rollback_services"]["required"] and "default" not in rollback["rollback_services"]
    assert rollback["rollback_force"]["default"] is False
    phase2 = {v["name"]: v for v in _awx.playbook_variables(str(REPO), "playbooks/phase2.yml", "phase2_")}
    # one comment line documents three variables
    assert phase2["phase2_traffic"]["description"] == phase2["phase2_traffic_timeout"]["description"]
    assert phase2["phase2_waves"]["default"] == ["non-critical"]
    assert "default" not in phase2["phase2_kubeconfig"]  # a default() inside a default(): not a literal


@pytest.mark.parametrize("text, value", [
    ("true", True), ("false", False), ("'2h'", "2h"), ("10", 10), ("[]", []), ("{'a': true}", {"a": True}),
    ("playbook_dir ~ '/x'", _awx._MISSING), ("none", _awx._MISSING),
])
def test_literal(text, value):
    assert _awx._literal(text) == value


def test_inventory_variables_cover_hosts_groups_and_the_plugin():
    names = _awx.inventory_variables(str(REPO))
    assert {"k3s_install_node_ip", "phase2_stack_files", "front_door_socket", "lab_stack_name"} <= names
    assert "k3s_install_version" not in names


# --- surveys and the import document -------------------------------------------------------------------------------

def test_survey_of_phase1_on_the_real_specs():
    spec = _awx.survey_spec(str(REPO), "playbooks/phase1.yml", "phase1_")["spec"]
    names = [q["variable"] for q in spec]
    assert names[:7] == ["phase1_docker_host", "phase1_front_door", "phase1_front_door_reset",
                         "phase1_front_door_hold", "phase1_traffic", "phase1_traffic_rate", "phase1_traffic_timeout"]
    # wired by the playbook, set by an inventory, derived, structured: not asked
    for absent in ("swarm_stabilize_docker_host", "swarm_stabilize_stack", "front_door_socket", "front_door_hold_map",
                   "front_door_services", "swarm_stabilize_services", "phase1_front_door_servers", "phase1_stack",
                   "swarm_stabilize_front_door_socket", "swarm_stabilize_front_door_hold_map"):
        assert absent not in names
    options = _awx.role_options(str(REPO), "swarm_stabilize")
    wait = next(q for q in spec if q["variable"] == "swarm_stabilize_wait_timeout")
    assert wait["type"] == "integer" and wait["default"] == options["swarm_stabilize_wait_timeout"]["default"]
    on_failure = next(q for q in spec if q["variable"] == "swarm_stabilize_on_failure")
    assert on_failure["choices"] == options["swarm_stabilize_on_failure"]["choices"]


def test_survey_keeps_the_secret_a_password_and_rollback_services_required():
    spec = {q["variable"]: q for q in _awx.survey_spec(str(REPO), "playbooks/phase2.yml", "phase2_")["spec"]}
    assert spec["k3s_install_token"]["type"] == "password"
    assert "nvidia_plugin_host_setup" not in spec and "nvidia_plugin_cluster_setup" not in spec  # per-include
    rollback = {q["variable"]: q for q in _awx.survey_spec(str(REPO), "playbooks/rollback.yml", "rollback_")["spec"]}
    assert rollback["rollback_services"]["required"] is True and "default" not in rollback["rollback_services"]


def _copy_repo(tmp_path):
    root = tmp_path / "repo"
    for part in ("playbooks", "roles", "inventories"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(REPO / "galaxy.yml", root / "galaxy.yml")
    return root


def test_controller_assets_reference_each_other(tmp_path):
    assets = _awx.controller_assets(str(REPO), organization="Ops", scm_url="https://git.example/p.git",
                                    ee_image="ee:1", inventory="lab")
    assert set(assets) == {"execution_environments", "projects", "inventory", "inventory_sources", "job_templates",
                           "workflow_job_templates"}
    project = assets["projects"][0]
    assert project["scm_url"] == "https://git.example/p.git" and project["natural_key"]["organization"]["name"] == "Ops"
    assert assets["execution_environments"][0]["image"] == "ee:1"
    inventories = [i["natural_key"] for i in assets["inventory"]]
    assert [s["source_path"] for s in assets["inventory_sources"]] == ["inventories/lab", "inventories/lambda"]
    for jt in assets["job_templates"]:
        assert jt["inventory"] in inventories and jt["inventory"]["name"] == "sophia_ai.platform lab"
        assert jt["project"] == project["natural_key"]
    assert json.loads(_awx.render(assets)) == assets


def test_controller_assets_errors_name_the_file(tmp_path):
    root = _copy_repo(tmp_path)
    with pytest.raises(InputError, match="unknown inventory 'prod'"):
        _awx.controller_assets(str(root), inventory="prod")
    (root / "roles" / "front_door" / "meta" / "argument_specs.yml").write_text("argument_specs: {other: {}}\n")
    with pytest.raises(InputError, match="roles/front_door/meta/argument_specs.yml has no argument_specs.main") as err:
        _awx.controller_assets(str(root))
    assert err.value.details["file"] == "roles/front_door/meta/argument_specs.yml"
    (root / "roles" / "front_door" / "meta" / "argument_specs.yml").write_text("argument_specs: [\n")
    with pytest.raises(InputError, match="invalid YAML in roles/front_door/meta/argument_specs.yml"):
        _awx.controller_assets(str(root))
    shutil.copy(REPO / "roles" / "front_door" / "meta" / "argument_specs.yml",
                root / "roles" / "front_door" / "meta" / "argument_specs.yml")
    (root / "playbooks" / "phase3.yml").unlink()
    with pytest.raises(InputError, match="playbooks/phase3.yml is missing"):
        _awx.controller_assets(str(root))


def test_a_variable_asked_twice_is_an_error(tmp_path):
    root = _copy_repo(tmp_path)
    spec = root / "roles" / "k3s_install" / "meta" / "argument_specs.yml"
    data = yaml.safe_load(spec.read_text())
    data["argument_specs"]["main"]["options"]["phase2_switch"] = {"type": "bool", "default": True}
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="phase2_switch would be asked twice"):
        _awx.survey_spec(str(root), "playbooks/phase2.yml", "phase2_")


def test_workflow_success_and_failure_paths():
    wf = _awx.workflow("Default", {"name": "inv"})
    nodes = {n["identifier"]: n for n in wf["related"]["workflow_nodes"]}
    edges = {(src, kind[:-6], ref["identifier"]) for src, n in nodes.items()
             for kind in ("success_nodes", "failure_nodes", "always_nodes") for ref in n["related"][kind]}
    assert edges == {("phase1", "success", "phase2"), ("phase2", "success", "phase3"),
                     ("phase2", "failure", "rollback-after-phase2"), ("phase3", "failure", "rollback-after-phase3"),
                     ("phase3", "success", "report"), ("rollback-after-phase2", "always", "report"),
                     ("rollback-after-phase3", "always", "report")}
    assert nodes["report"]["unified_job_template"]["name"] == "sophia_ai.platform migration report"
    assert nodes["rollback-after-phase3"]["extra_data"]["rollback_services"] == "all"


def test_main_writes_then_checks(tmp_path, capsys):
    root = _copy_repo(tmp_path)
    assert _awx.main(["--root", str(root), "--check"]) == 1
    assert "awx/controller.json is out of date" in capsys.readouterr().err
    assert _awx.main(["--root", str(root)]) == 0
    assert _awx.main(["--root", str(root), "--check"]) == 0
    (root / "roles" / "front_door" / "meta" / "argument_specs.yml").unlink()
    assert _awx.main(["--root", str(root)]) == 2
    assert "cannot read roles/front_door/meta/argument_specs.yml" in capsys.readouterr().err
