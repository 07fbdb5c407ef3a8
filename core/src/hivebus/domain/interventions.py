"""What plugins ask of the core beyond the wire: retry a finished task (after a delay), take
an agent out of rotation and put it back, put it to sleep and wake it.

Each is one compare-and-set transition on the shared state, as the core's own are: safe with
replicas (the record decides, not a replica's memory), announced by the usual events, and
idempotent (asking twice changes nothing the second time).
"""

from __future__ import annotations

from typing import Literal

from hivebus_hookspecs.models import AgentView, ErrorCode, EventName, TaskStatus, TaskView

from ..errors import HivebusError
from .cas import SKIP, AgentChange, Contended, Skip, update_agent, update_task
from .delegation import Delegation
from .kernel import Kernel, known, known_agent, log
from .placement import Placement
from .registry import AgentRecord
from .tasks import TaskRecord

__all__ = ["RETRYABLE", "Interventions"]

RETRYABLE = frozenset(
    {TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.EXPIRED, TaskStatus.CANCELLED}
)
"""A completed task is done; a live one is its agent's (take it back by cancelling)."""

BURIABLE = RETRYABLE | {TaskStatus.RETRYING}
"""What may be declared dead at once: not running, not done."""


class Interventions:
    def __init__(self, kernel: Kernel, placement: Placement, delegation: Delegation) -> None:
        self._k = kernel
        self._placement = placement
        self._delegation = delegation

    async def retry(self, task_id: str, delay_s: float, by: str, reason: str) -> TaskView:
        """Queue a failed, dead, expired or cancelled task again; with ``delay_s``, it is
        ``retrying`` until that much time has passed (stored, so a restart or another replica
        keeps it). Its attempts count on; its retry policy allows as many again."""
        k = self._k
        if delay_s < 0:
            raise HivebusError(ErrorCode.INVALID_REQUEST, "delay_s: must not be negative")
        now = k.clock()
        not_before = now + delay_s if delay_s else None

        def again(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            task = known(task, task_id)
            if task.status in (TaskStatus.QUEUED, TaskStatus.RETRYING) and task.not_before == (
                not_before
            ):
                return SKIP
            if task.status not in RETRYABLE:
                raise HivebusError(
                    ErrorCode.INVALID_STATE,
                    f"task {task_id!r} is {task.status.value}: only a failed, dead, expired "
                    "or cancelled task can be retried",
                )
            self._delegation.check_capacity(task.weight)
            deadline = now + task.queue_timeout_s if task.queue_timeout_s else None
            return task.evolve(
                status=TaskStatus.RETRYING if not_before is not None else TaskStatus.QUEUED,
                attempts_base=task.attempts,
                agent_id=None,
                success=None,
                result=None,
                error=None,
                assigned_at=None,
                offered_at=None,
                finished_at=None,
                queue_deadline=None if not_before is not None else deadline,
                not_before=not_before,
            )

        try:
            _, queued = await update_task(k.cache, task_id, again)
        except Contended:
            raise HivebusError(ErrorCode.UNAVAILABLE, f"task {task_id!r} is contended") from None
        if queued is None:
            return k.task(task_id).view()
        why = f"retried by {by}" + (f": {reason}" if reason else "")
        log.info("task retried", extra={"task_id": task_id, "by": by, "delay_s": delay_s})
        k.emit(
            EventName.TASK_REQUEUED,
            task_id=task_id,
            agent_id=None,
            reason=why,
            attempts=queued.attempts,
            not_before=not_before,
        )
        if not_before is None:  # else its timer moves it on (``waiting``)
            k.spawn(self._placement.dispatch(task_id), name=f"hivebus-dispatch-{task_id}")
        return queued.view()

    async def dead_letter(self, task_id: str, by: str, reason: str) -> TaskView:
        """Give up on a failed (or retrying, expired, cancelled) task at once: it is ``dead``,
        whatever attempts its retry policy has left (a retrying task's timer is dropped)."""
        k = self._k
        now = k.clock()

        def bury(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            task = known(task, task_id)
            if task.status is TaskStatus.DEAD:
                return SKIP
            if task.status not in BURIABLE:
                raise HivebusError(
                    ErrorCode.INVALID_STATE,
                    f"task {task_id!r} is {task.status.value}: only a failed, retrying, "
                    "expired or cancelled task can be declared dead",
                )
            return task.evolve(
                status=TaskStatus.DEAD,
                not_before=None,
                finished_at=task.finished_at or now,
                error=task.error or reason,
            )

        try:
            _, dead = await update_task(k.cache, task_id, bury)
        except Contended:
            raise HivebusError(ErrorCode.UNAVAILABLE, f"task {task_id!r} is contended") from None
        if dead is None:
            return k.task(task_id).view()
        why = f"declared dead by {by}" + (f": {reason}" if reason else "")
        log.info("task declared dead", extra={"task_id": task_id, "by": by, "reason": reason})
        k.emit(
            EventName.TASK_DEAD,
            task_id=task_id,
            agent_id=dead.agent_id,
            error=dead.error,
            attempts=dead.attempts,
            reason=why,
        )
        return dead.view()

    async def quarantine(
        self, agent_id: str, by: str, reason: str, trial: bool = False
    ) -> AgentView:
        """Offer the agent nothing until ``release``; what it holds it keeps and finishes.
        ``trial``: offer it one task at a time meanwhile (a circuit breaker's half-open)."""

        def bench(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            agent = known_agent(agent, agent_id)
            if (agent.quarantined_by, agent.quarantine_reason, agent.on_trial) == (
                by,
                reason,
                trial,
            ):
                return SKIP
            return agent.evolve(quarantined_by=by, quarantine_reason=reason, on_trial=trial)

        view = await self._change(agent_id, bench, EventName.AGENT_QUARANTINED, by, reason)
        if trial and len(self._k.queue):
            self._k.spawn(self._placement.feed(agent_id), name=f"hivebus-feed-{agent_id}")
        return view

    async def release(self, agent_id: str, by: str) -> AgentView:
        """Put a quarantined agent back in rotation, and offer it the waiting work."""

        def back(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            agent = known_agent(agent, agent_id)
            if agent.quarantined_by is None:
                return SKIP
            return agent.evolve(quarantined_by=None, quarantine_reason=None, on_trial=False)

        view = await self._change(agent_id, back, EventName.AGENT_RELEASED, by, None)
        if len(self._k.queue):
            self._k.spawn(self._placement.feed(agent_id), name=f"hivebus-feed-{agent_id}")
        return view

    async def sleep(self, agent_id: str, by: str, reason: str) -> AgentView:
        """Mark the agent asleep (stored first: no replica offers it anything from then on);
        the caller tells the agent. What it holds it keeps and finishes."""

        def doze(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            agent = known_agent(agent, agent_id)
            return SKIP if agent.sleeping else agent.evolve(sleeping=True)

        return await self._change(agent_id, doze, EventName.AGENT_SLEEPING, by, reason)

    async def wake(self, agent_id: str, by: str, reason: str) -> AgentView:
        """Mark the agent awake, and offer it the waiting work."""

        def rouse(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            agent = known_agent(agent, agent_id)
            return agent.evolve(sleeping=False) if agent.sleeping else SKIP

        view = await self._change(agent_id, rouse, EventName.AGENT_WOKEN, by, reason)
        if len(self._k.queue):
            self._k.spawn(self._placement.feed(agent_id), name=f"hivebus-feed-{agent_id}")
        return view

    async def _change(
        self,
        agent_id: str,
        change: AgentChange,
        event: EventName,
        by: str,
        reason: str | None,
    ) -> AgentView:
        k = self._k
        try:
            _, stored = await update_agent(k.cache, agent_id, change)
        except Contended:
            raise HivebusError(ErrorCode.UNAVAILABLE, f"agent {agent_id!r} is contended") from None
        agent = stored or known_agent(k.registry.get(agent_id), agent_id)
        if stored is not None:
            log.info(event.value, extra={"agent_id": agent_id, "by": by, "reason": reason})
            k.emit(event, agent_id=agent_id, by=by, reason=reason)
        return k.view(agent)
