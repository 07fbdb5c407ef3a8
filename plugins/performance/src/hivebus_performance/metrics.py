"""The metric families, in a registry of their own so several cores in one process never clash."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hivebus_hookspecs import AgentState, Event, EventName, OrchestratorView
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["DEFAULT_BUCKETS", "Metrics", "OrchestratorCollector"]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0
)  # fmt: skip
"""Seconds from assignment to the end: agent tasks run from milliseconds to an hour."""


class Metrics:
    """Counters and the duration histogram, fed from lifecycle events."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, registry=registry)

        self.delegations = counter(
            "hivebus_delegations", "New tasks admitted by every plugin's delegate hook."
        )
        self.queued = counter("hivebus_tasks_queued", "Tasks queued because no agent took them.")
        self.assignments = counter("hivebus_assignments", "Offers accepted by an agent.")
        self.completions = counter("hivebus_completions", "Tasks completed successfully.")
        self.failures = counter("hivebus_failures", "Tasks that failed.")
        self.requeues = counter("hivebus_requeues", "Tasks given back by an agent that left.")
        self.cancellations = counter("hivebus_cancellations", "Tasks cancelled.")
        self.events = Counter(
            "hivebus_events_observed",
            "Lifecycle events this plugin observed, by event name.",
            ["event"],
            registry=registry,
        )
        for name in EventName:
            self.events.labels(name.value)  # every series exists from the start, at zero
        self.duration = Histogram(
            "hivebus_task_duration_seconds",
            "Time from assignment to completion or failure.",
            ["outcome"],
            buckets=buckets,
            registry=registry,
        )
        self._by_event: dict[EventName, Counter] = {
            EventName.TASK_QUEUED: self.queued,
            EventName.TASK_ASSIGNED: self.assignments,
            EventName.TASK_COMPLETED: self.completions,
            EventName.TASK_FAILED: self.failures,
            EventName.TASK_REQUEUED: self.requeues,
            EventName.TASK_CANCELLED: self.cancellations,
        }

    def observe(self, event: Event) -> None:
        self.events.labels(event.event.value).inc()
        counter = self._by_event.get(event.event)
        if counter is not None:
            counter.inc()
        if event.event in (EventName.TASK_COMPLETED, EventName.TASK_FAILED):
            duration_ms = (event.model_extra or {}).get("duration_ms")
            if isinstance(duration_ms, int | float):
                outcome = "completed" if event.event is EventName.TASK_COMPLETED else "failed"
                self.duration.labels(outcome).observe(duration_ms / 1000)


class OrchestratorCollector(Collector):
    """Gauges read from the running orchestrator at scrape time.

    Scrapes are served on the core's event loop, so reading the orchestrator here never races
    its updates. Reads only its plugin view: the queue's length and the agents' states (one
    pass over the agents per scrape).
    """

    def __init__(self, orchestrator: OrchestratorView) -> None:
        self._orchestrator = orchestrator

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("hivebus_agents_registered", "Live registered agents.")
        yield GaugeMetricFamily("hivebus_queue_depth", "Tasks waiting in the queue.")

    def collect(self) -> Iterator[Metric]:
        active = sum(1 for a in self._orchestrator.agents() if a.state is AgentState.ACTIVE)
        yield GaugeMetricFamily(
            "hivebus_agents_registered", "Live registered agents.", value=active
        )
        yield GaugeMetricFamily(
            "hivebus_queue_depth",
            "Tasks waiting in the queue.",
            value=len(self._orchestrator.queue),
        )
