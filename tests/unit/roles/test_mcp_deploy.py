# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role ``mcp_deploy``: its inputs, its README and the Secret template, without a cluster.

The template is rendered by ansible-core's own templating engine with the role's defaults and vars, as a play would
render it; the cluster behaviour is the integration tests' (tests/integration/mcp_deploy) and the molecule
scenario's (molecule/mcp_deploy). Nothing is mocked.

``python tests/unit/roles/test_mcp_deploy.py --write-readme`` rewrites the README's variables table from
meta/argument_specs.yml; ``test_readme_matches_argument_specs`` fails while it differs.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
import yaml

import role_readme  # tests/unit/roles/role_readme.py: the README table, shared by the role tests

# Imported before a test installs Ansible's collection finder (see test_nvidia_plugin.py for why).
from ansible_collections.sophia_ai.platform.plugins.modules.mcp_deploy_plan import argument_spec as plan_spec

ROLE = Path(__file__).resolve().parents[3] / "roles" / "mcp_deploy"


def _spec():
    return role_readme.spec(ROLE)


def readme_table():
    return role_readme.table(ROLE)


def write_readme():
    role_readme.write(ROLE)


def test_every_default_is_declared_with_the_same_value():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = _spec()["options"]
    required = sorted(name for name, option in options.items() if option.get("required"))
    assert required == ["mcp_deploy_manifests_dir"]
    assert sorted(defaults) == sorted(set(options) - set(required))
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
        assert name.startswith("mcp_deploy_"), name
        assert options[name]["description"], name


def test_secret_values_variable_is_no_log():
    assert _spec()["options"]["mcp_deploy_secrets"]["no_log"] is True


def test_planner_choices_match_the_role():
    """The role passes its variables to mcp_deploy_plan: the choices and defaults agree."""
    options, spec = _spec()["options"], plan_spec()
    for option in ("pdb_policy", "quota", "expose", "port_clash", "default_criticality"):
        assert options[f"mcp_deploy_{option}"]["choices"] == spec[option]["choices"], option
        assert options[f"mcp_deploy_{option}"]["default"] == spec[option]["default"], option
    for option in ("namespace", "stack", "gpu_wave", "pdb_value", "quota_headroom", "hpa_cpu", "node_port_range",
                   "probe_path", "field_manager", "use_existing_secrets"):
        assert options[f"mcp_deploy_{option}"]["default"] == spec[option]["default"], option


def test_readme_matches_argument_specs():
    assert role_readme.section(ROLE) == readme_table(), (
        "README.md's variables table differs from meta/argument_specs.yml: "
        "run python tests/unit/roles/test_mcp_deploy.py --write-readme")


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
        "__mcp_deploy_plan": {"namespace": "sophia"},
    }

    def _render(template, **overrides):
        templar = Templar(loader=loader, variables={**base, **overrides})
        if template.endswith(".j2"):
            return templar.template(trust_as_template((ROLE / "templates" / template).read_text()))
        return templar.template(trust_as_template(template))

    return _render


def test_secrets_from_variables_and_files(render):
    secrets = {"mcp-api-key": {"mcp_api_key": "s3cr3t", "other": "ünïcode"}, "db": {"password": "pw"}}
    files = {"mcp-api-key": {"cert.pem": "/etc/ssl/cert.pem"}, "tls": {"tls.key": "/etc/ssl/key.pem"}}
    read = {"results": [{"item": {"secret": "mcp-api-key", "key": "cert.pem", "path": "/etc/ssl/cert.pem"},
                         "content": base64.b64encode(b"\x00binary").decode()},
                        {"item": {"secret": "tls", "key": "tls.key", "path": "/etc/ssl/key.pem"},
                         "content": base64.b64encode(b"KEY").decode()}]}
    listed = json.loads(render("{{ __mcp_deploy_secret_file_list }}", mcp_deploy_secret_files=files))
    assert sorted(listed, key=lambda e: e["secret"]) == [
        {"secret": "mcp-api-key", "key": "cert.pem", "path": "/etc/ssl/cert.pem"},
        {"secret": "tls", "key": "tls.key", "path": "/etc/ssl/key.pem"}]
    assert render("{{ __mcp_deploy_secret_keys }}", mcp_deploy_secrets=secrets) == {
        "mcp-api-key": ["mcp_api_key", "other"], "db": ["password"]}
    objects = yaml.safe_load(render("secrets.yml.j2", mcp_deploy_secrets=secrets, mcp_deploy_secret_files=files,
                                    __mcp_deploy_secret_files_read=read))
    assert [o["metadata"]["name"] for o in objects] == ["db", "mcp-api-key", "tls"]
    data = {o["metadata"]["name"]: {k: base64.b64decode(v) for k, v in o["data"].items()} for o in objects}
    assert data == {"db": {"password": b"pw"},
                    "mcp-api-key": {"mcp_api_key": b"s3cr3t", "other": "ünïcode".encode(), "cert.pem": b"\x00binary"},
                    "tls": {"tls.key": b"KEY"}}
    assert all(o["metadata"]["namespace"] == "sophia" and o["type"] == "Opaque" for o in objects)
    assert objects[0]["metadata"]["labels"] == {"app.kubernetes.io/part-of": "sophia-mcp", "sophia.ai/deploy-wave": "shared"}


def test_no_secrets_render_nothing(render):
    out = render("secrets.yml.j2")
    assert out is None or yaml.safe_load(out) is None


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-readme"]:
        write_readme()
    else:
        sys.exit(f"usage: {sys.argv[0]} --write-readme")
