"""The client for delegators and operators: every request subject as a method."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from hivebus_hookspecs.models import (
    AgentsRequest,
    AgentView,
    ConcurrencyLimit,
    DelegateReply,
    DelegateRequest,
    EmptyRequest,
    ErrorCode,
    PluginInfo,
    RetryPolicy,
    TaskPriority,
    TaskRequest,
    TasksRequest,
    TaskStatus,
    TaskView,
)
from nats.aio.client import Client

from ..config import HivebusConfig, with_creds
from ..connection import connect
from ..errors import RemoteError
from ..subjects import Subjects
from .references import References
from .request import call
from .updates import TaskUpdate, UpdatesSubscription

__all__ = ["HiveClient"]

_WAIT_POLL_S = 2.0
"""Waiting for a task, it is read back at least this often, updates or not."""


class HiveClient:
    """``async with HiveClient(nats_url=...) as hive: await hive.delegate(...)``."""

    def __init__(
        self,
        nats_url: str | None = None,
        *,
        config: HivebusConfig | None = None,
        nc: Client | None = None,
        timeout: float | None = None,
        creds: str | Path | None = None,
    ) -> None:
        self.config = with_creds(config or HivebusConfig.load(nats_url=nats_url), creds)
        self.subjects = Subjects(self.config.prefix)
        self.timeout = timeout or self.config.request_timeout_s
        self.nc = nc
        self._owns_connection = nc is None
        self.retry_unavailable_s = 15.0
        self._references: References | None = None

    async def connect(self) -> HiveClient:
        if self.nc is None:
            self.nc = await connect(self.config, "hivebus-client")
        return self

    async def close(self) -> None:
        if self.nc is not None and self._owns_connection:
            await self.nc.close()
        self.nc = None

    async def __aenter__(self) -> HiveClient:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _connected(self) -> Client:
        if self.nc is None:
            raise RuntimeError("HiveClient is not connected; use `async with` or connect()")
        return self.nc

    @property
    def references(self) -> References:
        """Sends large payloads by reference and reads large results back (docs/context.md)."""
        if self._references is None or self._references.nc is not self._connected():
            self._references = References(self._connected(), self.config)
        return self._references

    async def resolve(self, value: Any) -> Any:
        """The value a reference stands for (``TaskView.payload`` of a large payload stays a
        reference until resolved); any other value as it is."""
        return await self.references.resolve(value)

    async def _call(self, subject: str, body: Any, timeout: float | None = None) -> dict[str, Any]:
        """One request; ``unavailable`` (a failover in the state store) is retried a while.

        Every request this client sends is safe to repeat: delegations carry a task id
        chosen here, so a retry can never create a second task.
        """
        nc = self._connected()
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.retry_unavailable_s
        backoff = 0.1
        while True:
            try:
                return await call(nc, subject, body, timeout or self.timeout)
            except RemoteError as exc:
                if exc.code is not ErrorCode.UNAVAILABLE or loop.time() > give_up_at:
                    raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def delegate(
        self,
        task_type: str,
        required_capabilities: list[str] | None = None,
        *,
        priority: TaskPriority | str | int = TaskPriority.MEDIUM,
        payload: Any = None,
        metadata: dict[str, Any] | None = None,
        task_id: str | None = None,
        queue: bool = True,
        queue_timeout_s: float | None = None,
        execution_timeout_s: float | None = None,
        retry: RetryPolicy | dict[str, Any] | None = None,
        delay_s: float | None = None,
        not_before: float | None = None,
        depends_on: list[str] | None = None,
        concurrency: ConcurrencyLimit | dict[str, Any] | None = None,
        tenant: str | None = None,
        prefer_agents: list[str] | None = None,
        require_agent: str | None = None,
        wait: bool = False,
        wait_timeout: float | None = None,
        on_progress: Callable[[TaskUpdate], object] | None = None,
    ) -> DelegateReply | TaskView:
        """Delegate a task. With ``wait``, return the finished task instead of the receipt.

        The options are those of ``task.delegate`` (subjects.md): ``retry`` a policy,
        ``delay_s`` or ``not_before`` a start, ``depends_on`` tasks to complete first,
        ``concurrency`` a key and its limit, ``tenant`` for turns, ``prefer_agents`` and
        ``require_agent`` for affinity. While waiting, ``on_progress`` (a function or a
        coroutine function) is called with each ``task.progress`` update of the task, as its
        agent reports it; ``follow`` gives every update.
        """
        options = {
            "retry": retry,
            "delay_s": delay_s,
            "not_before": not_before,
            "depends_on": depends_on,
            "concurrency": concurrency,
            "tenant": tenant,
            "prefer_agents": prefer_agents,
            "require_agent": require_agent,
        }
        task_id = task_id or uuid.uuid4().hex
        request = DelegateRequest.model_validate(
            {
                **{name: value for name, value in options.items() if value is not None},
                "task_id": task_id,
                "task_type": task_type,
                "required_capabilities": required_capabilities or [],
                "priority": priority,
                "payload": payload,
                "metadata": metadata or {},
                "queue": queue,
                "queue_timeout_s": queue_timeout_s,
                "execution_timeout_s": execution_timeout_s,
            }
        )
        # Checked first, then stored: a request that does not validate stores nothing.
        sent = await self.references.offload(request.payload, f"task/{task_id}/payload")
        if sent is not request.payload:
            request = request.model_copy(update={"payload": sent})
        if not wait:
            raw = await self._call(self.subjects.delegate, request)
            return DelegateReply.model_validate(raw)
        # Listen before delegating so a fast agent's completion cannot be missed, and to this
        # one task only. An update is only a hint to look: the answer is the task read back
        # from the core, and only a final one (an update can be forged, or come from a
        # replica a moment ahead).
        subject = self.subjects.task_updates(task_id)
        async with UpdatesSubscription(self._connected(), subject) as updates:
            await self._call(self.subjects.delegate, request)
            async with asyncio.timeout(wait_timeout):
                return await self._until_final(task_id, updates, on_progress)

    async def _until_final(
        self,
        task_id: str,
        updates: UpdatesSubscription,
        on_progress: Callable[[TaskUpdate], object] | None,
    ) -> TaskView:
        """Read the task whenever an update says it may be final, and every ``_WAIT_POLL_S``
        regardless (in case its final event was lost), until it is."""
        loop = asyncio.get_running_loop()
        while True:
            task = await self.get(task_id)
            if task.status.is_final:
                return task
            poll_at = loop.time() + _WAIT_POLL_S
            while (update := await updates.next(poll_at - loop.time())) is not None:
                if update.is_progress and on_progress is not None:
                    called = on_progress(update)
                    if inspect.isawaitable(called):
                        await called
                if update.looks_final:
                    break

    async def follow(
        self, task_id: str, *, poll_s: float = _WAIT_POLL_S
    ) -> AsyncIterator[TaskUpdate]:
        """Every update of one task (assigned, progress, requeued, ...) as it happens.

        Subscribes to ``task.<task_id>.updates`` first, then reads the task once: a task
        already final ends the iteration at once (read it with ``get``). It ends after the
        update that finishes the task, confirmed by reading the task back, or when a read
        every ``poll_s`` seconds finds it final (its final event was lost). Breaking out
        early is fine; wrap it in ``contextlib.aclosing`` to unsubscribe at once.
        """
        subject = self.subjects.task_updates(task_id)
        async with UpdatesSubscription(self._connected(), subject) as updates:
            if (await self.get(task_id)).status.is_final:
                return
            while True:
                update = await updates.next(poll_s)
                if update is not None:
                    yield update
                maybe_final = update is None or update.looks_final
                if maybe_final and (await self.get(task_id)).status.is_final:
                    return

    async def get(self, task_id: str) -> TaskView:
        """The task; a result sent by reference is read back (``resolve`` for its payload)."""
        raw = await self._call(self.subjects.get, TaskRequest(task_id=task_id))
        task = TaskView.model_validate(raw["task"])
        if task.result is None:
            return task
        return task.model_copy(update={"result": await self.resolve(task.result)})

    async def retry(self, task_id: str) -> TaskView:
        """Queue a dead, failed, expired or cancelled task again (``task.retry``)."""
        raw = await self._call(self.subjects.retry, TaskRequest(task_id=task_id))
        return TaskView.model_validate(raw["task"])

    async def cancel(self, task_id: str) -> TaskView:
        raw = await self._call(self.subjects.cancel, TaskRequest(task_id=task_id))
        return TaskView.model_validate(raw["task"])

    async def status(self) -> dict[str, Any]:
        return await self._call(self.subjects.status, EmptyRequest())

    async def agents(self) -> list[AgentView]:
        """Every agent the core knows, page after page."""
        agents: list[AgentView] = []
        cursor: str | None = None
        while True:
            raw = await self._call(self.subjects.agents, AgentsRequest(cursor=cursor, limit=1000))
            agents += [AgentView.model_validate(a) for a in raw["agents"]]
            cursor = raw.get("next_cursor")
            if cursor is None:
                return agents

    async def tasks(self, status: TaskStatus | None = None, limit: int = 100) -> list[TaskView]:
        """Up to ``limit`` tasks, live ones first, newest first (as many pages as needed)."""
        tasks: list[TaskView] = []
        cursor: str | None = None
        while len(tasks) < limit:
            request = TasksRequest(status=status, limit=limit - len(tasks), cursor=cursor)
            raw = await self._call(self.subjects.tasks, request)
            tasks += [TaskView.model_validate(t) for t in raw["tasks"]]
            cursor = raw.get("next_cursor")
            if cursor is None:
                break
        return tasks

    async def plugins(self) -> list[PluginInfo]:
        raw = await self._call(self.subjects.plugins, EmptyRequest())
        return [PluginInfo.model_validate(p) for p in raw["plugins"]]
