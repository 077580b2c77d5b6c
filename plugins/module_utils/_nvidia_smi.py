# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU host facts from ``nvidia-smi`` and the checks of ``gpu_node_check`` in host mode.

The parsers and checks are pure: they take nvidia-smi's text and return facts and failures. The runner,
:func:`run_host_check`, takes the module's ``run_command`` as an argument and reads the container runtime's
files, so that tests drive it with a stand-in ``nvidia-smi`` and temporary files.

nvidia-smi's XML declares an external DTD (``<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v13.dtd">``) and
nothing else; output that declares entities or an internal DTD subset is refused before it reaches the XML
parser (no entity expansion), and the external DTD is never fetched.
"""

from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import DependencyError, InputError

DRIVER_NOT_LOADED = "couldn't communicate with the NVIDIA driver"
VERSION_MISMATCH = "Driver/library version mismatch"
NO_DEVICES = "No devices were found"

DEFAULT_CONTAINERD_CONFIGS = (
    "/etc/containerd/config.toml",
    "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
    "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
)
TOOLKIT_BINARIES = ("nvidia-container-runtime", "nvidia-ctk", "nvidia-container-cli")
# Where the toolkit lands besides PATH: Debian/Ubuntu packages and the GPU Operator's host install.
DEFAULT_TOOLKIT_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
                        "/usr/local/nvidia/toolkit")

# The --query-gpu fields the module asks for in ``query: csv`` (nvidia-smi --help-query-gpu).
QUERY_FIELDS = (
    "index", "uuid", "name", "pci.bus_id", "driver_version", "memory.total", "memory.used", "memory.free",
    "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit",
    "ecc.mode.current", "ecc.mode.pending", "ecc.errors.uncorrected.volatile.total",
    "ecc.errors.uncorrected.aggregate.total", "mig.mode.current", "mig.mode.pending", "persistence_mode",
    "compute_mode",
)
# --query-gpu field -> fact (numbers are parsed, units dropped)
_CSV_FACTS = {
    "index": "index", "uuid": "uuid", "name": "product", "pci.bus_id": "pci_bus_id",
    "driver_version": "driver_version", "memory.total": "memory_total_mib", "memory.used": "memory_used_mib",
    "memory.free": "memory_free_mib", "utilization.gpu": "utilization_gpu_pct",
    "utilization.memory": "utilization_memory_pct", "temperature.gpu": "temperature_c",
    "power.draw": "power_draw_w", "power.limit": "power_limit_w", "ecc.mode.current": "ecc_mode",
    "ecc.mode.pending": "ecc_mode_pending", "ecc.errors.uncorrected.volatile.total": "ecc_uncorrected_volatile",
    "ecc.errors.uncorrected.aggregate.total": "ecc_uncorrected_aggregate", "mig.mode.current": "mig_mode",
    "mig.mode.pending": "mig_mode_pending", "persistence_mode": "persistence_mode", "compute_mode": "compute_mode",
}
_NUMERIC = {"index", "memory_total_mib", "memory_used_mib", "memory_free_mib", "utilization_gpu_pct",
            "utilization_memory_pct", "temperature_c", "power_draw_w", "power_limit_w",
            "ecc_uncorrected_volatile", "ecc_uncorrected_aggregate"}
FACT_KEYS = ("index", "uuid", "product", "pci_bus_id", "driver_version", "cuda_version", "memory_total_mib",
             "memory_used_mib", "memory_free_mib", "ecc_mode", "ecc_mode_pending", "ecc_uncorrected_volatile",
             "ecc_uncorrected_aggregate", "mig_mode", "mig_mode_pending", "persistence_mode", "compute_mode",
             "temperature_c", "power_draw_w", "power_limit_w", "utilization_gpu_pct", "utilization_memory_pct")

_NO_VALUE = ("n/a", "not supported", "unknown error", "none", "insufficient permissions",
             "requested functionality has been deprecated")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")
_UNSAFE_XML = re.compile(r"<!ENTITY|<!DOCTYPE[^>]*\[", re.IGNORECASE)


def _text(value):
    """nvidia-smi's text with its 'no value' spellings (N/A, [N/A], [Not Supported], ...) as None."""
    if value is None:
        return None
    value = value.strip()
    if not value or value.strip("[]").lower() in _NO_VALUE:
        return None
    return value


