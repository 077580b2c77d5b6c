# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/_migration_report.py: the migration report from the phase reports, the front door
and the cluster's GPU allocation.

Fixtures (fixtures/migration/, see its README): the JSON reports that playbooks/phase1.yml, phase2.yml and phase3.yml
wrote on the lab (phase 1 on the lab's single-node Swarm, then phases 2 and 3 on the lab cluster), the front door's
replies to ``show servers state`` and ``show stat`` after phase 3 and after playbooks/rollback.yml, and
gpu_node_check's cluster result - all from one real run, nothing hand-made.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _migration_report as mr

FIX = Path(__file__).parent / "fixtures" / "migration"


def load(name):
    return json.loads((FIX / name).read_text())


def front_door(when):
    return mr.front_door_from((FIX / f"servers-state-{when}.txt").read_text(), (FIX / f"stat-{when}.txt").read_text())


@pytest.fixture
def phases():
    return {"phase1": load("phase1.json"), "phase2": load("phase2.json"), "phase3": load("phase3.json")}


@pytest.fixture
def migrated(phases):
    return mr.build(phases, front_door("phase3"), load("gpu.json"), {"generated": "2026-11-27T00:00:00Z"})


def recorded(report, phase):
    """(requests, failed) of a phase report's own recording, read the way each phase writes it."""
    traffic = report["traffic"]
    if phase == "phase1":
        return traffic["requests"], traffic["failed"]
    return traffic["overall"]["requests"], traffic["overall"]["failed"]


def test_the_figures_are_the_phases_measurements(phases, migrated):
    requests = sum(recorded(phases[p], p)[0] for p in mr.PHASES)
    failed = sum(recorded(phases[p], p)[1] for p in mr.PHASES)
    assert requests > 0
    assert migrated["requests"] == requests and migrated["failed_requests"] == failed
    assert migrated["availability"] == pytest.approx((requests - failed) / requests, abs=1e-6)
    for phase in mr.PHASES:
        assert migrated["phases"][phase]["ran"]
        assert migrated["phases"][phase]["seconds"] == pytest.approx(float(phases[phase]["seconds"]))
        assert migrated["deploy_seconds"][phase] == pytest.approx(float(phases[phase]["seconds"]))
    assert migrated["deploy_seconds"]["total"] == pytest.approx(
        sum(float(phases[p]["seconds"]) for p in mr.PHASES), abs=0.05)


def test_after_phase_3_every_service_serves_from_k3s_and_runs_on_both(migrated, phases):
    assert migrated["state"] == "migrated"
    names = {s["name"] for s in migrated["services"]}
    assert len(names) == 28 and migrated["summary"]["services"] == 28
    assert migrated["summary"]["serving_from_k3s"] == 28 and migrated["summary"]["serving_from_swarm"] == 0
    # Swarm is kept for the rollback window: its servers still pass the front door's health checks
    assert all(s["runs_on"] == "both" for s in migrated["services"])
    assert all(s["health"] == "healthy" for s in migrated["services"])
    moved2 = set(phases["phase2"]["moved_to_k3s"])
    moved3 = set(phases["phase3"]["on_k3s"])
    assert moved2 and moved3 and not moved2 & moved3
    by_name = {s["name"]: s for s in migrated["services"]}
    assert {n for n in names if by_name[n]["moved_in"] == "phase2"} == moved2
    assert {n for n in names if by_name[n]["moved_in"] == "phase3"} == moved3


def test_each_service_carries_its_requests_from_every_phase(phases, migrated):
    for svc in migrated["services"]:
        expected = phases["phase2"]["traffic"]["services"].get(svc["name"], {}).get("requests", 0) \
            + phases["phase3"]["traffic"]["services"].get(svc["name"], {}).get("requests", 0) \
            + sum((s.get("traffic") or {}).get("requests") or 0 for s in phases["phase1"]["services"]
                  if s["name"] == "%s_%s" % (phases["phase1"]["stack"], svc["name"]))
        assert svc["requests"] == expected, svc["name"]
    assert sum(s["requests"] for s in migrated["services"]) == migrated["requests"]


def test_gpu_allocation_is_requested_over_allocatable(migrated):
    gpu = load("gpu.json")
    assert migrated["gpu_allocation_ratio"] == gpu["totals"]["allocation_ratio"]
    assert gpu["totals"]["requested"] > 0, "the fixture's cluster runs the GPU services"
    assert migrated["gpu_allocation_ratio"] == pytest.approx(gpu["totals"]["requested"] / gpu["totals"]["allocatable"],
                                                             abs=1e-4)
    assert [n["name"] for n in migrated["gpu_nodes"]] == [n["name"] for n in gpu["nodes"]]


def test_failed_requests_lower_the_availability(phases):
    """A service stopped during a phase shows up as failed requests in that phase's recording: the report's
    availability goes down by exactly those requests."""
    base = mr.build(phases, front_door("phase3"))
    hurt = copy.deepcopy(phases)
    overall = hurt["phase2"]["traffic"]["overall"]
    svc = next(iter(hurt["phase2"]["traffic"]["services"]))
    hurt["phase2"]["traffic"]["services"][svc]["failed"] += 40
    overall["failed"] += 40
    report = mr.build(hurt, front_door("phase3"))
    assert report["failed_requests"] == base["failed_requests"] + 40
    assert report["availability"] < base["availability"]
    assert report["availability"] == pytest.approx(1 - report["failed_requests"] / report["requests"], abs=1e-6)
    assert next(s for s in report["services"] if s["name"] == svc)["failed_by_phase"]["phase2"] \
        == phases["phase2"]["traffic"]["services"][svc]["failed"] + 40


def test_after_the_rollback_the_report_says_so(phases):
    report = mr.build(phases, front_door("rollback"))
    assert report["state"] == "rolled_back"
    assert report["summary"]["serving_from_swarm"] == 28 and report["summary"]["serving_from_k3s"] == 0
    assert "rolled back" in mr.markdown(report)


def test_phases_not_run_or_run_in_check_mode_count_for_nothing(phases):
    only2 = mr.build({"phase2": phases["phase2"]}, None)
    assert not only2["phases"]["phase1"]["ran"] and only2["deploy_seconds"]["phase1"] is None
    assert only2["deploy_seconds"]["total"] == pytest.approx(float(phases["phase2"]["seconds"]))
    assert only2["state"] == "in_progress"
    assert all(s["runs_on"] == "unknown" for s in only2["services"])
    checked = dict(phases["phase3"], check_mode=True)
    report = mr.build({"phase2": phases["phase2"], "phase3": checked}, None)
    assert not report["phases"]["phase3"]["ran"] and report["requests"] == only2["requests"]
    nothing = mr.build({}, None)
    assert nothing["state"] == "not_started" and nothing["availability"] is None


def test_a_down_server_with_weight_is_a_down_service():
    servers = [{"name": "swarm", "weight": 0, "status": "UP"}, {"name": "k3s", "weight": 100, "status": "DOWN"}]
    assert mr._location(servers) == ("swarm", "k3s", "down")
    servers[1]["status"] = "UP"
    assert mr._location(servers) == ("both", "k3s", "healthy")
    servers[0]["weight"] = 50
    servers[0]["status"] = "DOWN"
    assert mr._location(servers) == ("k3s", "both", "degraded")


PROM_LINE = re.compile(r'^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*='
                       r'"([^"\\]|\\.)*",?)*\})? (NaN|[-+]?[0-9.e+-]+))$')


def test_prometheus_text_has_the_same_figures(migrated):
    text = mr.prometheus(migrated)
    assert text.endswith("\n")
    for line in text.splitlines():
        assert PROM_LINE.match(line), line
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(samples["sophia_migration_availability_ratio"]) == pytest.approx(migrated["availability"])
    assert int(samples["sophia_migration_failed_requests"]) == migrated["failed_requests"]
    assert float(samples['sophia_migration_deploy_seconds{phase="total"}']) == migrated["deploy_seconds"]["total"]
    assert float(samples["sophia_migration_gpu_allocation_ratio"]) == migrated["gpu_allocation_ratio"]
    assert sum(1 for key in samples if key.startswith("sophia_migration_service_info{")) == 28
    # every metric has one HELP and one TYPE line, before its samples
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))


