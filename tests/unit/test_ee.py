# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""execution-environment.yml installs what the tests run with: the same Python pins and ansible-core."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==", 1) if "==" in line else (line, "")
            assert version, "%s: %r is not an exact pin (NAME==VERSION)" % (path.name, line)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_ee_python_pins_are_the_tested_ones():
    ee = _pins(REPO / "requirements" / "ee-python.txt")
    tested = _pins(REPO / "requirements" / "constraints.txt")
    assert {"docker", "kubernetes", "netaddr", "pyyaml", "requests"} <= set(ee)
    assert {name: tested.get(name) for name in ee} == ee


def test_ee_definition_pins_the_tested_ansible_core_and_reads_the_requirement_files():
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    tested = _pins(REPO / "requirements" / "constraints.txt")
    assert ee["version"] == 3
    assert ee["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==%s" % tested["ansible-core"]
    assert (REPO / ee["dependencies"]["python"]).is_file()
    galaxy = yaml.safe_load((REPO / ee["dependencies"]["galaxy"]).read_text())
    assert galaxy["collections"] == [{"name": "collections/sophia_ai-platform.tar.gz", "type": "file"}]
