"""Transitions of a task already placed: completed or failed, cancelled, expired, timed out,
taken back from its agent (retried or requeued, or dead past its attempts: ``retries``), and
the announcements and slot bookkeeping that follow each.

Every transition is one ``cas.update_task`` call: a change function that decides on the
record as it is, so a transition that lost a race re-decides and never acts twice.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from hivebus_hookspecs.models import (
    AttemptOutcome,
    CompleteRequest,
    ErrorCode,
    EventName,
    TaskStatus,
    TaskView,
)

from ..errors import HivebusError
from .cas import SKIP, Contended, Skip, update_task
from .kernel import ACTIVE, Kernel, known, log
from .placement import Placement, assigned_copy, held_by
from .ports import Later
from .registry import AgentRecord
from .retries import after_failure, with_attempt
from .tasks import TaskRecord

__all__ = ["Transitions"]


class Transitions:
    def __init__(self, kernel: Kernel, placement: Placement) -> None:
        self._k = kernel
        self._placement = placement

    async def complete(self, req: CompleteRequest) -> TaskView:
        k = self._k

        def finish(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            task = known(task, req.task_id)
            if _reported_already(task, req):
                return SKIP  # a retried completion: answered, never counted twice
            now = k.clock()
            task = held_by(task, req.agent_id, now)
            if req.success:
                finished = task.evolve(
                    status=TaskStatus.COMPLETED,
                    success=True,
                    result=req.result,
                    error=None,
                    finished_at=now,
                    history=with_attempt(task, now, AttemptOutcome.COMPLETED),
                )
            else:
                finished = after_failure(
                    task,
                    now,
                    AttemptOutcome.FAILED,
                    req.error or "failed",
                    config=k.config,
                    final=not req.retryable,
                ).evolve(result=req.result)
            if finished.size > k.max_record_bytes:
                raise HivebusError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"with this result the task's record would be {finished.size} bytes; at "
                    f"most {k.max_record_bytes} fit in a NATS message: report a smaller "
                    "result (or a reference to it), or a failure",
                )
            return finished

        try:
            seen, finished = await update_task(k.cache, req.task_id, finish)
        except Contended:
            raise HivebusError(
                ErrorCode.INTERNAL_ERROR, f"task {req.task_id!r} is contended"
            ) from None
        seen = known(seen, req.task_id)  # finish() raised already when it was missing
        if finished is None:
            return seen.view()  # answered again as it was
        if seen.status is TaskStatus.OFFERED:
            self._placement.assigned(assigned_copy(seen, finished.finished_at or k.clock()))
        self.settled(finished, req.agent_id, assigned_at=_assigned_at(seen, finished))
        self._placement.free(req.agent_id)
        return finished.view()

    async def cancel(self, task_id: str) -> TaskRecord:
        return await self._end(task_id, TaskStatus.CANCELLED, EventName.TASK_CANCELLED)

    async def expire(self, task_id: str) -> None:
        """A queued task past its queue deadline (expiry applies to queued tasks only, even
        when a retry after a lost race finds it offered)."""
        await self._end(
            task_id,
            TaskStatus.EXPIRED,
            EventName.TASK_EXPIRED,
            "queue timeout",
            only_from=TaskStatus.QUEUED,
        )

    async def _end(
        self,
        task_id: str,
        status: TaskStatus,
        event: EventName,
        error: str | None = None,
        only_from: TaskStatus | None = None,
    ) -> TaskRecord:
        """Cancel or expire a task that is not finished; idempotent for the same end.

        ``only_from``: end it only while it is still in that status.
        """
        k = self._k

        def end(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            task = known(task, task_id)
            if task.status is status or (only_from is not None and task.status is not only_from):
                return SKIP
            if task.status.is_final:
                raise HivebusError(
                    ErrorCode.INVALID_STATE, f"task {task_id!r} is already {task.status.value}"
                )
            now = k.clock()
            history = task.history
            if task.status is TaskStatus.ASSIGNED:
                history = with_attempt(task, now, AttemptOutcome.CANCELLED, error)
            return task.evolve(status=status, finished_at=now, error=error, history=history)

        try:
            seen, ended = await update_task(k.cache, task_id, end)
        except Contended:
            raise HivebusError(ErrorCode.INTERNAL_ERROR, f"task {task_id!r} is contended") from None
        task = known(seen, task_id)  # end() raised already when it was missing
        if ended is None:
            return task
        log.log(
            logging.DEBUG if status is TaskStatus.CANCELLED else logging.INFO,
            f"task {status.value}",
            extra={"task_id": task_id, "agent_id": task.agent_id},
        )
        k.emit(event, task_id=task_id, agent_id=task.agent_id)
        if task.agent_id is not None and task.status in ACTIVE:
            await self.stop_agent_work(task.agent_id, task_id)
        return ended

    async def time_out(self, task: TaskRecord) -> None:
        """An assigned task past its execution timeout: a failed attempt (retried as its
        policy says), or without a policy failed or requeued, as ``on_execution_timeout``
        says (requeue is the default).

        ``Contended`` propagates: the periodic pass postpones the check to its next round.
        """
        agent_id = task.agent_id
        reason = f"execution timeout of {task.execution_timeout_s}s"
        if agent_id is not None and await self.requeue(
            task.task_id, agent_id, reason, AttemptOutcome.TIMED_OUT
        ):
            await self.stop_agent_work(agent_id, task.task_id)

    async def take_back(self, agent: AgentRecord, reason: str) -> list[str]:
        """Requeue what ``agent`` held; an offer still in flight settles on its own."""
        requeued = []
        for task_id in sorted(self._k.registry.tasks_of(agent.agent_id)):
            task = self._k.cache.tasks.get(task_id)
            if task is None or task.agent_id != agent.agent_id:
                continue
            in_flight = task.status is TaskStatus.OFFERED and task_id in self._placement.offering
            if not in_flight and await self.requeue(task_id, agent.agent_id, reason):
                requeued.append(task_id)
        return requeued

    async def requeue(
        self,
        task_id: str,
        agent_id: str,
        reason: str,
        outcome: AttemptOutcome = AttemptOutcome.LOST,
    ) -> bool:
        """Take the task back from ``agent_id``: its attempt failed with ``outcome``.

        An offer not yet accepted goes back in line as it was. An attempt is retried as the
        task's policy says (see ``retries``). ``False`` when the task is not the agent's any
        more, or when it stayed contended (then the orphan rule of the periodic pass
        requeues it later).
        """
        k = self._k
        final = outcome is AttemptOutcome.TIMED_OUT and k.config.on_execution_timeout == "fail"

        def back(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            if task is None or task.agent_id != agent_id or task.status not in ACTIVE:
                return SKIP
            if outcome is AttemptOutcome.TIMED_OUT and not task.overdue(k.clock()):
                return SKIP  # a progress report (on any replica) got in first
            if task.status is TaskStatus.OFFERED:
                return task.evolve(
                    status=TaskStatus.QUEUED, agent_id=None, assigned_at=None, offered_at=None
                )
            return after_failure(
                task,
                k.clock(),
                outcome,
                reason,
                config=k.config,
                final=final and task.retry is None,
            )

        try:
            seen, saved = await update_task(k.cache, task_id, back)
        except Contended:
            return False
        if saved is None or seen is None:
            return False
        self.settled(saved, agent_id, assigned_at=seen.assigned_at, reason=reason)
        return True

    def settled(
        self,
        task: TaskRecord,
        agent_id: str | None,
        *,
        assigned_at: float | None,
        reason: str | None = None,
    ) -> None:
        """Announce what an attempt that ended made of the task, stored as it now is."""
        k = self._k
        status = task.status
        if status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.DEAD):
            self.finished(task, agent_id, assigned_at)
        elif status is TaskStatus.RETRYING:
            log.info(
                "task retrying",
                extra={"task_id": task.task_id, "agent_id": agent_id, "error": task.error},
            )
            k.emit(
                EventName.TASK_RETRYING,
                task_id=task.task_id,
                agent_id=agent_id,
                attempts=task.attempts,
                next_attempt_at=task.not_before,
                error=task.error,
            )  # its timer (``waiting``) queues it again when the backoff has passed
        elif status is TaskStatus.QUEUED:
            k.emit(
                EventName.TASK_REQUEUED,
                task_id=task.task_id,
                agent_id=agent_id,
                reason=reason,
                attempts=task.attempts,
            )
            k.spawn(self._placement.dispatch(task.task_id), name=f"hivebus-dispatch-{task.task_id}")

    async def stop_agent_work(self, agent_id: str | None, task_id: str) -> None:
        """After the store says the task left the agent: tell the agent, free its slot."""
        if agent_id is not None:
            await self._k.offers.withdraw(agent_id, task_id)
        self._placement.free(agent_id)

    def finished(self, task: TaskRecord, agent_id: str | None, since: float | None) -> None:
        """Count and announce a task stored as completed, failed or dead."""
        k = self._k
        success = task.status is TaskStatus.COMPLETED
        duration_ms = None
        if since is not None and task.finished_at is not None:
            duration_ms = (task.finished_at - since) * 1000
        k.stats.finished(success, duration_ms)
        # A success is on events.> already; a failure is worth a line at INFO too.
        log.log(
            logging.DEBUG if success else logging.INFO,
            f"task {task.status.value}",
            extra={"task_id": task.task_id, "agent_id": agent_id, "error": task.error},
        )
        fields: dict[str, Any] = {"task_id": task.task_id, "agent_id": agent_id}
        if duration_ms is not None:
            fields["duration_ms"] = round(duration_ms, 3)
        if not success:
            fields["error"] = task.error
        if task.status is TaskStatus.DEAD:
            fields["attempts"] = task.attempts
        k.emit(_FINISHED_EVENTS[task.status], **fields)
        hook = "hivebus_task_completed" if success else "hivebus_task_failed"
        if k.hooks.wants(hook):
            k.hooks.notify(hook, task=Later(task.view))


_FINISHED_EVENTS = {
    TaskStatus.COMPLETED: EventName.TASK_COMPLETED,
    TaskStatus.FAILED: EventName.TASK_FAILED,
    TaskStatus.DEAD: EventName.TASK_DEAD,
}


def _reported_already(task: TaskRecord, req: CompleteRequest) -> bool:
    """Whether ``req`` repeats the completion that ended the task's last attempt (its reply
    was lost and the agent sent it again): answered as it was, never applied twice."""
    if task.status in ACTIVE and task.agent_id == req.agent_id:
        return False  # the agent holds it (again): this is news
    if not task.history:  # a record stored before histories were kept
        return (
            task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)
            and task.agent_id == req.agent_id
            and task.success == req.success
        )
    last = task.history[-1]
    expected = AttemptOutcome.COMPLETED if req.success else AttemptOutcome.FAILED
    return bool(last["agent_id"] == req.agent_id and last["outcome"] == expected)


def _assigned_at(seen: TaskRecord, finished: TaskRecord) -> float | None:
    """When the attempt that just ended was assigned (a retried task has let go of it)."""
    return finished.assigned_at if finished.assigned_at is not None else seen.assigned_at
