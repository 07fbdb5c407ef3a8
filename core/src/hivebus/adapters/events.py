"""The event port on NATS: lifecycle events published in order, off the request path."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from hivebus_hookspecs.models import Event
from nats.aio.client import Client

from ..codec import encode
from ..owned import cancel_and_wait
from ..subjects import Subjects

__all__ = ["EventPublisher"]

log = logging.getLogger("hivebus.events")


class EventPublisher:
    """``publish`` is synchronous for the domain; one owned task writes to NATS in order."""

    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self._nc = nc
        self._subjects = subjects
        self._pending: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hivebus-events")

    def publish(self, event: Event) -> None:
        payload = encode(event)
        self.publish_message(self._subjects.event(event.event), payload)
        if event.task_id is not None:
            # The same bytes again for whoever follows this one task (task.<id>.updates), so
            # a delegator waiting for its task never has to receive the whole bus.
            self.publish_message(self._subjects.task_updates(event.task_id), payload)

    def publish_message(self, subject: str, payload: bytes) -> None:
        """Any other message the core announces (a plugin's event, an alert), in order."""
        self._pending.append((subject, payload))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Woken by the request being handled right now: its reply goes out first.
            await asyncio.sleep(0)
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        while self._pending:
            subject, payload = self._pending.popleft()
            try:
                await self._nc.publish(subject, payload)
                self.published += 1
            except Exception:
                log.exception("event not published", extra={"subject": subject})

    async def stop(self) -> None:
        """Publish what is pending, then stop."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        await self._flush_pending()
