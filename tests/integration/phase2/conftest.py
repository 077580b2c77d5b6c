# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab of phases 2 and 3, brought up once for both test files (package scope).

``phase2``: `make lab`'s single-node Swarm (28 services, front door), then playbooks/phase2.yml twice (the
non-critical services to the lab cluster). ``phase3`` (on top of it): playbooks/phase3.yml for two critical
services (one of them stateful, written to throughout), twice. At the end every service goes back to Swarm through
playbooks/rollback.yml (rollback_services=all, which is also what `make lab-rollback` runs; the stateful service's
K3s data is copied back), the front door back to Swarm only (lab.yml) and the namespace goes.
The lab cluster (upstream Kubernetes from source) stands in for K3s, which cannot be built here.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ..cluster.conftest import lab_kubeconfig  # noqa: F401  pylint: disable=unused-import
from ..traffic.frontdoor import Writers, missing_writes
from .lab import PHASE3_SERVICES, STATEFUL, front_door_port, kubectl, playbook


def report_dir_for(factory, name):
    """A report directory as the playbooks create theirs (0755), so that a rerun writing there changes nothing."""
    path = factory.mktemp(name)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="package")
def phase2(lab_kubeconfig, lab_swarm, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
    # each run its own report directory: the first run's recording (traffic.jsonl) stays for a failure's post-mortem
    report_dir = report_dir_for(tmp_path_factory, "phase2-first")
    # from the start: no namespace of an earlier run, the front door in front of Swarm only
    kubectl(lab_kubeconfig, "delete", "namespace", "sophia", "--ignore-not-found", "--wait=true", "--timeout=180s")
    # the Swarm with the sample stack, and the front door in front of it (of Swarm only, whatever ran before)
    playbook("lab.yml", "-e", "lab_front_door_reset=true")
    first = playbook("phase2.yml", "-e", f"phase2_report_dir={report_dir}")
    report = json.loads((report_dir / "phase2.json").read_text())
    second_dir = report_dir_for(tmp_path_factory, "phase2-second")
    second = playbook("phase2.yml", "-e", f"phase2_report_dir={second_dir}")
    yield first, report, second, report_dir, second_dir
    # The way back, as an operator takes it: every service to Swarm (playbooks/rollback.yml: bluegreen_cutover for
    # the services phase 3 cut over, traffic_switch for phase 2's), then the front door without the K3s servers
    # (lab.yml) and the namespace gone.
    playbook("rollback.yml", "-e", "rollback_services=all")
    playbook("lab.yml", "-e", "lab_front_door_reset=true")  # the front door back to Swarm only
    # not waited for: no later package uses the namespace, and the next session's phase 2 waits for it to go first
    kubectl(lab_kubeconfig, "delete", "namespace", "sophia", "--wait=false")
    # the Swarm and its stack stay for the session's other packages (fixture lab_swarm leaves it at the end)


@pytest.fixture(scope="package")
def phase3(phase2, tmp_path_factory):  # pylint: disable=redefined-outer-name
    """playbooks/phase3.yml for PHASE3_SERVICES, twice, after phase 2 (the services it cut over are rolled back by
    phase2's teardown). A writer calls the stateful service's ``remember`` through the front door for the whole first
    run (its volume moves while the front door holds the writes); afterwards every answered write must be recalled
    from K3s (``missing``)."""
    report_dir = report_dir_for(tmp_path_factory, "phase3-first")
    extra = ["-e", json.dumps({"phase3_services": PHASE3_SERVICES})]
    port = front_door_port(STATEFUL)
    with Writers(port, "phase3", writers=1, pause=0.2) as writers:
        first = playbook("phase3.yml", "-e", f"phase3_report_dir={report_dir}", *extra)
    report = json.loads((report_dir / "phase3.json").read_text())
    missing = missing_writes(port, writers.stored)
    second_dir = report_dir_for(tmp_path_factory, "phase3-second")
    second = playbook("phase3.yml", "-e", f"phase3_report_dir={second_dir}", *extra)
    yield SimpleNamespace(first=first, report=report, second=second, report_dir=report_dir, writers=writers,
                          missing=missing, second_dir=second_dir)
