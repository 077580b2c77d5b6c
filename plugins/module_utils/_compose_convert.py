# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compose_convert runner: compose files -> kompose -> manifests -> validation -> plan -> write unless check mode.

Receives the subprocess runner as an argument (``subprocess.run`` by default) so that tests can drive it
with the real kompose binary or a stand-in; raises :class:`PlatformError` and never calls ``fail_json``.
"""

from __future__ import annotations

import subprocess
import time

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose, _convert, _kompose, _manifests, _validation


def run(params, check_mode=False, want_diff=False, runner=subprocess.run):
    """Convert; returns the module result (without ansible's own keys)."""
    started = time.monotonic()
    options = _convert.Options(
        namespace=params.get("namespace"),
        labels=params.get("labels"),
        annotations=params.get("annotations"),
        gpu_node_label=params.get("gpu_node_label") or "gpu=true",
        gpus_per_node=params.get("gpus_per_node"),
        storage_class=params.get("storage_class"),
        default_criticality=params.get("default_criticality") or "critical",
    )
    project = _compose.load_project(params["src"], env=params.get("env"), env_files=params.get("env_files"),
                                    services=params.get("services"), gpus_per_node=params.get("gpus_per_node"))
    warnings = list(project.warnings)
    kompose_doc = _convert.kompose_input(project, warnings)
    loaded = time.monotonic()
    path = _kompose.find_kompose(params.get("kompose_path"))
    version = _kompose.check_version(path, runner=runner)
    objects, kompose_warnings = _kompose.run_convert(path, _convert.dump_yaml(kompose_doc), runner=runner)
    for message in kompose_warnings:
        if any(noise.search(message) for noise in _convert.KOMPOSE_NOISE):
            continue
        warnings.append({"service": None, "key": "kompose", "message": message})
    converted = time.monotonic()
    manifests, summary, prerequisites = _convert.post_process(project, objects, options, warnings)
    files = _convert.render(manifests, summary)
    rendered = time.monotonic()
    items = [(name, manifests[(meta["kind"], meta["name"])]) for name, meta in sorted(files.items())]
    validation, validation_timings = _validation.check(params, items, prerequisites, warnings)
    validated = time.monotonic()
    result_plan = _manifests.plan(params["dest"], files)
    for name in result_plan.kept:
        warnings.append({"service": None, "key": "dest", "message": "%s was written by an earlier run and edited since: "
                         "no longer produced, but kept" % name})
    for name in result_plan.foreign:
        warnings.append({"service": None, "key": "dest", "message": "%s was not written by compose_convert and is replaced" % name})
    if result_plan.changed and not check_mode:
        _manifests.apply(result_plan)
    finished = time.monotonic()
    result = {
        "changed": result_plan.changed,
        "dest": params["dest"],
        "files": sorted(files),
        "changed_files": sorted(result_plan.write),
        "removed_files": sorted(result_plan.remove),
        "services": summary,
        "prerequisites": prerequisites,
        "conversion_warnings": warnings,
        "kompose": {"path": path, "version": version},
        "validation": validation,
        "timings": dict({"load_s": round(loaded - started, 4), "kompose_s": round(converted - loaded, 4),
                         "post_s": round(finished - converted - (validated - rendered), 4),
                         "validation_s": round(validated - rendered, 4), "total_s": round(finished - started, 4)},
                        **validation_timings),
    }
    if want_diff:
        result["diff"] = _manifests.diffs(result_plan)
    n_changed = len(result_plan.write) + len(result_plan.remove)
    verb = "would change" if check_mode else "changed"
    result["msg"] = ("%d services converted into %d files in %s; %s %d" % (len(summary), len(files), params["dest"], verb, n_changed)
                     if result_plan.changed else "%d services converted; %s is up to date" % (len(summary), params["dest"]))
    return result


def grouped_warnings(warnings):
    """One line per (key, message) with the services it concerns, for ansible's warnings."""
    groups = {}
    for item in warnings:
        groups.setdefault((item["key"], item["message"]), []).append(item["service"])
    lines = []
    for (key, message), services in groups.items():
        names = sorted(s for s in services if s)
        who = (" (services: %s)" % ", ".join(names)) if names else ""
        lines.append("compose_convert: %s: %s%s" % (key, message, who))
    return lines
