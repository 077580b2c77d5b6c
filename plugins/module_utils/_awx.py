# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_awx: AWX / Automation Controller resources as code, generated from the phase playbooks and the roles'
``meta/argument_specs.yml`` (pure: reads the checkout's files and returns data; it never talks to AWX).

The result is the JSON that ``awx import`` (awxkit's ``import_assets``) reads: a project (this repository), the
two inventories (``inventories/lab`` and ``inventories/lambda`` as project inventory sources), the execution
environment (``execution-environment.yml``, built by ``make ee``), one job template per phase playbook with a
survey, and the workflow phase 1 -> phase 2 -> phase 3 with ``playbooks/rollback.yml`` on the failure of phase 2
and of phase 3. Every reference between them is an awxkit natural key.

What goes into a playbook's survey, and why (AWX passes every answer, and every default the operator leaves
alone, as an extra var: the highest precedence there is):

* The playbook's own variables: those its header comment documents (``#   phase2_switch   ...``) and whose
  default is a literal in the playbook (play ``vars:`` or ``name | default(literal)``), plus documented variables
  that the comment calls required (``rollback_services``). A variable whose default is computed from others
  (``phase1_report_dir``) is left out: a survey default would freeze what the playbook derives.
* The options of every role the playbook includes (``include_role``/``import_role``/``roles:``, also through
  ``include_tasks`` files), as the role's argument spec declares them: type, default, required, choices,
  description, ``no_log`` (a password question).
* Left out: options the playbook sets itself when it includes the role (``vars:`` of the include, ``set_fact``):
  the playbook wires them from its own variables, and an extra var would override that wiring (for phase 2 it
  would, for instance, turn ``nvidia_plugin_host_setup`` off for the include that needs it on).
* Left out: variables any inventory under ``inventories/`` sets (host vars, group vars, the inventory plugin's
  ``compose``): a survey default would override the inventory's value for every host
  (``k3s_install_node_ip`` would be one address for all nodes).
* Left out: options whose default is a Jinja template (derived from another option), and list and dict options
  unless they have choices: a survey answer is a string (or, for a multiselect, a list of fixed choices), and a
  role's argument validation converts values only to check them, never in place, so a string would reach the
  role's tasks where a list or a dict is expected. Such structured settings belong in the inventory.

Type mapping (:func:`question`): str/path -> text, int -> integer, float -> float, bool -> multiplechoice
``true``/``false`` (the roles read booleans with ``| bool`` or pass them to modules, which convert), choices ->
multiplechoice (multiselect for a list), other lists and dicts -> textarea (not selected, see above),
``no_log`` -> password.

Run ``python -m ansible_collections.sophia_ai.platform.plugins.module_utils._awx --out awx/controller.json``
(``make awx``); ``--check`` exits 1 when the file differs from what the checkout generates.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import DependencyError, InputError

COLLECTION = "sophia_ai.platform"
PROJECT_NAME = "sophia_ai.platform"
EE_NAME = "sophia_ai.platform"
WORKFLOW_NAME = "sophia_ai.platform migration (phase 1 -> 2 -> 3, rollback on failure)"

# (job template name, playbook, playbook variable prefix)
PHASES = (
    ("sophia_ai.platform phase 1 (stabilise Swarm)", "playbooks/phase1.yml", "phase1_"),
    ("sophia_ai.platform phase 2 (K3s, non-critical services)", "playbooks/phase2.yml", "phase2_"),
    ("sophia_ai.platform phase 3 (critical services, blue-green)", "playbooks/phase3.yml", "phase3_"),
    ("sophia_ai.platform rollback (back to Swarm)", "playbooks/rollback.yml", "rollback_"),
    ("sophia_ai.platform migration report", "playbooks/report.yml", "report_"),
)
INVENTORIES = {
    "lab": ("sophia_ai.platform lab", "inventories/lab", "The embedded local lab (make lab)."),
    "lambda": ("sophia_ai.platform lambda", "inventories/lambda", "The Lambda Cloud GPU hosts (static example)."),
}
# what the rollback nodes of the workflow pass (rollback.yml's survey variables)
ROLLBACK_EXTRA_DATA = {"rollback_services": "all"}

TEXT_MAX = 1024
TEXTAREA_MAX = 4096
_SCALAR_TYPES = {"str": "text", "path": "text", "int": "integer", "float": "float"}
_MISSING = object()


# --- reading the checkout ----------------------------------------------------------------------------------------

def load_yaml(root, rel):
    """The YAML document at ``root/rel``; :class:`InputError` naming the file when it is missing or invalid."""
    if yaml is None:
        raise DependencyError("PyYAML is needed to read %s: pip install pyyaml" % rel, object=rel)
    path = os.path.join(root, rel)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as exc:
        raise InputError("cannot read %s: %s. Fix: run from the collection's root (--root)." % (rel, exc.strerror),
                         file=rel) from exc
    except yaml.YAMLError as exc:
        raise InputError("invalid YAML in %s: %s. Fix: correct the YAML syntax." % (rel, exc), file=rel) from exc


def role_options(root, role):
    """The ``main`` entry point's options of ``roles/<role>/meta/argument_specs.yml``, in file order."""
    rel = "roles/%s/meta/argument_specs.yml" % role
    data = load_yaml(root, rel) or {}
    try:
        options = data["argument_specs"]["main"].get("options") or {}
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError("%s has no argument_specs.main: every role declares its entry point main there." % rel,
                         file=rel, key="argument_specs.main") from exc
    return options


def _tasks(node):
    """Every task dict under a play or a task list (blocks, rescue, always), depth first."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            if key in node:
                yield from _tasks(node[key])


def _role_name(name, rel):
    if not isinstance(name, str) or "{{" in name:
        raise InputError("%s includes a role whose name is not a literal (%r): the survey needs to know it. "
                         "Fix: name the role literally." % (rel, name), file=rel)
    if name.startswith(COLLECTION + "."):
        return name[len(COLLECTION) + 1:]
    return None if "." in name else name


def playbook_scan(root, rel, _seen=None):
    """What ``rel`` (and the task files it includes with a literal name) uses: ``roles`` (this collection's, in
    order of first use), ``sets`` (variables it sets itself: include ``vars:``, task ``vars:``, ``set_fact``
    keys) and ``files`` (the files read)."""
    seen = _seen if _seen is not None else {"roles": [], "sets": set(), "files": []}
    if rel in seen["files"]:
        return seen
    seen["files"].append(rel)
    data = load_yaml(root, rel) or []
    base = os.path.dirname(rel)
    for play_or_task in data if isinstance(data, list) else [data]:
        for role in (play_or_task.get("roles") or []) if isinstance(play_or_task, dict) else []:
            name = _role_name(role.get("role", role.get("name")) if isinstance(role, dict) else role, rel)
            if name and name not in seen["roles"]:
                seen["roles"].append(name)
        for task in _tasks(play_or_task):
            seen["sets"].update((task.get("vars") or {}).keys())
            for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
                if key in task:
                    name = _role_name((task[key] or {}).get("name"), rel)
                    if name and name not in seen["roles"]:
                        seen["roles"].append(name)
            for key in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(task.get(key), dict):
                    seen["sets"].update(k for k in task[key] if k != "cacheable")
            for key in ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks",
                        "include_tasks", "import_tasks"):
                target = task.get(key)
                target = target.get("file") if isinstance(target, dict) else target
                if isinstance(target, str) and "{{" not in target:
                    playbook_scan(root, os.path.normpath(os.path.join(base, target)), seen)
    return seen


def _comment_docs(text, prefix):
    """{variable: description} from the playbook's header comment: ``#   name [/ name ...]   description`` lines
    and their indented continuation lines."""
    docs, current = {}, []
    name_line = re.compile(r"^#\s+(%s\w+(?:\s*/\s*%s\w+)*)\s{2,}(\S.*)$" % (prefix, prefix))
    for line in text.splitlines():
        if not line.startswith("#"):
            if line.strip() and not line.startswith("---"):
                break
            continue
        match = name_line.match(line)
        if match:
            current = [name.strip() for name in match.group(1).split("/")]
            for name in current:
                docs[name] = match.group(2).strip()
        elif current and re.match(r"^#\s{6,}\S", line):
            for name in current:
                docs[name] += " " + line[1:].strip()
        else:
            current = []
    return docs


def _literal(text):
    """A Jinja literal (``true``, ``'2h'``, ``[]``, ``10``) as a Python value; ``_MISSING`` when it is not one."""
    text = re.sub(r"\b(true|false|none)\b", lambda m: {"true": "True", "false": "False", "none": "None"}[m.group(1)],
                  text.strip())
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _MISSING
    return value if isinstance(value, (str, int, float, bool, list, dict)) else _MISSING


def playbook_variables(root, rel, prefix):
    """The playbook's documented variables: [{name, description, default (or absent), required}], in the order
    of its header comment. Defaults come from play ``vars:`` (literal values) or ``name | default(literal)``."""
    with open(os.path.join(root, rel), encoding="utf-8") as handle:
        text = handle.read()
    defaults = {}
    for play in load_yaml(root, rel) or []:
        for name, value in ((play or {}).get("vars") or {}).items():
            if name.startswith(prefix) and not (isinstance(value, str) and "{" in value):
                defaults.setdefault(name, value)
    for match in re.finditer(r"\b(%s\w+)\s*\|\s*default\(\s*([^()]*?)\s*\)" % prefix, text):
        value = _literal(match.group(2))
        if value is not _MISSING:
            defaults.setdefault(match.group(1), value)
    out = []
    for name, description in _comment_docs(text, prefix).items():
        entry = {"name": name, "description": description,
                 "required": description.lower().startswith("required")}
        if name in defaults:
            entry["default"] = defaults[name]
        out.append(entry)
    return out


def inventory_variables(root):
    """Every variable an inventory under ``inventories/`` sets: host and group vars of its YAML files (hosts.yml,
    group_vars/, host_vars/) and the ``compose`` keys of an inventory plugin's configuration."""
    names = set()

    def walk_group(group):
        if not isinstance(group, dict):
            return
        names.update((group.get("vars") or {}).keys())
        for host_vars in (group.get("hosts") or {}).values():
            names.update((host_vars or {}).keys())
        for child in (group.get("children") or {}).values():
            walk_group(child)

    base = os.path.join(root, "inventories")
    for dirpath, _dirs, files in sorted(os.walk(base)):
        for filename in sorted(files):
            if not filename.endswith((".yml", ".yaml")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, filename), root)
            data = load_yaml(root, rel) or {}
            if not isinstance(data, dict):
                continue
            parts = rel.split(os.sep)
            if "group_vars" in parts or "host_vars" in parts:
                names.update(data.keys())
            elif "plugin" in data:
                names.update((data.get("compose") or {}).keys())
            else:
                for group in data.values():
                    walk_group(group)
    return names


