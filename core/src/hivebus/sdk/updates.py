"""Following one task: its events on ``task.<task_id>.updates``, as ``TaskUpdate`` values.

The core publishes every event of a task there as well as on ``events.<name>``, so a
delegator hears about its own task without receiving the whole bus. An update is a hint, never
the truth: events are fire-and-forget and anyone may publish on the subject, so the client
reads the task back from the core before it believes the task finished, and reads it now and
then regardless, in case the final event was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import nats.errors
import orjson
from hivebus_hookspecs.models import EventName, TaskStatus
from nats.aio.client import Client
from nats.aio.subscription import Subscription

__all__ = ["TaskUpdate", "UpdatesSubscription"]


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """One event of one task: its name (``task.assigned``, ``task.progress``, ...) and body.

    The body is the event as published on ``events.<name>``; names this client does not know
    (events added by a newer core) come through as they are.
    """

    event: str
    body: dict[str, Any]

    @property
    def task_id(self) -> str | None:
        return self.body.get("task_id")

    @property
    def agent_id(self) -> str | None:
        return self.body.get("agent_id")

    @property
    def is_progress(self) -> bool:
        return self.event == EventName.TASK_PROGRESS

    @property
    def progress(self) -> float | None:
        """The fraction done, for a ``task.progress`` update (``None`` if not given)."""
        value = self.body.get("progress")
        return float(value) if isinstance(value, int | float) else None

    @property
    def message(self) -> str | None:
        value = self.body.get("message")
        return value if isinstance(value, str) else None

    @property
    def looks_final(self) -> bool:
        """The event names a final status (``task.completed``, ...): worth reading the task."""
        try:
            return TaskStatus(self.event.removeprefix("task.")).is_final
        except ValueError:
            return False


class UpdatesSubscription:
    """``async with UpdatesSubscription(nc, subject) as updates: await updates.next(5)``."""

    def __init__(self, nc: Client, subject: str) -> None:
        self._nc = nc
        self._subject = subject
        self._sub: Subscription | None = None

    async def __aenter__(self) -> UpdatesSubscription:
        self._sub = await self._nc.subscribe(self._subject)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def next(self, timeout: float) -> TaskUpdate | None:
        """The next update, or ``None`` when none came within ``timeout`` seconds."""
        if self._sub is None:
            raise RuntimeError("not subscribed; use `async with`")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                msg = await self._sub.next_msg(timeout=max(deadline - loop.time(), 0.001))
            except nats.errors.TimeoutError:
                return None
            update = _parse(msg.data)
            if update is not None:
                return update
            # Not an event (someone else published here): ignored, within the same wait.


def _parse(data: bytes) -> TaskUpdate | None:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        return None
    return TaskUpdate(event=body["event"], body=body)
