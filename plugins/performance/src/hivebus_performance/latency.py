"""Delegation latency and queue wait, measured from the events a core publishes.

A delegation is admitted by the delegate hook and placed (``task.assigned`` or ``task.queued``)
by the same core within the same request, so the time between the two is this core's answer
time. The queue wait of a first assignment is the task's own ``assigned_at - created_at``: it
is right even when another replica took the delegation.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from hivebus_hookspecs import Event, EventName, TaskPriority, TaskView

from .metrics import Metrics
from .window import Window

__all__ = ["MAX_PENDING", "Latency"]

MAX_PENDING = 10_000
"""Admitted delegations waiting for their placement event; the oldest are forgotten beyond."""


class Latency:
    """Feeds the histograms, and ``recent``: the delegation times (seconds) of the last window,
    for the ``max_task_delegation_ms`` threshold."""

    def __init__(self, metrics: Metrics, recent: Window) -> None:
        self._metrics = metrics
        self.recent = recent
        self.total_s = 0.0
        """Seconds every delegation placed so far took, summed."""
        self._admitted: OrderedDict[str, tuple[float, TaskPriority]] = OrderedDict()

    def admitted(self, task: TaskView) -> None:
        self._admitted[task.task_id] = (time.time(), task.priority)
        while len(self._admitted) > MAX_PENDING:
            self._admitted.popitem(last=False)

    def observe(self, event: Event) -> None:
        if event.task_id is None:
            return
        if event.event is EventName.TASK_QUEUED:
            self._placed(event, "queued")
        elif event.event is EventName.TASK_ASSIGNED:
            self._placed(event, "assigned")

    def assigned(self, task: TaskView) -> None:
        """``task`` was accepted: its first acceptance ends its wait."""
        if task.attempts == 1 and task.assigned_at is not None:
            wait = max(0.0, task.assigned_at - task.created_at)
            self._metrics.queue_wait_of[task.priority].observe(wait)

    def _placed(self, event: Event, outcome: str) -> None:
        assert event.task_id is not None
        admitted = self._admitted.pop(event.task_id, None)
        if admitted is not None:
            at, priority = admitted
            seconds = max(0.0, event.timestamp - at)
            self._metrics.delegation_of[outcome, priority].observe(seconds)
            self.recent.add(seconds, event.timestamp)
            self.total_s += seconds
