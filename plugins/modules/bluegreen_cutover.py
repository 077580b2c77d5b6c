#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bluegreen_cutover
short_description: Blue-green cutover of an MCP service, in the cluster or from Swarm to K3s, without a controller
version_added: 0.1.0
author:
  - Sophia AI platform engineering (@sophia-ai)
description:
  - Moves a service from its running version (I(blue)) to a new one (I(green)) with the semantics of Argo Rollouts'
    blue-green strategy - an active and a preview service, pre- and post-promotion checks, auto-promotion on or off,
    a scale-down delay (here O(rollback_window)) during which blue stays at full scale, and abort - but with no
    controller in the cluster. Every step happens inside one module run.
  - The cutover's state lives in annotations on the active Service (C(sophia.ai/bluegreen-state), C(-active),
    C(-blue), C(-green), C(-window-end), C(-history)). Each run reads the live objects and the recorded state, plans
    only the steps still missing and runs them, so a rerun converges, also after a run was cut off (for example
    while the API server restarted). Requests the API server cannot answer are retried for up to 60 s.
  - I(in_cluster) (O(mode=in_cluster)) - blue is the Deployment whose pods the active Service O(name) selects.
    Green is blue's pod template with O(image) and / or O(env) set on O(container) (or O(template)), as Deployment
    C(<name>-<revision>) (I(revision) - the first 10 hex digits of the sha256 of green's pod template), whose
    selector and pod labels are blue's plus C(sophia.ai/bluegreen-revision=<revision>), so NetworkPolicies and
    PodDisruptionBudgets that select blue's labels cover green. Before green's pods exist the active Service's
    selector is pinned to blue's pods (blue's current ReplicaSet's C(pod-template-hash) at the first cutover, the
    revision label later), which changes no traffic. Then green is applied, waited for (O(ready_timeout)),
    O(preview_service) is pointed at it, the pre-promotion checks run, and the switch is B(one) server-side apply of
    the active Service's C(spec.selector) (and the state annotations) under the field manager
    C(sophia-bluegreen-cutover), which owns the selector from then on (role C(mcp_deploy)'s C(k8s_apply) leaves it
    alone). The module waits until the Service's EndpointSlices list only green's pods (RV(switch_seconds)), runs
    the post-promotion checks, and keeps blue at full scale until the rollback window ends.
  - I(swarm_to_k3s) (O(mode=swarm_to_k3s)) - blue is the Swarm service O(swarm_service), green the K3s Deployment
    O(deployment) behind the K3s Service O(name) (role C(mcp_deploy) applied both; a green at 0 replicas is scaled to
    O(replicas)). The switch is the front door's (role C(front_door)) - what C(sophia_ai.platform.traffic_switch)
    does - all of backend O(name)'s traffic to its C(k3s) servers, with the health gate, drain of the C(swarm)
    servers and the server-state file. The Swarm service is not changed before O(state=completed), which scales it
    to 0 replicas (its removal is C(playbooks/retire_swarm.yml)'s job).
  - A failed check aborts before the switch (pre) or rolls back automatically after it (post) B(before) the task
    fails, so blue serves when it fails; the result says C(aborted) or C(rolled_back). Abort and rollback put the
    selector (or the front door) back to blue in one step and scale green to 0 after O(abort_scale_down_delay)
    (in swarm_to_k3s only a green that this module scaled up is scaled back down).
  - GPUs - before green is created or scaled up, the GPUs it needs (replicas times the pod's C(nvidia.com/gpu)
    request) are compared with the free GPUs (allocatable minus the requests of non-terminated pods) on the Ready,
    schedulable nodes that match green's C(nodeSelector) and whose C(NoSchedule) / C(NoExecute) taints green
    tolerates, pod by pod and node by node. Short, the task fails with the figures, or with
    O(gpu_shortfall=reduce) runs a smaller green and warns. Node affinity is not evaluated.
  - Why our own module - Argo Rollouts needs its controller and CRDs in the cluster, and neither it nor
    C(kubernetes.core.k8s) can cut over from a Swarm service at a HAProxy front door. A cutover built from
    C(kubernetes.core.k8s) tasks would apply the Service selector under the task's field manager (so the next
    C(mcp_deploy) run would take it back or conflict), keep no state a rerun could converge from, re-read each
    object per task, and cannot roll back automatically inside the failing task. C(community.docker) does not drive
    the front door. We reuse the collection's own C(traffic_switch) logic (C(_haproxy)), C(mcp_probe) (C(_mcp)),
    C(k8s_apply)'s rollout reading and C(gpu_node_check)'s GPU arithmetic.
