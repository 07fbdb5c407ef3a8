"""Timers a plugin asks for and the host owns: every N seconds, or once at a time.

Each timer is a named task the host cancels at shutdown; a callback that raises is reported
(the plugin's health counts it) and the timer goes on; a callback may be a plain function or a
coroutine function. A slow callback delays only its own timer's next run, never the core.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..owned import cancel_and_wait

__all__ = ["Callback", "TimerSet"]

log = logging.getLogger("hivebus.plugins")

Callback = Callable[[], Any | Awaitable[Any]]
Report = Callable[[str, BaseException], None]
"""``report(what, exc)``: a callback failed."""


class TimerSet:
    def __init__(self, owner: str, report: Report) -> None:
        self._owner = owner
        self._report = report
        self._tasks: set[asyncio.Task[None]] = set()

    def every(self, interval_s: float, callback: Callback, *, name: str = "timer") -> None:
        """Run ``callback`` every ``interval_s`` seconds, the first time after one interval."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._start(self._repeat(interval_s, callback, name), name)

    def at(self, when: float, callback: Callback, *, name: str = "timer") -> None:
        """Run ``callback`` once at Unix time ``when`` (at once if that has passed)."""
        self._start(self._once(when, callback, name), name)

    def _start(self, body: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(body)
        task.set_name(f"hivebus-plugin-{self._owner}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _repeat(self, interval_s: float, callback: Callback, name: str) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._run(callback, name)

    async def _once(self, when: float, callback: Callback, name: str) -> None:
        await asyncio.sleep(max(0.0, when - time.time()))
        await self._run(callback, name)

    async def _run(self, callback: Callback, name: str) -> None:
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.warning(
                "plugin timer failed",
                extra={"plugin": self._owner, "timer": name, "error": repr(exc)[:300]},
            )
            self._report(f"timer {name}", exc)

    async def stop(self) -> None:
        await cancel_and_wait(list(self._tasks))
        self._tasks.clear()

    def __len__(self) -> int:
        return len(self._tasks)
