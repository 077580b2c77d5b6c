# Front door of sophia_ai.platform. On a fresh machine: `make lab` (set-up + the main job on the local lab)
# and `make test` (set-up + every test). Both run scripts/setup.sh first; it is quick when nothing is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
SOPHIA_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sophia-platform
SOPHIA_COLLECTIONS := $(SOPHIA_CACHE)/collections/$(shell printf '%s' '$(ROOT)' | sha256sum | cut -c1-8)
VENV := $(ROOT)/.venv/bin
export SOPHIA_CACHE
export ANSIBLE_COLLECTIONS_PATH := $(SOPHIA_COLLECTIONS)
export ANSIBLE_FORCE_COLOR ?= 0
export PATH := $(VENV):$(SOPHIA_CACHE)/bin:$(PATH)

.PHONY: help setup lab report test lab-up lab-down swarm-lab-up phase1 phase2 phase3 lab-rollback retire-swarm constraints bench-gpu bench-convert bench-switch bench-audit bench-deploy bench-cutover gitops

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## install and build what the lab and the tests need (idempotent)
	@scripts/setup.sh

LAB_REPORT = $(SOPHIA_CACHE)/lab/migration/migration.json
lab: setup ## set-up, then the whole migration on the embedded local lab: the Swarm with the sample fleet and its front door, the lab cluster, phase 1 -> 2 -> 3, the migration report; last line REPORT=<path>
	@scripts/lab-cluster.sh up --gpu-nodes $(GPU_NODES) >/dev/null
	ansible-playbook -i inventories/lab playbooks/lab.yml
	ansible-playbook -i inventories/lab playbooks/migrate.yml
	@echo "REPORT=$(LAB_REPORT)"

GPU_NODES ?= 8
lab-up: setup ## start (or reuse) the lab cluster with GPU_NODES kwok GPU nodes; last line KUBECONFIG=<path>
	@scripts/lab-cluster.sh up --gpu-nodes $(GPU_NODES)

swarm-lab-up: setup ## start (or reuse) the multi-node Swarm lab (DinD manager + 2 workers, sample stack); last line DOCKER_HOST=<path>
	@scripts/swarm-lab.sh up

phase1: swarm-lab-up ## phase 1 (audit, stabilise, audit, report) on the multi-node Swarm lab, front door on port+20000; report in $(SOPHIA_CACHE)/lab/phase1
	ansible-playbook -i inventories/lab playbooks/phase1.yml -e phase1_docker_host=unix://$(SOPHIA_CACHE)/lab/swarm/manager/docker.sock \
	  -e lab_front_door_dir=$(SOPHIA_CACHE)/lab/swarm-front-door -e phase1_front_door_port_offset=20000

phase2: setup ## phase 2 on the lab: the lab cluster and `make lab`'s Swarm + front door, then playbooks/phase2.yml (non-critical services to the lab cluster); report in $(SOPHIA_CACHE)/lab/phase2
	@scripts/lab-cluster.sh up --gpu-nodes $(GPU_NODES) >/dev/null
	ansible-playbook -i inventories/lab playbooks/lab.yml
	ansible-playbook -i inventories/lab playbooks/phase2.yml

phase3: setup ## phase 2 (as make phase2), then playbooks/phase3.yml: every critical service cut over blue-green to the lab cluster, Swarm kept for the window; report in $(SOPHIA_CACHE)/lab/phase3
	@scripts/lab-cluster.sh up --gpu-nodes $(GPU_NODES) >/dev/null
	ansible-playbook -i inventories/lab playbooks/lab.yml
	ansible-playbook -i inventories/lab playbooks/phase2.yml
	ansible-playbook -i inventories/lab playbooks/phase3.yml

GITOPS_REPO_URL ?= https://git.example.com/sophia-ai/gitops.git
gitops: setup ## the sample stack as a Helm chart and a Kustomize tree per wave with Argo CD Applications (GITOPS_REPO_URL) in $(SOPHIA_CACHE)/lab/gitops, checked with helm lint/template and kubectl kustomize
	ansible-playbook playbooks/gitops_export.yml -e gitops_dir=$(SOPHIA_CACHE)/lab/gitops -e gitops_repo_url=$(GITOPS_REPO_URL)
	helm lint --strict $(SOPHIA_CACHE)/lab/gitops/export/helm/sophia-mcp
	set -o pipefail; helm template sophia $(SOPHIA_CACHE)/lab/gitops/export/helm/sophia-mcp | grep -c '^kind:' | sed 's/^/helm template: objects: /'
	set -o pipefail; $(SOPHIA_CACHE)/bin/kubernetes/kubectl kustomize $(SOPHIA_CACHE)/lab/gitops/export/kustomize | grep -c '^kind:' | sed 's/^/kubectl kustomize: objects: /'

