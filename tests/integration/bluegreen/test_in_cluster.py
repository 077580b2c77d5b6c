# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bluegreen_cutover in the cluster, for real, under 50 MCP requests/s through the front door (issue #9, 4 and 5).

One set-up for the module (fixture ``in_cluster``, lab.py): blue Deployment ``mcp-bg`` (2 replicas of the sample
image) behind the NodePort Service ``mcp-bg``, the front door's backend ``mcp-bg`` in front of that Service. Every
case runs the module through ansible-playbook while the traffic recorder sends at least 1,000 requests (never
retried) and a sampler asks ``server_info`` which server answered (blue is ``mcp-bg-blue``, each green has a name of
its own); the cases follow each other (promote, rerun, rollback, abort, failed post-promotion check, API server
restart) and each first puts the service into the state it starts from, so one may also run alone.
Nothing is mocked: the API server, controllers, kubelet, containerd and kube-proxy are the lab's real ones.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from .lab import (
    REVISION_LABEL,
    SETTLE_S,
    Background,
    InClusterLab,
    check_results,
    lab_cluster,
    report,
    run_cutover,
    server_info,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BLUE = InClusterLab.BLUE_SERVER


def green(tag):
    return {"MCP_SERVER_NAME": f"mcp-bg-green-{tag}", "MCP_SERVER_VERSION": f"{tag}.0.0"}


def promote_params(lab, env, **more):
    params = {
        "state": "promoted",
        "env": env,
        "rollback_window": "2h",
        "ready_timeout": 120,
        "pre_promotion_checks": [{"name": "preview-ready", "type": "http", "target": "preview"},
                                 {"name": "preview-mcp", "type": "mcp", "target": "preview", "tools": ["echo"]}],
        "post_promotion_checks": [{"name": "active-mcp", "type": "mcp", "target": "active", "tools": ["echo"]}],
    }
    params.update(more)
    return lab.params(**params)


def serving(lab, name, timeout=20.0):
    """Wait until the front door's answers come from server ``name`` (kube-proxy follows the endpoints in ~1 s)."""
    def only_name():
        answers = [server_info(lab.port) for dummy in range(4)]
        return all(a["ok"] and a["name"] == name for a in answers)

    wait_for(only_name, timeout, interval=0.5, what=f"the front door to answer from {name} only")


def ensure_promoted(lab):
    """The state the rerun and rollback cases start from: green (tag 2) promoted."""
    if lab.annotations().get("state") != "promoted":
        run = run_cutover(lab.work, promote_params(lab, green(2)))
        assert run.rc == 0, run.why()
    serving(lab, green(2)["MCP_SERVER_NAME"])


def ensure_blue(lab):
    """The state the abort-like cases start from: blue active, no cutover in flight."""
    state = lab.annotations().get("state")
    if state in ("promoted", "preview"):
        run = run_cutover(lab.work, lab.params(state="rolled_back" if state == "promoted" else "aborted",
                                               reason="integration test set-up"))
        assert run.rc == 0, run.why()
    serving(lab, BLUE)


def endpoint_revisions(lab):
    labels = lab.kube.pod_labels(lab.namespace)
    return {labels.get(pod, {}).get(REVISION_LABEL) for pod in lab.kube.endpoint_pods(lab.namespace, lab.NAME)}


def assert_on_blue(lab, annotations):
    """Blue serves: the active Service selects only blue's pods, at full scale."""
    selector = lab.selector()
    pods = lab.kube.endpoint_pods(lab.namespace, lab.NAME)
    assert len(pods) == 2 and all(pod.startswith(f"{lab.NAME}-") for pod in pods), pods
    assert lab.kube.deployment(lab.namespace, lab.NAME).spec.replicas == 2
    assert selector.get(REVISION_LABEL) in (None, (annotations.get("blue") or {}).get("revision")), selector
    assert endpoint_revisions(lab) <= {None, (annotations.get("blue") or {}).get("revision")}


