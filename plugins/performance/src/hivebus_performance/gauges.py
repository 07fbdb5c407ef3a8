"""Gauges read at scrape time: agents by state and by role, the queue by priority and by
capability.

Scrapes are served on the core's event loop, so reading the orchestrator here never races its
updates. Each scrape reads the agents summed (``capacity()``, ``agent_counts()``: no view per
agent), makes one pass over the queue, and one over the tasks the core holds (the oldest waiting
task: the view lists tasks newest first), so its cost grows with the backlog, every scrape
interval. Capability labels are bounded: only the ``max_capabilities`` capabilities with the
most queued tasks get series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from hivebus_hookspecs import OrchestratorView, PluginContext, TaskPriority, TaskStatus
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["AGENT_STATES", "ROLE_STATES", "OrchestratorCollector"]

AGENT_STATES = ("idle", "busy", "quarantined", "offline")
ROLE_STATES = ("live", "busy", "quarantined", "sleeping")
"""Overlapping on purpose: every live agent counts as ``live``, and also as each of the others
that holds (a busy agent may be quarantined, a sleeping one idle). The fields of
``AgentCounts`` of the same names."""


class OrchestratorCollector(Collector):
    def __init__(
        self,
        orchestrator: OrchestratorView,
        context: PluginContext,
        max_capabilities: int = 50,
    ) -> None:
        self._orchestrator = orchestrator
        self._context = context
        self._max_capabilities = max_capabilities

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(read=True))

    def _families(self, read: bool = False) -> list[Metric]:
        registered = GaugeMetricFamily("hivebus_agents_registered", "Live registered agents.")
        agents = GaugeMetricFamily(
            "hivebus_agents", "Agents by state: idle, busy, quarantined, offline.", labels=["state"]
        )
        by_role = GaugeMetricFamily(
            "hivebus_agents_by_role",
            "Agents by role and state: live, and of those busy, quarantined, sleeping.",
            labels=["role", "state"],
        )
        depth = GaugeMetricFamily("hivebus_queue_depth", "Tasks waiting in the queue.")
        by_priority = GaugeMetricFamily(
            "hivebus_queue_depth_by_priority", "Tasks waiting, by priority.", labels=["priority"]
        )
        by_capability = GaugeMetricFamily(
            "hivebus_queue_depth_by_capability",
            "Tasks waiting, by required capability ('*': none required); the most waited-on "
            "capabilities only.",
            labels=["capability"],
        )
        offering = GaugeMetricFamily(
            "hivebus_capability_live_agents",
            "Live agents offering each capability that has waiting tasks.",
            labels=["capability"],
        )
        oldest = GaugeMetricFamily(
            "hivebus_queue_oldest_age_seconds", "Age of the oldest waiting task (0: none waits)."
        )
        families: list[Metric] = [
            registered, agents, by_role, depth, by_priority, by_capability, offering, oldest
        ]  # fmt: skip
        if not read:
            return families
        context = self._context
        queue = context.queue_depth()
        waiting = queue.get("by_capability", {})
        kept = sorted(waiting, key=lambda cap: (-waiting[cap], cap))[: self._max_capabilities]
        counts = dict.fromkeys(AGENT_STATES, 0)
        # Only the capabilities that get a series are counted: none while nothing waits.
        holders = dict.fromkeys(kept, 0)
        # Readings, not views: a view per agent would cost the loop ~50 ms at 10,000 agents.
        for group in context.capacity():
            counts["busy"] += group.busy
            counts["idle"] += group.agents - group.busy
            counts["quarantined"] += group.quarantined
            if holders:
                for capability in group.capabilities:
                    if capability in holders:
                        holders[capability] += group.agents + group.quarantined
        roles: dict[tuple[str, str], int] = {}
        for kind, counted in context.agent_counts().items():
            counts["offline"] += counted.offline
            for state in ROLE_STATES:
                roles[(kind.value, state)] = getattr(counted, state)
        live = sum(n for state, n in counts.items() if state != "offline")
        registered.add_metric([], live)
        for state, n in counts.items():
            agents.add_metric([state], n)
        for (role, state), n in roles.items():
            by_role.add_metric([role, state], n)
        depth.add_metric([], len(self._orchestrator.queue))
        priorities = queue.get("by_priority", {})
        for priority in TaskPriority:
            name = priority.name.lower()
            by_priority.add_metric([name], priorities.get(name, 0))
        for capability in kept:
            by_capability.add_metric([capability], waiting[capability])
            offered = live if capability == "*" else holders.get(capability, 0)
            offering.add_metric([capability], offered)
        oldest.add_metric([], self._oldest_age())
        return families

    def _oldest_age(self) -> float:
        created = [t.created_at for t in self._orchestrator.tasks(TaskStatus.QUEUED)]
        return max(0.0, time.time() - min(created)) if created else 0.0
