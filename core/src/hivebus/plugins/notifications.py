"""Notification hooks, delivered off the request path.

Notifications go through a bounded queue drained by one worker, so a slow plugin delays other
plugins' notifications, never a reply; when the queue is full they are dropped and counted.
The worker waits only when the queue is empty: what a turn of the event loop queued is taken
in one wake-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..owned import cancel_and_wait

__all__ = ["NOTIFY_QUEUE_SIZE", "Notifications"]

NOTIFY_QUEUE_SIZE = 10_000

log = logging.getLogger("hivebus.plugins")


class Notifications:
    """Queues hook calls for ``deliver(hook, kwargs)`` while started."""

    def __init__(self, deliver: Callable[[str, dict[str, Any]], Awaitable[object]]) -> None:
        self._deliver = deliver
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0

    def put(self, hook: str, kwargs: dict[str, Any]) -> None:
        """Queue a call of ``hook``; never waits. Nothing is queued before ``start``."""
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((hook, kwargs))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("plugin notifications dropped", extra={"hook": hook})

    def start(self) -> None:
        self._queue = asyncio.Queue(NOTIFY_QUEUE_SIZE)
        self._worker = asyncio.create_task(self._drain(), name="hivebus-plugin-notify")

    async def stop(self, grace_s: float) -> None:
        """Deliver what is queued (within ``grace_s``), then stop the worker."""
        if self._queue is not None and self._worker is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await self._queue.join()
            except TimeoutError:
                log.warning("plugin notifications left undelivered at shutdown")
            await cancel_and_wait([self._worker])
        self._queue, self._worker = None, None

    async def _drain(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            woken = queue.empty()
            hook, kwargs = await queue.get() if woken else queue.get_nowait()
            try:
                if woken:
                    # By the request being handled right now: let its reply reach the socket
                    # first (the connection's flusher is scheduled behind this wake-up).
                    await asyncio.sleep(0)
                await self._deliver(hook, kwargs)
            except Exception:  # the host's own fault: the next notifications still go
                log.exception("plugin notification not delivered", extra={"hook": hook})
            finally:
                queue.task_done()