def _number(value):
    """'81559 MiB' -> 81559, '122.29 W' -> 122.29, 'N/A' -> None."""
    value = _text(value)
    if value is None:
        return None
    match = _NUMBER.match(value)
    if not match:
        return None
    number = match.group(1)
    return float(number) if "." in number else int(number)


def parse_version(value, what="version"):
    """'580.159.04' -> (580, 159, 4); raises InputError for text that is no dotted version."""
    text = str(value).strip()
    if not re.match(r"^\d+(\.\d+)*$", text):
        raise InputError(f"{what} {value!r} is not a dotted version such as 550.54.15 or 12.4", key=what)
    return tuple(int(part) for part in text.split("."))


def check_nvidia_smi_output(rc, stdout, stderr, path):
    """Turn nvidia-smi's known failures into clear errors; return False when it found no device."""
    output = f"{stdout or ''}\n{stderr or ''}".strip()
    if DRIVER_NOT_LOADED in output:
        raise DependencyError(
            f"{path} could not talk to the NVIDIA driver (nvidia-smi: \"{DRIVER_NOT_LOADED}\"): the kernel "
            "module is not loaded. Install the NVIDIA driver for the running kernel, load it (modprobe nvidia) "
            "or reboot after a driver or kernel upgrade; dmesg | grep -i nvrm says why it did not load.",
            reason="driver_not_loaded", object=path, rc=rc, output=output[-2000:])
    if VERSION_MISMATCH in output:
        raise DependencyError(
            f"{path}: the NVIDIA kernel module and user-space library differ (\"{VERSION_MISMATCH}\"): reboot "
            "(or unload and reload the nvidia modules) after the driver upgrade.",
            reason="driver_version_mismatch", object=path, rc=rc, output=output[-2000:])
    if NO_DEVICES in output:
        return False
    if rc != 0:
        raise DependencyError(
            f"{path} failed with exit code {rc}: {output[-500:] or '(no output)'}",
            reason="nvidia_smi_failed", object=path, rc=rc, output=output[-2000:])
    return True


def _guard_xml(text):
    if _UNSAFE_XML.search(text):
        raise InputError("nvidia-smi output declares XML entities or an internal DTD: refused (nvidia-smi never "
                         "prints them; is nvidia_smi_path really nvidia-smi?)", reason="unsafe_xml")


def _uncorrected(section):
    """Uncorrectable ECC errors in a volatile/aggregate section, across the formats drivers print."""
    if section is None:
        return None
    double_bit = section.find("double_bit")  # drivers before R525: single_bit/double_bit with totals
    if double_bit is not None:
        return _number(double_bit.findtext("total"))
    counts = [_number(child.text) for child in section if "uncorrectable" in child.tag]
    counts = [count for count in counts if count is not None]
    return sum(counts) if counts else None


def _first(element, *paths):
    for path in paths:
        value = _text(element.findtext(path))
        if value is not None:
            return value
    return None


