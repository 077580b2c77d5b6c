#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_apply
short_description: Server-side apply of many Kubernetes manifests at once, concurrently, in dependency order
version_added: 0.1.0
author:
  - Sophia AI platform engineering (@sophia-ai)
description:
  - Applies every object of O(src) (files, or directories of C(*.yaml), C(*.yml) and C(*.json) files, multi-document
    YAML) and O(definitions) with server-side apply (one C(PATCH) with C(application/apply-patch+yaml) per object)
    under its own field manager (O(field_manager)). Objects go in dependency tiers - Namespaces, then
    CustomResourceDefinitions, then quotas, service accounts, ConfigMaps, Secrets, volumes and RBAC, then Services,
    then workloads, then PodDisruptionBudgets, HorizontalPodAutoscalers, NetworkPolicies, Ingresses and custom
    resources - and within a tier concurrently (O(concurrency) requests at a time over one shared connection pool).
  - Every manifest is read and checked before the first request (a mapping with C(apiVersion), C(kind) and
    C(metadata.name), valid names, Secret C(data) in base64, no object twice); a bad one fails the task naming the
    file and the document number (or C(definitions[i])), and nothing is applied. Kinds the API server does not
    serve fail the same way, before anything is applied.
  - Resource paths come from a table of the built-in kinds (no request) and, for other kinds, one discovery request
    per group/version; kinds defined by a CustomResourceDefinition of the same set are resolved once it is served.
  - Before applying, one list request per kind and namespace reads the live objects. C(changed) then follows from
    the apply answers alone, with no extra request per object - created (HTTP 201), configured (the
    resourceVersion moved) or unchanged (it did not; the API server writes nothing when an apply changes
    nothing) - and O(preserve_fields) reads from these lists who owns a field.
  - An object whose live state provably equals what this run would apply is not sent at all, so a rerun with no
    change costs one list per kind and namespace and nothing more. Each applied object carries its fingerprint (a
    digest of the applied manifest) in the annotation C(sophia.ai/k8s-apply-fingerprint); when the live object has
    the same fingerprint and O(field_manager) still owns every field of the manifest in its managedFields (any
    change, take-over or removal of one of those fields by another tool moves or drops that ownership), applying
    again would change nothing and is skipped. Otherwise the object is applied as usual. O(always_apply=true) sends
    every object regardless.
  - A field owned by another field manager fails the task with a conflict that names the object, the field, the
    other manager and the fixes; ownership is taken over only with O(force_conflicts=true).
  - Why not C(kubernetes.core.k8s) - it applies one object or file per task run, one request after another
    (and with O(kubernetes.core.k8s#module:apply) it reads each object first), so a stack of hundreds of objects is
    hundreds of task runs or one slow serial run; it has no dependency tiers, no concurrency, no way to leave a field
    to another field manager (a Service selector that a blue-green cutover owns would be taken back or conflict on
    every rerun), no prune by label and field manager, and its C(changed) needs a read of every object. Why not
    C(kubectl apply --server-side) from a task - it applies one object after another too, needs the binary on the
    controller, and its output has to be parsed for C(changed).
extends_documentation_fragment:
  - sophia_ai.platform._connection
  - sophia_ai.platform._attributes
  - sophia_ai.platform._attributes.ACTIONGROUP_PLATFORM
attributes:
  check_mode:
    support: full
    details:
      - Every object is sent with C(dryRun=All) (the API server runs admission and validation but stores nothing) and
        the answer is compared with the live object, so check mode reports what a real run would change.
      - Objects in a Namespace, or of a kind, that this run would create first are reported as V(would_create)
        without a request (the API server cannot dry-run into a namespace or kind that does not exist yet).
  diff_mode:
    support: full
    details:
      - One before/after pair per created or changed object (server bookkeeping and status left out); Secret values
        are shown as C(VALUE_REDACTED).
  idempotent:
    support: full
    details:
      - A second run with the same manifests changes nothing and reports no change; objects whose fingerprint and
        field ownership are unchanged are not even sent.
options:
  src:
    description:
      - Manifest files, or directories whose C(*.yaml), C(*.yml) and C(*.json) files (not in sub-directories, not
        hidden) are read in name order. A file may hold several YAML documents and C(List) objects.
      - O(src) and O(definitions) may be given together; their objects are applied as one set.
    type: list
    elements: path
  definitions:
    description:
      - Objects to apply, as mappings (each with C(apiVersion), C(kind) and C(metadata.name)).
      - Secret values in them are masked in the module's output and in its echoed arguments.
    type: list
    elements: dict
  namespace:
    description:
      - Namespace of namespaced objects that do not name one (V(default) when not set). An object's own
        C(metadata.namespace) wins.
    type: str
  field_manager:
    description:
      - The field manager that owns the applied fields.
    type: str
    default: sophia-mcp-deploy
  force_conflicts:
    description:
      - Take over fields that another field manager owns (C(force=true)). Off by default - a conflict fails the task
        naming the object, the field and the other manager.
    type: bool
    default: false
  preserve_fields:
    description:
      - Fields this run leaves to another field manager. When a live object of O(preserve_fields[].kind) has the
        O(preserve_fields[].field) owned by one of O(preserve_fields[].managers), the applied object omits it, so the
        other tool's value stays and is neither taken back nor a conflict. RV(preserved) lists what was left.
      - The default keeps the Service selectors that C(sophia-bluegreen-cutover) owns once a service is under cutover
        (rerunning phase 2 must not undo a cutover). V([]) preserves nothing.
    type: list
    elements: dict
    default:
      - kind: Service
        field: spec.selector
        managers: [sophia-bluegreen-cutover]
    suboptions:
      kind:
        description: The kind, for example V(Service).
        type: str
        required: true
      field:
        description: The field as a dotted path of mapping keys, for example V(spec.selector).
        type: str
        required: true
      managers:
        description: The field managers whose ownership is preserved.
        type: list
        elements: str
        required: true
  always_apply:
    description:
      - Send every object, also those whose live state provably equals the manifest (see the description); for
        example to have the API server re-validate every object.
    type: bool
    default: false
  concurrency:
    description:
      - Requests in flight at a time (1 to 64); objects within a tier are applied concurrently.
    type: int
    default: 16
  prune:
    description:
      - Delete objects that left the set - those of O(prune_kinds) in the namespaces of the set that carry the
        O(prune_selector) labels and are managed by O(field_manager). Opt-in; needs O(prune_selector).
    type: bool
    default: false
  prune_selector:
    description:
      - Label selector of the objects O(prune) may delete, for example V(app.kubernetes.io/part-of=sophia).
    type: str
  prune_kinds:
    description:
      - Kinds O(prune) looks at, as V(Kind) for built-in kinds or V(group/version/Kind) (V(v1/Kind) for the core
        group).
      - Empty means the kinds of the set plus ConfigMap, Secret, Service, ServiceAccount, Deployment, StatefulSet,
        DaemonSet, Job, CronJob, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy and Ingress - never
        Namespaces, PersistentVolumeClaims, PersistentVolumes or CustomResourceDefinitions unless listed here.
    type: list
    elements: str
    default: []
  wait:
    description:
      - After applying, wait until every Deployment, StatefulSet and DaemonSet of the set has rolled out and every
        Job has completed (one list request per kind and namespace per poll). The time is reported separately in
        RV(wait_seconds).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the rollouts; the task fails after that naming each workload that is not done.
    type: int
    default: 300
notes:
  - Objects that fail to apply (a conflict, a value the API server refuses) fail the task listing every one with its
    file and document; the rest of that tier was applied, later tiers were not.
seealso:
  - module: kubernetes.core.k8s
  - module: sophia_ai.platform.compose_convert
"""

EXAMPLES = r"""
- name: Apply the converted stack (compose_convert's dest) into its namespace
  sophia_ai.platform.k8s_apply:
    kubeconfig: /etc/rancher/k3s/k3s.yaml
    src:
      - /srv/sophia/manifests
    namespace: sophia
    wait: true
  register: applied

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ applied.counts }} in {{ applied.apply_seconds }} s, rollouts {{ applied.wait_seconds }} s"

- name: Apply objects built in the play, pruning the stack's objects that were removed from it
  sophia_ai.platform.k8s_apply:
    definitions:
      - apiVersion: v1
        kind: Namespace
        metadata:
          name: sophia
      - apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata:
          name: mcp-gong
          namespace: sophia
          labels:
            app.kubernetes.io/part-of: sophia
        spec:
          maxUnavailable: 1
          selector:
            matchLabels:
              io.kompose.service: mcp-gong
    prune: true
    prune_selector: app.kubernetes.io/part-of=sophia

- name: What would change (server-side dry run), with a diff
  sophia_ai.platform.k8s_apply:
    src:
      - /srv/sophia/manifests
    namespace: sophia
  check_mode: true
  diff: true
"""

RETURN = r"""
changed:
  description: Whether any object was created, configured or pruned (would be, in check mode).
  returned: always
  type: bool
  sample: false
msg:
  description: One line on what was done.
  returned: always
  type: str
  sample: "845 objects: 0 created, 0 configured, 845 unchanged (845 without a request), 0 pruned in 0.56 s (7 API calls)"
objects:
  description:
    - Every object of the set in input order, then the pruned ones, with what happened to it.
    - C(action) is V(created), V(configured), V(unchanged) or V(pruned); in check mode V(would_create),
      V(would_configure), V(unchanged) or V(would_prune).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: Deployment, apiVersion: apps/v1, namespace: sophia, name: mcp-gong, action: unchanged}
