# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX / Automation Controller: the execution environment's build context from the real ``ansible-builder create``
(scripts/ee.sh) with the real kubectl and kompose, and the committed awx/controller.json checked against the
playbooks, inventories and argument specs it claims to come from (independently of the generator's own logic)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _awx

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
CONTROLLER = json.loads((REPO / "awx" / "controller.json").read_text())
JOB_TEMPLATES = {jt["name"]: jt for jt in CONTROLLER["job_templates"]}
# survey question type for each argument-spec type (without choices / no_log)
SURVEY_TYPE = {"str": "text", "path": "text", "int": "integer", "float": "float", "bool": "multiplechoice"}


def go_tool_version(name):
    for line in (REPO / "requirements" / "go-tools.txt").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return fields[2]
    raise AssertionError("requirements/go-tools.txt has no %s line" % name)


# --- the execution environment -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ee_context(tmp_path_factory):
    out = tmp_path_factory.mktemp("ee")
    run = subprocess.run([str(REPO / "scripts" / "ee.sh"), str(out)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    context = Path(run.stdout.strip().splitlines()[-1])
    assert context == out / "context"
    return context


def test_build_context_installs_the_collection_tarball(ee_context):
    containerfile = (ee_context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    requirements = yaml.safe_load((ee_context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": "collections/sophia_ai-platform.tar.gz", "type": "file"}]
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    with tarfile.open(ee_context / "_build" / "collections" / "sophia_ai-platform.tar.gz") as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        names = tar.getnames()
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("sophia_ai", "platform", galaxy["version"])
    assert "roles/mcp_deploy/meta/argument_specs.yml" in names and "playbooks/phase2.yml" in names
    assert not [n for n in names if n.startswith(("awx/", "execution-environment.yml", ".venv"))]


def test_build_context_installs_the_python_requirements(ee_context):
    containerfile = (ee_context / "Containerfile").read_text()
    assert "COPY _build/requirements.txt requirements.txt" in containerfile
    assert "introspect --user-pip=requirements.txt" in containerfile
    wanted = [line for line in (REPO / "requirements" / "ee-python.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    got = [line for line in (ee_context / "_build" / "requirements.txt").read_text().splitlines()
           if line and not line.startswith("#")]
    assert got == wanted and "kubernetes==" in "\n".join(got)
    pins = dict(line.split("==") for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
                if "==" in line)
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==%s ' % pins["ansible-core"] in containerfile


def test_build_context_installs_kubectl_and_kompose_at_the_pinned_versions(ee_context):
    containerfile = (ee_context / "Containerfile").read_text()
    final = containerfile[containerfile.index("FROM base AS final"):]
    assert "COPY _build/bin/kubectl _build/bin/kompose /usr/local/bin/" in final
    assert "RUN kubectl version --client && kompose version" in final
    kubectl, kompose = ee_context / "_build" / "bin" / "kubectl", ee_context / "_build" / "bin" / "kompose"
    assert os.access(kubectl, os.X_OK) and os.access(kompose, os.X_OK)
    client = subprocess.run([str(kubectl), "version", "--client", "-o", "json"], capture_output=True, text=True,
                            check=True)
    assert json.loads(client.stdout)["clientVersion"]["gitVersion"] == go_tool_version("kubernetes")
    version = subprocess.run([str(kompose), "version"], capture_output=True, text=True, check=True).stdout
    assert version.split()[0] == go_tool_version("kompose").lstrip("v")


def test_ee_script_names_a_missing_binary(tmp_path):
    env = dict(os.environ, SOPHIA_CACHE=str(tmp_path / "empty-cache"))
    run = subprocess.run([str(REPO / "scripts" / "ee.sh"), str(tmp_path / "out")], capture_output=True, text=True,
                         env=env, check=False)
    assert run.returncode == 1
    assert "kompose-%s is missing" % go_tool_version("kompose") in run.stderr and "make setup" in run.stderr
    assert not (tmp_path / "out" / "context").exists()


# --- awx/controller.json -------------------------------------------------------------------------------------------

def test_controller_json_is_up_to_date():
    assert _awx.main(["--root", str(REPO), "--check"]) == 0, "awx/controller.json is stale: run make awx"


def test_every_reference_resolves():
    keys = {kind: [a["natural_key"] for a in CONTROLLER[kind]] for kind in CONTROLLER}
    for source in CONTROLLER["inventory_sources"]:
        assert source["inventory"] in keys["inventory"] and source["source_project"] in keys["projects"]
        assert (REPO / source["source_path"]).is_dir()
    for project in CONTROLLER["projects"]:
        assert project["default_environment"] in keys["execution_environments"]
    for jt in CONTROLLER["job_templates"]:
        assert jt["project"] in keys["projects"] and jt["inventory"] in keys["inventory"]
        assert jt["execution_environment"] in keys["execution_environments"]
    wf = CONTROLLER["workflow_job_templates"][0]
    assert wf["inventory"] in keys["inventory"]


@pytest.mark.parametrize("source", [s["source_path"] for s in CONTROLLER["inventory_sources"]])
def test_inventory_sources_parse(source):
    run = subprocess.run(["ansible-inventory", "-i", source, "--list"], cwd=REPO, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    groups = json.loads(run.stdout)
    assert {"k3s_servers", "front_door"} <= set(groups) or "swarm_managers" in groups, source


@pytest.mark.parametrize("name", sorted(JOB_TEMPLATES))
def test_job_template_runs_an_existing_playbook(name):
    jt = JOB_TEMPLATES[name]
    assert jt["survey_enabled"] and jt["related"]["survey_spec"]["spec"]
    source = next(s for s in CONTROLLER["inventory_sources"] if s["inventory"] == jt["inventory"])
    run = subprocess.run(["ansible-playbook", "--syntax-check", "-i", source["source_path"], jt["playbook"]],
                         cwd=REPO, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def _roles_of(playbook):
    """This collection's roles a playbook (and its task files) include, read from the text."""
    text = (REPO / playbook).read_text()
    for tasks in re.findall(r"include_tasks:\s*(\S+\.yml)", text):
        text += (REPO / "playbooks" / tasks).read_text()
    return set(re.findall(r"name:\s*sophia_ai\.platform\.(\w+)\s*$", text, re.M))


def _spec_options(role):
    return yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())[
        "argument_specs"]["main"]["options"]


@pytest.mark.parametrize("name", sorted(JOB_TEMPLATES))
def test_survey_questions_match_the_argument_specs(name):
    jt = JOB_TEMPLATES[name]
    playbook_text = (REPO / jt["playbook"]).read_text()
    options = {}
    for role in _roles_of(jt["playbook"]):
        options.update(_spec_options(role))
    spec = jt["related"]["survey_spec"]["spec"]
    assert len({q["variable"] for q in spec}) == len(spec)
    asked_roles = 0
    for q in spec:
        var = q["variable"]
        if var not in options:
            # a variable the playbook reads (documented and used in its text)
            assert len(re.findall(r"\b%s\b" % var, playbook_text)) >= 2, "%s: %s is not read by %s" % (
                name, var, jt["playbook"])
            continue
        asked_roles += 1
        option = options[var]
        if option.get("no_log"):
            assert q["type"] == "password", var
        elif option.get("choices"):
            assert q["type"] in ("multiplechoice", "multiselect") and q["choices"] == [
                str(c) for c in option["choices"]], var
        else:
            assert q["type"] == SURVEY_TYPE[option.get("type", "str")], var
        if option.get("type") == "bool":
            assert q["choices"] == ["true", "false"]
            assert q["default"] == ("true" if option["default"] else "false"), var
        elif "default" in option and option["default"] is not None:
            assert q["default"] == option["default"] or q["default"] == str(option["default"]), var
        else:
            assert "default" not in q, var
        assert q["required"] == bool(option.get("required", False)), var
        description = option.get("description")
        assert q["question_description"] == (" ".join(description) if isinstance(description, list)
                                             else description), var
    assert asked_roles or not options, "%s asks none of its roles' options" % name


def test_surveys_ask_no_variable_an_inventory_sets():
    inventory_text = "\n".join(p.read_text() for p in (REPO / "inventories").rglob("*.yml"))
    for jt in CONTROLLER["job_templates"]:
        for q in jt["related"]["survey_spec"]["spec"]:
            assert not re.search(r"^\s*%s:" % q["variable"], inventory_text, re.M), (jt["name"], q["variable"])


def test_workflow_runs_the_phases_in_order_with_rollback_on_failure():
    wf = CONTROLLER["workflow_job_templates"][0]
    nodes = {n["identifier"]: n for n in wf["related"]["workflow_nodes"]}
    playbook_of = {jt["natural_key"]["name"]: jt["playbook"] for jt in CONTROLLER["job_templates"]}
    for node in nodes.values():
        assert node["unified_job_template"]["name"] in playbook_of
        assert node["natural_key"]["workflow_job_template"] == wf["natural_key"]
        for kind in ("success_nodes", "failure_nodes", "always_nodes"):
            for ref in node["related"][kind]:
                assert ref["identifier"] in nodes and ref["workflow_job_template"] == wf["natural_key"]

    def children(identifier, kind):
        return [playbook_of[nodes[r["identifier"]]["unified_job_template"]["name"]]
                for r in nodes[identifier]["related"][kind]]

    def playbook(identifier):
        return playbook_of[nodes[identifier]["unified_job_template"]["name"]]

    roots = set(nodes) - {r["identifier"] for n in nodes.values() for k in ("success_nodes", "failure_nodes",
                                                                            "always_nodes") for r in n["related"][k]}
    assert [playbook(r) for r in roots] == ["playbooks/phase1.yml"]
    phase2 = next(i for i in nodes if playbook(i) == "playbooks/phase2.yml")
    phase3 = next(i for i in nodes if playbook(i) == "playbooks/phase3.yml")
    assert children(next(iter(roots)), "success_nodes") == ["playbooks/phase2.yml"]
    assert children(phase2, "success_nodes") == ["playbooks/phase3.yml"]
    assert children(phase2, "failure_nodes") == ["playbooks/rollback.yml"]
    assert children(phase3, "failure_nodes") == ["playbooks/rollback.yml"]
    assert children(phase3, "success_nodes") == ["playbooks/report.yml"]
    for rollback in (r["identifier"] for n in (phase2, phase3) for r in nodes[n]["related"]["failure_nodes"]):
        assert children(rollback, "always_nodes") == ["playbooks/report.yml"]
    rollback_jt = next(jt for jt in CONTROLLER["job_templates"] if jt["playbook"] == "playbooks/rollback.yml")
    survey = {q["variable"]: q for q in rollback_jt["related"]["survey_spec"]["spec"]}
    for identifier in (r["identifier"] for n in (phase2, phase3) for r in nodes[n]["related"]["failure_nodes"]):
        extra = nodes[identifier]["extra_data"]
        assert set(extra) <= set(survey)
        assert {v for v, q in survey.items() if q["required"]} <= set(extra)