.PHONY: ee awx
ee: setup ## build context of the AWX execution environment (execution-environment.yml: collection tarball, Python pins, kubectl and kompose) in $(SOPHIA_CACHE)/ee/context via ansible-builder create (EE_DIR overrides)
	@scripts/ee.sh $(or $(EE_DIR),$(SOPHIA_CACHE)/ee)

awx: ## regenerate awx/controller.json (awx import: project, inventories, job templates with surveys from the argument specs, workflow)
	PYTHONPATH=$(SOPHIA_COLLECTIONS) $(VENV)/python -m ansible_collections.sophia_ai.platform.plugins.module_utils._awx --root $(ROOT) --out awx/controller.json

lab-rollback: setup ## playbooks/rollback.yml on the lab: every service back to Swarm (SERVICES=all, or a name), then the migration report; last line REPORT=<path>
	ansible-playbook -i inventories/lab playbooks/rollback.yml -e rollback_services=$(or $(SERVICES),all)
	ansible-playbook -i inventories/lab playbooks/report.yml
	@echo "REPORT=$(LAB_REPORT)"

report: setup ## playbooks/report.yml on the lab: the migration report from the phase reports, the front door and the lab cluster; last line REPORT=<path>
	ansible-playbook -i inventories/lab playbooks/report.yml
	@echo "REPORT=$(LAB_REPORT)"

retire-swarm: setup ## playbooks/retire_swarm.yml on the lab: refuses while a rollback window is open (FORCE=true overrides)
	ansible-playbook -i inventories/lab playbooks/retire_swarm.yml -e retire_force=$(or $(FORCE),false)

lab-down: ## stop the lab cluster, the multi-node Swarm lab and the front door, remove the lab's stack and leave the Swarm (images and caches stay)
	-@for d in front-door swarm-front-door; do test -f $(SOPHIA_CACHE)/lab/$$d/haproxy.pid && kill $$(cat $(SOPHIA_CACHE)/lab/$$d/haproxy.pid) 2>/dev/null; done
	@scripts/lab-cluster.sh down
	-@scripts/swarm-lab.sh down
	-@docker stack rm sophia 2>/dev/null
	-@docker secret rm mcp_api_key 2>/dev/null
	-@docker swarm leave --force 2>/dev/null

test: setup ## set-up, then sanity, lint, unit, integration and molecule tests
	@scripts/test.sh

bench-gpu: setup ## gpu_node_check cluster mode over 10, 100 and 1,000 lab GPU nodes; last line JSON
	@$(VENV)/python benchmarks/gpu_check.py

bench-convert: setup ## compose_convert against bare kompose on 28 and 280 services; last line JSON
	@$(VENV)/python benchmarks/convert.py

bench-switch: setup ## traffic_switch: one service switched ten times under 50 MCP requests/s through the front door; last line JSON
	@$(VENV)/python benchmarks/switch.py

bench-audit: setup ## swarm_audit on the 28-service sample and a 280-service stack (0 replicas) against the docker CLI; last line JSON
	@$(VENV)/python benchmarks/audit.py

bench-deploy: setup ## mcp_deploy's apply (k8s_apply) against kubectl apply --server-side and a kubernetes.core.k8s loop, 28 and 280 services; last line JSON
	@$(VENV)/python benchmarks/deploy.py

bench-cutover: setup ## bluegreen_cutover Swarm -> K3s: promote, abort and rollback under 50 MCP requests/s through the front door; last line JSON
	@$(VENV)/python benchmarks/cutover.py

constraints: setup ## re-pin requirements/constraints.txt from the project virtualenv
	@{ echo "# Exact pins for requirements.txt (pip freeze of the project virtualenv; regenerate with 'make constraints')."; \
	   $(VENV)/pip freeze --all | grep -v -E '^(setuptools|wheel)=='; } > requirements/constraints.txt
