# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the phase 2 and phase 3 lab tests: the stack's services by criticality, ansible-playbook, kubectl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("SOPHIA_CACHE", Path.home() / ".cache/sophia-platform"))
# Two critical services keep phase 3's test short (make phase3 moves all ten): one reserves a GPU, the other keeps
# its memories on a named volume, which moves with it (the stateful case). The rollback test takes the first.
PHASE3_SERVICES = ["mcp-embeddings", "mcp-ai-memory"]
STATEFUL = "mcp-ai-memory"
OFFSET = 10000  # inventories/lab: lab_front_door_port_offset


def published_port(name):
    stack = yaml.safe_load((REPO / "examples" / "sophia-mcp-stack.yml").read_text())
    return int(stack["services"][name]["ports"][0]["published"])


def front_door_port(name):
    return published_port(name) + OFFSET


def stack_services(criticality):
    stack = yaml.safe_load((REPO / "examples" / "sophia-mcp-stack.yml").read_text())
    return sorted(name for name, svc in stack["services"].items()
                  if ((svc.get("deploy") or {}).get("labels") or {}).get("sophia.ai/criticality") == criticality)


def non_critical_services():
    return stack_services("non-critical")


def playbook(name, *extra, check=True):
    """ansible-playbook -i inventories/lab with the JSON callback; the parsed output, or (rc, output) with
    check=False."""
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1"}
    path = name if name.startswith("/") else f"playbooks/{name}"
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/lab",
                          path, *extra], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=1500, check=False)
    if not check:
        try:
            return res.returncode, json.loads(res.stdout)
        except ValueError:
            return res.returncode, {"stdout": res.stdout[-6000:], "stderr": res.stderr[-2000:]}
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    return json.loads(res.stdout)


def kubectl(kubeconfig, *args):
    return subprocess.run([str(CACHE / "bin" / "kubernetes" / "kubectl"), "--kubeconfig", kubeconfig, *args],
                          capture_output=True, text=True, timeout=300, check=False)
