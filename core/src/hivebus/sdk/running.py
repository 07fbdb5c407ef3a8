"""The task a handler is running, reachable from anywhere inside it: ``current_task()``.

As Temporal's ``activity.info()`` and ``activity.heartbeat()``: the ``Agent`` sets a context
variable in the asyncio task that runs the handler, so a handler keeps its one-argument
signature (every existing handler works unchanged) and any function it calls, however deep,
can report progress without the agent being passed down::

    async def build(task: Offer) -> dict:
        for i, step in enumerate(steps):
            await run(step)
            await hivebus.report_progress((i + 1) / len(steps), f"{step} done")
        return {"ok": True}

A report goes to ``task.progress``: it is stored on the task (``task.get`` shows it), keeps
the task alive against its execution timeout, and is published to the task's followers.

Like Temporal's heartbeats, reports are throttled: each one is a write to the core's store,
and a handler may well report once per item of a long loop. At most one report per
``interval_s`` is sent; one made sooner is kept (the latest wins) and sent when the interval
ends, and whatever is still kept when the handler returns is sent before the completion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from hivebus_hookspecs.models import Offer, ProgressRequest

from ..errors import RemoteError
from ..owned import cancel_and_wait

__all__ = ["RunningTask", "current_task", "report_progress"]

Reporter = Callable[[ProgressRequest], Awaitable[None]]

log = logging.getLogger("hivebus.agent")


class RunningTask:
    """The offer being worked on, by which agent, and how to report on it."""

    def __init__(self, offer: Offer, agent_id: str, send: Reporter, interval_s: float) -> None:
        self.offer = offer
        self.agent_id = agent_id
        self._send = send
        self._interval_s = interval_s
        self._last_sent = -float("inf")  # loop time of the latest report sent
        self._kept: ProgressRequest | None = None  # a report waiting for its interval
        self._sender: asyncio.Task[None] | None = None

    @property
    def task_id(self) -> str:
        return self.offer.task_id

    async def report_progress(
        self, progress: float | None = None, message: str | None = None, data: Any = None
    ) -> None:
        """Tell the core (and whoever follows the task) how far the work got.

        ``progress`` is the fraction done, 0.0 to 1.0 (``None``: cannot tell); ``message`` at
        most 1024 characters; ``data`` any JSON for followers, at most 16 KiB, not stored.
        Raises ``ValueError`` for values out of those bounds, and ``RemoteError`` when the
        core refuses a report sent at once: ``not_task_owner`` or ``invalid_state`` mean the
        task is not this agent's any more (cancelled, timed out, given to another), so stop
        working on it. A report that gets no answer (no core reachable in time) is logged
        and dropped: progress is best effort, and the next report tries again. A report made
        within the throttle interval of the previous one returns at once and is sent later.
        """
        report = ProgressRequest(
            task_id=self.offer.task_id,
            agent_id=self.agent_id,
            progress=progress,
            message=message,
            data=data,
        )
        loop = asyncio.get_running_loop()
        if self._sender is None and loop.time() - self._last_sent >= self._interval_s:
            self._last_sent = loop.time()
            await self._send(report)
            return
        self._kept = report
        if self._sender is None:
            self._sender = asyncio.create_task(
                self._send_later(), name=f"hivebus-progress-{self.task_id}"
            )

    async def _send_later(self) -> None:
        """Send the kept report when its interval ends (and any kept while sending it)."""
        loop = asyncio.get_running_loop()
        try:
            while self._kept is not None:
                await asyncio.sleep(max(self._last_sent + self._interval_s - loop.time(), 0.0))
                await self._send_kept()
        finally:
            self._sender = None

    async def _send_kept(self) -> None:
        report, self._kept = self._kept, None
        if report is None:
            return
        self._last_sent = asyncio.get_running_loop().time()
        try:
            await self._send(report)
        except RemoteError as exc:  # nobody to raise it to: the cancel notice stops the work
            log.info("progress refused", extra={"task_id": self.task_id, "code": exc.code.value})

    async def finish(self, send_kept: bool) -> None:
        """The handler is done: send the report still kept (before the completion), or not."""
        if self._sender is not None:  # most tasks never report: nothing to stop or send
            await cancel_and_wait([self._sender])
            self._sender = None
        if send_kept and self._kept is not None:
            await self._send_kept()
        self._kept = None


_current: ContextVar[RunningTask] = ContextVar("hivebus_current_task")


def current_task() -> RunningTask:
    """The task the calling handler runs; ``RuntimeError`` outside an ``Agent``'s handler."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(
            "no hivebus task is running here: call this from an Agent's task handler"
        ) from None


async def report_progress(
    progress: float | None = None, message: str | None = None, data: Any = None
) -> None:
    """``current_task().report_progress(...)``: report progress on the task being run."""
    await current_task().report_progress(progress, message, data)


def running(task: RunningTask) -> None:
    """Make ``task`` the current one for the rest of this asyncio task (the Agent's worker)."""
    _current.set(task)