extends_documentation_fragment:
  - sophia_ai.platform._connection
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.ACTIONGROUP_PLATFORM
attributes:
  check_mode:
    support: full
    details:
      - Reads every object (Services, Deployments, ReplicaSets, the front door's backend, the Swarm service) and
        changes nothing; RV(actions) lists the steps a real run would take and C(changed) is true when one of them
        writes. Checks are not run and the GPU fit is not computed in check mode.
  diff_mode:
    support: full
    details:
      - Before and after of the active side (revision, or V(swarm) / V(k3s)), the state annotation, and blue's and
        green's replicas (and the front door's weights in swarm_to_k3s).
  idempotent:
    support: full
    details:
      - A rerun of V(promoted) with the same green while the window is open sends no write and reports no change;
        reruns of V(aborted) and V(rolled_back) report no change. A rerun never moves traffic away from the side
        that the recorded state says is active unless O(state) asks for it.
options:
  name:
    description:
      - The service. In-cluster, the active Kubernetes Service's name. Swarm to K3s, the front door's backend,
        which has the name of the service's K3s Service.
    type: str
    required: true
  namespace:
    description:
      - The namespace of the Service and the Deployments (role C(mcp_deploy)'s C(mcp_deploy_namespace)).
    type: str
    default: sophia-mcp
  mode:
    description:
      - V(in_cluster) - a new version of a K3s service (blue and green are Deployments).
      - V(swarm_to_k3s) - the move from the Swarm service to its K3s Deployment at the front door.
    type: str
    choices: [in_cluster, swarm_to_k3s]
    default: in_cluster
  state:
    description:
      - V(promoted) - green is active (or, with O(auto_promotion=false), previewed and paused). A rerun after the
        rollback window ended scales blue down and records V(completed).
      - V(aborted) - green leaves (or never takes) traffic, blue is active, green at 0.
      - V(rolled_back) - the same after a promotion, within the window (after it with O(force)).
      - V(completed) - the window is closed and blue scaled to 0 (or deleted, O(blue_scale_down)); before the
        window ends it fails naming the end time unless O(force).
    type: str
    choices: [promoted, aborted, rolled_back, completed]
    default: promoted
  auto_promotion:
    description:
      - With V(false) the run stops once green is ready, the preview points at it and the pre-promotion checks
        passed (RV(phase) V(preview), RV(paused) true); a later run with V(true) promotes.
    type: bool
    default: true
  rollback_window:
    description:
      - How long blue stays at full scale after the switch (Argo's C(scaleDownDelaySeconds)), as V(90s), V(30m),
        V(2h), V(1h30m) or seconds. Its end is recorded in C(sophia.ai/bluegreen-window-end).
    type: raw
    default: 2h
  pre_promotion_checks:
    description:
      - Checks against green before the switch; a failure aborts. Each is a mapping with C(name) and C(type).
      - "C(type: http) - C(target) (V(preview), the default before the switch; V(active), the default after it; or an
        absolute URL), C(path) (default V(/readyz)), C(status) (default V(200)), C(timeout) (s, default 5),
        C(attempts) (default 3, 1 s apart)."
      - "C(type: mcp) - an MCP probe (what C(sophia_ai.platform.mcp_probe) does): C(target), C(path) (default
        V(/mcp)), C(tools) (names that must be listed), C(timeout), C(attempts)."
      - "C(duration) (http and mcp) - a soak: once passed, the check runs again every second and must keep passing
        for this long (V(30s), V(2m), or seconds); its first failure fails the check. Without it a check passes
        on its first good answer."
      - "C(type: job) - in_cluster only: C(job) (a Job C(spec)) is created in O(namespace) with C(generateName)
        C(<name>-check-), must succeed within C(timeout) (default 120 s) and is deleted afterwards."
      - In-cluster V(preview) and V(active) are the preview and active Services' ClusterIP and first port, which
        the controller must reach; otherwise give a URL or use a job. Swarm to K3s, V(preview) is each C(k3s)
        server of the front door's backend and V(active) is O(front_door_url).
    type: list
    elements: dict
    default: []
  post_promotion_checks:
    description:
      - Checks after the switch, as in O(pre_promotion_checks) (C(target) defaults to V(active)); a failure rolls
        back to blue before the task fails.
    type: list
    elements: dict
    default: []
  ready_timeout:
    description:
      - Seconds green has to become available (and, swarm_to_k3s, to pass the front door's health check); else the
        cutover is aborted with reason V(green_not_ready).
    type: int
    default: 300
  gpu_shortfall:
    description:
      - V(fail) - fail with the figures (needed, free, per node) when green's GPUs do not fit.
      - V(reduce) - run green with as many replicas as fit (at least 1) and warn; RV(gpu) says C(reduced).
    type: str
    choices: [fail, reduce]
    default: fail
  reason:
    description:
      - Recorded in the history for an abort, a rollback or a completion.
    type: str
  force:
    description:
      - Allow O(state=completed) before the window ends, and O(state=rolled_back) (or V(aborted)) after it ended,
        scaling blue back up and waiting for it first.
    type: bool
    default: false
  abort_scale_down_delay:
    description:
      - After a switch back to blue, how long green keeps running before it is scaled to 0 (Argo's
        C(abortScaleDownDelaySeconds)), so that connections kube-proxy or the front door still sends to green end.
        Duration as in O(rollback_window).
    type: raw
    default: 5s
  image:
    description:
      - In-cluster - green's image, set on O(container) of blue's pod template. One of O(image), O(env), O(template)
        is needed to promote.
    type: str
  container:
    description:
      - In-cluster - the container that O(image) and O(env) apply to; the first container when not set.
    type: str
  env:
    description:
      - In-cluster - environment variables merged by name into O(container)'s C(env).
    type: dict
  template:
    description:
      - In-cluster - a whole pod template used for green instead of blue's (blue's labels are kept, the module adds
        its revision label).
    type: dict
  preview_service:
    description:
      - In-cluster - the preview Service, created or updated by the module (type ClusterIP, the active Service's
        ports); C(<name>-preview) when not set.
    type: str
  replicas:
    description:
      - Green's replicas; blue's (in-cluster) or the Swarm service's (swarm_to_k3s) when not set.
    type: int
  blue_scale_down:
    description:
      - In-cluster - at completion, V(scale) blue's Deployment to 0 or V(delete) it.
    type: str
    choices: [scale, delete]
    default: scale
  deployment:
    description:
      - Swarm to K3s - green's Deployment; the one whose pod template labels match Service O(name)'s selector when
        not set.
    type: str
  swarm_service:
    description:
      - Swarm to K3s - blue, the Swarm service; C(sophia_<name>) (stack C(sophia)) when not set.
    type: str
  docker_host:
    description:
      - Swarm to K3s - the Docker engine of a Swarm manager.
    type: str
    default: unix:///var/run/docker.sock
  front_door_socket:
    description:
      - Swarm to K3s - the front door's HAProxy runtime API (a unix socket or C(tcp://HOST:PORT), C(level admin)).
    type: str
    default: /run/haproxy/admin.sock
  front_door_state_file:
    description:
      - Swarm to K3s - the front door's server-state file, written after each switch so that a reload keeps it.
    type: path
  front_door_url:
    description:
      - Swarm to K3s - the front door's frontend for this service, for example V(http://127.0.0.1:9105); needed by
        checks with C(target=active).
    type: str
  drain_timeout:
    description:
      - Swarm to K3s - seconds to wait for the drained side's sessions to end after a switch (and, with
        O(volumes), for the held service's servers to carry no request, and for each C(tar) in green's pod).
    type: float
    default: 60
  volumes:
    description:
      - Swarm to K3s, stateful services - the mount paths (for example V(/data)) of the Swarm service's named
        volumes whose data moves with it. Green must mount a PersistentVolumeClaim at each path (what
        M(sophia_ai.platform.compose_convert) makes of a compose file's named volume).
      - "The move, right before the switch: the front door holds the service's new requests (role
        M(sophia_ai.platform.front_door)'s hold, O(front_door_hold_map)) and waits until none is at a server, so no
        write is under way; each volume is read from the Swarm task (the Docker Engine's archive API, as C(docker cp)),
        kept as a 0600 snapshot under O(snapshot_dir), written into the claim through the API server's exec
        (C(tar) in green's container, as C(kubectl cp)) and every file's sha256 is compared with the source's; green
        restarts on the data (O(volume_restart)); the weights go to K3s and the held requests are released.
        C(write_pause_seconds) returns how long requests were held."
      - Any failure before the switch releases the held requests to Swarm, whose volumes were only read, and
        aborts. The front door must not send a request to the service during the copy (checked with HAProxy's
        request counters) - a copy longer than the role's C(front_door_hold_max_ms) aborts.
      - A rollback (O(state=rolled_back), or a failed post-promotion check) copies the data back the same way, K3s to
        Swarm, before traffic returns; the paths are recorded with the cutover, so a rollback needs no O(volumes).
        If that copy fails, traffic stays on K3s (see O(discard_k3s_writes)).
      - The data travels through the controller's memory and must copy within the hold; meant for the state of an
        MCP service (memories, caches, small stores), not for databases, which replicate.
      - A promotion that leaves a named volume of the Swarm service out of O(volumes) warns (green starts on its own
        claim there); C(playbooks/phase3.yml) passes every named volume the stack files mount.
    type: list
    elements: str
  volume_restart:
    description:
      - Swarm to K3s with O(volumes) - restart the side that got the data (green's pods after a promotion, the Swarm
        task after a rollback) while still held, so that a service that reads its files at start serves the copied
        ones. V(false) only for services that read their files on each request (shorter write pause).
    type: bool
    default: true
  volume_docker_host:
    description:
      - Swarm to K3s with O(volumes) - the Docker API of the node that runs the Swarm service's task (its named
        volumes are local to that node); default O(docker_host).
    type: str
  snapshot_dir:
    description:
      - Swarm to K3s with O(volumes) - where each copy is kept as a tar (0600 files in a 0700 directory) with its
        sha256 in the result - the data as it was at the switch, kept until you remove it.
    type: path
    default: ~/.sophia/snapshots
  front_door_hold_map:
    description:
      - Swarm to K3s with O(volumes) - the front door's hold map (role front_door's C(front_door_hold_map)).
    type: str
    default: /etc/haproxy/sophia-held.map
  discard_k3s_writes:
    description:
      - Swarm to K3s with O(volumes) - when copying the data back from K3s fails during a rollback, go back to Swarm
        anyway, with Swarm's volumes as they were before the cutover (what K3s wrote since is lost, the snapshot
        of the promotion stays). Default is to leave traffic on K3s and fail.
    type: bool
    default: false
