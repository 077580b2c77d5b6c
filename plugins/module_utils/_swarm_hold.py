# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hold a Swarm service's requests at the front door while an update replaces its only task(s).

A stop-first update of a service whose every running task goes at once (one replica, or no more tasks than the
update's parallelism) leaves it with no task for a few seconds: the old one stops, the new one starts and passes its
first health check. With a host-mode port (no ingress mesh) nothing else answers meanwhile, and every request the
front door sends fails. Held instead (role ``front_door``'s Lua hold, the one ``bluegreen_cutover`` pauses a stateful
service's writes with), those requests wait inside HAProxy and go on once the new task answers.

Layers:

- pure: ``gap_expected`` (does this update leave the service without a task?), ``backend_of`` (the front door's
  backend name of a service: its name without the stack prefix), ``release_reason`` (when the hold may end);
- I/O: :class:`FrontDoorHold` drives ``_haproxy.hold``/``release`` and reads the backend's servers while the update
  rolls out (``_swarm_service.wait_rollout`` calls :meth:`FrontDoorHold.poll` on every round).

The hold ends when a task started by the update has its container up (Swarm's ``starting``, or ``running``) and the
front door has seen one of the backend's servers come back: healthy by the front door's own checks (``rise`` HTTP
checks in a row), its last status change after the update was sent - a server still marked up from before the update
may be the one that just stopped. The front door would send it requests then anyway; Swarm's ``running`` waits for
the container's health check as well, seconds later. A server that never went down in the front door's eyes (the
new task listened before ``fall`` checks failed) counts once it has stayed healthy for ``STAYED_UP_S`` after the new
task came up: the old task is gone by then (stop-first), so those checks reached the new one. Failing all that, the
hold ends once the rollout is over and a server is healthy, or after ``timeout`` seconds whatever happens (below the
role's ``front_door_hold_max_ms``, after which HAProxy lets held requests go by itself).
"""

from __future__ import annotations

import time

from ansible_collections.sophia_ai.platform.plugins.module_utils import _haproxy
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import ApiError
from ansible_collections.sophia_ai.platform.plugins.module_utils._phase_report import _short

STACK_LABEL = "com.docker.stack.namespace"
# Seconds a server must stay healthy after the new task came up when it never went down: more than the front door's
# fall x inter (2 x 1 s, role front_door's defaults), so a port left closed by the stopped task would have shown.
STAYED_UP_S = 3.0


def _running(tasks, states=("running",)):
    return [t for t in tasks or () if t.get("DesiredState") == "running"
            and (t.get("Status") or {}).get("State") in states]


def gap_expected(spec, tasks):
    """True when an update of the service to ``spec`` stops every running task before a new one runs.

    That is a stop-first update (``UpdateConfig.Order``; the engine's default) whose parallelism (0: unlimited)
    covers every running task. A service with no running task has nothing to protect (False); a start-first update
    or one that keeps other tasks running while one is replaced leaves the front door servers that answer.
    """
    update = (spec or {}).get("UpdateConfig") or {}
    if (update.get("Order") or "stop-first") != "stop-first":
        return False
    running = len(_running(tasks))
    parallelism = int(update.get("Parallelism") or 0)
    return running > 0 and (parallelism == 0 or running <= parallelism)


def backend_of(service):
    """The front door's backend of a Swarm service: its name without the stack prefix (``sophia_mcp-gong`` ->
    ``mcp-gong``), as ``_phase_report.front_door_services`` names the frontends."""
    spec = service.get("Spec") or {}
    return _short(spec.get("Name") or "", (spec.get("Labels") or {}).get(STACK_LABEL))


def release_reason(new_up_s, servers, since_update_s, rollout_done, held_s, timeout_s, stayed_up_s=STAYED_UP_S):
    """Why the hold may end now, or None to keep holding.

    ``new_up_s``: seconds since a task the update started was first seen with its container up (None: not yet).
    ``servers``: the backend's servers (``_haproxy.servers_from``); only those with weight count (a drained or
    zero-weight server gets no request on release). ``since_update_s``: seconds since the update was sent.
    """
    if held_s >= timeout_s:
        return "timeout"
    weighted = [s for s in servers if s.get("effective_weight", 0) > 0]
    healthy = [s for s in weighted if s.get("healthy")]
    if new_up_s is not None and any(s.get("last_change_s") is not None and s["last_change_s"] <= since_update_s
                                    for s in healthy):
        return "back"
    if new_up_s is not None and new_up_s >= stayed_up_s and healthy:
        return "stayed_up"
    if rollout_done and healthy:
        return "rollout_done"
    return None


class FrontDoorHold:
    """One service's hold around its update: :meth:`begin` before the update is sent, :meth:`poll` on every round
    of the rollout's wait, :meth:`end` always (it releases a hold still in place)."""

    def __init__(self, api, backend, hold_map, timeout=25.0, drain_timeout=5.0, clock=time.monotonic,
                 sleep=time.sleep, now=time.time):
        self.api = api
        self.backend = backend
        self.hold_map = hold_map
        self.timeout = float(timeout)
        self.drain_timeout = float(drain_timeout)
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.held = False
        self.before = set()
        self.started = None
        self.sent_at = None
        self.new_seen_at = None
        self.rounds = []
        self.skipped = None

    def begin(self, tasks):
        """Hold the backend's new requests and wait (up to ``drain_timeout``) until its servers carry none.

        A service the front door has no backend for (no published port, so no frontend) is not held: nothing reaches
        it through the front door. Any other refusal (a front door without the hold) is raised before the update is
        sent."""
        self.before = {t.get("ID") for t in tasks or ()}
        try:
            result = _haproxy.hold(self.api, self.backend, self.hold_map, self.drain_timeout, clock=self.clock,
                                   sleep=self.sleep, now=self.now)
        except ApiError as exc:
            if exc.details.get("reason") != "unknown_service":
                raise
            self.skipped = f"the front door has no backend {self.backend}"
            return
        self.held = True
        self.started = self.clock()
        self.sent_at = self.clock()
        self.new_seen_at = None
        self.rounds.append({"drain": result["drain"], "released": None, "seconds": None})

    def poll(self, tasks, rollout_done):
        """Release the hold when :func:`release_reason` says so; the next poll interval in seconds."""
        if not self.held:
            return None
        new_up = any(t.get("ID") not in self.before for t in _running(tasks, ("starting", "running")))
        servers = _haproxy.read_backend(self.api, self.backend)
        now = self.clock()
        if new_up and self.new_seen_at is None:
            self.new_seen_at = now
        reason = release_reason(None if self.new_seen_at is None else now - self.new_seen_at, servers,
                                now - self.sent_at, rollout_done, now - self.started, self.timeout)
        if reason:
            self._release(reason)
            return None
        return _haproxy.POLL_INTERVAL * 2

    def settle(self, read_tasks):
        """After the rollout: keep polling (``read_tasks()`` gives the service's tasks) until the hold ends."""
        while self.held:
            interval = self.poll(read_tasks(), True)
            if self.held:
                self.sleep(interval or _haproxy.POLL_INTERVAL)

    def end(self, reason="finished"):
        """Release a hold still in place (the update failed, or the rollout ended before the servers came back)."""
        if self.held:
            self._release(reason)

    def _release(self, reason):
        self.held = False
        last = self.rounds[-1]
        last["released"] = reason
        last["seconds"] = round(self.clock() - self.started, 3)
        _haproxy.release(self.api, self.backend, self.hold_map)

    def report(self):
        """``{held, backend, seconds, released, rounds}`` for the module's result (``seconds``: all rounds)."""
        return {"held": bool(self.rounds), "backend": self.backend, "skipped": self.skipped,
                "seconds": round(sum(r["seconds"] or 0 for r in self.rounds), 3),
                "released": self.rounds[-1]["released"] if self.rounds else None, "rounds": self.rounds}
