#!/usr/bin/env bash
# Runs gpu_node_check (mode: host) through ansible-playbook on a real NVIDIA GPU host, and captures that
# host's nvidia-smi output as fixtures. Not part of `make test` (CI has no GPU): run on a machine with a
# GPU and the wheels of ansible-core and its needs under .whl/ (see tests/device/README.md).
# Writes to $OUT (default ./device-out): run.log, results.json, captures.tar.gz.
set -u
OUT=${OUT:-$PWD/device-out}; mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
  export PATH=/tmp/site/bin:$PATH
fi
root=$(mktemp -d); mkdir -p "$root/ansible_collections/sophia_ai"
tar --exclude=.git --exclude=.whl --exclude=.venv -cf - . | (mkdir "$root/ansible_collections/sophia_ai/platform" && cd "$root/ansible_collections/sophia_ai/platform" && tar xf -)
export ANSIBLE_COLLECTIONS_PATH=$root ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
ANSIBLE_PYTHON_INTERPRETER=$(command -v python3)
export ANSIBLE_PYTHON_INTERPRETER ANSIBLE_STDOUT_CALLBACK=ansible.builtin.default

cap=$root/captures; mkdir -p "$cap"
nvidia-smi > "$cap/nvidia-smi.txt" 2>&1
nvidia-smi -L > "$cap/nvidia-smi-L.txt" 2>&1
nvidia-smi -q > "$cap/nvidia-smi-q.txt" 2>&1
nvidia-smi -q -x > "$cap/nvidia-smi-q.xml" 2>&1
nvidia-smi -q -d ECC > "$cap/q-ecc.txt" 2>&1
nvidia-smi -q -d PERFORMANCE > "$cap/q-perf.txt" 2>&1
fields=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw,power.limit,ecc.errors.uncorrected.volatile.total,ecc.mode.current,mig.mode.current,persistence_mode,compute_mode,clocks.current.sm,clocks.max.sm
nvidia-smi --query-gpu=$fields --format=csv,noheader > "$cap/query-gpu.csv" 2>&1
nvidia-smi --query-gpu=$fields --format=csv > "$cap/query-gpu-with-header.csv" 2>&1
module_fields=$(PYTHONPATH=$root python3 -c 'from ansible_collections.sophia_ai.platform.plugins.module_utils import _nvidia_smi as n; print(",".join(n.QUERY_FIELDS))')
nvidia-smi --query-gpu="$module_fields" --format=csv,nounits > "$cap/query-gpu-module.csv" 2>&1
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv > "$cap/compute-apps.csv" 2>&1
nvidia-smi topo -m > "$cap/topo.txt" 2>&1
{ cat /proc/driver/nvidia/version; uname -a; cat /etc/os-release; ls -l /dev/nvidia*; command -v nvidia-persistenced nvcc nvidia-container-toolkit nvidia-ctk; } > "$cap/host-facts.txt" 2>&1
tar -C "$root" -czf "$OUT/captures.tar.gz" captures
ansible --version | head -2

cat > "$root/play.yml" <<'YAML'
- name: gpu_node_check on a real GPU host
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Host mode, XML, the production checks
      sophia_ai.platform.gpu_node_check:
        mode: host
        expected_gpu_count: 1
        product: H100|H200|GH200
        min_driver_version: "550.54.15"
        min_cuda_version: "12.4"
        max_ecc_uncorrected: 0
        mig_mode: disabled
        max_temperature: 85
        fail_on_check: false
      register: xml_run
    - name: Host mode, CSV
      sophia_ai.platform.gpu_node_check:
        mode: host
        query: csv
        expected_gpu_count: 1
        min_driver_version: "550.54.15"
        fail_on_check: false
      register: csv_run
    - name: Wrong count and a toolkit that is not there must fail, naming the fix
      sophia_ai.platform.gpu_node_check:
        mode: host
        expected_gpu_count: 8
        require_container_toolkit: true
      register: failing_run
      ignore_errors: true
    - name: Check mode gives the same facts
      sophia_ai.platform.gpu_node_check:
        mode: host
      check_mode: true
      register: check_run
    - name: Results
      ansible.builtin.copy:
        dest: "{{ lookup('env', 'OUT') }}/results.json"
        content: "{{ {'xml': xml_run, 'csv': csv_run, 'failing': failing_run, 'check': check_run} | to_nice_json }}"
        mode: "0644"
YAML
time ansible-playbook -i localhost, "$root/play.yml"; echo "playbook rc=$?"

# Parse time of each query form, in process (20 runs each), against the same nvidia-smi.
PYTHONPATH=$root:${PYTHONPATH:-} python3 - <<'PY'
import json, statistics, subprocess, time
from ansible_collections.sophia_ai.platform.plugins.module_utils import _nvidia_smi as n
def timed(argv, parse):
    runs = []
    for _ in range(20):
        t = time.perf_counter(); out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        t1 = time.perf_counter(); facts = parse(out); t2 = time.perf_counter()
        runs.append((t1 - t, t2 - t1))
    return {"run_ms": round(statistics.median(r[0] for r in runs) * 1000, 1),
            "parse_ms": round(statistics.median(r[1] for r in runs) * 1000, 3), "gpus": len(facts["gpus"])}
res = {"xml": timed(["nvidia-smi", "-q", "-x"], n.parse_xml),
       "csv": timed(["nvidia-smi", f"--query-gpu={','.join(n.QUERY_FIELDS)}", "--format=csv,nounits"],
                    n.parse_query_csv)}
print("QUERY_TIMES " + json.dumps(res))
PY
