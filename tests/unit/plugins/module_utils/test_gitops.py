# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Helm / Kustomize / Argo CD export on real converted stacks.

The manifests are what compose_convert writes with the pinned kompose binary (as in test_deploy_plan.py) for the
sample fleet (examples/) and focused fixtures; nothing is mocked. The waves are checked against role mcp_deploy's
own plan (``_deploy_plan.build_plan``), the writer against a real directory. Rendering the chart with helm and the
tree with kubectl kustomize is the integration tests' part (tests/integration/convert/test_gitops_export_playbook.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia_ai.platform.plugins.module_utils import _compose_convert
from ansible_collections.sophia_ai.platform.plugins.module_utils import _deploy_plan as dp
from ansible_collections.sophia_ai.platform.plugins.module_utils import _gitops as gx
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

REPO = Path(__file__).resolve().parents[4]
SAMPLE = REPO / "examples" / "sophia-mcp-stack.yml"
SECRETS = Path(__file__).parent / "fixtures" / "compose" / "secrets-configs.yml"
ARGO = {"repo_url": "https://git.example.com/platform/gitops.git", "path": "/fleet/sophia/", "revision": "main"}
WAVES = ["shared", "non-critical", "non-critical-gpu", "critical", "critical-gpu"]


@pytest.fixture(scope="module")
def convert(tmp_path_factory):
    """compose_convert's output directory for a compose file (converted once per module and parameters)."""
    cache = {}

    def get(src, **params):
        key = (str(src), json.dumps(params, sort_keys=True))
        if key not in cache:
            dest = tmp_path_factory.mktemp("manifests")
            _compose_convert.run(dict({"src": [str(src)], "dest": str(dest)}, **params))
            cache[key] = dest
        return cache[key]

    return get


@pytest.fixture(scope="module")
def sample_dir(convert):
    return convert(SAMPLE)


@pytest.fixture(scope="module")
def sample(sample_dir):
    return dp.load_manifests(str(sample_dir))


def export(src, dest, check_mode=False, want_diff=False, **params):
    return gx.run(dict({"src": str(src), "dest": str(dest)}, **params), check_mode=check_mode, want_diff=want_diff)


def tree(directory):
    """Relative path -> bytes of every file under directory (None when it does not exist)."""
    directory = Path(directory)
    if not directory.exists():
        return None
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- waves: the classification of role mcp_deploy -----------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"gpu_wave": False}, {"default_criticality": "non-critical"}])
def test_waves_are_mcp_deploys(sample, options):
    _files, report = gx.render(sample, options)
    plan = dp.build_plan(sample, dict({"secret_keys": {"mcp-api-key": ["mcp_api_key"]}}, **options))
    expected = [{"name": w["name"], "services": sorted(s["name"] for s in w["services"])} for w in plan["waves"]]
    got = [{"name": w["name"], "services": w["services"]} for w in report["waves"] if w["name"] != "shared"]
    assert got == expected
    assert report["waves"][0]["name"] == "shared" and [w["sync_wave"] for w in report["waves"]] == list(
        range(len(report["waves"])))


def test_sample_waves_and_objects(sample):
    _files, report = gx.render(sample, {})
    assert [w["name"] for w in report["waves"]] == WAVES
    by_name = {w["name"]: w for w in report["waves"]}
    assert by_name["shared"]["objects"] == ["ConfigMap/mcp-common", "PersistentVolumeClaim/ai-memory-data"]
    assert by_name["non-critical-gpu"] == {"name": "non-critical-gpu", "sync_wave": 2, "path": "kustomize/non-critical-gpu",
                                           "services": ["mcp-reranker"],
                                           "objects": ["Deployment/mcp-reranker", "Service/mcp-reranker"]}
    assert by_name["critical-gpu"]["services"] == ["mcp-embeddings", "mcp-llm-gateway", "mcp-whisper"]
    every = sorted(o for w in report["waves"] for o in w["objects"])
    plain = sorted("%s/%s" % (m["obj"]["kind"], m["obj"]["metadata"]["name"]) for m in sample)
    assert every == plain and len(every) == 58
    assert report["services"]["mcp-whisper"] == {"wave": "critical-gpu", "kind": "Deployment", "gpus": 1}
    assert report["left_out"] == [] and report["warnings"] == [
        "argocd.repo_url is not set: no Argo CD Applications written (the Kustomize tree is)"]


# --- the chart -------------------------------------------------------------------------------------------------