counts:
  description: Objects per action (in check mode the V(would_) actions count under the same keys).
  returned: always
  type: dict
  sample: {created: 0, configured: 1, unchanged: 56, pruned: 0}
preserved:
  description: Fields left out of the applied objects because another field manager owns them (O(preserve_fields)).
  returned: always
  type: list
  elements: dict
  sample:
    - {object: Service sophia/mcp-gong, field: spec.selector, manager: sophia-bluegreen-cutover}
not_sent:
  description:
    - Objects reported unchanged without an apply request (fingerprint and field ownership unchanged).
    - Not named C(skipped), which ansible reserves for skipped tasks.
  returned: always
  type: int
  sample: 845
rollouts:
  description: With O(wait), each workload's final rollout status.
  returned: always
  type: list
  elements: dict
  sample:
    - {object: Deployment sophia/mcp-gong, status: "1/1 updated, 1 available, 1 total"}
api_calls:
  description: HTTP requests sent to the API server (counted at the HTTP layer).
  returned: always
  type: int
  sample: 851
api_calls_by_phase:
  description: RV(api_calls) split into discovery, list, apply, prune and wait.
  returned: always
  type: dict
  sample: {discovery: 0, list: 7, apply: 845, wait: 12}
apply_seconds:
  description: Seconds spent reading the cluster and applying (and pruning), without the rollout wait.
  returned: always
  type: float
  sample: 2.104