def parse_xml(text):
    """``nvidia-smi -q -x`` -> {'driver_version', 'cuda_version', 'attached_gpus', 'gpus': [facts, ...]}."""
    if not text or not text.strip():
        raise InputError("nvidia-smi -q -x printed nothing: expected nvidia-smi XML", reason="not_xml")
    _guard_xml(text)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"the output is not nvidia-smi XML ({exc}); it starts with {text.strip()[:80]!r}",
                         reason="not_xml") from None
    if root.tag != "nvidia_smi_log":
        raise InputError(f"the output is XML but not nvidia-smi's: root element <{root.tag}>, expected "
                         "<nvidia_smi_log>", reason="not_nvidia_smi_xml")
    driver = _text(root.findtext("driver_version"))
    cuda = _text(root.findtext("cuda_version"))
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        gpus.append({
            "index": index,
            "uuid": _text(gpu.findtext("uuid")),
            "product": _text(gpu.findtext("product_name")),
            "pci_bus_id": _text(gpu.findtext("pci/pci_bus_id")) or gpu.get("id"),
            "driver_version": driver,
            "cuda_version": cuda,
            "memory_total_mib": _number(gpu.findtext("fb_memory_usage/total")),
            "memory_used_mib": _number(gpu.findtext("fb_memory_usage/used")),
            "memory_free_mib": _number(gpu.findtext("fb_memory_usage/free")),
            "ecc_mode": _text(gpu.findtext("ecc_mode/current_ecc")),
            "ecc_mode_pending": _text(gpu.findtext("ecc_mode/pending_ecc")),
            "ecc_uncorrected_volatile": _uncorrected(gpu.find("ecc_errors/volatile")),
            "ecc_uncorrected_aggregate": _uncorrected(gpu.find("ecc_errors/aggregate")),
            "mig_mode": _text(gpu.findtext("mig_mode/current_mig")),
            "mig_mode_pending": _text(gpu.findtext("mig_mode/pending_mig")),
            "persistence_mode": _text(gpu.findtext("persistence_mode")),
            "compute_mode": _text(gpu.findtext("compute_mode")),
            "temperature_c": _number(gpu.findtext("temperature/gpu_temp")),
            "power_draw_w": _number(_first(gpu, "gpu_power_readings/average_power_draw",
                                           "gpu_power_readings/instant_power_draw", "gpu_power_readings/power_draw",
                                           "power_readings/power_draw")),
            "power_limit_w": _number(_first(gpu, "gpu_power_readings/current_power_limit",
                                            "power_readings/power_limit", "power_readings/enforced_power_limit")),
            "utilization_gpu_pct": _number(gpu.findtext("utilization/gpu_util")),
            "utilization_memory_pct": _number(gpu.findtext("utilization/memory_util")),
        })
    attached = _number(root.findtext("attached_gpus"))
    return {"driver_version": driver, "cuda_version": cuda,
            "attached_gpus": len(gpus) if attached is None else attached, "gpus": gpus}


def parse_query_csv(text, fields=None):
    """``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`` -> the same facts as :func:`parse_xml`.

    Without ``fields`` the first line is the header (units in brackets are dropped); values may carry units.
    Facts the query did not ask for are None (the CSV has no CUDA version).
    """
    rows = [row for row in csv.reader((text or "").splitlines(), skipinitialspace=True) if row]
    if fields is None:
        if not rows:
            raise InputError("nvidia-smi --query-gpu printed nothing: expected a CSV header line", reason="not_csv")
        fields = [re.sub(r"\s*\[.*\]$", "", name.strip()) for name in rows.pop(0)]
    fields = list(fields)
    if not any(name in _CSV_FACTS for name in fields):
        raise InputError(f"the output is not nvidia-smi --query-gpu CSV: no known field in {', '.join(fields)[:80]!r}",
                         reason="not_csv")
    gpus = []
    for line, row in enumerate(rows, start=1):
        if len(row) != len(fields):
            raise InputError(f"nvidia-smi --query-gpu CSV line {line} has {len(row)} values for {len(fields)} "
                             f"fields: {', '.join(row)[:120]!r}", reason="not_csv")
        facts = dict.fromkeys(FACT_KEYS)
        for name, value in zip(fields, row):
            fact = _CSV_FACTS.get(name)
            if fact:
                facts[fact] = _number(value) if fact in _NUMERIC else _text(value)
        if facts["index"] is None:
            facts["index"] = line - 1
        gpus.append(facts)
    driver = gpus[0]["driver_version"] if gpus else None
    return {"driver_version": driver, "cuda_version": None, "attached_gpus": len(gpus), "gpus": gpus}


def gpu_name(gpu):
    return f"{gpu['index']} ({gpu.get('uuid') or 'no uuid'})"


def _failure(gpu, check, seen, wanted, fix):
    where = f"GPU {gpu}" if gpu not in ("all", "none") else ("every GPU" if gpu == "all" else "host (no GPU)")
    seen, wanted = str(seen), str(wanted)
    return {"gpu": gpu, "check": check, "seen": seen, "wanted": wanted, "fix": fix,
            "msg": f"{where}: check {check} failed: seen {seen}, wanted {wanted}. Fix: {fix}"}