notes:
  - Failures return C(reason), a stable keyword - V(green_not_ready), V(pre_check_failed), V(post_check_failed),
    V(switch_timeout), V(gpu_shortfall), V(window_open), V(window_closed), V(no_blue), V(no_green),
    V(no_k3s_server), V(not_promoted), V(blue_not_ready), V(bad_option), V(bad_check), V(bad_volume),
    V(volume_copy_failed) - and, when blue was restored first, C(aborted) or C(rolled_back) true, with the rest of
    the result.
  - Runs where the cluster (and, swarm_to_k3s, the front door's socket and the Docker engine) can be reached,
    usually the controller (C(delegate_to=localhost)) or the front door host.
  - In-cluster, green Deployments of aborted or superseded revisions stay at 0 replicas; they are not deleted.
  - In-cluster, promoting a new revision while the rollback window of the last promotion is still open first retires
    that promotion's blue (O(blue_scale_down)) and warns; the new cutover's blue, and so its rollback target, is the
    revision active before the run.
seealso:
  - name: Argo Rollouts, blue-green deployment strategy
    description: The semantics this module follows (activeService, previewService, autoPromotionEnabled,
      scaleDownDelaySeconds, prePromotionAnalysis, postPromotionAnalysis, abort).
    link: https://argo-rollouts.readthedocs.io/en/stable/features/bluegreen/
  - module: sophia_ai.platform.traffic_switch
  - module: sophia_ai.platform.mcp_probe
  - module: sophia_ai.platform.k8s_apply
"""

EXAMPLES = r"""
- name: Cut mcp-gong over to a new image in the cluster, 2 h rollback window
  sophia_ai.platform.bluegreen_cutover:
    name: mcp-gong
    image: registry.example.com/mcp-gong:1.4.0
    rollback_window: 2h
    pre_promotion_checks:
      - name: ready
        type: http
        target: preview
    post_promotion_checks:
      - name: tools
        type: mcp
        target: active
        tools: [search, fetch]
  delegate_to: localhost

- name: Preview only (auto-promotion off); a later run with auto_promotion true promotes
  sophia_ai.platform.bluegreen_cutover:
    name: mcp-gong
    env:
      LOG_LEVEL: debug
    auto_promotion: false

- name: Roll mcp-gong back to blue within the window
  sophia_ai.platform.bluegreen_cutover:
    name: mcp-gong
    state: rolled_back
    reason: error rate up after the switch

- name: Move mcp-memory from Swarm to K3s at the front door
  sophia_ai.platform.bluegreen_cutover:
    name: mcp-memory
    mode: swarm_to_k3s
    front_door_socket: /run/haproxy/admin.sock
    front_door_state_file: /var/lib/haproxy/server-state
    front_door_url: http://127.0.0.1:9107
    rollback_window: 4h
    post_promotion_checks:
      - name: through the front door, for a minute
        type: mcp
        target: active
        duration: 1m
  become: true

- name: What would a completion do (check mode, diff)
  sophia_ai.platform.bluegreen_cutover:
    name: mcp-gong
    state: completed
  check_mode: true
  diff: true
"""

RETURN = r"""
msg:
  description: What was done.
  returned: always
  type: str
  sample: "mcp-gong: state promoted, green active, switch 0.412 s, rollback window until 2026-11-26T12:00:00Z"
state:
  description: The cutover state after the run (the C(sophia.ai/bluegreen-state) annotation), null before any.
  returned: success
  type: str
  sample: promoted
phase:
  description: Where this run left the service - V(preview), V(promoted), V(aborted), V(rolled_back), V(completed),
    or V(steady) when no cutover was ever recorded.
  returned: success
  type: str
  sample: promoted
paused:
  description: True when green is previewed and waits for a run with O(auto_promotion=true).
  returned: success
  type: bool
  sample: false
active:
  description: The side that gets the traffic, V(blue) or V(green).
  returned: success
  type: str
  sample: green
blue:
  description: Blue as recorded (in-cluster C(deployment), C(revision), C(selector), C(replicas); swarm_to_k3s
    C(swarm_service), C(replicas)) and its live C(spec_replicas) (and C(available_replicas), C(exists)).
  returned: success
  type: dict
  sample: {deployment: mcp-gong, revision: 3f1c0a9b2e, selector: {app: mcp-gong, pod-template-hash: 6d4b9c7f8},
           replicas: 2, exists: true, spec_replicas: 2, available_replicas: 2}
green:
  description: Green, as RV(blue) (swarm_to_k3s also C(replicas_before), the Deployment's replicas before the
    module scaled it).
  returned: success
  type: dict
  sample: {deployment: mcp-gong-8a1e44d0c2, revision: 8a1e44d0c2,
           selector: {app: mcp-gong, sophia.ai/bluegreen-revision: 8a1e44d0c2}, replicas: 2, exists: true,
           spec_replicas: 2, available_replicas: 2}
window_ends_at:
  description: The end of the rollback window (ISO 8601 UTC), null when none.
  returned: success
  type: str
  sample: "2026-11-26T12:00:00Z"
window_open:
  description: Whether the rollback window is open now.
  returned: success
  type: bool
  sample: true
checks:
  description: The checks run by this run, C(pre) and C(post), each a list of C(name), C(type), C(phase),
    C(target), C(ok), C(seconds), C(detail).
  returned: success
  type: dict
  sample: {pre: [{name: ready, type: http, phase: pre, target: "http://10.96.0.17:9005/readyz", ok: true,
                  seconds: 0.004, detail: "HTTP 200 (attempt 1)"}], post: []}
history:
  description: The cutover history from C(sophia.ai/bluegreen-history), newest last, at most 20 - C(revision),
    C(action), C(outcome), C(started), C(finished), C(by) (user@host of the controller), C(reason), C(switch_s).
  returned: success
  type: list
  elements: dict
  sample: [{revision: 8a1e44d0c2, action: promote, outcome: promoted, started: "2026-11-26T10:00:00Z",
            finished: "2026-11-26T10:00:21Z", by: deploy@ops-1, switch_s: 0.412}]
switch_seconds:
  description: From the start of the switch call until the active Service's EndpointSlices list only the new
    side's pods (in-cluster) or until the front door's last weight command was answered (swarm_to_k3s); null when
    this run did not switch.
  returned: success
  type: float
  sample: 0.412
volumes:
  description: Swarm to K3s with O(volumes) - each volume this run copied, C(path), C(from), C(to),
    C(swarm_volume), C(claim), C(files), C(bytes), C(verified) (every file's sha256 equal), C(snapshot) and
    C(snapshot_sha256) (the kept archive), C(seconds).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/data", "from": "swarm", "to": "k3s", "swarm_volume": "sophia_ai-memory-data",
            "claim": "ai-memory-data", "files": 120, "bytes": 48213, "verified": true,
            "snapshot": "/root/.sophia/snapshots/mcp-ai-memory-data-20261126T120000Z.tar",
            "snapshot_sha256": "9f2c...", "seconds": 0.412}]
