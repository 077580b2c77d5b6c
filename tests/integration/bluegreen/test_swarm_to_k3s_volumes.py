# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stateful service moves from Swarm to K3s and back with its data, for real, under writes (issue #9).

Set-up (fixture ``stateful``, lab.py ``SwarmToK3sLab(volume="/data")``): blue = a Swarm service of the sample image
with a named volume at /data (the server keeps each memory there as a file: tools ``remember`` / ``recall``),
green = Deployment ``mcp-bgs`` with a PersistentVolumeClaim on the lab's default StorageClass (local-path, as on
K3s) at /data, the front door (role front_door, its hold on) in front of both. Writers call ``remember`` through the
front door without pause, each with a new key, never retried; a write counts when it was answered ``stored``.

- promote with ``volumes: [/data]``: every write answered before, during (held by the front door) and after the
  move is there on K3s afterwards, none failed, and the module reports the copy verified and the write pause;
- rollback (the paths come from the recorded cutover): every write, including those K3s took, is there on Swarm.
The lab cluster stands in for K3s (see tests/integration/cluster); everything else is real: the Docker Engine's
archive API on the Swarm task, the API server's exec into green's pod, HAProxy's hold.
"""

from __future__ import annotations

import time

import pytest

from ..traffic.frontdoor import Writers, call_tool, missing_writes
from .lab import SwarmToK3sLab, log, run_cutover

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ON_SWARM = {"swarm": 100, "k3s": 0}
ON_K3S = {"swarm": 0, "k3s": 100}


def stateful_params(lab, **more):
    return lab.params(**{"state": "promoted", "rollback_window": "2h", "ready_timeout": 120,
                         "front_door_hold_map": str(lab.front_door.dir / "sophia-held.map"),
                         "snapshot_dir": str(lab.work / "snapshots"),
                         "pre_promotion_checks": [{"name": "k3s-mcp", "type": "mcp", "target": "preview",
                                                   "tools": ["remember", "recall"]}],
                         "post_promotion_checks": [{"name": "front-door-mcp", "type": "mcp", "target": "active",
                                                    "tools": ["remember"]}], **more})


def test_promote_moves_the_data_and_loses_no_write(stateful, record_property):
    lab = stateful
    assert lab.weights() == ON_SWARM
    with Writers(lab.port, "promote") as writers:
        time.sleep(3)
        run = run_cutover(lab.work, stateful_params(lab, volumes=["/data"]))
        time.sleep(3)
    assert run.rc == 0, run.why()
    result = run.result
    figures = {"writes": len(writers.stored), "failed": len(writers.failed),
               "by_backend": writers.by_backend(),
               "held_writes": len(writers.held), "held_ms_max": max(writers.held or [0]),
               "write_pause_seconds": result.get("write_pause_seconds"), "volumes": result.get("volumes"),
               "switch_seconds": result.get("switch_seconds"), "task_s": round(run.end - run.start, 3)}
    log(f"[volumes-promote] {figures}")
    record_property("volumes_promote", figures)
    assert (result["changed"], result["state"], result["active"]) == (True, "promoted", "green"), run.why()
    assert writers.failed == [], writers.failed[:5]
    assert figures["by_backend"]["swarm"] > 0 and figures["by_backend"]["k3s"] > 0, figures
    moved = result["volumes"]
    assert len(moved) == 1 and moved[0]["verified"] and moved[0]["to"] == "k3s" and moved[0]["files"] > 0, moved
    assert moved[0]["swarm_volume"] == lab.swarm_volume and moved[0]["claim"] == lab.claim
    steps = [a["step"] for a in result["actions"]]
    assert steps.index("hold") < steps.index("copy_volume") < steps.index("restart_green") < steps.index("switch") \
        < steps.index("release"), steps
    assert 0 < result["write_pause_seconds"] < 30, result["write_pause_seconds"]
    assert writers.held, "no write was held by the front door during the move"
    assert lab.weights() == ON_K3S
    # every answered write is on K3s now - those Swarm took before the move included
    assert call_tool(lab.port, "server_info", {})["name"] == SwarmToK3sLab.K3S_SERVER
    missing = missing_writes(lab.port, writers.stored)
    assert not missing, (len(missing), list(missing.items())[:5])
    lab.promoted_writes = dict(writers.stored)


def test_rollback_copies_k3s_writes_back_to_swarm(stateful, record_property):
    lab = stateful
    assert lab.annotations().get("state") == "promoted", "needs the promotion of the test before"
    with Writers(lab.port, "rollback") as writers:
        time.sleep(3)
        run = run_cutover(lab.work, lab.params(state="rolled_back", reason="integration test",
                                               front_door_hold_map=str(lab.front_door.dir / "sophia-held.map"),
                                               snapshot_dir=str(lab.work / "snapshots")))
        time.sleep(3)
    assert run.rc == 0, run.why()
    result = run.result
    figures = {"writes": len(writers.stored), "failed": len(writers.failed),
               "by_backend": writers.by_backend(),
               "write_pause_seconds": result.get("write_pause_seconds"), "volumes": result.get("volumes"),
               "task_s": round(run.end - run.start, 3)}
    log(f"[volumes-rollback] {figures}")
    record_property("volumes_rollback", figures)
    assert (result["state"], result["active"]) == ("rolled_back", "blue"), run.why()
    assert writers.failed == [], writers.failed[:5]
    assert figures["by_backend"]["k3s"] > 0 and figures["by_backend"]["swarm"] > 0, figures
    assert result["volumes"][0]["to"] == "swarm" and result["volumes"][0]["verified"]
    assert lab.weights() == ON_SWARM
    assert call_tool(lab.port, "server_info", {})["name"] == SwarmToK3sLab.SWARM_SERVER
    everything = dict(getattr(lab, "promoted_writes", {}), **writers.stored)
    missing = missing_writes(lab.port, everything)
    assert not missing, (len(missing), list(missing.items())[:5])
