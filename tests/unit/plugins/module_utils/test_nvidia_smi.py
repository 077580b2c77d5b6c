"""Host mode of gpu_node_check: nvidia-smi parsing and checks against real H100 output.

The fixture is tests/unit/plugins/module_utils/fixtures/nvidia-smi/h100-80gb-hbm3 (unedited output of one H100 80GB HBM3 host,
driver 580.159.04, CUDA 13.0). Failing hosts are derived from it inside the tests: each variant names what was
changed in the XML; every change is asserted to have hit, so a changed fixture fails loudly instead of passing.
No GPU exists on this machine: nvidia-smi itself is replaced by its recorded output or by a stand-in script.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _nvidia_smi as smi
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import DependencyError, InputError

# copied unedited from the project's shared fixtures (../shared/fixtures/nvidia-smi/), so a clean clone has them
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nvidia-smi" / "h100-80gb-hbm3"
UUID = "GPU-fd7e79c7-ec19-b833-57e2-b303fa4aade0"
NO_GPU_PARAMS = {"containerd_config_paths": [], "toolkit_search_paths": ["/nonexistent"]}


@pytest.fixture(scope="module")
def xml_text() -> str:
    return (FIXTURES / "nvidia-smi-q.xml").read_text()


def derive(text: str, *changes: tuple[str, str]) -> str:
    """Apply (old, new) replacements, each of which must occur in the text."""
    for old, new in changes:
        assert old in text, f"fixture no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def test_the_real_h100_output_parses_into_every_fact(xml_text):
    data = smi.parse_xml(xml_text)
    assert data["driver_version"] == "580.159.04" and data["cuda_version"] == "13.0"
    assert data["attached_gpus"] == 1
    assert data["gpus"] == [{
        "index": 0, "uuid": UUID, "product": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:00:06.0",
        "driver_version": "580.159.04", "cuda_version": "13.0", "memory_total_mib": 81559, "memory_used_mib": 0,
        "memory_free_mib": 81079, "ecc_mode": "Enabled", "ecc_mode_pending": "Enabled",
        "ecc_uncorrected_volatile": 0, "ecc_uncorrected_aggregate": 0, "mig_mode": "Disabled",
        "mig_mode_pending": "Disabled", "persistence_mode": "Enabled", "compute_mode": "Default",
        "temperature_c": 40, "power_draw_w": 122.29, "power_limit_w": 700.0, "utilization_gpu_pct": 0,
        "utilization_memory_pct": 0,
    }]


@pytest.mark.parametrize("name, fields", [
    ("query-gpu.csv", "index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,utilization.gpu,"
                      "temperature.gpu,power.draw,power.limit,ecc.errors.uncorrected.volatile.total,ecc.mode.current,"
                      "mig.mode.current,persistence_mode,compute_mode,clocks.current.sm,clocks.max.sm".split(",")),
    ("query-gpu-with-header.csv", None),
], ids=["noheader-with-units", "header-nounits"])
def test_the_real_query_gpu_csv_parses_into_the_same_facts(name, fields):
    data = smi.parse_query_csv((FIXTURES / name).read_text(), fields)
    (gpu,) = data["gpus"]
    assert data["driver_version"] == "580.159.04" and data["cuda_version"] is None
    assert (gpu["index"], gpu["uuid"], gpu["product"], gpu["pci_bus_id"]) == (
        0, UUID, "NVIDIA H100 80GB HBM3", "00000000:00:06.0")
    assert (gpu["memory_total_mib"], gpu["memory_used_mib"], gpu["memory_free_mib"]) == (81559, 0, 81079)
    assert (gpu["temperature_c"], gpu["power_draw_w"], gpu["power_limit_w"]) == (38, 70.74, 700.0)
    assert (gpu["ecc_mode"], gpu["ecc_uncorrected_volatile"], gpu["mig_mode"], gpu["persistence_mode"],
            gpu["compute_mode"]) == ("Enabled", 0, "Disabled", "Enabled", "Default")


def test_a_partial_query_leaves_the_other_facts_none():
    data = smi.parse_query_csv((FIXTURES / "query-gpu-header.csv").read_text())
    assert data["gpus"][0]["memory_total_mib"] == 81559
    assert data["gpus"][0]["uuid"] is None and data["gpus"][0]["ecc_mode"] is None


HEALTHY = {"min_driver_version": "550.54.15", "min_cuda_version": "12.4", "expected_gpu_count": 1,
           "product": "H100|GH200", "max_ecc_uncorrected": 0, "require_persistence": True, "mig_mode": "disabled",
           "max_temperature": 85}


def test_the_real_host_passes_every_check(xml_text):
    evaluated, failures = smi.check_gpus(smi.parse_xml(xml_text)["gpus"], HEALTHY)
    assert (evaluated, failures) == (8, [])


# (id: what was changed, XML changes, checks, failing check, seen contains, wanted contains)
FAILING = [
    ("ecc-errors: volatile dram_uncorrectable 0->3, aggregate sram_uncorrectable_secded 0->5",
     [("<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t</volatile>",
       "<dram_uncorrectable>3</dram_uncorrectable>\n\t\t\t</volatile>"),
      ("<sram_uncorrectable_secded>0</sram_uncorrectable_secded>\n\t\t\t\t<dram_correctable>0</dram_correctable>\n"
       "\t\t\t\t<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t\t<sram_threshold_exceeded>",
       "<sram_uncorrectable_secded>5</sram_uncorrectable_secded>\n\t\t\t\t<dram_correctable>0</dram_correctable>\n"
       "\t\t\t\t<dram_uncorrectable>0</dram_uncorrectable>\n\t\t\t\t<sram_threshold_exceeded>")],
     {"max_ecc_uncorrected": 0}, "max_ecc_uncorrected", "5 uncorrected ECC errors (volatile 3, aggregate 5)", "<= 0"),
    ("ecc-disabled: current_ecc Enabled->Disabled",
     [("<current_ecc>Enabled</current_ecc>", "<current_ecc>Disabled</current_ecc>")],
     {"max_ecc_uncorrected": 0}, "max_ecc_uncorrected", "ECC mode Disabled", "ECC enabled"),
    ("mig-on: current_mig and pending_mig Disabled->Enabled",
     [("<current_mig>Disabled</current_mig>", "<current_mig>Enabled</current_mig>"),
      ("<pending_mig>Disabled</pending_mig>", "<pending_mig>Enabled</pending_mig>")],
     {"mig_mode": "disabled"}, "mig_mode", "MIG mode Enabled", "Disabled"),
    ("mig-pending: pending_mig Disabled->Enabled, current still Disabled, MIG wanted",
     [("<pending_mig>Disabled</pending_mig>", "<pending_mig>Enabled</pending_mig>")],
     {"mig_mode": "enabled"}, "mig_mode", "MIG mode Disabled", "Enabled"),
    ("persistence-off: persistence_mode Enabled->Disabled",
     [("<persistence_mode>Enabled</persistence_mode>", "<persistence_mode>Disabled</persistence_mode>")],
     {"require_persistence": True}, "require_persistence", "persistence mode Disabled", "Enabled"),
    ("old-driver: driver_version 580.159.04->535.54.03",
     [("<driver_version>580.159.04</driver_version>", "<driver_version>535.54.03</driver_version>")],
     {"min_driver_version": "550.54.15"}, "min_driver_version", "535.54.03", ">= 550.54.15"),
    ("old-cuda: cuda_version 13.0->12.2",
     [("<cuda_version>13.0</cuda_version>", "<cuda_version>12.2</cuda_version>")],
     {"min_cuda_version": "12.4"}, "min_cuda_version", "12.2", ">= 12.4"),
    ("wrong-product: product_name H100 80GB HBM3->A100-SXM4-80GB",
     [("<product_name>NVIDIA H100 80GB HBM3</product_name>", "<product_name>NVIDIA A100-SXM4-80GB</product_name>")],
     {"product": "H100|GH200"}, "product", "NVIDIA A100-SXM4-80GB", "matches 'H100|GH200'"),
    ("wrong-count: unchanged XML (1 GPU), 8 expected (an 8x H100 instance type)",
     [], {"expected_gpu_count": 8}, "expected_gpu_count", "1 GPUs (0 (" + UUID + "))", "8 GPUs"),
    ("hot-gpu: gpu_temp 40 C->92 C",
     [("<gpu_temp>40 C</gpu_temp>", "<gpu_temp>92 C</gpu_temp>")],
     {"max_temperature": 85}, "max_temperature", "92 C", "<= 85 C"),
    ("driver-unknown: driver_version 580.159.04->N/A",
     [("<driver_version>580.159.04</driver_version>", "<driver_version>N/A</driver_version>")],
     {"min_driver_version": "550.54.15"}, "min_driver_version", "unknown (N/A)", ">= 550.54.15"),
]


@pytest.mark.parametrize("changes, checks, check, seen, wanted", [row[1:] for row in FAILING],
                         ids=[row[0].split(":")[0] for row in FAILING])
def test_each_failing_variant_names_the_gpu_the_check_the_value_seen_and_wanted(
        xml_text, changes, checks, check, seen, wanted):
    gpus = smi.parse_xml(derive(xml_text, *changes))["gpus"]
    _evaluated, failures = smi.check_gpus(gpus, checks)
    assert [f["check"] for f in failures] == [check]
    (failure,) = failures
    assert seen in failure["seen"] and wanted in failure["wanted"] and failure["fix"]
    msg = failure["msg"]
    assert UUID in msg and ("GPU 0 " in msg or "0 (" + UUID in msg), msg
    for part in (check, seen, wanted, failure["fix"]):
        assert part in msg, (part, msg)


def test_pending_mig_says_a_reset_applies_it(xml_text):
    gpus = smi.parse_xml(derive(xml_text, ("<pending_mig>Disabled</pending_mig>", "<pending_mig>Enabled</pending_mig>")))
    (failure,) = smi.check_gpus(gpus["gpus"], {"mig_mode": "enabled"})[1]
    assert "pending" in failure["fix"] and "-r" in failure["fix"]


def no_gpu(text: str) -> str:
    """no-gpu: attached_gpus 1->0 and the whole <gpu> element removed."""
    start, end = text.index("<gpu id="), text.index("</gpu>") + len("</gpu>")
    return derive(text[:start] + text[end:], ("<attached_gpus>1</attached_gpus>", "<attached_gpus>0</attached_gpus>"))


@pytest.mark.parametrize("checks, check, wanted", [
    ({}, "gpu_present", ">= 1 GPU"),
    ({"expected_gpu_count": 1}, "expected_gpu_count", "1 GPUs"),
], ids=["no-expectation", "one-expected"])
def test_no_gpu_fails_naming_the_host_and_the_check(xml_text, checks, check, wanted):
    data = smi.parse_xml(no_gpu(xml_text))
    assert data["gpus"] == [] and data["attached_gpus"] == 0
    (failure,) = smi.check_gpus(data["gpus"], checks)[1]
    assert (failure["check"], failure["seen"].split(" (")[0], failure["wanted"]) == (check, "0 GPUs", wanted)
    assert failure["msg"].startswith("host (no GPU): check " + check)


def test_no_gpu_expected_passes(xml_text):
    assert smi.check_gpus([], {"expected_gpu_count": 0}) == (1, [])


def test_two_gpus_each_failure_names_its_own_gpu(xml_text):
    """two-gpus: the <gpu> element duplicated with another uuid; only the second one is hot (90 C)."""
    start, end = xml_text.index("<gpu id="), xml_text.index("</gpu>") + len("</gpu>")
    second = derive(xml_text[start:end], (UUID, "GPU-00000000-0000-0000-0000-000000000001"),
                    ("<gpu_temp>40 C</gpu_temp>", "<gpu_temp>90 C</gpu_temp>"))
    data = smi.parse_xml(xml_text[:end] + "\n\t" + second + xml_text[end:])
    assert [g["index"] for g in data["gpus"]] == [0, 1]
    (failure,) = smi.check_gpus(data["gpus"], {"max_temperature": 85, "expected_gpu_count": 2})[1]
    assert failure["gpu"] == "1 (GPU-00000000-0000-0000-0000-000000000001)"


@pytest.mark.parametrize("text, reason", [
    ("", "not_xml"),
    ("NVIDIA-SMI 580.159.04 Driver Version: 580.159.04", "not_xml"),
    ("<html><body>502 Bad Gateway</body></html>", "not_nvidia_smi_xml"),
    ('<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><nvidia_smi_log>&b;'
     "</nvidia_smi_log>", "unsafe_xml"),
    ('<?xml version="1.0"?><!DOCTYPE nvidia_smi_log SYSTEM "x.dtd" [ <!ELEMENT x ANY> ]><nvidia_smi_log/>',
     "unsafe_xml"),
    ("<nvidia_smi_log><gpu>", "not_xml"),
], ids=["empty", "plain-text", "other-xml", "entity-expansion", "internal-dtd-subset", "truncated"])
def test_output_that_is_not_nvidia_smi_xml_gets_a_clear_error(text, reason):
    with pytest.raises(InputError) as info:
        smi.parse_xml(text)
    assert info.value.details["reason"] == reason
    assert "nvidia-smi" in str(info.value)


def test_xml_passed_to_the_csv_parser_is_refused(xml_text):
    with pytest.raises(InputError, match="not nvidia-smi --query-gpu CSV"):
        smi.parse_query_csv(xml_text)


@pytest.mark.parametrize("rc, out, reason", [
    (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
        "NVIDIA driver is installed and running.\n", "driver_not_loaded"),
    (18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.159\n",
     "driver_version_mismatch"),
    (255, "Unable to determine the device handle for GPU0000:00:06.0: Unknown Error\n", "nvidia_smi_failed"),
], ids=["driver-not-loaded", "version-mismatch", "other-failure"])
def test_nvidia_smi_failures_become_clear_errors(rc, out, reason):
    with pytest.raises(DependencyError) as info:
        smi.check_nvidia_smi_output(rc, out, "", "/usr/bin/nvidia-smi")
    assert info.value.details["reason"] == reason and info.value.details["rc"] == rc
    assert "/usr/bin/nvidia-smi" in str(info.value)


def test_no_devices_found_is_zero_gpus_not_an_error():
    assert smi.check_nvidia_smi_output(6, "No devices were found\n", "", "nvidia-smi") is False


def test_bad_option_values_are_input_errors():
    with pytest.raises(InputError, match="not a dotted version"):
        smi.check_gpus([], {"min_driver_version": "latest", "expected_gpu_count": 0})
    with pytest.raises(InputError, match="not a regular expression"):
        smi.check_gpus([], {"product": "H100(", "expected_gpu_count": 0})


def executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_run_host_check_runs_the_given_binary_and_reports(tmp_path, xml_text):
    """nvidia-smi is a stand-in (no GPU here); run_command returns the recorded output, as the real one would."""
    binary = executable(tmp_path / "nvidia-smi")
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, xml_text, ""

    result = smi.run_host_check({"nvidia_smi_path": str(binary), **HEALTHY, **NO_GPU_PARAMS}, run)
    assert calls == [[str(binary), "-q", "-x"]]
    assert result["failed_checks"] == [] and result["changed"] is False and result["gpu_count"] == 1
    assert result["summary"] == "1 GPU (NVIDIA H100 80GB HBM3), driver 580.159.04, CUDA 13.0: 8 checks passed"


def test_run_host_check_csv_mode_asks_for_its_fields(tmp_path):
    binary = executable(tmp_path / "nvidia-smi")
    seen = []

    def run(argv):
        seen.append(argv)
        return 0, (FIXTURES / "query-gpu-with-header.csv").read_text(), ""

    result = smi.run_host_check({"nvidia_smi_path": str(binary), "query": "csv", "expected_gpu_count": 1,
                                 **NO_GPU_PARAMS}, run)
    assert seen[0][1] == "--query-gpu=" + ",".join(smi.QUERY_FIELDS) and seen[0][2] == "--format=csv,nounits"
    assert result["gpus"][0]["uuid"] == UUID and result["failed_checks"] == []
    with pytest.raises(InputError, match="min_cuda_version needs query: xml"):
        smi.run_host_check({"nvidia_smi_path": str(binary), "query": "csv", "min_cuda_version": "12.4"}, run)


@pytest.mark.parametrize("path", ["/nonexistent/nvidia-smi", "nvidia-smi-that-does-not-exist"])
def test_missing_nvidia_smi_is_a_clear_error(path):
    with pytest.raises(DependencyError) as info:
        smi.run_host_check({"nvidia_smi_path": path}, lambda argv: pytest.fail("must not run"))
    assert info.value.details["reason"] == "nvidia_smi_missing"
    assert "install the NVIDIA driver" in str(info.value) and path in str(info.value)


CONTAINERD = {
    "v2-nvidia": ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "nvidia"\n'
                  '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
                  '    runtime_type = "io.containerd.runc.v2"\n', True, "nvidia"),
    "k3s-quoted": ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia"]\n'
                   '  runtime_type = "io.containerd.runc.v2"\n'
                   '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia".options]\n'
                   '  BinaryName = "/usr/bin/nvidia-container-runtime"\n', True, None),
    "v3-single-quoted": ("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'nvidia']\n"
                         "  runtime_type = 'io.containerd.runc.v2'\n", True, None),
    "runc-only": ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
                  '  runtime_type = "io.containerd.runc.v2"\n', False, None),
    "commented-out": ('# [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n', False, None),
    "nvidia-cdi-only": ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia-cdi]\n', False, None),
}


@pytest.mark.parametrize("text, nvidia, default", CONTAINERD.values(), ids=CONTAINERD.keys())
def test_containerd_nvidia_runtime_detection(tmp_path, text, nvidia, default):
    config = tmp_path / "config.toml"
    config.write_text(text)
    runtime = smi.detect_container_runtime([str(config), str(tmp_path / "absent.toml")], [str(tmp_path)])
    assert runtime["containerd"] == [
        {"path": str(config), "exists": True, "nvidia_runtime": nvidia, "default_runtime": default},
        {"path": str(tmp_path / "absent.toml"), "exists": False, "nvidia_runtime": False, "default_runtime": None},
    ]
    assert runtime["nvidia_runtime_configured"] is nvidia


def test_toolkit_detection_and_its_checks(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runtime = smi.detect_container_runtime([], [str(bin_dir)])
    assert runtime["container_toolkit"] == {"installed": False, "binaries": dict.fromkeys(smi.TOOLKIT_BINARIES)}
    _n, failures = smi.check_runtime(runtime, {"require_container_toolkit": True, "require_nvidia_runtime": True})
    assert [f["check"] for f in failures] == ["require_container_toolkit", "require_nvidia_runtime"]
    assert all(f["fix"] and f["seen"] and f["wanted"] for f in failures)
    ctk = executable(bin_dir / "nvidia-ctk")
    (bin_dir / "nvidia-container-runtime").write_text("not executable")
    runtime = smi.detect_container_runtime([], [str(bin_dir)])
    assert runtime["container_toolkit"]["installed"] is True
    assert runtime["container_toolkit"]["binaries"] == {
        "nvidia-container-runtime": None, "nvidia-ctk": str(ctk), "nvidia-container-cli": None}
    assert smi.check_runtime(runtime, {"require_container_toolkit": True}) == (1, [])


# --- NVIDIA H200 (captured by tests/device/gpu_host_check.sh on a real H200 host) ---
H200 = FIXTURES.parent / "h200"


def test_the_real_h200_xml_and_module_csv_give_the_same_facts():
    from_xml = smi.parse_xml((H200 / "nvidia-smi-q.xml").read_text())
    from_csv = smi.parse_query_csv((H200 / "query-gpu-module.csv").read_text())
    assert from_xml["driver_version"] == "580.159.04" and from_xml["cuda_version"] == "13.0"
    (gpu,) = from_xml["gpus"]
    assert gpu["product"] == "NVIDIA H200"
    assert gpu["uuid"] == "GPU-8c058a98-f668-95c8-96bc-2a7bf0d7bb4e"
    assert gpu["memory_total_mib"] == 143771
    assert (gpu["ecc_mode"], gpu["mig_mode"], gpu["persistence_mode"]) == ("Enabled", "Disabled", "Enabled")
    (csv_gpu,) = from_csv["gpus"]
    # The two reads ran seconds apart: readings (power, temperature, free memory) may differ, identity may not.
    for key in ("index", "uuid", "product", "pci_bus_id", "driver_version", "memory_total_mib", "ecc_mode",
                "mig_mode", "persistence_mode", "compute_mode", "ecc_uncorrected_volatile"):
        assert csv_gpu[key] == gpu[key], key


def test_the_real_h200_passes_the_production_checks_and_fails_a_wrong_count():
    gpus = smi.parse_xml((H200 / "nvidia-smi-q.xml").read_text())["gpus"]
    checks = {"expected_gpu_count": 1, "product": "H100|H200|GH200", "min_driver_version": "550.54.15",
              "min_cuda_version": "12.4", "max_ecc_uncorrected": 0, "mig_mode": "disabled", "max_temperature": 85}
    assert smi.check_gpus(gpus, checks) == (7, [])
    failures = smi.check_gpus(gpus, dict(checks, expected_gpu_count=8))[1]
    assert [f["check"] for f in failures] == ["expected_gpu_count"]


def test_the_module_run_on_the_real_h200_reported_what_the_fixtures_hold():
    """The results ansible-playbook registered on the H200 host (the module ran there, not here)."""
    results = json.loads((H200 / "gpu-node-check-results.json").read_text())
    assert results["xml"]["summary"] == "1 GPU (NVIDIA H200), driver 580.159.04, CUDA 13.0: 7 checks passed"
    assert results["xml"]["failed_checks"] == [] and results["xml"]["changed"] is False
    assert {f["check"] for f in results["failing"]["failed_checks"]} == {"expected_gpu_count",
                                                                         "require_container_toolkit"}
    assert results["failing"]["failed"] is True
    assert results["check"]["gpus"][0]["uuid"] == results["xml"]["gpus"][0]["uuid"]
