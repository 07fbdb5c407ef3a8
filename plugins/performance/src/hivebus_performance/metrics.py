"""The metric families, in a registry of their own so several cores in one process never clash."""

from __future__ import annotations

from collections.abc import Sequence

from hivebus_hookspecs import Event, EventName
from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["DEFAULT_BUCKETS", "WAIT_BUCKETS", "Metrics"]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0
)  # fmt: skip
"""Seconds from assignment to the end: agent tasks run from milliseconds to an hour."""

WAIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
)  # fmt: skip
"""Seconds a task waits: a millisecond when an agent is free, up to an hour in a backlog."""


class Metrics:
    """Counters and histograms, fed from lifecycle events."""

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
        for outcome in ("completed", "failed"):
            self.duration.labels(outcome)
        self.delegation = Histogram(
            "hivebus_delegation_seconds",
            "Time from a delegation's admission to its placement: assigned at once, or queued.",
            ["outcome"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        for outcome in ("assigned", "queued"):
            self.delegation.labels(outcome)
        self.queue_wait = Histogram(
            "hivebus_queue_wait_seconds",
            "Time from a task's delegation to its first assignment (queued or not).",
            buckets=WAIT_BUCKETS,
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
