"""gpu_node_check in host mode, run by ansible-playbook on localhost (connection local).

No GPU exists on this machine, so ``nvidia-smi`` is a stand-in: a shell script that prints what a real H100 host
printed (tests/unit/plugins/module_utils/fixtures/nvidia-smi/h100-80gb-hbm3), or a copy derived from it in this file (each says what
was changed), or nvidia-smi's own message for a driver that is not loaded. The module, its argument handling,
the parsing and the checks are the real ones; the stand-in only replaces the binary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "unit" / "plugins" / "module_utils" / "fixtures" / "nvidia-smi" / "h100-80gb-hbm3"
UUID = "GPU-fd7e79c7-ec19-b833-57e2-b303fa4aade0"
DRIVER_NOT_LOADED = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that "
                     "the latest NVIDIA driver is installed and running.")


def stand_in(path: Path, xml: str | None = None, message: str | None = None, rc: int = 0) -> Path:
    """A stand-in nvidia-smi (no GPU here): -q -x prints ``xml`` (or ``message``, exit ``rc``),
    --query-gpu prints the recorded query CSV with its header."""
    path.mkdir(parents=True)
    out = path / "out.txt"
    out.write_text(xml if xml is not None else message + "\n")
    script = path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n# Stand-in for nvidia-smi: no GPU exists on this machine; prints recorded output.\n"
        'case "$1" in\n'
        f'  -q) cat "{out}"; exit {rc} ;;\n'
        f'  --query-gpu=*) cat "{FIXTURES / "query-gpu-with-header.csv"}" ;;\n'
        '  *) echo "stand-in nvidia-smi: unexpected arguments $*" >&2; exit 2 ;;\n'
        "esac\n")
    script.chmod(0o755)
    return script


def derive(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert old in text, f"fixture no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def run_playbook(tmp: Path, tasks: list[dict], *extra: str) -> dict:
    playbook = tmp / f"play-{len(list(tmp.glob('play-*')))}.yml"
    playbook.write_text(json.dumps([{"name": "gpu_node_check host mode", "hosts": "localhost",
                                     "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook), *extra],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.stdout.lstrip().startswith("{"), res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(res.stdout)
    return {t["task"]["name"]: t["hosts"]["localhost"] for t in out["plays"][0]["tasks"]}


HEALTHY = {"expected_gpu_count": 1, "product": "H100|GH200", "min_driver_version": "550.54.15",
           "min_cuda_version": "12.4", "max_ecc_uncorrected": 0, "require_persistence": True, "mig_mode": "disabled",
           "max_temperature": 85}


def task(name: str, **args) -> dict:
    return {"name": name, "sophia_ai.platform.gpu_node_check": {"mode": "host", **args}, "ignore_errors": True}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu-host")
    xml = (FIXTURES / "nvidia-smi-q.xml").read_text()
    healthy = stand_in(tmp / "healthy", xml)
    # old-driver + persistence-off: driver_version 580.159.04->535.54.03, persistence_mode Enabled->Disabled
    failing = stand_in(tmp / "failing", derive(
        xml, ("<driver_version>580.159.04</driver_version>", "<driver_version>535.54.03</driver_version>"),
        ("<persistence_mode>Enabled</persistence_mode>", "<persistence_mode>Disabled</persistence_mode>")))
    no_driver = stand_in(tmp / "no-driver", message=DRIVER_NOT_LOADED, rc=9)
    no_device = stand_in(tmp / "no-device", message="No devices were found", rc=6)
    not_xml = stand_in(tmp / "not-xml", "<html><body>nvidia-smi wrapper broke</body></html>")
    toolkit = tmp / "toolkit"
    toolkit.mkdir()
    (toolkit / "nvidia-ctk").write_text("#!/bin/sh\n")
    (toolkit / "nvidia-ctk").chmod(0o755)
    k3s = tmp / "k3s-config.toml.tmpl"
    k3s.write_text('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia"]\n'
                   '  runtime_type = "io.containerd.runc.v2"\n')
    runtime = {"containerd_config_paths": [str(k3s), str(tmp / "absent.toml")], "toolkit_search_paths": [str(toolkit)]}
    no_runtime = {"containerd_config_paths": [str(tmp / "absent.toml")], "toolkit_search_paths": [str(tmp / "none")]}
    tasks = [
        task("healthy", nvidia_smi_path=str(healthy), **HEALTHY, **runtime, require_container_toolkit=True,
             require_nvidia_runtime=True),
        task("healthy csv", nvidia_smi_path=str(healthy), query="csv", expected_gpu_count=1, product="H100",
             **no_runtime),
        task("failing", nvidia_smi_path=str(failing), **HEALTHY, **no_runtime),
        task("failing report only", nvidia_smi_path=str(failing), **HEALTHY, **no_runtime, fail_on_check=False),
        task("runtime missing", nvidia_smi_path=str(healthy), **no_runtime, require_container_toolkit=True,
             require_nvidia_runtime=True),
        task("missing binary", nvidia_smi_path=str(tmp / "nowhere" / "nvidia-smi")),
        task("driver not loaded", nvidia_smi_path=str(no_driver)),
        task("no device", nvidia_smi_path=str(no_device), **no_runtime),
        task("not xml", nvidia_smi_path=str(not_xml)),
    ]
    normal = run_playbook(tmp, tasks)
    checked = run_playbook(tmp, tasks[:1], "--check")
    return normal, checked


def test_healthy_host_passes_and_reports_every_fact(results):
    res = results[0]["healthy"]
    assert not res.get("failed"), res
    assert res["changed"] is False and res["failed_checks"] == []
    assert res["summary"] == "1 GPU (NVIDIA H100 80GB HBM3), driver 580.159.04, CUDA 13.0: 10 checks passed"
    (gpu,) = res["gpus"]
    assert (gpu["index"], gpu["uuid"], gpu["memory_total_mib"], gpu["ecc_mode"], gpu["power_limit_w"]) == (
        0, UUID, 81559, "Enabled", 700.0)
    assert res["container_runtime"]["container_toolkit"]["installed"] is True
    assert res["container_runtime"]["nvidia_runtime_configured"] is True


def test_check_mode_runs_the_same_checks_and_changes_nothing(results):
    res = results[1]["healthy"]
    assert not res.get("failed") and res["changed"] is False and res["gpu_count"] == 1


def test_csv_query_reads_the_same_gpu(results):
    res = results[0]["healthy csv"]
    assert not res.get("failed"), res
    assert res["gpus"][0]["uuid"] == UUID and res["cuda_version"] is None


def test_failing_host_fails_listing_each_check_with_gpu_seen_wanted_and_fix(results):
    res = results[0]["failing"]
    assert res["failed"] is True and res["changed"] is False
    assert [(f["check"], f["seen"], f["wanted"]) for f in res["failed_checks"]] == [
        ("min_driver_version", "535.54.03", ">= 550.54.15"),
        ("require_persistence", "persistence mode Disabled", "Enabled"),
    ]
    for check, seen, wanted in (("min_driver_version", "535.54.03", ">= 550.54.15"),
                                ("require_persistence", "persistence mode Disabled", "Enabled")):
        assert f"GPU 0 ({UUID}): check {check} failed: seen {seen}, wanted {wanted}. Fix: " in res["msg"]


def test_fail_on_check_false_only_reports(results):
    res = results[0]["failing report only"]
    assert not res.get("failed"), res
    assert [f["check"] for f in res["failed_checks"]] == ["min_driver_version", "require_persistence"]
    assert res["summary"].endswith(": 2 failed checks")


def test_missing_toolkit_and_runtime_fail_with_the_fix(results):
    res = results[0]["runtime missing"]
    assert res["failed"] is True
    assert [f["check"] for f in res["failed_checks"]] == ["require_container_toolkit", "require_nvidia_runtime"]
    assert "nvidia-container-toolkit" in res["msg"]


@pytest.mark.parametrize("name, reason, words", [
    ("missing binary", "nvidia_smi_missing", "nvidia-smi not found"),
    ("driver not loaded", "driver_not_loaded", "could not talk to the NVIDIA driver"),
    ("not xml", "not_nvidia_smi_xml", "not nvidia-smi's"),
])
def test_errors_are_clear_messages_not_tracebacks(results, name, reason, words):
    res = results[0][name]
    assert res["failed"] is True and res.get("reason") == reason, res
    assert words in res["msg"]
    assert "Traceback" not in json.dumps(res)


def test_no_device_is_a_failed_check_not_an_error(results):
    res = results[0]["no device"]
    assert res["failed"] is True and res["gpu_count"] == 0
    assert [(f["gpu"], f["check"]) for f in res["failed_checks"]] == [("none", "gpu_present")]
