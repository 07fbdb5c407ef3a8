"""The metric families fed by events, in a registry of their own so several cores in one process
never clash. Every label set is bounded: outcomes and priorities are fixed lists, task types are
cut to the first ``max_task_types`` this core sees (then ``other``), plugins are the loaded ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from hivebus_hookspecs import Event, EventName, TaskPriority, TaskView
from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["DEFAULT_BUCKETS", "OTHER", "PRIORITIES", "WAIT_BUCKETS", "Metrics", "TaskTypes"]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0
)  # fmt: skip
"""Seconds from assignment to the end: agent tasks run from milliseconds to an hour."""

WAIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
)  # fmt: skip
"""Seconds a task waits: a millisecond when an agent is free, up to an hour in a backlog."""

PRIORITIES = tuple(priority.name.lower() for priority in TaskPriority)
OTHER = "other"
DECLINES = ("refused", "timeout")


class TaskTypes:
    """The task-type label: the first ``limit`` types seen keep their name, later ones are
    ``other``, so a caller inventing a type per task cannot grow the series without bound."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: set[str] = set()

    def label(self, task_type: str) -> str:
        if task_type in self._kept:
            return task_type
        if len(self._kept) < self._limit:
            self._kept.add(task_type)
            return task_type
        return OTHER


class Metrics:
    """Counters and histograms, fed from lifecycle events."""

    def __init__(
        self, registry: CollectorRegistry, buckets: Sequence[float], max_task_types: int
    ) -> None:
        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.task_types = TaskTypes(max_task_types)
        self.delegations = counter(
            "hivebus_delegations", "New tasks admitted by every plugin's delegate hook."
        )
        self.queued = counter("hivebus_tasks_queued", "Tasks queued because no agent took them.")
        self.assignments = counter("hivebus_assignments", "Offers accepted by an agent.")
        self.completions = counter("hivebus_completions", "Tasks completed successfully.")
        self.failures = counter("hivebus_failures", "Tasks that failed.")
        self.requeues = counter("hivebus_requeues", "Tasks given back by an agent that left.")
        self.cancellations = counter("hivebus_cancellations", "Tasks cancelled.")
        self.declined = counter(
            "hivebus_offers_declined",
            "Offers an agent refused (refused) or did not answer in time (timeout).",
            ["outcome"],
        )
        self._declined = {outcome: self.declined.labels(outcome) for outcome in DECLINES}
        self.vetoes = counter(
            "hivebus_plugin_vetoes", "Registrations and delegations a plugin vetoed.", ["plugin"]
        )
        self.events = counter(
            "hivebus_events_observed", "Lifecycle events this plugin observed, by event name.",
            ["event"],
        )  # fmt: skip
        # Every series exists from the start, at zero; the labelled children are kept, since
        # ``labels()`` costs more than the increment it leads to.
        self._events = {name: self.events.labels(name.value) for name in EventName}
        self.duration = Histogram(
            "hivebus_task_duration_seconds",
            "Time from assignment to completion or failure, by task type (the first "
            "max_task_types seen, then 'other') and outcome.",
            ["task_type", "outcome"],
            buckets=buckets,
            registry=registry,
        )
        self.delegation = Histogram(
            "hivebus_delegation_seconds",
            "Time from a delegation's admission to its placement (the delegate request's "
            "answer): assigned at once, or queued; by priority.",
            ["outcome", "priority"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "hivebus_queue_wait_seconds",
            "Time from a task's delegation to its first assignment (queued or not), by priority.",
            ["priority"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.queue_wait_of = {p: self.queue_wait.labels(p.name.lower()) for p in TaskPriority}
        """The queue wait's series of each priority."""
        self.delegation_of = {
            (outcome, p): self.delegation.labels(outcome, p.name.lower())
            for p in TaskPriority
            for outcome in ("assigned", "queued")
        }
        """The delegation time's series of each placement and priority."""
        self._durations: dict[tuple[str, str], Histogram] = {}
        """Duration series by (task type label, outcome): bounded, as the labels are."""
        self._by_event: dict[EventName, Counter] = {
            EventName.TASK_QUEUED: self.queued,
            EventName.TASK_ASSIGNED: self.assignments,
            EventName.TASK_COMPLETED: self.completions,
            EventName.TASK_FAILED: self.failures,
            EventName.TASK_REQUEUED: self.requeues,
            EventName.TASK_CANCELLED: self.cancellations,
        }

    def observe(self, event: Event) -> None:
        """Count ``event``."""
        name = event.event
        self._events[name].inc()
        counter = self._by_event.get(name)
        if counter is not None:
            counter.inc()
        elif name is EventName.TASK_DECLINED:
            outcome = (event.model_extra or {}).get("outcome")
            if isinstance(outcome, str) and outcome in self._declined:
                self._declined[outcome].inc()
        elif name is EventName.PLUGIN_VETOED:
            self.vetoes.labels(str((event.model_extra or {}).get("plugin"))).inc()

    def finished(self, task: TaskView, outcome: str) -> None:
        """A task ``completed`` or ``failed``: how long its last attempt ran, by type."""
        if task.assigned_at is None or task.finished_at is None:
            return  # never assigned (a dependency failed): no duration to speak of
        seconds = max(0.0, task.finished_at - task.assigned_at)
        key = (self.task_types.label(task.task_type), outcome)
        series = self._durations.get(key)
        if series is None:
            series = self._durations[key] = self.duration.labels(*key)
        series.observe(seconds)
