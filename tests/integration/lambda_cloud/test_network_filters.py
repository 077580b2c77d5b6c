# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters sophia_ai.platform.network_problems and sophia_ai.platform.cidr_overlaps in a real ansible-playbook
run over inventories/lambda and inventories/lab (nothing is contacted: the play runs on localhost only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PLAY = """
- name: Check the inventory's network plan
  hosts: localhost
  gather_facts: false
  vars:
    problems: "{{ hostvars | sophia_ai.platform.network_problems(groups, groups['all']) }}"
    k3s_vs_swarm: >-
      {{ [hostvars[groups['all'][0]].k3s_install_cluster_cidr | default('10.42.0.0/16'),
          hostvars[groups['all'][0]].k3s_install_service_cidr | default('10.43.0.0/16')]
         | sophia_ai.platform.cidr_overlaps(hostvars[groups['all'][0]].swarm_default_addr_pool | default(['10.0.0.0/8'])) }}
  tasks:
    - name: Write what the filters found
      ansible.builtin.copy:
        content: "{{ {'problems': problems, 'k3s_vs_swarm': k3s_vs_swarm} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"

    - name: No problem in the plan
      ansible.builtin.assert:
        that: problems | length == 0
        fail_msg: "{{ problems | map(attribute='problem') | list }}"
        quiet: true
"""


def _play(tmp_path, inventory, *extra):
    play = tmp_path / "check.yml"
    play.write_text(PLAY)
    out = tmp_path / "found.json"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / inventory), str(play),
                          "-e", "out=%s" % out, *extra], env=env, capture_output=True, text=True, check=False, timeout=300)
    return res, json.loads(out.read_text())


@pytest.mark.parametrize("inventory", ["lambda", "lab"])
def test_the_inventories_pass(tmp_path, inventory):
    res, found = _play(tmp_path, inventory)
    assert res.returncode == 0, res.stdout[-3000:]
    assert found["problems"] == []
    if inventory == "lambda":
        assert found["k3s_vs_swarm"] == []


def test_a_swarm_on_dockers_default_pool_fails_the_play_naming_the_variable(tmp_path):
    res, found = _play(tmp_path, "lambda", "-e", '{"swarm_default_addr_pool": ["10.0.0.0/8"]}')
    assert res.returncode == 2
    variables = {p["variable"] for p in found["problems"]}
    assert {"k3s_install_cluster_cidr", "k3s_install_service_cidr", "swarm_default_addr_pool",
            "k3s_install_node_ip"} <= variables
    assert found["k3s_vs_swarm"] == [["10.42.0.0/16", "10.0.0.0/8"], ["10.43.0.0/16", "10.0.0.0/8"]]
    assert "k3s_install_cluster_cidr=10.42.0.0/16 overlaps swarm_default_addr_pool=10.0.0.0/8" in res.stdout