def _version_failures(gpus, check, fact, minimum, fix):
    if minimum is None:
        return []
    wanted = parse_version(minimum, check)
    failures = []
    for gpu in gpus:
        seen = gpu.get(fact)
        if seen is None or parse_version(seen, fact) < wanted:
            failures.append(_failure(gpu_name(gpu), check, seen if seen is not None else "unknown (N/A)",
                                     f">= {minimum}", fix))
    return failures


def check_gpus(gpus, checks):
    """Evaluate the host checks; return (number of checks evaluated, failures).

    ``checks`` holds the module's options: min_driver_version, min_cuda_version, expected_gpu_count, product,
    max_ecc_uncorrected, require_persistence, mig_mode, max_temperature (None/False: not checked).
    """
    failures = []
    evaluated = 0
    expected = checks.get("expected_gpu_count")
    if expected is not None or not gpus:
        evaluated += 1
        if expected is None and not gpus:
            failures.append(_failure("none", "gpu_present", "0 GPUs", ">= 1 GPU",
                                     "nvidia-smi sees no GPU: check lspci -d 10de:, that the driver matches the "
                                     "running kernel (dkms status) and dmesg | grep -i -e nvrm -e xid"))
        elif expected is not None and len(gpus) != expected:
            names = ", ".join(gpu_name(gpu) for gpu in gpus) or "none"
            failures.append(_failure("none" if not gpus else "all", "expected_gpu_count",
                                     f"{len(gpus)} GPUs ({names})", f"{expected} GPUs",
                                     "check that every GPU is seated and powered (lspci -d 10de:), that none fell "
                                     "off the bus (dmesg | grep -i xid: Xid 79), and that expected_gpu_count "
                                     "matches the instance type"))
    product = checks.get("product")
    if product:
        evaluated += 1
        try:
            pattern = re.compile(product)
        except re.error as exc:
            raise InputError(f"product {product!r} is not a regular expression: {exc}", key="product") from None
        for gpu in gpus:
            if not pattern.search(gpu.get("product") or ""):
                failures.append(_failure(gpu_name(gpu), "product", gpu.get("product"), f"matches {product!r}",
                                         "run on a host with the GPU model the workload needs, or widen product"))
    for check, fact, fix in (
        ("min_driver_version", "driver_version",
         "install the NVIDIA driver branch with this version or newer (e.g. apt install nvidia-driver-<branch>-server), "
         "then reboot"),
        ("min_cuda_version", "cuda_version",
         "nvidia-smi reports the highest CUDA version the driver supports: install a driver branch that supports "
         "this CUDA version, then reboot"),
    ):
        if checks.get(check) is not None:
            evaluated += 1
            failures.extend(_version_failures(gpus, check, fact, checks[check], fix))
    limit = checks.get("max_ecc_uncorrected")
    if limit is not None:
        evaluated += 1
        for gpu in gpus:
            name = gpu_name(gpu)
            if (gpu.get("ecc_mode") or "").lower() != "enabled":
                failures.append(_failure(name, "max_ecc_uncorrected", f"ECC mode {gpu.get('ecc_mode') or 'N/A'}",
                                         f"ECC enabled with <= {limit} uncorrected errors",
                                         f"enable ECC (nvidia-smi -i {gpu['index']} -e 1), then reboot"))
                continue
            counts = [gpu.get("ecc_uncorrected_volatile"), gpu.get("ecc_uncorrected_aggregate")]
            worst = max((count for count in counts if count is not None), default=None)
            if worst is not None and worst > limit:
                failures.append(_failure(
                    name, "max_ecc_uncorrected",
                    f"{worst} uncorrected ECC errors (volatile {counts[0]}, aggregate {counts[1]})",
                    f"<= {limit}",
                    f"drain the node and reset the GPU (nvidia-smi -i {gpu['index']} -r) or reboot; if the aggregate "
                    "count keeps rising or rows cannot be remapped (nvidia-smi -q -d ROW_REMAPPER), replace the GPU"))
    if checks.get("require_persistence"):
        evaluated += 1
        for gpu in gpus:
            if (gpu.get("persistence_mode") or "").lower() != "enabled":
                failures.append(_failure(gpu_name(gpu), "require_persistence",
                                         f"persistence mode {gpu.get('persistence_mode') or 'N/A'}", "Enabled",
                                         "run nvidia-persistenced (systemctl enable --now nvidia-persistenced) or "
                                         f"nvidia-smi -i {gpu['index']} -pm 1"))
    mig = checks.get("mig_mode")
    if mig:
        evaluated += 1
        for gpu in gpus:
            current = (gpu.get("mig_mode") or "N/A")
            if current.lower() == mig or (mig == "disabled" and current == "N/A"):
                continue
            if current == "N/A":
                fix = "this GPU has no MIG support: use an A100/H100/GH200-class GPU for MIG, or set mig_mode: disabled"
            elif mig == "disabled":
                fix = (f"stop the GPU's workloads, run nvidia-smi -i {gpu['index']} -mig 0, then reset the GPU "
                       f"(nvidia-smi -i {gpu['index']} -r) or reboot")
            else:
                fix = (f"run nvidia-smi -i {gpu['index']} -mig 1, reset the GPU, then create GPU instances "
                       "(nvidia-smi mig -cgi <profiles> -C)")
            pending = gpu.get("mig_mode_pending")
            if pending and pending != current:
                fix = f"MIG mode {pending} is pending: reset the GPU (nvidia-smi -i {gpu['index']} -r) or reboot to apply it"
            failures.append(_failure(gpu_name(gpu), "mig_mode", f"MIG mode {current}", mig.capitalize(), fix))
    hottest = checks.get("max_temperature")
    if hottest is not None:
        evaluated += 1
        for gpu in gpus:
            temp = gpu.get("temperature_c")
            if temp is not None and temp > hottest:
                failures.append(_failure(gpu_name(gpu), "max_temperature", f"{temp} C", f"<= {hottest} C",
                                         "check cooling and airflow; nvidia-smi -q -d TEMPERATURE,PERFORMANCE shows "
                                         "thermal slowdown reasons"))
    return evaluated, failures


