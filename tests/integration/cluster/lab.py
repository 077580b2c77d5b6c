"""Helpers for the lab cluster tests: run scripts/lab-cluster.sh, wait for a condition."""

from __future__ import annotations

import subprocess
import time

GPU_NODES = 8


def lab_cluster(repo, *args: str) -> str:
    res = subprocess.run(
        [str(repo / "scripts" / "lab-cluster.sh"), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
