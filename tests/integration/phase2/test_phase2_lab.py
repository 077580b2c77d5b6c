# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/phase2.yml on the lab, for real, twice (what `make phase2` runs; fixture ``phase2`` in conftest.py).

The single-node Swarm of `make lab` (playbooks/lab.yml: the 28-service sample stack and the front door) keeps
serving while phase 2 runs; the lab cluster (upstream Kubernetes from source) stands in for K3s, which cannot be
built here, and the GPU host checks run against lab/bin/nvidia-smi, which replays a real H100's output (no GPU
here). Everything else is real: compose_convert with kompose, mcp_deploy's server-side apply and MCP probes, the
front door (HAProxy), traffic_switch and the traffic recorder through the front door for the whole run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .lab import non_critical_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CACHE = Path(os.environ.get("SOPHIA_CACHE", Path.home() / ".cache/sophia-platform"))


def test_the_non_critical_services_answer_from_k3s_through_the_front_door(phase2):
    dummy, report, dummy2, dummy3, dummy4 = phase2
    wanted = non_critical_services()
    assert len(wanted) == 13
    assert sorted(report["moved_to_k3s"]) == wanted
    services = report["traffic"]["services"]
    for name in wanted:
        # the recorder saw the service's requests answered by its Swarm server, then by its K3s server
        assert services[name]["backends"].get("k3s", 0) > 0, (name, services[name])
        assert services[name]["backends"].get("swarm", 0) > 0, (name, services[name])
    for name in set(services) - set(wanted):
        assert set(services[name]["backends"]) == {"swarm"}, (name, services[name])


def test_zero_failed_requests_through_the_whole_run(phase2):
    dummy, report, dummy2, dummy3, dummy4 = phase2
    overall = report["traffic"]["overall"]
    assert overall["requests"] >= 28 * 30, overall  # every service, for the whole run
    assert overall["failed"] == 0 and overall["availability"] == 1.0, overall
    assert report["traffic"]["complete"] and report["traffic"]["schedule"]["kept"]


def test_gpu_checks_ran_on_the_host_stand_in_and_the_cluster(phase2):
    dummy, report, dummy2, dummy3, dummy4 = phase2
    assert report["gpu_hosts"] == ["1 GPU (NVIDIA H100 80GB HBM3), driver 580.159.04, CUDA 13.0: 6 checks passed"]
    assert report["gpu_cluster"].endswith("checks passed") and "device plugin" in report["gpu_cluster"]
    assert report["k3s_installed_by_role"] is False  # the lab cluster stands in for K3s (see inventories/lab)


def test_swarm_keeps_serving_as_the_fallback(phase2, engine):
    services = engine.services.list(filters={"label": "com.docker.stack.namespace=sophia"})
    assert len(services) == 28
    state = (CACHE / "lab" / "front-door" / "haproxy.cfg").read_text()
    for name in non_critical_services():
        backend = state.split(f"\nbackend {name}\n", 1)[1].split("\nfrontend ", 1)[0]
        assert "server swarm " in backend and "server k3s " in backend, backend


def test_second_run_changes_nothing(phase2):
    dummy, first, second, report_dir, second_dir = phase2
    for host, stats in second["stats"].items():
        assert stats["changed"] == 0 and stats["failures"] == 0, (host, stats)
    # the first run moved services and kept its report as the last run that changed something; the second says it
    # changed nothing and keeps no copy (the migration report goes on using the first run's figures)
    assert first["run_changed"] is True
    assert json.loads((report_dir / "phase2.changed.json").read_text()) == first
    assert json.loads((second_dir / "phase2.json").read_text())["run_changed"] is False
    assert not (second_dir / "phase2.changed.json").exists()


def test_reports_are_written(phase2):
    report_dir = phase2[3]
    text = (report_dir / "phase2.md").read_text()
    assert text.startswith("# Phase 2 report") and "0 failed" in text