def _containerd_file(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {"path": path, "exists": False, "nvidia_runtime": False, "default_runtime": None}
    except OSError as exc:
        return {"path": path, "exists": True, "nvidia_runtime": False, "default_runtime": None,
                "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    body = "\n".join(lines)
    # [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia] (v2), ...runtimes."nvidia"] (K3s),
    # [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.nvidia] (v3)
    nvidia = re.search(r"\.runtimes\.(?:\"nvidia\"|'nvidia'|nvidia)\s*\]", body) is not None
    default = re.search(r"default_runtime_name\s*=\s*[\"']([^\"']+)[\"']", body)
    return {"path": path, "exists": True, "nvidia_runtime": nvidia,
            "default_runtime": default.group(1) if default else None}


def detect_container_runtime(config_paths, search_paths=None):
    """Whether the NVIDIA Container Toolkit is installed and containerd / K3s have an nvidia runtime."""
    if search_paths:
        dirs = list(search_paths)
    else:
        dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d] + list(DEFAULT_TOOLKIT_DIRS)
    binaries = {}
    for name in TOOLKIT_BINARIES:
        binaries[name] = next((os.path.join(d, name) for d in dirs
                               if os.path.isfile(os.path.join(d, name)) and os.access(os.path.join(d, name), os.X_OK)),
                              None)
    files = [_containerd_file(path) for path in config_paths]
    return {
        "container_toolkit": {
            "installed": bool(binaries["nvidia-container-runtime"] or binaries["nvidia-ctk"]),
            "binaries": binaries,
        },
        "containerd": files,
        "nvidia_runtime_configured": any(entry["nvidia_runtime"] for entry in files),
    }


def check_runtime(runtime, checks):
    evaluated, failures = 0, []
    if checks.get("require_container_toolkit"):
        evaluated += 1
        if not runtime["container_toolkit"]["installed"]:
            failures.append(_failure("all", "require_container_toolkit", "no nvidia-container-runtime or nvidia-ctk "
                                     "found", "NVIDIA Container Toolkit installed",
                                     "install the nvidia-container-toolkit package (role sophia_ai.platform.nvidia_plugin "
                                     "does), or point toolkit_search_paths at where it is"))
    if checks.get("require_nvidia_runtime"):
        evaluated += 1
        if not runtime["nvidia_runtime_configured"]:
            seen = ", ".join(f"{e['path']} ({'no nvidia runtime' if e['exists'] else 'absent'})"
                             for e in runtime["containerd"]) or "no containerd config given"
            failures.append(_failure("all", "require_nvidia_runtime", seen, "a containerd runtime named nvidia",
                                     "install the toolkit and restart K3s (it adds the nvidia runtime when it finds "
                                     "the toolkit), or run nvidia-ctk runtime configure --runtime=containerd and "
                                     "restart containerd"))
    return evaluated, failures


def resolve_nvidia_smi(path):
    """The nvidia-smi to run: a path as given, or the first match on PATH (and /usr/bin, /usr/local/bin)."""
    if os.sep in path:
        found = path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    else:
        dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
        dirs += ["/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin"]
        found = next((os.path.join(d, path) for d in dirs
                      if os.path.isfile(os.path.join(d, path)) and os.access(os.path.join(d, path), os.X_OK)), None)
    if not found:
        raise DependencyError(f"nvidia-smi not found ({path!r} is no executable{'' if os.sep in path else ' on PATH'}): "
                              "install the NVIDIA driver (it ships nvidia-smi) or set nvidia_smi_path",
                              reason="nvidia_smi_missing", object=path)
    return found


def summarize_host(data, evaluated, failures):
    gpus = data["gpus"]
    products = sorted({gpu.get("product") or "unknown" for gpu in gpus})
    head = (f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}" + (f" ({', '.join(products)})" if gpus else "")
            + f", driver {data.get('driver_version') or 'unknown'}, CUDA {data.get('cuda_version') or 'unknown'}")
    if failures:
        return f"{head}: {len(failures)} failed check{'s' if len(failures) != 1 else ''}"
    return f"{head}: {evaluated} check{'s' if evaluated != 1 else ''} passed"