# --- surveys -----------------------------------------------------------------------------------------------------

def _description(value):
    if isinstance(value, list):
        return " ".join(str(line).strip() for line in value)
    return str(value or "").strip()


def _is_template(value):
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_is_template(v) for v in value)
    if isinstance(value, dict):
        return any(_is_template(v) for v in value.values())
    return False


def question(name, option):
    """The AWX survey question for one argument-spec option (or a playbook variable in the same shape)."""
    kind = option.get("type", "str")
    choices = option.get("choices")
    default = option.get("default")
    item = {
        "question_name": name,
        "question_description": _description(option.get("description")),
        "variable": name,
        "required": bool(option.get("required", False)),
    }
    if option.get("no_log"):
        item.update(type="password", min=0, max=TEXT_MAX)
        if default is not None:
            item["default"] = str(default)
    elif kind == "bool":
        item.update(type="multiplechoice", choices=["true", "false"])
        if default is not None:
            item["default"] = "true" if default else "false"
    elif choices and kind == "list":
        item.update(type="multiselect", choices=[str(c) for c in choices])
        if default:
            item["default"] = "\n".join(str(v) for v in default)
    elif choices:
        item.update(type="multiplechoice", choices=[str(c) for c in choices])
        if default is not None:
            item["default"] = str(default)
    elif kind in ("list", "dict"):
        item.update(type="textarea", min=0, max=TEXTAREA_MAX)
        if default not in (None, [], {}):
            item["default"] = json.dumps(default, sort_keys=True)
    elif kind in _SCALAR_TYPES:
        item["type"] = _SCALAR_TYPES[kind]
        if item["type"] == "text":
            item.update(min=0, max=TEXT_MAX)
        if default is not None:
            item["default"] = {"text": str, "integer": int, "float": float}[item["type"]](default)
    else:
        raise InputError("option %s has type %r, which no survey question type fits." % (name, kind), key=name)
    return item