def test_markdown_shows_the_figures_and_every_service(migrated):
    text = mr.markdown(migrated)
    assert "%.3f%%" % (migrated["availability"] * 100) in text
    assert "%.1f s" % migrated["deploy_seconds"]["total"] in text
    for svc in migrated["services"]:
        assert "| %s |" % svc["name"] in text


def rerun_of(report, phase_number):
    """A later run of the same phase that changed nothing: its own (no-change) figures, ``run_changed`` false."""
    rerun = copy.deepcopy(report)
    rerun.update(started="2026-11-27T09:00:00Z", finished="2026-11-27T09:01:10Z", seconds=70.0, run_changed=False)
    if phase_number == 1:
        rerun["changed"] = []
        rerun["traffic"].update(requests=1000, failed=0, downtime_s=0.0)
    else:
        rerun["traffic"]["overall"].update(requests=500, failed=0, downtime_s=0.0)
    return rerun


@pytest.mark.parametrize("name,number", [("phase1", 1), ("phase2", 2), ("phase3", 3)])
def test_a_rerun_that_changed_nothing_leaves_the_figures_of_the_run_that_migrated(phases, name, number):
    first = dict(phases[name], run_changed=True)
    picked = mr.pick_run(rerun_of(first, number), first)
    report = mr.build(dict(phases, **{name: picked}), front_door("phase3"))
    original = mr.build(phases, front_door("phase3"))
    assert report["availability"] == original["availability"]
    assert report["failed_requests"] == original["failed_requests"]
    assert report["deploy_seconds"] == original["deploy_seconds"]
    latest = report["phases"][name]["latest_run"]
    assert latest["started"] == "2026-11-27T09:00:00Z" and latest["seconds"] == 70.0 and latest["run_changed"] is False
    assert latest["requests"] == (1000 if number == 1 else 500) and latest["failed"] == 0
    assert f"{name}'s figures are from its run that changed something ({first['started']})" in mr.markdown(report)


def test_the_latest_run_counts_when_it_changed_something_or_nothing_else_is_kept(phases):
    first = dict(phases["phase2"], run_changed=True)
    second = dict(copy.deepcopy(first), started="2026-11-27T09:00:00Z")  # it changed something too: it counts
    assert mr.pick_run(second, first) is second
    rerun = rerun_of(first, 2)
    assert mr.pick_run(rerun, None) is rerun  # no earlier run kept: the rerun is all there is
    assert mr.pick_run(phases["phase2"], first) is phases["phase2"]  # a report without run_changed (older phases)
    assert mr.pick_run(None, first) is None  # the latest report gone: the phase did not run
    assert mr.pick_run(dict(rerun, run_changed="False"), first)["latest_run"]["run_changed"] is False


def test_the_changed_copy_sits_beside_the_phase_report():
    assert mr.changed_copy_path("/r/phase2/phase2.json") == "/r/phase2/phase2.changed.json"
    assert mr.changed_copy_path("/r/phase2/report") == "/r/phase2/report.changed.json"