def test_chart_files_and_values(sample, sample_dir):
    files, report = gx.render(sample, {"chart_name": "fleet", "chart_version": "1.2.3"})
    chart = yaml.safe_load(files["helm/fleet/Chart.yaml"])
    assert {k: chart[k] for k in ("apiVersion", "name", "version", "appVersion", "type")} == {
        "apiVersion": "v2", "name": "fleet", "version": "1.2.3", "appVersion": "lab", "type": "application"}
    values = yaml.safe_load(files["helm/fleet/values.yaml"])
    assert values == report["values"] and sorted(values["services"]) == sorted(report["services"])
    gong = yaml.safe_load((sample_dir / "deployment-mcp-gong.yaml").read_text())["spec"]
    assert values["services"]["mcp-gong"] == {
        "enabled": True, "image": {"repository": "sophia-platform/mcp-server", "tag": "lab", "pullPolicy": ""},
        "replicas": gong["replicas"], "resources": gong["template"]["spec"]["containers"][0]["resources"],
        "nodeSelector": {}, "tolerations": [], "service": {"type": "ClusterIP"}}
    whisper = yaml.safe_load((sample_dir / "deployment-mcp-whisper.yaml").read_text())["spec"]["template"]["spec"]
    assert values["services"]["mcp-whisper"]["nodeSelector"] == whisper["nodeSelector"] != {}
    assert values["services"]["mcp-whisper"]["tolerations"] == whisper["tolerations"] != []
    schema = json.loads(files["helm/fleet/values.schema.json"])
    services = schema["properties"]["services"]
    assert services["additionalProperties"] is False and sorted(services["properties"]) == sorted(values["services"])
    assert services["properties"]["mcp-gong"]["additionalProperties"] is False
    templates = sorted(n for n in files if n.startswith("helm/fleet/templates/"))
    assert len(templates) == 59 and "helm/fleet/templates/_helpers.tpl" in templates
    assert report["chart"] == {"path": "helm/fleet", "name": "fleet", "version": "1.2.3", "app_version": "lab"}


def test_workload_template_reads_its_values(sample):
    files, _report = gx.render(sample, {})
    text = files["helm/sophia-mcp/templates/deployment-mcp-whisper.yaml"]
    assert '{{- $s := index .Values.services "mcp-whisper" }}\n{{- if $s.enabled }}\n' in text
    assert text.rstrip().endswith("{{- end }}")
    assert "  replicas: {{ $s.replicas | int }}\n" in text
    assert '        image: {{ include "sophia-mcp.image" $s.image | quote }}\n' in text
    # absent from the manifest: only rendered when a value is given
    assert "{{- with $s.image.pullPolicy }}\n        imagePullPolicy: {{ . | quote }}\n{{- end }}\n" in text
    assert "        resources:\n          {{- toYaml $s.resources | nindent 10 }}\n" in text
    assert "      nodeSelector:\n        {{- toYaml $s.nodeSelector | nindent 8 }}\n" in text
    service = files["helm/sophia-mcp/templates/service-mcp-whisper.yaml"]
    assert "  type: {{ $s.service.type | quote }}\n" in service
    shared = files["helm/sophia-mcp/templates/configmap-mcp-common.yaml"]
    assert '{{- if include "sophia-mcp.anyEnabled" (list $ "mcp-ai-memory" "mcp-apify"' in shared
    pvc = files["helm/sophia-mcp/templates/persistentvolumeclaim-ai-memory-data.yaml"]
    assert '{{- if (index .Values.services "mcp-ai-memory").enabled }}\n' in pvc


def test_template_text_is_escaped(tmp_path, convert):
    stack = tmp_path / "braces.yml"
    stack.write_text("services:\n  mcp-hostname:\n    image: registry.local:5000/mcp/hostname@sha256:" + "a" * 64
                     + "\n    environment:\n      NODE_NAME: '{{.Node.Hostname}}'\n")
    manifests = dp.load_manifests(str(convert(stack)))
    files, report = gx.render(manifests, {"formats": ["helm"]})
    text = files["helm/sophia-mcp/templates/deployment-mcp-hostname.yaml"]
    assert '{{ "{{" }}.Node.Hostname}}' in text and "'{{.Node" not in text
    assert report["values"]["services"]["mcp-hostname"]["image"] == {
        "repository": "registry.local:5000/mcp/hostname", "tag": "", "digest": "sha256:" + "a" * 64, "pullPolicy": ""}
    assert "replicas" in report["values"]["services"]["mcp-hostname"]
    assert report["chart"]["app_version"] == "0.1.0"  # no tag anywhere: the chart's version
    assert not any(n.startswith(("kustomize/", "argocd/")) for n in files)


@pytest.mark.parametrize("image, expected", [
    ("nginx", {"repository": "nginx", "tag": ""}),
    ("nginx:1.27", {"repository": "nginx", "tag": "1.27"}),
    ("reg.local:5000/a/b", {"repository": "reg.local:5000/a/b", "tag": ""}),
    ("reg.local:5000/a/b:v2", {"repository": "reg.local:5000/a/b", "tag": "v2"}),
    ("a/b@sha256:0f", {"repository": "a/b", "tag": "", "digest": "sha256:0f"}),
    ("a/b:v1@sha256:0f", {"repository": "a/b", "tag": "v1", "digest": "sha256:0f"}),
])
def test_split_image(image, expected):
    assert gx.split_image(image) == expected


