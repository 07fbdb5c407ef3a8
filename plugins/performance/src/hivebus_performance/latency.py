"""Delegation latency and queue wait, measured from the events a core publishes.

A delegation is admitted by the delegate hook and placed (``task.assigned`` or ``task.queued``)
by the same core within the same request, so the time between the two is this core's answer
time. The queue wait of a first assignment is read from the task's own ``created_at``: it is
right even when another replica placed the task.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from hivebus_hookspecs import Event, EventName, TaskView

from .metrics import Metrics

__all__ = ["MAX_PENDING", "Latency"]

MAX_PENDING = 10_000
"""Admitted delegations waiting for their placement event; the oldest are forgotten beyond."""

TaskLookup = Callable[[str], TaskView | None]


class Latency:
    def __init__(self, metrics: Metrics, lookup: TaskLookup) -> None:
        self._metrics = metrics
        self._lookup = lookup
        self._admitted: OrderedDict[str, float] = OrderedDict()

    def admitted(self, task: TaskView) -> None:
        self._admitted[task.task_id] = time.time()
        while len(self._admitted) > MAX_PENDING:
            self._admitted.popitem(last=False)

    def observe(self, event: Event) -> None:
        if event.task_id is None:
            return
        if event.event is EventName.TASK_QUEUED:
            self._placed(event, "queued")
        elif event.event is EventName.TASK_ASSIGNED:
            self._placed(event, "assigned")
            if (event.model_extra or {}).get("attempt") == 1:
                task = self._lookup(event.task_id)
                if task is not None:
                    self._metrics.queue_wait.observe(max(0.0, event.timestamp - task.created_at))

    def _placed(self, event: Event, outcome: str) -> None:
        assert event.task_id is not None
        admitted = self._admitted.pop(event.task_id, None)
        if admitted is not None:
            self._metrics.delegation.labels(outcome).observe(max(0.0, event.timestamp - admitted))
