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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from hivebus_hookspecs.models import Offer, ProgressRequest

__all__ = ["RunningTask", "current_task", "report_progress"]

Reporter = Callable[[ProgressRequest], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunningTask:
    """The offer being worked on, by which agent, and how to report on it."""

    offer: Offer
    agent_id: str
    _send: Reporter

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
        core refuses the report: ``not_task_owner`` or ``invalid_state`` mean the task is not
        this agent's any more (cancelled, timed out, given to another), so stop working on
        it. A report that gets no answer (no core reachable in time) is logged and dropped:
        progress is best effort, and the next report tries again.
        """
        await self._send(
            ProgressRequest(
                task_id=self.offer.task_id,
                agent_id=self.agent_id,
                progress=progress,
                message=message,
                data=data,
            )
        )


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