def test_promote_under_load_loses_no_request(in_cluster, record_property):
    lab = in_cluster
    ensure_blue(lab)
    name = green(2)["MCP_SERVER_NAME"]
    with lab.traffic("in-cluster-promote") as traffic:
        traffic.warmup()
        run = run_cutover(lab.work, promote_params(lab, green(2)))
        traffic.hold(after=run.end)
    after = traffic.samples_after(run.end + SETTLE_S)
    blue_last = max((s["at"] for s in traffic.samples if s["ok"] and s["name"] == BLUE), default=None)
    figures = report(record_property, "in_cluster_promote", traffic, [run],
                     last_blue_answer_after_task_end_s=None if blue_last is None else round(blue_last - run.end, 3))
    assert run.rc == 0, run.why()
    result = run.result
    assert (result["changed"], result["state"], result["active"]) == (True, "promoted", "green"), run.why()
    checks = check_results(result)
    assert {c["name"] for c in checks} == {"preview-ready", "preview-mcp", "active-mcp"} and all(c["ok"] for c in checks)
    assert result["window_open"] is True
    assert 0 < result["switch_seconds"] < 5
    assert figures["requests"] >= 1000 and figures["failed"] == 0, figures
    assert figures["samples_failed"] == 0, traffic.failures()[:5]
    assert after and {s["name"] for s in after} == {name}, "requests after the promotion reached another server"
    annotations = lab.annotations()
    revision = annotations["green"]["revision"]
    assert annotations["state"] == "promoted" and annotations["active"] == revision
    ends = datetime.fromisoformat(annotations["window-end"].replace("Z", "+00:00"))
    assert 7000 < (ends - datetime.now(timezone.utc)).total_seconds() <= 7200
    assert annotations["history"][-1]["outcome"] and annotations["history"][-1]["revision"] == revision
    assert lab.selector()[REVISION_LABEL] == revision
    assert endpoint_revisions(lab) == {revision}
    # blue stays at full scale for the rollback window
    assert lab.kube.available(lab.namespace, lab.NAME) and lab.kube.deployment(lab.namespace, lab.NAME).spec.replicas == 2
    preview = lab.kube.service(lab.namespace, f"{lab.NAME}-preview")
    assert preview.spec.selector[REVISION_LABEL] == revision


def test_rerun_changes_nothing(in_cluster, record_property):
    lab = in_cluster
    ensure_promoted(lab)
    before = lab.fingerprint()
    annotations = lab.annotations()
    with lab.traffic("in-cluster-rerun") as traffic:
        checked = run_cutover(lab.work, promote_params(lab, green(2)), check=True, diff=True)
        run = run_cutover(lab.work, promote_params(lab, green(2)))
        traffic.hold(after=run.end, min_requests=0)
    report(record_property, "in_cluster_rerun", traffic, [checked, run])
    assert checked.rc == 0 and checked.result["changed"] is False, checked.why()
    assert run.rc == 0, run.why()
    assert (run.result["changed"], run.result["state"], run.result["active"]) == (False, "promoted", "green")
    assert lab.fingerprint() == before, "the rerun wrote to the API"
    assert lab.annotations() == annotations
    assert traffic.figures()["failed"] == 0
    assert {s["name"] for s in traffic.samples} == {green(2)["MCP_SERVER_NAME"]}, "the rerun moved traffic"


def test_rollback_within_the_window_loses_no_request(in_cluster, record_property):
    lab = in_cluster
    ensure_promoted(lab)
    green_deployment = lab.annotations()["green"]["deployment"]
    with lab.traffic("in-cluster-rollback") as traffic:
        traffic.warmup()
        run = run_cutover(lab.work, lab.params(state="rolled_back", reason="integration test: rollback in the window"))
        traffic.hold(after=run.end)
    after = traffic.samples_after(run.end + SETTLE_S)
    figures = report(record_property, "in_cluster_rollback", traffic, [run])
    assert run.rc == 0, run.why()
    assert (run.result["changed"], run.result["state"], run.result["active"]) == (True, "rolled_back", "blue")
    assert 0 < run.result["switch_seconds"] < 5
    assert figures["requests"] >= 1000 and figures["failed"] == 0, figures
    assert figures["samples_failed"] == 0, traffic.failures()[:5]
    assert after and {s["name"] for s in after} == {BLUE}
    annotations = lab.annotations()
    assert annotations["state"] == "rolled_back"
    assert annotations["history"][-1]["reason"] == "integration test: rollback in the window"
    assert_on_blue(lab, annotations)
    assert lab.kube.deployment(lab.namespace, green_deployment).spec.replicas == 0

    again = run_cutover(lab.work, lab.params(state="rolled_back", reason="integration test: rollback in the window"))
    assert again.rc == 0 and again.result["changed"] is False, again.why()