# --- Kustomize and Argo CD -----------------------------------------------------------------------------------------

def test_kustomize_tree(sample, sample_dir):
    files, _report = gx.render(sample, {"formats": ["kustomize"]})
    top = yaml.safe_load(files["kustomize/kustomization.yaml"])
    assert top == {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": WAVES}
    critical = yaml.safe_load(files["kustomize/critical-gpu/kustomization.yaml"])["resources"]
    assert critical == ["deployment-mcp-embeddings.yaml", "deployment-mcp-llm-gateway.yaml", "deployment-mcp-whisper.yaml",
                        "service-mcp-embeddings.yaml", "service-mcp-llm-gateway.yaml", "service-mcp-whisper.yaml"]
    for name in critical:
        assert yaml.safe_load(files["kustomize/critical-gpu/" + name]) == yaml.safe_load((sample_dir / name).read_text())
    objects = [n for n in files if not n.endswith("kustomization.yaml")]
    assert len(objects) == 58 and not any(n.startswith(("helm/", "argocd/")) for n in files)


def test_argocd_applications(sample):
    files, report = gx.render(sample, {"argocd": ARGO, "chart_name": "fleet"})
    apps = {n: yaml.safe_load(t) for n, t in files.items() if n.startswith("argocd/")}
    assert sorted(apps) == sorted(["argocd/apps/fleet-%s.yaml" % w for w in WAVES] + ["argocd/root.yaml"])
    for number, wave in enumerate(WAVES):
        app = apps["argocd/apps/fleet-%s.yaml" % wave]
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        assert app["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": str(number)}
        assert app["metadata"]["namespace"] == "argocd"
        assert app["spec"]["source"] == {"repoURL": ARGO["repo_url"], "targetRevision": "main",
                                         "path": "fleet/sophia/kustomize/%s" % wave}
        assert app["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "sophia-mcp"}
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    root = apps["argocd/root.yaml"]
    assert root["metadata"]["name"] == "fleet" and root["spec"]["source"]["path"] == "fleet/sophia/argocd/apps"
    assert [a["name"] for a in report["applications"]] == ["fleet-%s" % w for w in WAVES] + ["fleet"]
    assert report["warnings"] == []


def test_namespace_from_the_manifests_and_overridden(convert):
    manifests = dp.load_manifests(str(convert(SAMPLE, namespace="sophia")))
    _files, report = gx.render(manifests, {"argocd": ARGO})
    assert report["namespace"] == "sophia"
    files, report = gx.render(manifests, {"argocd": dict(ARGO, automated=False), "namespace": "other"})
    app = yaml.safe_load(files["argocd/apps/sophia-mcp-critical.yaml"])
    assert app["spec"]["destination"]["namespace"] == "other" and "automated" not in app["spec"]["syncPolicy"]
    assert report["warnings"] == ["the manifests name namespace(s) sophia, the Argo CD Applications' destination is other: "
                                  "objects with a namespace of their own are applied there; convert with namespace other "
                                  "(or none)"]


def test_secrets_are_left_out(convert):
    src = convert(SECRETS)
    secret_files = sorted(p.name for p in src.glob("secret-*.yaml"))
    assert secret_files
    manifests = dp.load_manifests(str(src))
    files, report = gx.render(manifests, {})
    assert sorted(os.path.basename(s["file"]) for s in report["left_out"]) == secret_files
    assert not any("/secret-" in n for n in files)
    assert all("no place in a git repository" in w for w in report["warnings"][1:]) and len(report["warnings"]) == 1 + len(
        secret_files)


@pytest.mark.parametrize("params, key", [
    ({"chart_name": "Sophia_MCP"}, "chart_name"),
    ({"chart_version": "1.0"}, "chart_version"),
    ({"formats": []}, "formats"),
    ({"formats": ["helm", "jsonnet"]}, "formats"),
    ({"default_criticality": "vital"}, "default_criticality"),
])
def test_bad_options_name_the_key(sample, params, key):
    with pytest.raises(InputError) as err:
        gx.render(sample, params)
    assert err.value.details["key"] == key and key in str(err.value)


def test_no_workloads_fails_clearly(tmp_path):
    (tmp_path / "configmap-x.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    with pytest.raises(InputError, match="no Deployment, DaemonSet or StatefulSet"):
        gx.run({"src": str(tmp_path), "dest": str(tmp_path / "out")})


def test_render_is_deterministic(sample):
    first = gx.render(sample, {"argocd": ARGO})
    second = gx.render(list(reversed(sample)), {"argocd": ARGO})
    assert first == second


# --- writing -----------------------------------------------------------------------------------------------------

def test_first_run_writes_second_changes_nothing(sample_dir, tmp_path):
    dest = tmp_path / "gitops"
    first = export(sample_dir, dest, argocd=ARGO)
    assert first["changed"] is True and first["changed_files"] == first["files"] and len(first["files"]) == 132
    written = tree(dest)
    assert sorted(written) == sorted(first["files"] + [".gitops-export.index"])
    index = json.loads(written[".gitops-export.index"])
    assert index["generator"] == "sophia_ai.platform.gitops_export" and sorted(index["files"]) == first["files"]
    assert oct(os.stat(dest / "helm/sophia-mcp/values.yaml").st_mode & 0o777) == "0o644"
    second = export(sample_dir, dest, argocd=ARGO)
    assert second["changed"] is False and second["changed_files"] == [] and second["removed_files"] == []
    assert second["msg"] == "28 services exported; %s is up to date" % dest
    assert tree(dest) == written
    assert not [p for p in tmp_path.iterdir() if p.name != "gitops"]  # no staging directory left behind


def test_check_mode_writes_nothing(sample_dir, tmp_path):
    dest = tmp_path / "gitops"
    result = export(sample_dir, dest, check_mode=True, want_diff=True)
    assert result["changed"] is True and len(result["changed_files"]) == 126 and not dest.exists()
    assert result["msg"].endswith("would change 126") and len(result["diff"]) == 126
    export(sample_dir, dest)
    before = tree(dest)
    result = export(sample_dir, dest, check_mode=True, formats=["helm"], want_diff=True)
    assert result["changed"] is True and len(result["removed_files"]) == 64 and tree(dest) == before
    assert {d["after_header"] for d in result["diff"]} == {"/dev/null"}


def test_stale_files_removed_edited_kept_foreign_left(sample_dir, tmp_path):
    dest = tmp_path / "gitops"
    export(sample_dir, dest)
    (dest / "kustomize" / "critical-gpu" / "deployment-mcp-whisper.yaml").write_text("edited by hand\n")
    (dest / "README.md").write_text("ours, not the export's\n")
    (dest / "helm" / "sophia-mcp" / "templates" / "extra.yaml").write_text("kind: ConfigMap\n")
    result = export(sample_dir, dest, formats=["helm"], want_diff=True)
    assert result["changed"] is True and len(result["removed_files"]) == 63
    assert "kustomize/critical-gpu/deployment-mcp-whisper.yaml" not in result["removed_files"]
    assert sorted(p.relative_to(dest / "kustomize").as_posix() for p in (dest / "kustomize").rglob("*")) == [
        "critical-gpu", "critical-gpu/deployment-mcp-whisper.yaml"]  # emptied directories go, the edited file stays
    assert (dest / "README.md").exists() and (dest / "helm/sophia-mcp/templates/extra.yaml").exists()
    warnings = result["export_warnings"]
    assert "kustomize/critical-gpu/deployment-mcp-whisper.yaml was written by an earlier run and edited since: no longer " \
           "produced, but kept" in warnings
    assert any(w.startswith("helm/sophia-mcp/templates/extra.yaml is not ours") for w in warnings)
    removed = [d for d in result["diff"] if d["after_header"] == "/dev/null"]
    assert len(removed) == 63 and removed[0]["before"].startswith("# Generated by sophia_ai.platform.gitops_export")


def test_a_file_in_the_way_fails_and_nothing_is_written(sample_dir, tmp_path):
    dest = tmp_path / "gitops"
    (dest / "kustomize").mkdir(parents=True)
    (dest / "kustomize" / "kustomization.yaml").write_text("resources: [mine]\n")
    before = tree(dest)
    with pytest.raises(InputError) as err:
        export(sample_dir, dest)
    assert "kustomize/kustomization.yaml" in str(err.value) and "nothing was written" in str(err.value)
    assert err.value.details["files"] == ["kustomize/kustomization.yaml"] and err.value.details["key"] == "dest"
    assert tree(dest) == before


def test_a_change_rewrites_only_what_changed(sample_dir, tmp_path):
    dest = tmp_path / "gitops"
    export(sample_dir, dest)
    result = export(sample_dir, dest, chart_version="0.2.0", want_diff=True)
    assert result["changed_files"] == ["helm/sophia-mcp/Chart.yaml"] and result["removed_files"] == []
    (diff,) = result["diff"]
    assert "version: 0.1.0" in diff["before"] and "version: 0.2.0" in diff["after"]


def test_dest_that_is_a_file_fails(sample_dir, tmp_path):
    dest = tmp_path / "file"
    dest.write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        export(sample_dir, dest)
