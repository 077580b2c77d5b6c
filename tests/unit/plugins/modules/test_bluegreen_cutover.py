# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the bluegreen_cutover module's main(): options, documentation, result and failure shape.

The runner (module_utils/_bluegreen_run.run) is replaced by a stub here: it needs a cluster, and its behaviour is
tested in tests/unit/plugins/module_utils/test_bluegreen.py against a fake API server and in the integration tests
against the lab cluster.
"""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sophia_ai.platform.plugins.doc_fragments._connection import ModuleDocFragment
from ansible_collections.sophia_ai.platform.plugins.module_utils._bluegreen import CutoverError
from ansible_collections.sophia_ai.platform.plugins.modules import bluegreen_cutover


def documented_options():
    options = dict(yaml.safe_load(bluegreen_cutover.DOCUMENTATION)["options"])
    options.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    return options


def test_every_option_is_documented_with_its_type_default_and_choices():
    spec, docs = bluegreen_cutover.argument_spec(), documented_options()
    assert set(spec) == set(docs)
    for name, option in spec.items():
        doc = docs[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default") or (name == "request_timeout"), name
        assert doc.get("choices") == option.get("choices"), name


def test_examples_use_the_fqcn():
    for task in yaml.safe_load(bluegreen_cutover.EXAMPLES):
        assert "sophia_ai.platform.bluegreen_cutover" in task


def run_main(monkeypatch, capsys, args, outcome):
    seen = {}

    def fake_run(params, check_mode=False):
        seen.update(params=params, check_mode=check_mode)
        if isinstance(outcome, Exception):
            raise outcome
        return dict(outcome)

    monkeypatch.setattr(bluegreen_cutover, "run", fake_run)
    # as on a managed host: once controller code was imported in this process (other unit tests load inventory
    # plugins), ansible-core sends module warnings to the controller's display instead of the result
    monkeypatch.setattr(module_utils_internal, "is_controller", False)
    with patch_module_args(args), pytest.raises(SystemExit):
        bluegreen_cutover.main()
    return json.loads(capsys.readouterr().out), seen


def test_main_passes_params_and_returns_the_result(monkeypatch, capsys):
    result = {"changed": True, "state": "promoted", "warnings": ["reduced green"], "diff": {"before": {}, "after": {}}}
    out, seen = run_main(monkeypatch, capsys, {"name": "mcp-gong", "image": "x:2", "_ansible_check_mode": True}, result)
    assert seen["check_mode"] is True
    assert seen["params"]["namespace"] == "sophia-mcp" and seen["params"]["rollback_window"] == "2h"
    assert out["state"] == "promoted" and out["changed"] is True
    assert "diff" not in out  # diff mode is off
    assert "reduced green" in json.dumps(out["warnings"])


def test_main_fails_with_the_reason_and_the_result(monkeypatch, capsys):
    error = CutoverError("mcp-gong: green not ready. Aborted", reason="green_not_ready", aborted=True,
                         state="aborted", warnings=["w"], diff={})
    out, dummy = run_main(monkeypatch, capsys, {"name": "mcp-gong", "image": "x:2"}, error)
    assert out["failed"] is True and out["reason"] == "green_not_ready" and out["aborted"] is True
    assert out["msg"] == "mcp-gong: green not ready. Aborted" and out["state"] == "aborted"
    assert "diff" not in out


def test_bad_choice_is_refused_before_anything_runs(monkeypatch, capsys):
    out, seen = run_main(monkeypatch, capsys, {"name": "mcp-gong", "state": "present"}, {})
    assert out["failed"] is True and "state" in out["msg"] and not seen
