# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration_report module through ansible-playbook, on real recordings: the traffic recorder probes real sample
MCP servers (official ``mcp`` SDK) as a phase playbook does, and one of them is stopped on purpose during the second
"phase". The report's availability must drop by exactly the requests that the recording counts as failed; nothing is
mocked. The lab run (front door locations, GPU allocation) is tests/integration/phase2/test_phase3_lab.py's.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _recorder

from ..mcp.servers import port_free, sample_server
from .frontdoor import run_playbook, task_results
from .test_recorder import command, finish, read_lines, wait_for, warm

pytestmark = pytest.mark.integration

RATE = 20


def record(tmp_path, name, targets, seconds, during=None):
    """Record ``targets`` for ``seconds`` (calling ``during()`` half-way); the phase report a phase playbook writes
    from it, and the recording's own lines."""
    out, pid_file = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.pid"
    args = []
    for target, url in targets.items():
        args += ["--target", f"{target}={url}"]
    started = time.monotonic()
    proc = command(tmp_path, *args, "--rate", RATE, "--out", out, "--pid-file", pid_file)
    wait_for(pid_file, proc)
    time.sleep(seconds / 2)
    if during:
        during()
    time.sleep(seconds / 2)
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    summary = _recorder.summarize_file(str(out))
    summary.pop("windows")
    report = {"phase": int(name[-1]), "seconds": round(time.monotonic() - started, 1), "check_mode": False,
              "traffic": summary, "moved_to_k3s": [], "on_k3s": []}
    (tmp_path / f"{name}.json").write_text(json.dumps(report))
    return report, read_lines(out)[1]


def report_play(tmp_path, phases, check=False):
    rc, out = run_playbook(tmp_path, [{
        "name": "Migration report", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Report", "register": "r", "sophia_ai.platform.migration_report": {
            "phase_reports": {p: str(tmp_path / f"{p}.json") for p in phases}, "dest": str(tmp_path / "out")}}]}],
        check=check)
    return rc, out, task_results(out, "Report")


@pytest.fixture(name="servers")
def fixture_servers():
    servers = {name: sample_server(port_free(), name=f"report-{name}").wait() for name in ("alpha", "victim")}
    urls = {name: f"http://127.0.0.1:{s.port}/mcp" for name, s in servers.items()}
    for url in urls.values():
        warm(url)
    yield servers, urls
    for server in servers.values():
        server.stop()


def test_a_service_stopped_on_purpose_lowers_the_reported_availability(servers, tmp_path):
    procs, urls = servers
    record(tmp_path, "phase2", urls, 3.0)
    rc, out, results = report_play(tmp_path, ["phase1", "phase2"])
    assert rc == 0, out["stderr"][-3000:] + str(results)
    clean = results[0]["report"]
    assert clean["failed_requests"] == 0 and clean["availability"] == 1.0 and clean["requests"] >= 2 * RATE * 2
    assert not clean["phases"]["phase1"]["ran"] and clean["phases"]["phase2"]["ran"]

    dummy, lines = record(tmp_path, "phase3", urls, 4.0, during=procs["victim"].proc.kill)
    rc, out, results = report_play(tmp_path, ["phase2", "phase3"])
    assert rc == 0, out["stderr"][-3000:] + str(results)
    report = results[0]["report"]
    failed = [line for line in lines if line["outcome"] != "ok"]
    assert failed and all(line["service"] == "victim" for line in failed)
    assert report["failed_requests"] == len(failed)
    assert report["requests"] == clean["requests"] + len(lines)
    assert report["availability"] == pytest.approx(1 - len(failed) / report["requests"], abs=1e-6)
    assert report["availability"] < clean["availability"]
    by_name = {s["name"]: s for s in report["services"]}
    assert by_name["victim"]["failed_by_phase"] == {"phase2": 0, "phase3": len(failed)}
    assert by_name["victim"]["downtime_s_by_phase"]["phase3"] > 0
    assert by_name["alpha"]["failed_requests"] == 0
    assert report["deploy_seconds"]["total"] == pytest.approx(
        report["deploy_seconds"]["phase2"] + report["deploy_seconds"]["phase3"], abs=0.05)

    written = json.loads((tmp_path / "out" / "migration.json").read_text())
    assert written == report
    prom = (tmp_path / "out" / "migration.prom").read_text()
    assert f"sophia_migration_failed_requests {len(failed)}\n" in prom
    assert f'sophia_migration_service_failed_requests{{service="victim"}} {len(failed)}\n' in prom
    assert "| victim |" in (tmp_path / "out" / "migration.md").read_text()

    # the same figures again: nothing to write
    rc, out, results = report_play(tmp_path, ["phase2", "phase3"])
    assert rc == 0 and results[0]["changed"] is False

    # phase 3 again, changing nothing (as a second `make lab`): the phase keeps the run above as its last run that
    # changed something (phase3.changed.json) and the migration's figures stay that run's, the rerun noted beside
    migrated_run = dict(json.loads((tmp_path / "phase3.json").read_text()), run_changed=True)
    (tmp_path / "phase3.changed.json").write_text(json.dumps(migrated_run))
    rerun, rerun_lines = record(tmp_path, "phase3", {"alpha": urls["alpha"]}, 2.0)
    (tmp_path / "phase3.json").write_text(json.dumps(dict(rerun, run_changed=False)))
    rc, out, results = report_play(tmp_path, ["phase2", "phase3"])
    assert rc == 0, out["stderr"][-3000:] + str(results)
    again = results[0]["report"]
    assert again["failed_requests"] == report["failed_requests"] and again["availability"] == report["availability"]
    assert again["phases"]["phase3"]["latest_run"]["requests"] == len(rerun_lines)
    assert again["phases"]["phase3"]["latest_run"]["failed"] == 0


def test_check_mode_writes_nothing_and_a_broken_report_is_named(tmp_path):
    (tmp_path / "phase2.json").write_text(json.dumps({"phase": 2, "seconds": 1.0, "traffic": None}))
    rc, out, results = report_play(tmp_path, ["phase2"], check=True)
    assert rc == 0, out["stderr"][-3000:] + str(results)
    assert not (tmp_path / "out").exists()
    assert results[0]["report"]["phases"]["phase2"]["ran"]

    (tmp_path / "phase3.json").write_text("{not json")
    rc, out, results = report_play(tmp_path, ["phase2", "phase3"])
    assert rc != 0
    msg = results[0]["msg"]
    assert "phase_reports.phase3" in msg and str(tmp_path / "phase3.json") in msg and "run the phase again" in msg
    assert not (tmp_path / "out").exists()
