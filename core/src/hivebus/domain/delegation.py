"""Delegation: a new task enters: duplicates, plugin amendments, admission, placed or queued.

A delegation is refused before anything is stored when it could not be stored or finished
(too large, over the limits); a task id already known answers what that task is now, and one
still being placed shares the first delegation's answer. Then the task is offered
(``placement``), and queued when nobody takes it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hivebus_hookspecs.models import (
    DelegateReply,
    DelegateRequest,
    ErrorCode,
    EventName,
    TaskPriority,
    TaskStatus,
)

from ..errors import HivebusError
from .kernel import OUTCOME_ROOM, Kernel, log
from .placement import Placement
from .ports import Conflict
from .retries import policy_for
from .tasks import TaskRecord
from .waiting import Waiting

__all__ = ["Delegation"]


class Delegation:
    def __init__(self, kernel: Kernel, placement: Placement, waiting: Waiting) -> None:
        self._k = kernel
        self._placement = placement
        self._waiting = waiting
        # task id -> the answer of the delegation placing it now (stored or not yet)
        self._delegating: dict[str, asyncio.Future[DelegateReply]] = {}

    async def delegate(self, req: DelegateRequest, task_id: str) -> DelegateReply:
        """Create the task, offer it to capable agents, queue it if nobody accepts."""
        k = self._k
        pending = self._delegating.get(task_id)
        if pending is not None:  # the same id, still being placed (stored or not yet)
            return await asyncio.shield(pending)
        existing = k.cache.tasks.get(task_id)
        if existing is not None:
            return _reply(existing)
        self.check_capacity(0)  # before any work: a flood is refused cheaply
        now = k.clock()
        execution_timeout_s = req.execution_timeout_s or k.config.default_execution_timeout_s
        not_before = req.not_before
        if req.delay_s:
            not_before = now + req.delay_s
        task = TaskRecord(
            task_id=task_id,
            task_type=req.task_type,
            required_list=list(dict.fromkeys(req.required_capabilities)),
            priority=req.priority,
            payload=req.payload,
            metadata=dict(req.metadata),
            created_at=now,
            seq=time.time_ns(),
            queue_deadline=now + req.queue_timeout_s if req.queue_timeout_s else None,
            execution_timeout_s=execution_timeout_s,
            not_before=not_before if not_before is not None and not_before > now else None,
            queue_timeout_s=req.queue_timeout_s,
            retry=policy_for(req, k.config),
            depends_on=list(dict.fromkeys(req.depends_on)) if req.depends_on else [],
            concurrency=req.concurrency.model_dump() if req.concurrency else None,
            tenant=req.tenant,
            prefer_agents=list(dict.fromkeys(req.prefer_agents)) if req.prefer_agents else [],
            require_agent=req.require_agent,
        )
        future: asyncio.Future[DelegateReply] = asyncio.get_running_loop().create_future()
        self._delegating[task_id] = future
        try:
            reply = await self._schedule(task, queue=req.queue)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a duplicate caller may never await it
            raise
        finally:
            self._delegating.pop(task_id, None)
            k.cache.end_admission(task_id)
        future.set_result(reply)
        return reply

    async def _schedule(self, task: TaskRecord, queue: bool) -> DelegateReply:
        k = self._k
        if k.hooks.wants("hivebus_task_delegate"):
            task = _amended(task, await k.hooks.amend_task(task.view()))
        self._admit(task)
        k.stats.delegated(k.clock())
        if task.depends_on or task.not_before is not None:
            waits = await self._wait_first(task, queue)
            if waits is not None:
                return waits
        placed = await self._placement.place(task)
        if placed is not None:
            return _reply(placed)
        current = k.cache.tasks.get(task.task_id)
        if current is not None and current.status is not TaskStatus.OFFERED:
            return _reply(current)  # it exists already (another replica), or it was settled
        if not queue:
            if current is not None:
                k.cache.forget_task(task.task_id)
                await k.state.forget_task(task.task_id)
            raise HivebusError(
                ErrorCode.NO_AGENT_AVAILABLE,
                f"no free agent with capabilities {task.required_list} accepted the task",
            )
        base = current if current is not None else task
        try:
            queued = await k.cache.save_task(
                base.evolve(status=TaskStatus.QUEUED, agent_id=None, offered_at=None)
            )
        except Conflict:
            return await self._answer_of_the_first(task.task_id)
        log.debug("task queued", extra={"task_id": queued.task_id})
        k.emit(
            EventName.TASK_QUEUED,
            task_id=queued.task_id,
            task_type=queued.task_type,
            priority=queued.priority.name.lower(),
        )
        return _reply(queued)

    async def _wait_first(self, task: TaskRecord, queue: bool) -> DelegateReply | None:
        """Store a task that must wait (a delay, dependencies) as such; ``None``: it need
        not wait, place it now."""
        k = self._k
        if task.task_id in task.depends_on:
            raise HivebusError(
                ErrorCode.INVALID_REQUEST, "depends_on: a task cannot wait for itself"
            )
        for dep in task.depends_on:
            if dep not in k.cache.tasks:
                stored = await k.state.load_task(dep)  # delegated on another replica just now
                if stored is None:
                    raise HivebusError(ErrorCode.INVALID_REQUEST, f"depends_on: no task {dep!r}")
                k.cache.apply_task(stored)
        status, error = self._waiting.next_status(task)
        if status is TaskStatus.QUEUED:
            return None
        if not queue:
            raise HivebusError(
                ErrorCode.INVALID_REQUEST,
                "queue: false asks for an agent now; a task with a delay or unmet "
                "dependencies must wait for one",
            )
        changes: dict[str, Any] = {"status": status, "queue_deadline": None}
        if status is TaskStatus.FAILED:
            changes |= {"success": False, "error": error, "finished_at": k.clock()}
        try:
            stored = await k.cache.save_task(task.evolve(**changes))
        except Conflict:
            return await self._answer_of_the_first(task.task_id)
        self._waiting.announce(stored, None)
        if status is TaskStatus.BLOCKED:
            # a dependency may have finished between the look and the write
            k.spawn(self._waiting.move_on(task.task_id), name=f"hivebus-unblock-{task.task_id}")
        return _reply(stored)

    async def _answer_of_the_first(self, task_id: str) -> DelegateReply:
        """Another replica stored the task first (the same id delegated twice at once): its
        record is the answer."""
        refreshed = await self._k.cache.refresh_task(task_id)
        if refreshed is None:
            raise HivebusError(ErrorCode.INTERNAL_ERROR, "task vanished while storing") from None
        return _reply(refreshed)

    def check_capacity(self, weight: int) -> None:
        cache, config = self._k.cache, self._k.config
        if cache.live_count >= config.max_concurrent_tasks:
            raise HivebusError(
                ErrorCode.OVER_CAPACITY,
                f"max_concurrent_tasks={config.max_concurrent_tasks} tasks are active or queued",
            )
        budget = config.max_live_task_bytes
        if weight and cache.committed_weight + weight > budget:
            raise HivebusError(
                ErrorCode.OVER_CAPACITY,
                f"the tasks active or queued weigh {cache.committed_weight} bytes; this one "
                f"({weight} bytes) would pass max_live_task_bytes={budget}",
            )

    def _admit(self, task: TaskRecord) -> None:
        """Refuse, before anything is stored, a task that could not be stored or finished."""
        k = self._k
        k.check_metadata(task.metadata)
        limit = k.max_record_bytes - OUTCOME_ROOM
        if task.size > limit:
            raise HivebusError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the task's record would be {task.size} bytes (payload, metadata and "
                f"capabilities); at most {limit} fit in a NATS message with room for its "
                "outcome: pass large payloads by reference",
            )
        self.check_capacity(task.weight)
        k.cache.admit(task.task_id, task.weight)


def _reply(task: TaskRecord) -> DelegateReply:
    return DelegateReply(task_id=task.task_id, status=task.status, agent_id=task.agent_id)


def _amended(task: TaskRecord, changes: dict[str, Any]) -> TaskRecord:
    updates: dict[str, Any] = {}
    if "priority" in changes:
        updates["priority"] = TaskPriority.parse(changes["priority"])
    if "required_capabilities" in changes:
        updates["required_list"] = [str(c) for c in dict.fromkeys(changes["required_capabilities"])]
    if "metadata" in changes:
        updates["metadata"] = {**task.metadata, **dict(changes["metadata"])}
    if "payload" in changes:
        updates["payload"] = changes["payload"]
    return task.evolve(**updates) if updates else task
