# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EXAMPLES that ``ansible-doc`` shows, checked against the code they document.

- modules: every example task calls a module of this collection by its FQCN with arguments that the module's own
  ``argument_spec()`` accepts (Ansible's ArgumentSpecValidator: known options, types, choices, required options,
  suboptions); a value that is a Jinja expression stands in as a value of the option's type;
- filters: every example is a task list whose Jinja parses, and every ``sophia_ai.platform.X`` filter it uses is one
  the collection's filter plugins provide;
- the inventory plugin: every example document names the plugin and only options of its DOCUMENTATION.

What the examples do is run by the integration tests on the real components (Swarm, the lab cluster, the front
door); this test keeps the documentation from drifting from the options.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

COLLECTION = "sophia_ai.platform"
ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
FILTER_DOCS = sorted((ROOT / "plugins" / "filter").glob("*.yml"))
# Imported now, while the test session collects: once a test has installed Ansible's collection finder (the inventory
# plugin's tests do), a submodule of this collection not imported yet no longer loads as a plain package.
PACKAGE = "ansible_collections.sophia_ai.platform.plugins"
LOADED = {path: importlib.import_module(f"{PACKAGE}.{path}") for path in
          [f"modules.{name}" for name in MODULES]
          + [f"filter.{p.stem}" for p in (ROOT / "plugins" / "filter").glob("*.py")]
          + [f"doc_fragments.{p.stem}" for p in (ROOT / "plugins" / "doc_fragments").glob("*.py")]
          + ["inventory.lambda_cloud"]}
STAND_INS = {"str": "x", "path": "/x", "raw": "x", "int": 1, "float": 1.0, "bool": True, "list": [], "dict": {},
             "jsonarg": "{}", "json": "{}", "bytes": "1K", "bits": "1K"}


def documented_options(doc):
    """The options of a DOCUMENTATION string with those of its doc fragments, as ansible-doc shows them."""
    data = yaml.safe_load(doc)
    options = set(data.get("options") or {})
    for name in data.get("extends_documentation_fragment") or []:
        parts = name.split(".")
        if name.startswith(COLLECTION + "."):
            fragment = LOADED[f"doc_fragments.{parts[2]}"]
            text = getattr(fragment.ModuleDocFragment, parts[3] if len(parts) > 3 else "DOCUMENTATION")
        else:  # ansible.builtin.NAME
            fragment = importlib.import_module(f"ansible.plugins.doc_fragments.{parts[-1]}")
            text = fragment.ModuleDocFragment.DOCUMENTATION
        options |= set((yaml.safe_load(text) or {}).get("options") or {})
    return options


def module(name):
    return LOADED[f"modules.{name}"]


def templated(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def stand_in(value, spec):
    """``value`` with each Jinja expression replaced by a value of its option's type (recursively in suboptions)."""
    if templated(value):
        return STAND_INS.get(spec.get("type", "str"), "x")
    options = spec.get("options")
    if options and isinstance(value, dict):
        return {key: stand_in(item, options.get(key, {})) for key, item in value.items()}
    if options and isinstance(value, list):
        return [stand_in(item, {"type": "dict", "options": options}) for item in value]
    return value


def tasks_of(examples):
    """Every task in an EXAMPLES document (blocks opened)."""
    out = []
    for task in yaml.safe_load(examples) or []:
        out.append(task)
        for key in ("block", "rescue", "always"):
            out.extend(tasks_of(yaml.safe_dump(task[key])) if key in task else [])
    return out


@pytest.mark.parametrize("name", MODULES)
def test_every_module_example_passes_the_module_argument_spec(name):
    mod = module(name)
    spec = mod.argument_spec()
    calls = [(task, args) for task in tasks_of(mod.EXAMPLES) for key, args in task.items()
             if key.startswith(COLLECTION + ".")]
    own = [(task, args) for task, args in calls if task.get("name") and next(
        k for k in task if k.startswith(COLLECTION + ".")) == f"{COLLECTION}.{name}"]
    assert own, f"{name}: EXAMPLES has no task calling {COLLECTION}.{name}"
    for task, args in calls:
        called = next(k for k in task if k.startswith(COLLECTION + "."))[len(COLLECTION) + 1:]
        assert called in MODULES, f"{name}: example {task.get('name')!r} calls {called}, not a module here"
        if called != name:
            continue
        params = {key: stand_in(value, spec.get(key, {})) for key, value in (args or {}).items()}
        result = ArgumentSpecValidator(spec).validate(params)
        assert not result.error_messages, (name, task.get("name"), result.error_messages)


def collection_filters():
    names = set()
    for path, plugin in LOADED.items():
        if path.startswith("filter."):
            names |= set(plugin.FilterModule().filters())
    return names


def strings(value):
    """Every string in a task, with the keys whose values are bare Jinja expressions (conditions) in {{ }}."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("when", "changed_when", "failed_when", "until", "that"):
                for condition in item if isinstance(item, list) else [item]:
                    yield "{{ %s }}" % condition if isinstance(condition, str) else condition
            else:
                yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("doc", FILTER_DOCS, ids=lambda p: p.stem)
def test_every_filter_example_parses_and_uses_filters_that_exist(doc):
    data = yaml.safe_load(doc.read_text())
    provided = collection_filters()
    assert data["DOCUMENTATION"]["name"] == doc.stem and doc.stem in provided
    env = jinja2.Environment()
    used = set()
    for text in strings(yaml.safe_load(data["EXAMPLES"])):
        if not templated(text):
            continue
        # Ansible's Jinja takes dotted (FQCN) filter names; plain Jinja parses them once the dots are gone
        env.parse(text.replace(COLLECTION + ".", "sophia_ai__"))
        used |= set(re.findall(re.escape(COLLECTION) + r"\.(\w+)", text))
    assert doc.stem in used, f"{doc.name}: its EXAMPLES do not use {doc.stem}"
    assert used <= provided, sorted(used - provided)


def test_every_inventory_example_names_the_plugin_and_only_its_options():
    plugin = LOADED["inventory.lambda_cloud"]
    documented = documented_options(plugin.DOCUMENTATION)  # with the constructed and inventory_cache fragments
    examples = [doc for doc in yaml.safe_load_all(plugin.EXAMPLES) if doc]
    assert len(examples) >= 2
    for example in examples:
        assert example["plugin"] == f"{COLLECTION}.lambda_cloud"
        assert set(example) <= documented, sorted(set(example) - documented)