def test_abort_when_green_never_becomes_ready(in_cluster, record_property):
    lab = in_cluster
    ensure_blue(lab)
    never = dict(green(3), MCP_READY_FILE="/nonexistent")  # /readyz answers 503 for ever
    with lab.traffic("in-cluster-abort") as traffic:
        traffic.warmup()
        run = run_cutover(lab.work, promote_params(lab, never, ready_timeout=20))
        traffic.hold(after=run.end)
    figures = report(record_property, "in_cluster_abort", traffic, [run], switch_s=0.0)
    assert run.rc != 0 and run.result.get("failed") is True, run.why()
    assert run.result["reason"] == "green_not_ready", run.why()
    assert run.result.get("aborted") is True
    assert figures["requests"] >= 1000 and figures["failed"] == 0, figures
    assert figures["samples_failed"] == 0 and {s["name"] for s in traffic.samples} == {BLUE}, figures["servers"]
    annotations = lab.annotations()
    assert annotations["state"] == "aborted"
    assert_on_blue(lab, annotations)
    unready = annotations["green"]["deployment"]
    assert lab.kube.deployment(lab.namespace, unready).spec.replicas == 0


def test_failed_post_promotion_check_rolls_back(in_cluster, record_property):
    lab = in_cluster
    ensure_blue(lab)
    failing = [{"name": "active-missing-path", "type": "http", "target": "active", "path": "/no-such-path",
                "attempts": 1, "timeout": 2}]
    with lab.traffic("in-cluster-post-check") as traffic:
        traffic.warmup()
        run = run_cutover(lab.work, promote_params(lab, green(4), post_promotion_checks=failing))
        traffic.hold(after=run.end)
    after = traffic.samples_after(run.end + SETTLE_S)
    figures = report(record_property, "in_cluster_post_check_rollback", traffic, [run])
    assert run.rc != 0, run.why()
    assert run.result["reason"] == "post_check_failed" and run.result.get("rolled_back") is True, run.why()
    failed = [c for c in check_results(run.result) if not c["ok"]]
    assert [c["name"] for c in failed] == ["active-missing-path"], check_results(run.result)
    assert figures["requests"] >= 1000 and figures["failed"] == 0, figures
    assert figures["samples_failed"] == 0, traffic.failures()[:5]
    assert after and {s["name"] for s in after} == {BLUE}
    annotations = lab.annotations()
    assert annotations["state"] == "rolled_back"
    assert_on_blue(lab, annotations)


def test_api_server_restart_mid_cutover_then_rerun_converges(in_cluster, record_property):
    lab = in_cluster
    ensure_blue(lab)
    params = promote_params(lab, green(5), ready_timeout=180)
    name = green(5)["MCP_SERVER_NAME"]
    existing = set(lab.kube.deployments(lab.namespace))
    with lab.traffic("in-cluster-apiserver-restart") as traffic:
        traffic.warmup()
        first = Background(lab.work, params)
        first.start()
        # the module has created green and waits for it to become ready: restart the API server now
        wait_for(lambda: set(lab.kube.deployments(lab.namespace)) - existing or not first.is_alive(), 120, interval=0.2,
                 what="the module to create green")
        begun = time.monotonic()
        restart = lab_cluster("restart-apiserver", timeout=300)
        restart_s = time.monotonic() - begun
        first.join(timeout=900)
        wait_for(lab.kube.api_ready, 60, what="the API server to answer again")
        second = run_cutover(lab.work, params)
        traffic.hold(after=second.end)
    assert first.error is None, first.error
    runs = [first.run_result, second]
    after = traffic.samples_after(second.end + SETTLE_S)
    figures = report(record_property, "in_cluster_apiserver_restart", traffic, runs, restart_s=round(restart_s, 1),
                     first_run=runs[0].brief())
    assert restart.returncode == 0, restart.stderr[-2000:]
    assert second.rc == 0, second.why()
    assert (second.result["state"], second.result["active"]) == ("promoted", "green"), second.why()
    # one consistent state: annotations, selector, endpoints and Deployments agree on one green revision
    annotations = lab.annotations()
    revision = annotations["green"]["revision"]
    assert annotations["state"] == "promoted" and annotations["active"] == revision
    assert lab.selector()[REVISION_LABEL] == revision
    assert endpoint_revisions(lab) == {revision}
    scaled = {n: d.spec.replicas for n, d in lab.kube.deployments(lab.namespace).items() if d.spec.replicas}
    assert scaled == {lab.NAME: 2, annotations["green"]["deployment"]: 2}, scaled
    assert lab.kube.available(lab.namespace, annotations["green"]["deployment"])
    third = run_cutover(lab.work, params)
    assert third.rc == 0 and third.result["changed"] is False, third.why()
    assert figures["requests"] >= 1000 and figures["failed"] == 0, figures
    assert figures["samples_failed"] == 0, traffic.failures()[:5]
    assert after and {s["name"] for s in after} == {name}
