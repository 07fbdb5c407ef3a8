"""Tasks that wait before they join the queue: ``scheduled`` (a delay), ``retrying`` (a
backoff between attempts) and ``blocked`` (tasks they depend on not completed yet).

The time a task waits for and the tasks it waits on are in its stored record, so nothing is
lost with a replica: every replica arms a timer for the waiting tasks it sees and checks them
again on its periodic pass, and the compare-and-set lets one of them move each task on. A
blocked task is looked at again whenever one of its dependencies finishes (on any replica:
the store's watch tells every cache), and fails with ``dependency_failed`` when one of them
ends without completing, which in turn fails the tasks that depend on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from hivebus_hookspecs.models import EventName, TaskStatus

from .cas import SKIP, Contended, Skip, update_task
from .kernel import Kernel, log
from .placement import Placement
from .ports import StateUnavailable
from .tasks import TaskRecord

__all__ = ["UNMET", "Waiting", "dependency_failure"]

UNMET = frozenset({TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.EXPIRED})
"""A dependency that ends in one of these will never complete."""


def dependency_failure(task_id: str, dependency: TaskRecord | None) -> str | None:
    """The error of a task whose dependency ``dependency`` cannot complete any more."""
    if dependency is None:
        return f"dependency_failed: task {task_id!r} is not known any more"
    if dependency.status in UNMET:
        return f"dependency_failed: task {task_id!r} is {dependency.status.value}"
    return None


class Waiting:
    def __init__(self, kernel: Kernel, placement: Placement) -> None:
        self._k = kernel
        self._placement = placement
        self._timers = kernel.cache.timers
        self.finished: Callable[[TaskRecord, str | None, float | None], None] = (
            lambda task, agent_id, since: None
        )
        """Announces a failed task (``Transitions.finished``, set when both exist)."""

    def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # --- timers -------------------------------------------------------------------------

    def arm(self, task: TaskRecord) -> None:
        """Move the task on when its time comes (the periodic pass is the safety net)."""
        if task.not_before is None or task.status not in (
            TaskStatus.SCHEDULED,
            TaskStatus.RETRYING,
        ):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        old = self._timers.pop(task.task_id, None)
        if old is not None:
            old.cancel()
        delay = max(task.not_before - self._k.clock(), 0.0)
        self._timers[task.task_id] = loop.call_later(delay, self._due, task.task_id)

    def _due(self, task_id: str) -> None:
        self._timers.pop(task_id, None)
        self._k.spawn(self.move_on(task_id), name=f"hivebus-due-{task_id}")

    # --- the store tells -----------------------------------------------------------------

    def observe(self, old: TaskRecord | None, new: TaskRecord) -> None:
        """Every task record this replica takes in (its own writes and other replicas')."""
        status = new.status
        if status in (TaskStatus.SCHEDULED, TaskStatus.RETRYING):
            if old is None or old.status is not new.status or old.not_before != new.not_before:
                self.arm(new)
        elif new.task_id in self._timers:
            self._timers.pop(new.task_id).cancel()
        if new.status.is_final and (old is None or not old.status.is_final):
            for blocked in self._k.cache.dependents.get(new.task_id, ()):
                self._k.spawn(self.move_on(blocked), name=f"hivebus-unblock-{blocked}")

    # --- moving on -----------------------------------------------------------------------

    def next_status(self, task: TaskRecord) -> tuple[TaskStatus, str | None]:
        """Where a waiting (or new) task belongs now, and the error when that is failed."""
        if task.status in (TaskStatus.BLOCKED, TaskStatus.QUEUED) or task.revision == 0:
            cached = self._k.cache.tasks
            waiting = False
            for dep in task.depends_on:
                dependency = cached.get(dep)
                error = dependency_failure(dep, dependency)
                if error is not None:
                    return TaskStatus.FAILED, error
                waiting = (
                    waiting or dependency is None or dependency.status is not (TaskStatus.COMPLETED)
                )
            if waiting:
                return TaskStatus.BLOCKED, None
        if task.not_before is not None and self._k.clock() < task.not_before:
            return (
                TaskStatus.RETRYING if task.status is TaskStatus.RETRYING else TaskStatus.SCHEDULED
            ), None
        return TaskStatus.QUEUED, None

    async def move_on(self, task_id: str) -> None:
        """A waiting task whose wait may be over: queued (and offered), or failed."""
        k = self._k
        error_of: dict[str, str | None] = {}

        def go(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if task is None or not task.status.is_waiting:
                return SKIP
            status, error = self.next_status(task)
            if status is task.status:
                return SKIP
            error_of["error"] = error
            now = k.clock()
            if status is TaskStatus.FAILED:
                return task.evolve(status=status, success=False, error=error, finished_at=now)
            if status is TaskStatus.QUEUED:
                deadline = now + task.queue_timeout_s if task.queue_timeout_s else None
                return task.evolve(status=status, not_before=None, queue_deadline=deadline)
            return task.evolve(status=status)

        try:
            seen, moved = await update_task(k.cache, task_id, go)
        except (Contended, StateUnavailable) as exc:
            log.info("waiting task not moved on yet", extra={"task_id": task_id, "error": str(exc)})
            return
        if moved is None or seen is None:
            return
        self.announce(moved, was=seen.status)

    def announce(self, task: TaskRecord, was: TaskStatus | None) -> None:
        """Say where a task that waited (or a new task) went, and act on it."""
        k = self._k
        status = task.status
        if status is TaskStatus.QUEUED:
            k.emit(
                EventName.TASK_QUEUED,
                task_id=task.task_id,
                task_type=task.task_type,
                priority=task.priority.name.lower(),
                after=was.value if was is not None else None,
            )
            k.spawn(self._placement.dispatch(task.task_id), name=f"hivebus-dispatch-{task.task_id}")
        elif status is TaskStatus.SCHEDULED:
            k.emit(EventName.TASK_SCHEDULED, task_id=task.task_id, not_before=task.not_before)
        elif status is TaskStatus.BLOCKED:
            k.emit(EventName.TASK_BLOCKED, task_id=task.task_id, depends_on=task.depends_on)
        elif status is TaskStatus.FAILED:
            self.finished(task, None, None)

    async def check(self, task: TaskRecord) -> None:
        """The periodic pass: a waiting task whose wait is over moves on (a timer lost with
        a crashed replica, a dependency finished while no replica watched)."""
        if task.status is TaskStatus.BLOCKED or (
            task.not_before is not None and self._k.clock() >= task.not_before
        ):
            await self.move_on(task.task_id)