def survey_excluded(name, option, playbook_sets, inventory_sets):
    """Why ``name`` stays out of the survey ('' when it goes in); see the module docstring."""
    if name in playbook_sets:
        return "set by the playbook"
    if name in inventory_sets:
        return "set by an inventory"
    if _is_template(option.get("default")):
        return "default derived from other settings"
    if option.get("type", "str") in ("list", "dict") and not option.get("choices"):
        return "structured value (a survey answer would be a string)"
    return ""


def _playbook_option(var):
    """A documented playbook variable in argument-spec shape; None when it cannot be a survey question."""
    option = {"description": var["description"], "required": var["required"]}
    if "default" not in var:
        if not var["required"]:
            return None  # derived from other settings: no literal default to offer
        option["type"] = "str"
        return option
    default = var["default"]
    option["type"] = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(default)]
    option["default"] = default
    return option


def survey_spec(root, playbook, prefix, inventory_sets=None):
    """The survey of ``playbook``: its documented variables, then the options of the roles it includes."""
    inventory_sets = inventory_variables(root) if inventory_sets is None else inventory_sets
    scan = playbook_scan(root, playbook)
    spec = []
    for var in playbook_variables(root, playbook, prefix):
        option = _playbook_option(var)
        if option is None or survey_excluded(var["name"], option, set(), inventory_sets):
            continue
        spec.append(question(var["name"], option))
    for role in scan["roles"]:
        for name, option in role_options(root, role).items():
            if not survey_excluded(name, option, scan["sets"], inventory_sets):
                spec.append(question(name, option))
    names = [q["variable"] for q in spec]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError("%s: %s would be asked twice in its survey (a playbook variable and a role option, or two "
                         "roles' options, share the name). Fix: rename one of them."
                         % (playbook, ", ".join(duplicates)),
                         file=playbook, key=duplicates[0])
    return {
        "name": os.path.basename(playbook),
        "description": "Variables of %s and of the roles it includes (%s); inventory settings stay in the inventory."
        % (playbook, ", ".join(scan["roles"]) or "none"),
        "spec": spec,
    }


