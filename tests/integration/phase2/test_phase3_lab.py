# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/phase3.yml, rollback.yml and retire_swarm.yml on the lab, for real (fixtures in conftest.py).

After phase 2 (the lab's Swarm with the 28-service sample stack, the front door, the non-critical services on the
lab cluster), phase 3 cuts two critical services over from Swarm to the lab cluster with bluegreen_cutover at the
front door, twice; the traffic recorder of the playbook measures every service for the whole run. Then
retire_swarm.yml must refuse (the 2 h windows are open) and rollback.yml moves one service back under 50 requests/s.
The lab cluster (upstream Kubernetes from source) stands in for K3s, which cannot be built here; everything else is
real: kompose, server-side apply, the Swarm, HAProxy, the recorder.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import docker
import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _recorder

from ..traffic.frontdoor import call_tool
from .lab import PHASE3_SERVICES, STATEFUL, front_door_port, kubectl, playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMESPACE = "sophia"


def annotations(kubeconfig, name):
    res = kubectl(kubeconfig, "-n", NAMESPACE, "get", "service", name, "-o", "json")
    assert res.returncode == 0, res.stderr
    return {k[len("sophia.ai/bluegreen-"):]: v for k, v in
            (json.loads(res.stdout)["metadata"].get("annotations") or {}).items() if k.startswith("sophia.ai/bluegreen-")}


def swarm_replicas(name):
    client = docker.from_env()
    try:
        svc = client.services.get(f"sophia_{name}")
        running = [t for t in svc.tasks() if t["Status"]["State"] == "running"]
        return svc.attrs["Spec"]["Mode"]["Replicated"]["Replicas"], len(running)
    finally:
        client.close()


def test_phase3_cuts_the_named_services_over_and_keeps_their_swarm_services(phase3):
    report = phase3.report
    assert sorted(report["on_k3s"]) == sorted(PHASE3_SERVICES)
    for cutover in report["cutovers"]:
        assert cutover["state"] == "promoted" and cutover["active"] == "green", cutover
    services = report["traffic"]["services"]
    for name in PHASE3_SERVICES:
        # answered by Swarm at the start and by K3s at the end of the run
        assert services[name]["backends"].get("k3s", 0) > 0, (name, services[name])
        assert services[name]["backends"].get("swarm", 0) > 0, (name, services[name])
        assert swarm_replicas(name) == (1, 1)  # blue at full scale for the window


def test_zero_failed_requests_through_phase3(phase3):
    report = phase3.report
    overall = report["traffic"]["overall"]
    assert overall["requests"] >= 28 * 20, overall
    failing = {name: (entry["failed"], entry["outcomes"]) for name, entry in report["traffic"]["services"].items()
               if entry["failed"]}
    assert overall["failed"] == 0 and overall["availability"] == 1.0, (overall, failing)


def test_the_stateful_service_moves_with_its_data_and_loses_no_write(phase3):
    """mcp-ai-memory's named volume (the stack files say so; phase3_volumes is not set) moves under the front door's
    hold: every write answered during the first run, on Swarm before the move or on K3s after it, is recalled from
    K3s, none failed, and the report gives the volume and the write pause."""
    writers = phase3.writers
    (cutover,) = [c for c in phase3.report["cutovers"] if c["service"] == STATEFUL]
    print(f"phase 3 stateful cutover of {STATEFUL}: {len(writers.stored)} writes {writers.by_backend()}, "
          f"{len(writers.failed)} failed, held {len(writers.held)} (longest {max(writers.held or [0])} ms), write "
          f"pause {cutover['write_pause_seconds']} s")
    assert cutover["volumes"] == ["/data"] and 0 < cutover["write_pause_seconds"] < 30, cutover
    assert writers.failed == [], writers.failed[:5]
    assert writers.by_backend()["swarm"] > 0 and writers.by_backend()["k3s"] > 0, writers.by_backend()
    assert not phase3.missing, (len(phase3.missing), list(phase3.missing.items())[:5])
    assert call_tool(front_door_port(STATEFUL), "memory_count", {})["count"] >= len(writers.stored)
    text = (phase3.report_dir / "phase3.md").read_text()
    assert f"| {STATEFUL} | promoted (green) | True |" in text and f"/data ({cutover['write_pause_seconds']})" in text


def test_cutover_state_is_recorded_on_the_k3s_service(phase3, lab_kubeconfig):
    for name in PHASE3_SERVICES:
        notes = annotations(lab_kubeconfig, name)
        assert notes["state"] == "promoted", notes
        end = datetime.fromisoformat(notes["window-end"].replace("Z", "+00:00"))
        left = (end - datetime.now(timezone.utc)).total_seconds()
        assert 3600 < left <= 7200, notes  # the 2 h default window, opened by the first run
        history = json.loads(notes["history"])
        assert history and history[-1]["outcome"], history


def test_second_run_of_phase3_changes_nothing(phase3):
    for host, stats in phase3.second["stats"].items():
        assert stats["changed"] == 0 and stats["failures"] == 0, (host, stats)
    # the first run cut over and kept its report as the last run that changed something; the second did not
    assert phase3.report["run_changed"] is True
    assert json.loads((phase3.report_dir / "phase3.changed.json").read_text()) == phase3.report
    assert json.loads((phase3.second_dir / "phase3.json").read_text())["run_changed"] is False
    assert not (phase3.second_dir / "phase3.changed.json").exists()