def run_host_check(params, run_command):
    """Host mode of gpu_node_check: run nvidia-smi, parse, check. ``run_command(argv) -> (rc, out, err)``."""
    path = resolve_nvidia_smi(params.get("nvidia_smi_path") or "nvidia-smi")
    query = params.get("query") or "xml"
    if query == "csv" and params.get("min_cuda_version"):
        raise InputError("min_cuda_version needs query: xml (the --query-gpu CSV has no CUDA version)",
                         key="min_cuda_version")
    if query == "csv":
        argv = [path, f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,nounits"]
    else:
        argv = [path, "-q", "-x"]
    rc, out, err = run_command(argv)
    if check_nvidia_smi_output(rc, out, err, path):
        data = parse_query_csv(out) if query == "csv" else parse_xml(out)
    else:
        data = {"driver_version": None, "cuda_version": None, "attached_gpus": 0, "gpus": []}
    evaluated, failures = check_gpus(data["gpus"], params)
    runtime = detect_container_runtime(params.get("containerd_config_paths") or [],
                                       params.get("toolkit_search_paths") or None)
    more, runtime_failures = check_runtime(runtime, params)
    evaluated += more
    failures.extend(runtime_failures)
    summary = summarize_host(data, evaluated, failures)
    return {
        "changed": False,
        "mode": "host",
        "nvidia_smi": path,
        "driver_version": data["driver_version"],
        "cuda_version": data["cuda_version"],
        "gpu_count": len(data["gpus"]),
        "gpus": data["gpus"],
        "container_runtime": runtime,
        "failed_checks": failures,
        "summary": summary,
        "msg": summary if not failures else f"{summary}: " + "; ".join(f["msg"] for f in failures),
    }