# --- the import file -----------------------------------------------------------------------------------------------

def _org(organization):
    return {"name": organization, "type": "organization"}


def _key(kind, name, organization):
    return {"organization": _org(organization), "name": name, "type": kind}


def controller_assets(root, organization="Default", scm_url="", scm_branch="", ee_image="", inventory="lambda"):
    """The ``awx import`` document (projects, inventory, inventory_sources, execution_environments, job_templates,
    workflow_job_templates) for this checkout."""
    if inventory not in INVENTORIES:
        raise InputError("unknown inventory %r: choose one of %s." % (inventory, ", ".join(sorted(INVENTORIES))),
                         key="inventory")
    galaxy = load_yaml(root, "galaxy.yml") or {}
    version = str(galaxy.get("version", "0.0.0"))
    scm_url = scm_url or galaxy.get("repository", "")
    ee_image = ee_image or "sophia-platform-ee:%s" % version
    project = _key("project", PROJECT_NAME, organization)
    ee_key = {"name": EE_NAME, "type": "execution_environment"}
    inventory_sets = inventory_variables(root)

    assets = {
        "execution_environments": [{
            "name": EE_NAME,
            "description": "execution-environment.yml of sophia_ai.platform %s (make ee)" % version,
            "image": ee_image,
            "pull": "missing",
            "organization": _org(organization),
            "natural_key": ee_key,
        }],
        "projects": [{
            "name": PROJECT_NAME,
            "description": "The sophia_ai.platform collection: phase playbooks, roles and inventories.",
            "scm_type": "git",
            "scm_url": scm_url,
            "scm_branch": scm_branch,
            "scm_update_on_launch": True,
            "organization": _org(organization),
            "default_environment": ee_key,
            "natural_key": project,
        }],
        "inventory": [],
        "inventory_sources": [],
        "job_templates": [],
        "workflow_job_templates": [],
    }
    for name, path, description in (INVENTORIES[k] for k in sorted(INVENTORIES)):
        if not os.path.isdir(os.path.join(root, path)):
            raise InputError("%s is not a directory: the AWX inventory %r reads it." % (path, name), file=path)
        inv_key = _key("inventory", name, organization)
        assets["inventory"].append({"name": name, "description": description, "organization": _org(organization),
                                    "variables": "---\n", "natural_key": inv_key})
        assets["inventory_sources"].append({
            "name": "%s (project)" % name,
            "description": "%s of the project" % path,
            "source": "scm",
            "source_project": project,
            "source_path": path,
            "inventory": inv_key,
            "overwrite": True,
            "overwrite_vars": True,
            "update_on_launch": True,
            "natural_key": {"name": "%s (project)" % name, "inventory": inv_key, "type": "inventory_source"},
        })
    default_inventory = _key("inventory", INVENTORIES[inventory][0], organization)
    for name, playbook, prefix in PHASES:
        if not os.path.isfile(os.path.join(root, playbook)):
            raise InputError("%s is missing: the job template %r runs it." % (playbook, name), file=playbook)
        assets["job_templates"].append({
            "name": name,
            "description": "ansible-playbook %s (survey generated from the argument specs)" % playbook,
            "job_type": "run",
            "playbook": playbook,
            "project": project,
            "inventory": default_inventory,
            "ask_inventory_on_launch": True,
            "execution_environment": ee_key,
            "survey_enabled": True,
            "verbosity": 0,
            "related": {"survey_spec": survey_spec(root, playbook, prefix, inventory_sets)},
            "natural_key": _key("job_template", name, organization),
        })
    assets["workflow_job_templates"].append(workflow(organization, default_inventory))
    return assets


