#!/usr/bin/python
# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gitops_export
short_description: Write the converted MCP stack as a Helm chart and as a Kustomize tree per wave for Argo CD
version_added: 0.1.0
author:
  - Sophia AI platform engineering (@sophia-ai)
description:
  - Reads the manifests that M(sophia_ai.platform.compose_convert) wrote to O(src) and writes, under O(dest), a Helm
    chart for the whole MCP fleet with values per service (C(helm/<chart_name>/)) and a Kustomize tree with one
    directory per deployment wave (C(kustomize/<wave>/)) plus, with O(argocd.repo_url), an Argo CD Application per
    wave (C(argocd/apps/)) and the Application that syncs them in wave order (C(argocd/root.yaml)).
  - The chart, with its default values, renders exactly the objects of the manifests (same apiVersion, kind, name,
    namespace, labels, annotations and spec; nothing added, no Helm labels). C(values.yaml) holds one entry per
    compose service under C(services), keyed by the service's name (C(--set services.mcp-gong.enabled=false) works as
    it is; templates read it with C(index)) - C(enabled), C(image) (C(repository), C(tag), C(digest) when pinned,
    C(pullPolicy)), C(replicas) (not for a DaemonSet), C(resources), C(nodeSelector), C(tolerations) and
    C(service.type). A disabled service renders none of its objects; an object several services use (the shared
    ConfigMap) is left out once all of them are disabled. C(values.schema.json) lists every service and key, so
    C(helm template)/C(helm install) reject a misspelt service name or key instead of ignoring it.
  - The waves are those of role C(mcp_deploy) (the same code classifies the services - M(sophia_ai.platform.mcp_deploy_plan)'s) -
    C(shared) first (ConfigMaps, PersistentVolumeClaims and other objects that are no service's own), then
    C(non-critical), C(non-critical-gpu), C(critical), C(critical-gpu) (the C(-gpu) waves with O(gpu_wave)); each wave's
    directory holds its objects, one file each, and a C(kustomization.yaml) listing them; C(kustomize/kustomization.yaml)
    lists the waves in order (C(kubectl apply -k dest/kustomize) applies the whole stack at once).
  - Argo CD orders the per-wave Applications by their C(argocd.argoproj.io/sync-wave) annotation (C(0) for C(shared),
    then one more per wave) when it syncs C(argocd/root.yaml)'s Application (app of apps). It waits for a wave's
    Application to be healthy before the next only when Application health is assessed, which Argo CD does not do by
    default since 1.8 - add the C(resource.customizations.health.argoproj.io_Application) check to C(argocd-cm).
  - Secret manifests are never exported (secret values do not belong in a git repository); each one is named in
    RV(left_out) and in a warning - create them in the cluster first (role C(mcp_deploy)'s secrets, Sealed Secrets or
    External Secrets).
  - Why a module of our own rather than C(helm create) and C(kompose convert --chart). C(helm create) writes a
    scaffold for one generic Deployment. kompose 1.38.0's C(--chart) (run on C(examples/sophia-mcp-stack.yml)) writes
    C(Chart.yaml) (named after the output path), a README and C(templates/) holding the plain manifests as kompose made
    them - no C(values.yaml), no template expression, so nothing can be overridden per service, no waves, and none
    of the post-processing of M(sophia_ai.platform.compose_convert) (no GPU limits, node selectors or tolerations).
    This module starts from M(sophia_ai.platform.compose_convert)'s manifests, so the chart, the Kustomize tree and
    the plain manifests are the same objects.
  - Validate the output with C(helm lint dest/helm/<chart_name>), C(helm template) and C(kubectl kustomize
    dest/kustomize) (C(make gitops) runs this module on the sample stack).
extends_documentation_fragment:
  - sophia_ai.platform._attributes
attributes:
  check_mode:
    support: full
    details:
      - Renders and compares with O(dest) but writes nothing; C(changed) and RV(changed_files) say what a real run would change.
  diff_mode:
    support: full
    details:
      - One diff per new, changed or removed file.
  idempotent:
    support: full
    details:
      - The same manifests and options give byte-identical files (sorted keys, stable order), so a second run reports no change.
options:
  src:
    description:
      - The directory M(sophia_ai.platform.compose_convert) wrote (its O(sophia_ai.platform.compose_convert#module:dest)).
        With its index C(.compose-convert.index) only the files it lists are read; without one every C(*.yaml),
        C(*.yml) and C(*.json) file.
    type: path
    required: true
  dest:
    description:
      - The directory that receives C(helm/), C(kustomize/) and C(argocd/) (for example the root of, or a folder in,
        the git repository Argo CD watches; then set O(argocd.path) to that folder). Created when missing.
      - The files written are listed with their SHA-256 in C(.gitops-export.index). A file an earlier run wrote and
        this run no longer produces (a service gone, a wave gone, a format dropped) is removed - unless it was edited
        since; then it is kept and a warning says so. Other files in O(dest) are left alone; the run fails, writing
        nothing, when one of them is where this module would write, and warns about one in the chart directory or
        C(argocd/apps/), where helm and Argo CD read every file.
      - Files are written into a temporary directory beside O(dest) and moved into place when everything is rendered.
    type: path
    required: true
  formats:
    description: What to write.
    type: list
    elements: str
    choices: [helm, kustomize]
    default: [helm, kustomize]
  chart_name:
    description: The chart's name (C(Chart.yaml) C(name), its directory C(helm/<chart_name>)); also the prefix of the Argo CD Applications' names.
    type: str
    default: sophia-mcp
  chart_version:
    description: The chart's version (SemVer 2). Raise it when the chart changes and it is published to a chart repository.
    type: str
    default: 0.1.0
  app_version:
    description: The chart's C(appVersion). Default - the image tag most services use (C(lab) for the sample stack), else O(chart_version).
    type: str
  namespace:
    description:
      - Where the Argo CD Applications deploy the stack (their C(destination.namespace); created by the sync when missing).
      - Default - the namespace the manifests name (compose_convert's O(sophia_ai.platform.compose_convert#module:namespace)), else C(sophia-mcp).
      - Nothing is added to the objects themselves (neither to the chart's nor to the Kustomize tree's), so they stay
        equal to the plain manifests; C(helm install -n) and Argo CD place objects without a namespace.
    type: str
  default_criticality:
    description: Criticality of services without the C(sophia.ai/criticality) label (as M(sophia_ai.platform.mcp_deploy_plan)'s).
    type: str
    choices: [critical, non-critical]
    default: critical
  gpu_wave:
    description: Give GPU services a wave of their own after the other services of the same criticality (as M(sophia_ai.platform.mcp_deploy_plan)'s).
    type: bool
    default: true
  argocd:
    description: The Argo CD Applications, written only when O(argocd.repo_url) is set.
    type: dict
    default: {}
    suboptions:
      repo_url:
        description: The git repository Argo CD reads O(dest) from (C(spec.source.repoURL)).
        type: str
      revision:
        description: The branch, tag or commit to sync (C(spec.source.targetRevision)).
        type: str
        default: HEAD
      path:
        description: The folder of O(dest) in that repository (empty - O(dest) is its root); the Applications' paths are C(<path>/kustomize/<wave>).
        type: str
        default: ''
      project:
        description: The Argo CD project of the Applications.
        type: str
        default: default
      namespace:
        description: The namespace Argo CD runs in, where the Application objects live.
        type: str
        default: argocd
      server:
        description: The destination cluster's API server as Argo CD knows it (C(spec.destination.server)).
        type: str
        default: https://kubernetes.default.svc
      name:
        description: The root Application's name; the per-wave ones are C(<name>-<wave>). Default - O(chart_name).
        type: str
      automated:
        description: Sync automatically, pruning and self-healing (C(syncPolicy.automated)); otherwise each sync is started by hand.
        type: bool
        default: true
notes:
  - Render the chart with C(helm template) or install it with C(helm install); helm is built from source by C(make setup)
    (C(requirements/go-tools.txt)). Values that look like numbers need C(--set-string) (C(image.tag=1.10)); the schema
    rejects a number where a string belongs.
seealso:
  - module: sophia_ai.platform.compose_convert
  - module: sophia_ai.platform.mcp_deploy_plan
"""

EXAMPLES = r"""
- name: Convert the stack, then write the chart and the per-wave Kustomize tree into the GitOps repository
  sophia_ai.platform.compose_convert:
    src: [examples/sophia-mcp-stack.yml]
    dest: build/manifests

- name: Export for Argo CD
  sophia_ai.platform.gitops_export:
    src: build/manifests
    dest: ~/src/platform-gitops/sophia-mcp
    chart_version: 1.4.0
    namespace: sophia
    argocd:
      repo_url: https://git.example.com/platform/gitops.git
      revision: main
      path: sophia-mcp
  register: export

- name: The chart only, every service non-critical
  sophia_ai.platform.gitops_export:
    src: build/manifests
    dest: build/gitops
    formats: [helm]
    default_criticality: non-critical

- name: What would change (writes nothing)
  sophia_ai.platform.gitops_export:
    src: build/manifests
    dest: build/gitops
  check_mode: true
  diff: true
"""

RETURN = r"""
dest:
  description: The directory written.
  returned: always
  type: str
  sample: build/gitops
files:
  description: Every file the export consists of, relative to O(dest).
  returned: always
  type: list
  elements: str
  sample: [argocd/apps/sophia-mcp-critical.yaml, helm/sophia-mcp/Chart.yaml, kustomize/critical/kustomization.yaml]
changed_files:
  description: The files written by this run (or that would be, in check mode), relative to O(dest).
  returned: always
  type: list
  elements: str
  sample: [helm/sophia-mcp/values.yaml]
removed_files:
  description: The files an earlier run wrote that this run removed (or would remove), relative to O(dest).
  returned: always
  type: list
  elements: str
  sample: [kustomize/critical-gpu/deployment-mcp-whisper.yaml]
waves:
  description: The waves in sync order, with their objects; C(services) is empty for C(shared).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: shared, sync_wave: 0, path: kustomize/shared, services: [], objects: [ConfigMap/mcp-common]}
    - name: non-critical
      sync_wave: 1
      path: kustomize/non-critical
      services: [mcp-apify]
      objects: [Deployment/mcp-apify, Service/mcp-apify]
  contains:
    name:
      description: The wave.
      type: str
    sync_wave:
      description: Its C(argocd.argoproj.io/sync-wave).
      type: int
    path:
      description: Its Kustomize directory, relative to O(dest) (written with V(kustomize) in O(formats)).
      type: str
    services:
      description: The services of the wave.
      type: list
      elements: str
    objects:
      description: The objects of the wave, C(kind/name).
      type: list
      elements: str
services:
  description: Every service with its wave, workload kind and GPUs.
  returned: always
  type: dict
  sample: {mcp-gong: {wave: critical, kind: Deployment, gpus: 0}, mcp-whisper: {wave: critical-gpu, kind: Deployment, gpus: 1}}
values:
  description: The chart's default values (C(values.yaml)); null without V(helm) in O(formats).
  returned: always
  type: dict
  sample:
    services:
      mcp-gong:
        enabled: true
        image: {repository: sophia-platform/mcp-server, tag: lab, pullPolicy: ''}
        replicas: 1
        resources: {limits: {cpu: 500m, memory: '268435456'}, requests: {cpu: '0', memory: '67108864'}}
        nodeSelector: {}
        tolerations: []
        service: {type: ClusterIP}
chart:
  description: The chart's directory (relative to O(dest)), name, version and appVersion; null without V(helm) in O(formats).
  returned: always
  type: dict
  sample: {path: helm/sophia-mcp, name: sophia-mcp, version: 0.1.0, app_version: lab}
applications:
  description: The Argo CD Applications written (the root one last, with null C(wave)); empty without O(argocd.repo_url).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: sophia-mcp-shared, wave: shared, sync_wave: 0, path: argocd/apps/sophia-mcp-shared.yaml}
    - {name: sophia-mcp, wave: null, sync_wave: null, path: argocd/root.yaml}
namespace:
  description: The Applications' destination namespace.
  returned: always
  type: str
  sample: sophia-mcp
left_out:
  description: Secret manifests in O(src) that were not exported (create them in the cluster).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Secret, name: mcp-admin-token, file: build/manifests/secret-mcp-admin-token.yaml}]
export_warnings:
  description: Everything the export left out or could not do as asked (also given as ansible warnings).
  returned: always
  type: list
  elements: str
  sample: ["argocd.repo_url is not set: no Argo CD Applications written (the Kustomize tree is)"]
msg:
  description: What happened, in one line.
  returned: always
  type: str
  sample: 28 services in 5 waves exported as helm and kustomize into 132 files in build/gitops; changed 132
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import PlatformError
from ansible_collections.sophia_ai.platform.plugins.module_utils._gitops import run


def argument_spec():
    return {
        "src": {"type": "path", "required": True},
        "dest": {"type": "path", "required": True},
        "formats": {"type": "list", "elements": "str", "choices": ["helm", "kustomize"], "default": ["helm", "kustomize"]},
        "chart_name": {"type": "str", "default": "sophia-mcp"},
        "chart_version": {"type": "str", "default": "0.1.0"},
        "app_version": {"type": "str"},
        "namespace": {"type": "str"},
        "default_criticality": {"type": "str", "choices": ["critical", "non-critical"], "default": "critical"},
        "gpu_wave": {"type": "bool", "default": True},
        "argocd": {"type": "dict", "default": {}, "options": {
            "repo_url": {"type": "str"},
            "revision": {"type": "str", "default": "HEAD"},
            "path": {"type": "str", "default": ""},
            "project": {"type": "str", "default": "default"},
            "namespace": {"type": "str", "default": "argocd"},
            "server": {"type": "str", "default": "https://kubernetes.default.svc"},
            "name": {"type": "str"},
            "automated": {"type": "bool", "default": True},
        }},
    }


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, check_mode=module.check_mode, want_diff=module._diff)
    except PlatformError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for line in result["export_warnings"]:
        module.warn("gitops_export: %s" % line)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