def test_phase2_again_after_phase3_changes_nothing_and_keeps_the_cutovers(phase3, tmp_path):
    """A second `make lab` runs phase 2 again after phase 3. Phase 2 renders the front door too: it must keep the K3s
    servers (and the switched weights) of the services phase 3 cut over, or it sends them back to Swarm and phase 3
    cuts them over again (a second `make lab` on the migrated lab once reported 20 changes so)."""
    tmp_path.chmod(0o755)  # as phase 2 creates its report directory: writing there is no change
    out = playbook("phase2.yml", "-e", f"phase2_report_dir={tmp_path}")
    for host, stats in out["stats"].items():
        assert stats["changed"] == 0 and stats["failures"] == 0, (host, stats)
    for name in PHASE3_SERVICES:
        answer = call_tool(front_door_port(name), "server_info", {})
        assert answer["ok"] and (answer.get("backend") or "").startswith("k3s"), (name, answer)
    assert json.loads((tmp_path / "phase2.json").read_text())["run_changed"] is False


def test_the_migration_report_measures_phases_2_and_3(phase2, phase3, lab_kubeconfig, tmp_path):
    """playbooks/report.yml after phases 2 and 3 (phase 1 not run in this package): every figure is the phases'
    measurements, every service's place is the front door's, the GPU allocation the cluster's."""
    dirs = {"phase1": str(tmp_path / "no-phase1"), "phase2": str(phase2[3]), "phase3": str(phase3.report_dir)}
    out = playbook("report.yml", "-e", json.dumps({"report_dir": str(tmp_path / "migration"),
                                                   "report_phase_dirs": dirs}))
    report = json.loads((tmp_path / "migration" / "migration.json").read_text())
    p2 = json.loads((phase2[3] / "phase2.json").read_text())
    p3 = phase3.report
    requests = p2["traffic"]["overall"]["requests"] + p3["traffic"]["overall"]["requests"]
    failed = p2["traffic"]["overall"]["failed"] + p3["traffic"]["overall"]["failed"]
    assert report["requests"] == requests and report["failed_requests"] == failed and requests > 0
    assert report["availability"] == pytest.approx((requests - failed) / requests, abs=1e-6)
    assert report["deploy_seconds"]["phase1"] is None
    assert report["deploy_seconds"]["total"] == pytest.approx(float(p2["seconds"]) + float(p3["seconds"]), abs=0.05)
    # the GPU services of phases 2 and 3 hold GPUs of the lab cluster's nodes
    assert 0 < report["gpu_allocation_ratio"] <= 1
    assert sum(n["requested"] for n in report["gpu_nodes"]) / sum(n["allocatable"] for n in report["gpu_nodes"]) \
        == pytest.approx(report["gpu_allocation_ratio"], abs=1e-4)
    services = {s["name"]: s for s in report["services"]}
    assert len(services) == 28
    for name in PHASE3_SERVICES:
        assert (services[name]["serving"], services[name]["runs_on"], services[name]["moved_in"]) == \
            ("k3s", "both", "phase3"), services[name]
    for name in p2["moved_to_k3s"]:
        assert (services[name]["serving"], services[name]["moved_in"]) == ("k3s", "phase2"), services[name]
    still = set(services) - set(PHASE3_SERVICES) - set(p2["moved_to_k3s"])
    assert still and all(services[name]["serving"] == "swarm" for name in still)
    assert all(s["health"] == "healthy" for s in services.values())
    assert report["state"] == "in_progress"
    assert report["summary"]["serving_from_k3s"] == len(PHASE3_SERVICES) + len(p2["moved_to_k3s"])
    prom = (tmp_path / "migration" / "migration.prom").read_text()
    assert "sophia_migration_availability_ratio %r\n" % report["availability"] in prom
    debug = [t["hosts"]["lab-swarm"].get("msg") for play in out["plays"] for t in play["tasks"]
             if t["task"]["name"] == "The JSON report's path (last line)"]
    assert debug == ["REPORT=%s" % (tmp_path / "migration" / "migration.json")]
    assert out["stats"]["lab-swarm"]["changed"] == 0


def test_retire_swarm_refuses_while_the_windows_are_open(phase3):
    rc, out = playbook("retire_swarm.yml", check=False)
    assert rc != 0
    text = json.dumps(out)
    assert "Rollback window still open" in text and "Nothing was changed" in text
    for name in PHASE3_SERVICES:
        assert swarm_replicas(name) == (1, 1)


def test_rollback_moves_one_service_back_to_swarm_with_no_failed_request(phase3, lab_kubeconfig, tmp_path):
    name = PHASE3_SERVICES[0]
    out = str(tmp_path / "rollback.jsonl")
    _recorder.start({"targets": {name: f"http://127.0.0.1:{front_door_port(name)}/mcp"}, "rate": 50,
                     "out": out})
    try:
        time.sleep(3)
        first = playbook("rollback.yml", "-e", f"rollback_services={name}")
        time.sleep(max(0.0, 22 - 3))  # >= 1,000 requests at 50/s in all
    finally:
        summary = _recorder.stop(out)["summary"]
    overall = summary["overall"]
    print(f"rollback of {name}: {overall['requests']} requests, {overall['failed']} failed, "
          f"p99 {overall['latency_ms']['p99']} ms, backends {overall['backends']}")
    assert overall["requests"] >= 1000 and overall["failed"] == 0, overall
    assert set(overall["backends"]) == {"k3s", "swarm"}, overall  # it moved during the recording
    records, dummy = _recorder.load_records(out)
    answered = [r for r in records if r.get("kind") == "request" and r.get("outcome") == "ok"]
    assert answered[-1]["backend"].startswith("swarm"), answered[-1]
    assert annotations(lab_kubeconfig, name)["state"] == "rolled_back"
    assert sum(stats["changed"] for stats in first["stats"].values()) >= 1
    again = playbook("rollback.yml", "-e", f"rollback_services={name}")
    for host, stats in again["stats"].items():
        assert stats["changed"] == 0 and stats["failures"] == 0, (host, stats)