def workflow(organization, inventory):
    """Phase 1 -> (success) phase 2 -> (success) phase 3; the rollback on the failure of phase 2 and of phase 3."""
    wf_key = _key("workflow_job_template", WORKFLOW_NAME, organization)
    jt = {playbook: _key("job_template", name, organization) for name, playbook, _prefix in PHASES}

    def ref(identifier):
        return {"workflow_job_template": wf_key, "identifier": identifier, "type": "workflow_job_template_node"}

    def node(identifier, playbook, success=(), failure=(), extra_data=None, always=()):
        return {
            "identifier": identifier,
            "unified_job_template": jt[playbook],
            "all_parents_must_converge": False,
            "extra_data": extra_data or {},
            "related": {
                "success_nodes": [ref(n) for n in success],
                "failure_nodes": [ref(n) for n in failure],
                "always_nodes": [ref(n) for n in always],
                "credentials": [],
            },
            "natural_key": ref(identifier),
        }

    nodes = [
        node("phase1", "playbooks/phase1.yml", success=["phase2"]),
        node("phase2", "playbooks/phase2.yml", success=["phase3"], failure=["rollback-after-phase2"]),
        node("phase3", "playbooks/phase3.yml", success=["report"], failure=["rollback-after-phase3"]),
        node("rollback-after-phase2", "playbooks/rollback.yml", always=["report"],
             extra_data=dict(ROLLBACK_EXTRA_DATA, rollback_reason="AWX workflow: phase 2 failed")),
        node("rollback-after-phase3", "playbooks/rollback.yml", always=["report"],
             extra_data=dict(ROLLBACK_EXTRA_DATA, rollback_reason="AWX workflow: phase 3 failed")),
        # the migration report after phase 3, or after a rollback (it then says rolled_back)
        node("report", "playbooks/report.yml"),
    ]
    return {
        "name": WORKFLOW_NAME,
        "description": "Phase 1, then phase 2, then phase 3; playbooks/rollback.yml (every service back to Swarm) "
                       "when phase 2 or phase 3 fails; the migration report (playbooks/report.yml) at the end.",
        "organization": _org(organization),
        "inventory": inventory,
        "ask_inventory_on_launch": True,
        "survey_enabled": False,
        "related": {"workflow_nodes": nodes},
        "natural_key": wf_key,
    }


def render(assets):
    """The import file's text (stable: the generated file is committed and compared)."""
    return json.dumps(assets, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    """``python -m ...module_utils._awx``: write (or ``--check``) the awx import file."""
    parser = argparse.ArgumentParser(prog="python -m ansible_collections.sophia_ai.platform.plugins.module_utils._awx",
                                     description="Generate the awx import file of sophia_ai.platform.")
    parser.add_argument("--root", default=os.getcwd(), help="the collection's root (default: the current directory)")
    parser.add_argument("--out", default="awx/controller.json", help="the file to write, relative to --root")
    parser.add_argument("--check", action="store_true", help="exit 1 when --out differs from what is generated")
    parser.add_argument("--organization", default="Default")
    parser.add_argument("--scm-url", default="", help="the project's Git URL (default: galaxy.yml's repository)")
    parser.add_argument("--scm-branch", default="")
    parser.add_argument("--ee-image", default="", help="the execution environment's image (default: "
                        "sophia-platform-ee:<galaxy.yml version>)")
    parser.add_argument("--inventory", default="lambda", choices=sorted(INVENTORIES),
                        help="the job templates' default inventory (prompted on launch)")
    args = parser.parse_args(argv)
    try:
        text = render(controller_assets(args.root, args.organization, args.scm_url, args.scm_branch, args.ee_image,
                                        args.inventory))
    except (InputError, DependencyError) as exc:
        sys.stderr.write("_awx: ERROR: %s\n" % exc)
        return 2
    out = os.path.join(args.root, args.out)
    current = None
    if os.path.exists(out):
        with open(out, encoding="utf-8") as handle:
            current = handle.read()
    if args.check:
        if current != text:
            sys.stderr.write("_awx: %s is out of date with the playbooks and argument specs: run 'make awx'.\n"
                             % args.out)
            return 1
        return 0
    if current != text:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
    sys.stdout.write("%s\n" % out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
