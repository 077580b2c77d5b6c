# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sophia_ai.platform.gitops_export through ansible-playbook on the sample stack, checked with the real helm and kubectl.

One playbook converts the sample stack (the real compose_convert and kompose), exports it twice and once more in check
mode into another directory. Then the pinned helm (built from source by ``make setup``) lints and renders the chart
and kubectl (1.34, kustomize built in) builds each wave's directory and the whole tree: every rendering must hold
exactly the objects of the plain manifests (compared as parsed objects), a service disabled with ``--set`` none of its.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from .test_compose_convert_playbook import ansible_playbook, convert_task, playbook, task_results

pytestmark = [pytest.mark.integration]

CACHE = Path(os.environ.get("SOPHIA_CACHE") or Path.home() / ".cache" / "sophia-platform")
ARGO = {"repo_url": "https://git.example.com/platform/gitops.git", "revision": "main", "path": "sophia-mcp"}
WAVES = ["shared", "non-critical", "non-critical-gpu", "critical", "critical-gpu"]


def tool(name, path):
    """The binary ``make setup`` builds; a missing one fails the test (it is part of the set-up, not optional)."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail("%s not found at %s: `make setup` builds it (requirements/go-tools.txt)" % (name, path))
    return str(path)


@pytest.fixture(scope="module")
def helm():
    return tool("helm", CACHE / "bin" / "helm")


@pytest.fixture(scope="module")
def kubectl():
    return tool("kubectl", CACHE / "bin" / "kubernetes" / "kubectl")


def export_task(src, dest, **extra):
    return {"name": "export", "sophia_ai.platform.gitops_export": dict({"src": str(src), "dest": str(dest)}, **extra)}


@pytest.fixture(scope="module")
def exported(repo, tmp_path_factory):
    """Convert, export, export again, export in check mode elsewhere: (manifests dir, dest, check dest, results)."""
    root = tmp_path_factory.mktemp("gitops")
    manifests, dest, check_dest = root / "manifests", root / "gitops", root / "check"
    tasks = [convert_task(manifests), dict(export_task(manifests, dest, argocd=ARGO)),
             dict(export_task(manifests, dest, argocd=ARGO)),
             dict(export_task(manifests, check_dest, argocd=ARGO), check_mode=True)]
    res, output = ansible_playbook(repo, playbook(root, tasks))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return manifests, dest, check_dest, task_results(output)


def run(*args, cwd=None):
    res = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    return res


def objects(text):
    """{(kind, name): object} of a multi-document YAML stream; a duplicate fails."""
    out = {}
    for obj in yaml.safe_load_all(text):
        if obj:
            key = (obj["kind"], obj["metadata"]["name"])
            assert key not in out, "rendered twice: %s/%s" % key
            out[key] = obj
    return out


def plain(manifests):
    return objects("\n---\n".join(p.read_text() for p in sorted(manifests.glob("*.yaml"))))


def test_first_run_changed_second_not_check_mode_writes_nothing(exported):
    _manifests, dest, check_dest, results = exported
    _convert, first, second, check = results
    assert first["changed"] is True and len(first["changed_files"]) == 132
    assert [w["name"] for w in first["waves"]] == WAVES
    assert second["changed"] is False and second["changed_files"] == [] and second["removed_files"] == []
    assert check["changed"] is True and len(check["changed_files"]) == 132 and not check_dest.exists()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(
        first["files"] + [".gitops-export.index"])
    assert first["values"]["services"]["mcp-gong"]["image"] == {"repository": "sophia-platform/mcp-server", "tag": "lab",
                                                                "pullPolicy": ""}


def test_helm_lint_passes(helm, exported):
    _manifests, dest, _check, _results = exported
    res = run(helm, "lint", "--strict", str(dest / "helm" / "sophia-mcp"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout


def test_helm_template_renders_the_plain_manifests(helm, exported):
    manifests, dest, _check, _results = exported
    res = run(helm, "template", "sophia", str(dest / "helm" / "sophia-mcp"))
    assert res.returncode == 0, res.stderr
    expected = plain(manifests)
    assert len(expected) == 58
    assert objects(res.stdout) == expected


def test_helm_disabled_services_render_none_of_their_objects(helm, exported):
    manifests, dest, _check, _results = exported
    expected = plain(manifests)
    chart = str(dest / "helm" / "sophia-mcp")
    res = run(helm, "template", "sophia", chart, "--set", "services.mcp-gong.enabled=false")
    assert res.returncode == 0, res.stderr
    assert objects(res.stdout) == {k: v for k, v in expected.items() if k[1] != "mcp-gong"}
    # the PersistentVolumeClaim goes with the one service that mounts it
    res = run(helm, "template", "sophia", chart, "--set", "services.mcp-ai-memory.enabled=false")
    gone = set(expected) - set(objects(res.stdout))
    assert gone == {("Deployment", "mcp-ai-memory"), ("Service", "mcp-ai-memory"),
                    ("PersistentVolumeClaim", "ai-memory-data")}


def test_helm_values_override_and_schema_rejects_typos(helm, exported):
    _manifests, dest, _check, _results = exported
    chart = str(dest / "helm" / "sophia-mcp")
    res = run(helm, "template", "sophia", chart, "--set", "services.mcp-gong.replicas=3",
              "--set-string", "services.mcp-gong.image.tag=1.10", "--set", "services.mcp-gong.service.type=NodePort",
              "--set", "services.mcp-gong.resources.limits.cpu=2")
    assert res.returncode == 0, res.stderr
    rendered = objects(res.stdout)
    gong = rendered[("Deployment", "mcp-gong")]["spec"]
    assert gong["replicas"] == 3
    assert gong["template"]["spec"]["containers"][0]["image"] == "sophia-platform/mcp-server:1.10"
    assert gong["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": 2, "memory": "268435456"}
    assert rendered[("Service", "mcp-gong")]["spec"]["type"] == "NodePort"
    assert rendered[("Deployment", "mcp-slack")]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "sophia-platform/mcp-server:lab"
    res = run(helm, "template", "sophia", chart, "--set", "services.mcp-gogn.enabled=false")
    assert res.returncode != 0 and "mcp-gogn" in res.stderr and "not allowed" in res.stderr


def test_kubectl_kustomize_per_wave_and_whole(kubectl, exported):
    manifests, dest, _check, results = exported
    expected = plain(manifests)
    seen = {}
    for wave in results[1]["waves"]:
        res = run(kubectl, "kustomize", str(dest / wave["path"]))
        assert res.returncode == 0, res.stderr
        rendered = objects(res.stdout)
        assert sorted("%s/%s" % k for k in rendered) == sorted(wave["objects"])
        assert rendered == {k: expected[k] for k in rendered}
        seen.update(rendered)
    assert seen == expected
    res = run(kubectl, "kustomize", str(dest / "kustomize"))
    assert res.returncode == 0, res.stderr
    assert objects(res.stdout) == expected


def test_argocd_applications_sync_wave_after_wave(exported):
    _manifests, dest, _check, _results = exported
    apps = [yaml.safe_load((dest / "argocd" / "apps" / ("sophia-mcp-%s.yaml" % w)).read_text()) for w in WAVES]
    assert [int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for a in apps] == list(range(len(WAVES)))
    assert [a["spec"]["source"]["path"] for a in apps] == ["sophia-mcp/kustomize/%s" % w for w in WAVES]
    for wave, app in zip(WAVES, apps):
        assert (dest / "kustomize" / wave / "kustomization.yaml").is_file()
        assert app["spec"]["source"]["repoURL"] == ARGO["repo_url"] and app["spec"]["source"]["targetRevision"] == "main"
    root = yaml.safe_load((dest / "argocd" / "root.yaml").read_text())
    assert root["spec"]["source"]["path"] == "sophia-mcp/argocd/apps"