write_pause_seconds:
  description: Swarm to K3s with O(volumes) - how long the front door held the service's requests (from the hold to
    their release after the switch); null when nothing was held.
  returned: success
  type: float
  sample: 2.31
actions:
  description: The steps done (or, in check mode, to do), each C(step) and C(detail).
  returned: success
  type: list
  elements: dict
  sample: [{step: switch, detail: "Service mcp-gong: selector -> green app=mcp-gong,sophia.ai/bluegreen-revision=8a1e44d0c2"}]
gpu:
  description: The GPU fit of green when it was created or scaled up - C(resource), C(per_pod), C(replicas),
    C(needed), C(free), C(per_node), C(placed), C(placeable), C(fits), C(reduced) (and C(replicas_run)); null
    when not computed.
  returned: success
  type: dict
  sample: {resource: nvidia.com/gpu, per_pod: 1, replicas: 2, needed: 2, free: 6, per_node: {gpu-1: 4, gpu-2: 2},
           placed: 0, placeable: 6, fits: true, reduced: false}
front_door:
  description: Swarm to K3s - the effective weight of each server of the backend after the run.
  returned: success, mode swarm_to_k3s
  type: dict
  sample: {swarm: 0, k3s: 100}
api_calls:
  description: HTTP requests sent to the Kubernetes API (plus, swarm_to_k3s, to the Docker engine).
  returned: success
  type: int
  sample: 9