wait_seconds:
  description: Seconds spent waiting for rollouts (0 without O(wait)).
  returned: always
  type: float
  sample: 14.2
diff:
  description: In diff mode, a before/after pair per created, changed or pruned object; Secret values redacted.
  returned: when diff mode is on
  type: list
  elements: dict
  sample:
    - before_header: apps/v1 Deployment sophia/mcp-gong
      after_header: apps/v1 Deployment sophia/mcp-gong
      before: {spec: {replicas: 1}}
      after: {spec: {replicas: 2}}
errors:
  description: On failure, each bad manifest or failed object with its file, document number and message.
  returned: on failure
  type: list
  elements: dict
  sample:
    - {object: Service sophia/mcp-gong, file: /srv/sophia/manifests/service-mcp-gong.yaml, index: 1, status: 409,
       conflicts: [{field: .spec.selector, manager: other-tool}], message: "..."}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._args import connection_spec
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_apply import (
    DEFAULT_PRESERVE,
    load_manifests,
    redacted_definitions,
    run,
    secret_values,
)
from ansible_collections.sophia_ai.platform.plugins.module_utils._k8s_client import connect


def argument_spec():
    spec = connection_spec()
    spec.update(
        src={"type": "list", "elements": "path"},
        definitions={"type": "list", "elements": "dict"},
        namespace={"type": "str"},
        field_manager={"type": "str", "default": "sophia-mcp-deploy"},
        force_conflicts={"type": "bool", "default": False},
        preserve_fields={"type": "list", "elements": "dict", "default": DEFAULT_PRESERVE, "options": {
            "kind": {"type": "str", "required": True},
            "field": {"type": "str", "required": True},
            "managers": {"type": "list", "elements": "str", "required": True},
        }},
        always_apply={"type": "bool", "default": False},
        concurrency={"type": "int", "default": 16},
        prune={"type": "bool", "default": False},
        prune_selector={"type": "str"},
        prune_kinds={"type": "list", "elements": "str", "default": []},
        wait={"type": "bool", "default": False},
        wait_timeout={"type": "int", "default": 300},
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[("src", "definitions")], required_if=[("prune", True, ["prune_selector"])])
    invocation = {"module_args": dict(module.params, definitions=redacted_definitions(module.params["definitions"]))}
    try:
        manifests = load_manifests(module.params)
        module.no_log_values.update(secret_values(manifests))
        client = connect(module.params)
        try:
            result = run(module.params, client, manifests, check_mode=module.check_mode, want_diff=module._diff)
        finally:
            client.close()
    except PlatformError as exc:
        module.fail_json(msg=str(exc), invocation=invocation, **exc.details)
    module.exit_json(invocation=invocation, **result)


if __name__ == "__main__":
    main()
