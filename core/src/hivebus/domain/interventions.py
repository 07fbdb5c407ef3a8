"""What plugins ask of the core beyond the wire: retry a finished task (after a delay), take
an agent out of rotation and put it back.

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

    async def quarantine(self, agent_id: str, by: str, reason: str) -> AgentView:
        """Offer the agent nothing until ``release``; what it holds it keeps and finishes."""

        def bench(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            agent = known_agent(agent, agent_id)
            if agent.quarantined_by == by and agent.quarantine_reason == reason:
                return SKIP
            return agent.evolve(quarantined_by=by, quarantine_reason=reason)

        return await self._change(agent_id, bench, EventName.AGENT_QUARANTINED, by, reason)

    async def release(self, agent_id: str, by: str) -> AgentView:
        """Put a quarantined agent back in rotation, and offer it the waiting work."""

        def back(agent: AgentRecord | None) -> AgentRecord | Literal[Skip.SKIP]:
            agent = known_agent(agent, agent_id)
            if agent.quarantined_by is None:
                return SKIP
            return agent.evolve(quarantined_by=None, quarantine_reason=None)

        view = await self._change(agent_id, back, EventName.AGENT_RELEASED, by, None)
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