diff:
  description: With C(--diff), before and after of C(active), C(state), C(blue_replicas), C(green_replicas).
  returned: when diff mode is on
  type: dict
  sample: {before: {active: 3f1c0a9b2e, state: null}, after: {active: 8a1e44d0c2, state: promoted}}
reason:
  description: On failure, a stable keyword (see the notes).
  returned: failure
  type: str
  sample: green_not_ready
aborted:
  description: On failure, true when the cutover was aborted before the switch (blue kept serving).
  returned: failure
  type: bool
  sample: true
rolled_back:
  description: On failure, true when the module switched back to blue before failing.
  returned: failure
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._args import connection_spec
from ansible_collections.sophia_ai.platform.plugins.module_utils._bluegreen_run import run
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError


def argument_spec():
    spec = connection_spec()
    spec.update(
        name={"type": "str", "required": True},
        namespace={"type": "str", "default": "sophia-mcp"},
        mode={"type": "str", "choices": ["in_cluster", "swarm_to_k3s"], "default": "in_cluster"},
        state={"type": "str", "choices": ["promoted", "aborted", "rolled_back", "completed"], "default": "promoted"},
        auto_promotion={"type": "bool", "default": True},
        rollback_window={"type": "raw", "default": "2h"},
        pre_promotion_checks={"type": "list", "elements": "dict", "default": []},
        post_promotion_checks={"type": "list", "elements": "dict", "default": []},
        ready_timeout={"type": "int", "default": 300},
        gpu_shortfall={"type": "str", "choices": ["fail", "reduce"], "default": "fail"},
        reason={"type": "str"},
        force={"type": "bool", "default": False},
        abort_scale_down_delay={"type": "raw", "default": "5s"},
        image={"type": "str"},
        container={"type": "str"},
        env={"type": "dict"},
        template={"type": "dict"},
        preview_service={"type": "str"},
        replicas={"type": "int"},
        blue_scale_down={"type": "str", "choices": ["scale", "delete"], "default": "scale"},
        deployment={"type": "str"},
        swarm_service={"type": "str"},
        docker_host={"type": "str", "default": "unix:///var/run/docker.sock"},
        front_door_socket={"type": "str", "default": "/run/haproxy/admin.sock"},
        front_door_state_file={"type": "path"},
        front_door_url={"type": "str"},
        drain_timeout={"type": "float", "default": 60},
        volumes={"type": "list", "elements": "str"},
        volume_restart={"type": "bool", "default": True},
        volume_docker_host={"type": "str"},
        snapshot_dir={"type": "path", "default": "~/.sophia/snapshots"},
        front_door_hold_map={"type": "str", "default": "/etc/haproxy/sophia-held.map"},
        discard_k3s_writes={"type": "bool", "default": False},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, check_mode=module.check_mode)
    except PlatformError as exc:
        for warning in exc.details.pop("warnings", None) or []:
            module.warn(warning)
        exc.details.pop("diff", None)
        module.fail_json(msg=str(exc), **exc.details)
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
