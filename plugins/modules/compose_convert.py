#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_convert
short_description: Convert Docker Swarm stack / Compose files into Kubernetes manifests, wrapping kompose
version_added: 0.1.0
author:
  - Sophia AI platform engineering (@sophia-ai)
description:
  - Loads one or more compose files (merged in order as C(docker stack deploy -c a.yml -c b.yml) merges them),
    interpolates them with compose semantics from O(env) and O(env_files), checks them, runs the real C(kompose)
    binary (1.38.0 or newer) on the keys it translates faithfully, and post-processes its output into the final
    manifests in O(dest) - exactly one Deployment (DaemonSet for C(deploy.mode=global)) per service, named as the
    service, plus its Service, PersistentVolumeClaims, ConfigMaps and Secrets.
  - Every compose key is either carried over or reported in RV(conversion_warnings) (and as an ansible warning),
    so nothing is dropped silently. The notes below list, key by key, what kompose 1.38.0 does with it (verified by
    running it) and what this module adds.
  - Bad input (invalid YAML, alias bombs, binary files, missing variables, invalid names, port clashes, bad GPU
    counts, ...) fails with a message naming the file, the line, the service and the key, and the fix; nothing is
    written then.
  - Every manifest is then checked against the Kubernetes OpenAPI schema of the target version (see O(validate)) and,
    when a cluster connection is given (O(kubeconfig), O(context) or O(host)), by a server-side dry run, one request
    per object (O(validate.server_dry_run)). Any error fails the task with the file, the object (kind and name), the JSON path and what is wrong,
    for every object, and nothing is written.
  - Why not kubernetes.core or community.docker, why a module of our own around kompose. C(kubernetes.core.k8s)
    applies manifests but does not produce them from compose files, and C(community.docker.docker_stack) deploys
    stacks to Swarm only. kompose converts, but drops or mistranslates the keys this fleet depends on (GPUs,
    readiness, restart policies, secret paths; see the notes). So this module runs kompose for what it does
    well and builds the rest itself. Apply the output with C(kubernetes.core.k8s) or C(kubectl apply -f dest).
  - Why its own validation instead of C(kubernetes.core.k8s)'s O(kubernetes.core.k8s#module:validate) or its check
    mode. That option needs the C(kubernetes-validate) library, which took 6.4 s for 840 objects on the lab
    machines and only knows the Kubernetes versions it bundles; this module compiles the schema of the target
    version once (under 0.3 s for 1,000 objects on the lab machines, compilation included) and checks the
    manifests before they are written, so a bad manifest never reaches O(dest). C(kubernetes.core.k8s) in check
    mode dry-runs manifests only once they are on disk, one O(kubernetes.core.k8s#module:src) file per task run.
extends_documentation_fragment:
  - sophia_ai.platform._connection
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.ACTIONGROUP_PLATFORM
attributes:
  check_mode:
    support: full
    details:
      - Converts and compares with O(dest) but writes nothing; C(changed) and RV(changed_files) say what a real run would change.
      - Validation and the server-side dry run run in check mode too (a dry run changes nothing in the cluster).
  diff_mode:
    support: full
    details:
      - One diff per changed, new or removed file. The data of Secret manifests is never shown.
  idempotent:
    support: full
    details:
      - The same input gives byte-identical files, so a second run reports no change.
options:
  src:
    description:
      - The compose files, merged in order as C(docker stack deploy -c a.yml -c b.yml) does (services merged by name,
        mappings key by key, a later scalar wins, lists appended except C(ports) (union), C(secrets)/C(configs)
        (by source), C(volumes) (by target) and C(command)/C(entrypoint)/C(healthcheck.test) (replaced)).
      - Relative paths inside them (config and secret files, C(env_file)) are relative to the first file's directory.
      - Each file may be at most 4 MiB, must be UTF-8 text, and may hold at most 10000 aliases, 64 levels of nesting
        and 500000 nodes once aliases are expanded.
    type: list
    elements: path
    required: true
  dest:
    description:
      - The directory that receives the manifests, one file per object, named C(<kind>-<name>.yaml) in lower case
        (for example C(deployment-mcp-gong.yaml), C(service-mcp-gong.yaml), C(configmap-mcp-common.yaml)), so an
        edit to one service changes only that service's files.
      - Created when missing. Other files in it are left alone. The files this module wrote are listed, with their
        SHA-256, in the index file C(.compose-convert.index) (JSON; its extension keeps C(kubectl apply -f) away
        from it). A file that an earlier run wrote and this run no longer produces is removed, unless it was edited
        since (then it is kept and reported).
      - Files are written into a temporary directory beside O(dest) and moved into place only when the whole
        conversion succeeded. Secret manifests are written with mode 0600.
    type: path
    required: true
  namespace:
    description: Namespace set on every object. Left out when not given (C(kubectl apply -n) decides).
    type: str
  env:
    description:
      - Variables for interpolation (C(${VAR}), C($VAR), C(${VAR:-default}), C(${VAR-default}), C(${VAR:?message}),
        C(${VAR?message}), C(${VAR:+replacement}), C($$) for a literal C($)) and for C(environment) entries without
        a value. They win over O(env_files).
      - The controller's own environment is never read, so the output does not depend on who runs the task.
    type: dict
    default: {}
  env_files:
    description: Files of C(KEY=VALUE) lines (as C(docker compose --env-file)) read in order before O(env).
    type: list
    elements: path
    default: []
  services:
    description: Convert only these services (all of them when empty). O(dest) then holds only their files.
    type: list
    elements: str
    default: []
  kompose_path:
    description:
      - Path of the kompose binary. When not given, C(kompose) on E(PATH), then C($SOPHIA_CACHE/bin/kompose)
        (C(make setup) builds it there) is used.
      - A missing binary or one older than 1.38.0 fails with instructions to install it.
    type: path
  labels:
    description: Extra labels for every object and pod template.
    type: dict
    default: {}
  annotations:
    description: Extra annotations for every object and pod template.
    type: dict
    default: {}
  gpu_node_label:
    description: The C(KEY=VALUE) node label of GPU nodes; pods that ask for GPUs get it as a node selector.
    type: str
    default: gpu=true
  gpus_per_node:
    description:
      - GPUs on each GPU node. Needed only for GPU reservations with C(count=all), which become this many GPUs;
        without it such a reservation fails with a clear message.
    type: int
  storage_class:
    description: C(storageClassName) of the PersistentVolumeClaims made from named volumes (the cluster default when not given).
    type: str
  default_criticality:
    description: C(sophia.ai/criticality) of services that carry no such label (the careful path by default).
    type: str
    choices: [critical, non-critical]
    default: critical
  validate:
    description:
      - How the manifests are checked before anything is written. Validation is on by default.
      - The cluster connection options (O(kubeconfig), O(context), O(host), O(api_key), ...) are used only here.
        The module contacts a cluster only when one of them is set, or O(validate.server_dry_run=true) or
        O(validate.schema=server) asks for it (the connection then falls back to E(KUBECONFIG), C(~/.kube/config)
        or the in-cluster service account, as for the other modules of the collection).
    type: dict
    default: {}
    suboptions:
      schema:
        description:
          - Where the Kubernetes OpenAPI v3 schema comes from.
          - V(auto) - the API server's (C(/openapi/v3) and the per-group documents it lists) when the module contacts a
            cluster (see O(validate)), else the C(api/openapi-spec/v3) directory of C(k8s.io/kubernetes) v1.34.4 (the lab's version) in
            the Go module cache that C(make setup) fills (C($SOPHIA_CACHE/go/mod/k8s.io/kubernetes@v1.34.4/api/openapi-spec/v3),
            C(SOPHIA_CACHE) defaulting to C(~/.cache/sophia-platform)); when neither is there the task fails and says what to give.
          - V(server) - the API server's. Its documents also list the allowed values of
            enumerations (C(imagePullPolicy), C(strategy.type), ...), which the files of C(k8s.io/kubernetes) leave out.
          - A path - a directory of OpenAPI v3 files as C(k8s.io/kubernetes) ships them in C(api/openapi-spec/v3)
            (C(api__v1_openapi.json), C(apis__apps__v1_openapi.json), ...), at the version of the target cluster.
            For example C(go mod download k8s.io/kubernetes@v1.33.5) and use C($(go env GOMODCACHE)/k8s.io/kubernetes@v1.33.5/api/openapi-spec/v3).
          - V(none) - no schema check.
          - No schema file is shipped with the collection.
        type: str
        default: auto
      server_dry_run:
        description:
          - Send every object to the API server as a server-side apply with C(dryRun=All), C(force=true) and
            C(fieldValidation=Strict) (one request per object, up to 8 at a time; nothing is stored), so that the API
            server's own validation and admission (quotas, limit ranges, policies) judge them. Errors are reported per
            object; nothing is written when any object is refused.
          - Objects without a namespace (no O(namespace)) are sent to the C(default) namespace.
          - A namespace that does not exist yet is checked with a dry run of its creation and listed in
            RV(prerequisites); the objects in it are checked against the schema only (the API server refuses even a
            dry run into a missing namespace), with a warning.
          - Defaults to V(true) when the module contacts a cluster (a connection option set, or O(validate.schema=server)),
            else V(false).
        type: bool
      cache_dir:
        description:
          - Directory of compiled schema tables, one small JSON file per OpenAPI document, named by the document's
            hash (SHA-256 of a file, or the hash the API server publishes), so a document is compiled once.
          - Defaults to C($SOPHIA_CACHE/openapi) (C(~/.cache/sophia-platform/openapi)). A directory that cannot be
            written only makes validation slower.
        type: path
notes:
  - "C(healthcheck): kompose 1.38.0 makes a livenessProbe only, passes a C(CMD-SHELL) command as one argv word
    without a shell (so it cannot run), and panics on a healthcheck without test. This module makes readiness
    and liveness probes (period = C(interval), timeout = C(timeout), failureThreshold = C(retries), Docker's defaults
    30s/30s/3), and a startupProbe when C(start_period) is set that checks as Docker does during the start period:
    every C(start_interval) (Docker's default 5s), for as long as Docker waits (failureThreshold = ceil((start_period +
    retries x interval) / start_interval)); a container that passes once is ready at once. The handler is
    C(httpGet) when the test is a plain request to localhost (C(curl -f URL), C(wget URL)),
    C(tcpSocket) for C(nc -z localhost PORT), C(exec) otherwise (C(CMD) as argv, C(CMD-SHELL) through C(/bin/sh -c));
    the sample fleet's C(mcp-healthcheck) script stays an exec probe. C(disable: true) or C([NONE]) gives no probes."
  - "GPUs: kompose drops C(deploy.resources.reservations.devices) and C(generic_resources) without a word. This
    module turns devices with C(driver: nvidia) (or capability C(gpu)) and Swarm generic resources of kind
    C(NVIDIA-GPU), C(GPU) or C(nvidia.com/gpu) into C(resources.limits[nvidia.com/gpu]), C(runtimeClassName: nvidia),
    a node selector on O(gpu_node_label) and a toleration of the C(nvidia.com/gpu) taint. C(device_ids) become a
    count (with a warning: Kubernetes cannot pin device ids); C(count: all) needs O(gpus_per_node). A fixed
    C(NVIDIA_VISIBLE_DEVICES) in a GPU service's environment is left out (with a warning): it would bypass the
    device plugin's allocation."
  - "C(deploy.placement.constraints): kompose maps only C(node.hostname), C(node.labels.X) and
    C(engine.labels.operatingsystem), only with spaces around the operator, and always as required node affinity.
    This module maps C(node.labels.X == Y) to C(nodeSelector) (C(!=) to a C(NotIn) node affinity expression),
    C(node.hostname) to C(kubernetes.io/hostname), C(node.platform.os) to C(kubernetes.io/os), C(node.platform.arch)
    to C(kubernetes.io/arch) (x86_64 -> amd64, aarch64 -> arm64), C(node.role == manager) / C(worker) to
    C(node-role.kubernetes.io/control-plane) C(Exists) / C(DoesNotExist); C(node.id) and other engine labels are
    reported. C(preferences) (spread) become topologySpreadConstraints (C(ScheduleAnyway)) as in kompose;
    C(max_replicas_per_node: 1) becomes a required pod anti-affinity on the host name."
  - "C(deploy.update_config): kompose uses only C(parallelism) and C(order). This module maps C(order: stop-first)
    (Swarm's default) to C(maxSurge 0 / maxUnavailable parallelism), C(start-first) to C(maxSurge parallelism /
    maxUnavailable 0) (C(parallelism: 0) means 100%), and C(delay) + C(monitor) to C(minReadySeconds). A service with
    a PVC gets C(strategy: Recreate) (ReadWriteOnce) and no C(rollingUpdate) (kompose can emit both, which the API
    rejects). C(failure_action: rollback), C(max_failure_ratio) and a C(rollback_config) that differs from
    C(update_config) are reported: Deployments never roll back by themselves."
  - "C(deploy.mode: global) -> DaemonSet (as kompose). C(deploy.restart_policy) and C(restart): kompose turns
    C(on-failure) and C(none)/C(no) into a bare Pod (and a DaemonSet with C(restartPolicy: Never), which the API
    rejects); this module always makes the Deployment or DaemonSet with C(restartPolicy: Always) and reports the
    condition, C(delay), C(max_attempts) and C(window) it could not carry over. Job modes fail with a message."
  - "C(deploy.resources): cpu and memory limits and reservations -> limits and requests (kompose). C(pids) and other
    keys are reported."
  - "C(secrets) and C(configs): kompose ignores external secrets but still mounts them, mounts a secret over
    C(/run/secrets) itself (or over the target's directory, e.g. all of C(/etc)), and drops external configs.
    This module mounts each one as a single file (C(subPath)) at Swarm's path (C(/run/secrets/<target>) for
    secrets, C(/<source>) or the target for configs), read-only, with its C(mode). File, C(content) and
    C(environment) sources become Secret / ConfigMap manifests (the key is the file's base name, else the compose
    name); external ones are referenced, never embedded, and listed in RV(prerequisites) with the key they must
    hold. C(uid)/C(gid) are reported."
  - "C(env_file): kompose makes a ConfigMap per file (and reads unset C(environment) entries from its own process
    environment). This module reads the files and puts their variables into the container's C(env) as
    C(docker stack deploy) does (C(environment) wins); entries without a value come from O(env), else are reported.
    C($) in values, commands and arguments is written as C($$) so that Kubernetes does not expand $(VAR)."
  - "C(command) / C(entrypoint): kompose rewrites C($VAR) in them into Kubernetes' $(VAR), which the kubelet
    expands from the pod's env only (so C(sh -c 'echo $HOME') loses the shell's expansion). This module writes
    them as compose gives them (a string split shell-like), C(entrypoint) as C(command) and C(command) as C(args)."
  - "Volumes: named volumes -> PersistentVolumeClaims (kompose; 100Mi, ReadWriteOnce, ReadOnlyMany for C(:ro),
    size from the C(kompose.volume.size) label) with O(storage_class); external named volumes are listed in
    RV(prerequisites) instead. kompose also makes a PVC for each bind mount and tmpfs; this module does not: tmpfs
    (and C(tmpfs:), C(shm_size) at C(/dev/shm)) become memory-backed emptyDirs, anonymous volumes emptyDirs, and
    bind mounts are reported."
  - "Ports: kompose makes a Service with a port per published port (duplicating one that is also in C(expose)) and
    forces type NodePort for C(endpoint_mode: vip). This module removes duplicate ports and picks the type from the
    port mode: C(ingress) (the routing mesh) -> C(LoadBalancer) (K3s's ServiceLB answers on every node, like the
    mesh), C(host) -> C(ClusterIP) (reported: no hostPort, so K3s can run beside Swarm on the same hosts). A
    C(kompose.service.type) label still wins. C(host_ip) is reported. C(deploy.endpoint_mode) (C(vip) or C(dnsrr))
    needs no translation: clients reach the Service by the service's name either way."
  - "C(sophia.ai/criticality) (C(critical) / C(non-critical), under C(deploy.labels) or C(labels)): kompose copies
    C(deploy.labels) to the workload only and C(labels) to annotations. This module sets the Kubernetes label on
    the workload, its pod template and its Service (unlabelled services get O(default_criticality)), so later waves
    and blue-green cutovers can select on it. Other C(labels) stay annotations, C(deploy.labels) workload labels."
  - "C(networks): pods share one flat network and reach each other through Services named as the services, so
    network membership needs no translation; per-network settings (C(aliases), C(ipv4_address)) are reported.
    C(depends_on), C(logging), C(ulimits), C(sysctls), C(dns), C(extra_hosts), C(devices), C(security_opt), C(build)
    and any other service or top-level key are reported (top-level C(version), C(name) and C(x-) extensions are
    read, not reported). kompose's own warnings are passed on, but for the ones about keys handled here."
  - "Output is deterministic: no C(kompose.cmd)/C(kompose.version) annotations, no timestamps, kompose runs with an
    empty environment, keys are sorted, and the files' bytes depend only on the input."
  - "Speed: kompose 1.38.0 runs C(kompose version) three times per service for its C(kompose.version) annotation,
    even when the annotation is off. This module runs kompose with an empty C(PATH), so those calls fail at once and
    are ignored (same bytes out): the kompose step takes about 0.25 s instead of 2.8 s for the 28-service sample
    stack on the lab machines."
  - "Validation (O(validate)): the schema check covers types (with the int32/int64 ranges), required fields,
    unknown fields (where the schema lists the fields and allows no others: the API server's strict field validation),
    maps, int-or-string values, resource quantities, base64 data, enumerations (schemas from the API server), and the
    list semantics server-side apply enforces (no two entries with the same key in C(ports), C(env), ...). It does not
    run the API server's own checks (name and label syntax, cross-field rules, CEL rules); the server-side dry run
    does. Only the documents of the apiVersions in use are read (C(api/v1), C(apis/apps/v1))."
  - "Schema sources supported: the API server of a cluster (C(/openapi/v3)), and a directory of C(k8s.io/kubernetes)'s
    C(api/openapi-spec/v3) files at any version (the set-up step's Go module cache holds v1.34.4's). Swagger 2.0
    (C(/openapi/v2), C(swagger.json)) is not read."
seealso:
  - name: kompose
    description: The converter this module wraps.
    link: https://kompose.io/
  - module: kubernetes.core.k8s
    description: Applies the manifests this module writes.
"""

EXAMPLES = r"""
- name: Convert the Sophia MCP stack into manifests
  sophia_ai.platform.compose_convert:
    src:
      - examples/sophia-mcp-stack.yml
    dest: build/manifests
    namespace: sophia
    env:
      MCP_IMAGE_TAG: "2026.11.1"
  register: converted

- name: Convert, check against the cluster's own schema and dry-run every object there (nothing is stored)
  sophia_ai.platform.compose_convert:
    src:
      - examples/sophia-mcp-stack.yml
    dest: build/manifests
    namespace: sophia
    kubeconfig: ~/.kube/k3s.yaml
  register: converted

- name: Convert offline against the OpenAPI files of a given Kubernetes version
  sophia_ai.platform.compose_convert:
    src:
      - examples/sophia-mcp-stack.yml
    dest: build/manifests
    validate:
      schema: ~/.cache/sophia-platform/go/mod/k8s.io/kubernetes@v1.34.4/api/openapi-spec/v3

- name: Show what must exist in the cluster first (external secrets)
  ansible.builtin.debug:
    var: converted.prerequisites

- name: Preview the change for one service with per-file diffs, writing nothing
  sophia_ai.platform.compose_convert:
    src:
      - examples/sophia-mcp-stack.yml
      - overrides/production.yml
    dest: build/manifests
    services: [mcp-gong]
    storage_class: local-path
    gpus_per_node: 8
  check_mode: true
  diff: true
"""

RETURN = r"""
dest:
  description: The directory of manifests.
  returned: always
  type: str
  sample: build/manifests
files:
  description: Every file this run produced (relative to O(dest)), changed or not.
  returned: always
  type: list
  elements: str
  sample: [configmap-mcp-common.yaml, deployment-mcp-gong.yaml, service-mcp-gong.yaml]
changed_files:
  description: Files that were (in check mode, would be) written because they are new or differ.
  returned: always
  type: list
  elements: str
  sample: [deployment-mcp-gong.yaml]
removed_files:
  description: Files an earlier run wrote that are no longer produced and were (would be) removed.
  returned: always
  type: list
  elements: str
  sample: []
services:
  description: Per service, what it became.
  returned: always
  type: dict
  sample:
    mcp-llm-gateway:
      kind: Deployment
      replicas: 1
      ports: [{target: 9025, published: 9025, protocol: tcp, mode: host}]
      service_type: ClusterIP
      gpus: 1
      probes: [startup, readiness, liveness]
      probe_handler: exec
      node_selector: {gpu: "true"}
      criticality: critical
      files: [configmap-mcp-common.yaml, deployment-mcp-llm-gateway.yaml, service-mcp-llm-gateway.yaml]
  contains:
    kind:
      description: C(Deployment) or C(DaemonSet).
      type: str
      sample: Deployment
    replicas:
      description: Replicas of a Deployment (null for a DaemonSet).
      type: int
      sample: 1
    ports:
      description: The published ports as compose declared them.
      type: list
      elements: dict
      sample: [{target: 9025, published: 9025, protocol: tcp, mode: host}]
    service_type:
      description: Type of the Service (null when the service publishes no port).
      type: str
      sample: ClusterIP
    gpus:
      description: C(nvidia.com/gpu) asked for (0 for none).
      type: int
      sample: 1
    probes:
      description: The probes made from the healthcheck.
      type: list
      elements: str
      sample: [startup, readiness, liveness]
    probe_handler:
      description: C(exec), C(httpGet) or C(tcpSocket) (null without probes).
      type: str
      sample: exec
    node_selector:
      description: The pod's node selector.
      type: dict
      sample: {gpu: "true"}
    criticality:
      description: The C(sophia.ai/criticality) label.
      type: str
      sample: critical
    files:
      description: The files that hold the service's objects (shared ConfigMaps/Secrets/PVCs included).
      type: list
      elements: str
      sample: [deployment-mcp-gong.yaml, service-mcp-gong.yaml]
prerequisites:
  description: Objects the manifests reference but do not contain (external secrets, configs and volumes); create them first.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: Secret
      name: mcp-api-key
      keys: [mcp_api_key]
      services: [mcp-github, mcp-gong]
      compose: secrets.mcp_api_key (external)
conversion_warnings:
  description: One entry per compose key (per service) that was not carried over, or only in part, and why.
  returned: always
  type: list
  elements: dict
  sample:
    - service: mcp-gong
      key: deploy.restart_policy.delay
      message: "not carried over: the kubelet restarts with its own back-off"
validation:
  description: What was checked.
  returned: always
  type: dict
  sample:
    objects: 57
    schema: /root/.cache/sophia-platform/go/mod/k8s.io/kubernetes@v1.34.4/api/openapi-spec/v3
    schema_source: directory
    documents: [api/v1, apis/apps/v1]
    cache: {dir: /root/.cache/sophia-platform/openapi, hits: 2, misses: 0}
    server_dry_run: {objects: 57, accepted: 57, skipped: 0, namespaces_missing: [], api_calls: 58}
  contains:
    objects:
      description: Manifests produced (and checked).
      type: int
    schema:
      description: The schema directory, or the API server's URL; null when O(validate.schema=none).
      type: str
    schema_source:
      description: C(directory), C(server) or C(none).
      type: str
    documents:
      description: The OpenAPI documents read (group-version paths).
      type: list
      elements: str
    cache:
      description: The cache directory and how many documents came from it (hits) or were compiled (misses).
      type: dict
    server_dry_run:
      description:
        - Objects sent to the server-side dry run, accepted, skipped (in a namespace that does not exist yet), the
          missing namespaces, and the API requests it took. Null when no dry run ran.
      type: dict
    api_calls:
      description: HTTP requests sent to the API server in all (schema documents and dry run); absent without a connection.
      type: int
validation_errors:
  description:
    - Returned with the failure when validation fails (nothing is written then); one entry per error, all of them.
    - C(check) is C(schema) or C(server_dry_run); dry-run errors also carry the HTTP C(status) and C(reason).
  returned: failure
  type: list
  elements: dict
  sample:
    - file: deployment-mcp-gong.yaml
      kind: Deployment
      name: mcp-gong
      path: spec.template.spec.containers[0].ports[0].containerPort
      message: 'expected integer (int32), got string "9005"'
      check: schema
kompose:
  description: The kompose binary that ran.
  returned: always
  type: dict
  sample: {path: /root/.cache/sophia-platform/bin/kompose, version: 1.38.0}
timings:
  description:
    - Seconds spent loading and checking the compose files, in kompose, post-processing and writing, and validating
      (C(validation_s) in all; within it C(schema_s) to load or compile the schema, C(validate_s) to check the
      objects, C(dry_run_s) for the server-side dry run).
  returned: always
  type: dict
  sample: {load_s: 0.03, kompose_s: 0.25, post_s: 0.05, validation_s: 0.03, schema_s: 0.02, validate_s: 0.004, total_s: 0.36}
msg:
  description: What happened, in one line.
  returned: always
  type: str
  sample: 28 services converted into 57 files in build/manifests; changed 57
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._args import connection_spec
from ansible_collections.sophia_ai.platform.plugins.module_utils._compose_convert import grouped_warnings, run
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError


def argument_spec():
    spec = connection_spec()
    spec.update({
        "src": {"type": "list", "elements": "path", "required": True},
        "dest": {"type": "path", "required": True},
        "namespace": {"type": "str"},
        "env": {"type": "dict", "default": {}},
        "env_files": {"type": "list", "elements": "path", "default": []},
        "services": {"type": "list", "elements": "str", "default": []},
        "kompose_path": {"type": "path"},
        "labels": {"type": "dict", "default": {}},
        "annotations": {"type": "dict", "default": {}},
        "gpu_node_label": {"type": "str", "default": "gpu=true"},
        "gpus_per_node": {"type": "int"},
        "storage_class": {"type": "str"},
        "default_criticality": {"type": "str", "choices": ["critical", "non-critical"], "default": "critical"},
        "validate": {"type": "dict", "default": {}, "options": {
            "schema": {"type": "str", "default": "auto"},
            "server_dry_run": {"type": "bool"},
            "cache_dir": {"type": "path"},
        }},
    })
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, check_mode=module.check_mode, want_diff=module._diff)
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for line in grouped_warnings(result["conversion_warnings"]):
        module.warn(line)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
