"""Notification hooks, delivered off the request path.

Notifications wait in a bounded line drained by one worker, so a slow plugin delays other
plugins' notifications, never a reply; when the line is full they are dropped and counted.
The worker takes everything waiting each time it wakes: one wake-up per turn of the event
loop, however many transitions that turn made, rather than one per notification (a wake-up
costs more than delivering a notification to a plugin that only counts it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..owned import cancel_and_wait

__all__ = ["NOTIFY_QUEUE_SIZE", "Notifications"]

NOTIFY_QUEUE_SIZE = 10_000

log = logging.getLogger("hivebus.plugins")


class Notifications:
    """Lines up hook calls for ``deliver(hook, kwargs)`` while started."""

    def __init__(self, deliver: Callable[[str, dict[str, Any]], Awaitable[object]]) -> None:
        self._deliver = deliver
        self._waiting: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._drained: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0

    def put(self, hook: str, kwargs: dict[str, Any]) -> None:
        """Line up a call of ``hook``; never waits. Nothing is kept before ``start``."""
        if self._worker is None:
            return
        if len(self._waiting) >= NOTIFY_QUEUE_SIZE:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("plugin notifications dropped", extra={"hook": hook})
            return
        self._waiting.append((hook, kwargs))
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set_result(None)

    def start(self) -> None:
        self._drained = asyncio.Event()
        self._drained.set()
        self._worker = asyncio.create_task(self._drain(), name="hivebus-plugin-notify")

    async def stop(self, grace_s: float) -> None:
        """Deliver what is waiting (within ``grace_s``), then stop the worker."""
        if self._worker is not None and self._drained is not None:
            try:
                async with asyncio.timeout(grace_s):
                    while self._waiting or not self._drained.is_set():
                        await self._drained.wait()
                        if self._waiting:  # lined up since; the worker wakes for it
                            await asyncio.sleep(0)
            except TimeoutError:
                log.warning("plugin notifications left undelivered at shutdown")
            await cancel_and_wait([self._worker])
        self._waiting.clear()
        self._worker, self._wake, self._drained = None, None, None

    async def _drain(self) -> None:
        waiting, drained = self._waiting, self._drained
        assert drained is not None
        loop = asyncio.get_running_loop()
        while True:
            if not waiting:
                drained.set()
                wake: asyncio.Future[None] = loop.create_future()
                self._wake = wake
                await wake
                drained.clear()
                # Woken by the request being handled right now: let its reply reach the
                # socket first (the connection's flusher is scheduled behind this wake-up).
                await asyncio.sleep(0)
            while waiting:
                hook, kwargs = waiting.popleft()
                try:
                    await self._deliver(hook, kwargs)
                except Exception:  # the host's own fault: the next notifications still go
                    log.exception("plugin notification not delivered", extra={"hook": hook})
