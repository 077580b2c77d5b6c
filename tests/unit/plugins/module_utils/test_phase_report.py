# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of module_utils/_phase_report.py: the phase 1 report and the front door's Swarm frontends.

Inputs are small dicts in the shapes of swarm_audit's result, swarm_stabilize's outcomes and traffic_recorder's
summary; playbooks/phase1.yml runs the whole on real Swarms (tests/integration/swarm_stabilize/).
"""

from __future__ import annotations

from ansible_collections.sophia_ai.platform.plugins.module_utils import _phase_report as rep

SERVICES = [
    {"name": "sophia_mcp-gong", "stack": "sophia", "replicas_desired": 2, "replicas_running": 2,
     "ports": [{"target": 9005, "published": 9005, "protocol": "tcp", "mode": "host"}]},
    {"name": "sophia_mcp-asana", "stack": "sophia", "replicas_desired": 1, "replicas_running": 1,
     "ports": [{"target": 9010, "published": 9010, "protocol": "tcp", "mode": "host"}]},
    {"name": "sophia_worker", "stack": "sophia", "replicas_desired": 1, "replicas_running": 1, "ports": []},
]
BEFORE = {"services": SERVICES, "findings": [
    {"check": "no_healthcheck", "service": "sophia_mcp-asana"}, {"check": "no_limits", "service": "sophia_mcp-asana"},
    {"check": "no_rollback_on_failure", "service": "sophia_mcp-gong"},
    {"check": "node_unavailable", "service": None, "node": "worker2"}]}
AFTER = {"services": SERVICES, "findings": [{"check": "single_replica_critical", "service": "sophia_mcp-asana"}]}
OUTCOMES = [
    {"service": "sophia_mcp-gong", "class": "critical", "changed": True, "state": "converged", "seconds": 12.5,
     "changes": [{"path": "update_config.failure_action"}, {"path": "update_config.monitor"}]},
    {"service": "sophia_mcp-asana", "class": "non_critical", "changed": True, "state": "rolled_back",
     "detail": "rollback completed; last failed task: unhealthy", "changes": [{"path": "healthcheck.test"}],
     "held_s": 6.25},
    {"service": "sophia_worker", "skipped": True},
]
TRAFFIC = {"duration_s": 60.0, "schedule": {"kept": True},
           "overall": {"requests": 240, "failed": 3, "availability": 0.9875, "latency_ms": {"p99": 12.0},
                       "downtime_s": 1.5},
           "services": {"mcp-gong": {"requests": 120, "failed": 0, "availability": 1.0, "latency_ms": {"p99": 9.0}},
                        "mcp-asana": {"requests": 120, "failed": 3, "availability": 0.975, "outcomes": {"refused": 3},
                                      "latency_ms": {"p99": 15.0}, "downtime_s": 1.5}}}


def test_the_report_joins_audits_outcomes_and_traffic():
    report = rep.build(BEFORE, AFTER, OUTCOMES, TRAFFIC, {"stack": "sophia"})
    assert report["stack"] == "sophia" and report["services_total"] == 3 and report["stabilised"] == 3
    assert report["changed"] == ["sophia_mcp-gong"]
    assert report["failed"] == [{"service": "sophia_mcp-asana", "outcome": "rolled_back",
                                 "detail": "rollback completed; last failed task: unhealthy"}]
    assert report["findings_before"] == {"no_healthcheck": 1, "no_limits": 1, "no_rollback_on_failure": 1,
                                         "node_unavailable": 1}
    assert report["findings_after"] == {"single_replica_critical": 1}
    gong = next(s for s in report["services"] if s["name"] == "sophia_mcp-gong")
    assert gong["changes"] == ["update_config"] and gong["rollout_s"] == 12.5
    assert gong["traffic"]["requests"] == 120 and gong["traffic"]["failed"] == 0
    worker = next(s for s in report["services"] if s["name"] == "sophia_worker")
    assert worker["outcome"] == "skipped" and worker["traffic"] is None
    assert report["traffic"]["multi_replica_services"] == ["sophia_mcp-gong"]
    # the single-replica service was held at the front door while its task was replaced; the others were not
    assert report["held"] == {"services": ["sophia_mcp-asana"], "seconds": 6.25}
    assert gong["held_s"] == 0 and worker["held_s"] == 0
    assert report["traffic"]["multi_replica_failed"] == 0 and report["traffic"]["failed"] == 3


def test_a_service_still_lacking_a_health_check_is_not_stabilised():
    after = {"services": SERVICES, "findings": [{"check": "no_healthcheck", "service": "sophia_mcp-asana"}]}
    report = rep.build(BEFORE, after, OUTCOMES)
    assert report["stabilised"] == 2 and report["traffic"] is None
    assert next(s for s in report["services"] if s["name"] == "sophia_mcp-asana")["outcome"] == "rolled_back"


def test_markdown_has_the_summary_the_findings_and_a_row_per_service():
    text = rep.markdown(rep.build(BEFORE, AFTER, OUTCOMES, TRAFFIC, {"stack": "sophia", "started": "t0",
                                                                     "finished": "t1", "seconds": 60}))
    assert text.startswith("# Phase 1 report: sophia\n")
    assert "240 requests, 3 failed, availability 98.750%" in text
    assert "| no_healthcheck | 1 | 0 |" in text and "| single_replica_critical | 0 | 1 |" in text
    assert "| sophia_mcp-gong | critical | 2/2 | converged | update_config | - | 120 | 0 | 100.000% | 9.0 | - |" in text
    assert "| sophia_mcp-asana | non_critical | 1/1 | rolled_back | healthcheck | 6.25 | 120 | 3 |" in text
    assert "Held at the front door while their only task was replaced: 1 service(s), 6.25 s in all" in text
    assert "sophia_mcp-asana: rolled_back" in text


def test_front_door_services_one_frontend_per_published_service_a_server_per_node():
    out = rep.front_door_services(SERVICES, ["172.31.250.10", "172.31.250.11"], 20000)
    assert [s["name"] for s in out] == ["mcp-asana", "mcp-gong"]
    gong = out[1]
    assert gong["port"] == 29005
    assert gong["servers"] == [
        {"name": "swarm-1", "address": "172.31.250.10", "port": 9005, "weight": 100},
        {"name": "swarm-2", "address": "172.31.250.11", "port": 9005, "weight": 100}]
    single = rep.front_door_services(SERVICES, ["127.0.0.1"], 10000, stack="sophia")
    assert single[0]["servers"] == [{"name": "swarm", "address": "127.0.0.1", "port": 9010, "weight": 100}]
    assert rep.front_door_services(SERVICES, ["127.0.0.1"], 10000, stack="other") == []
