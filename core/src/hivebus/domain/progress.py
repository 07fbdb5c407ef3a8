"""Progress: the agent holding a task says how far it got, and that keeps the task alive.

A report is stored on the task (``progress``, ``progress_message``, ``progress_at``) with one
compare-and-set, so ``task.get`` on any replica shows it and the execution timeout counts from
it, across replicas and after a restart. Its ``data`` is only published (``task.progress``),
never stored: records stay small, and a report cannot eat the room a task keeps for its
failure report.

A report for a task still ``offered`` to its agent means the agent accepted and its answer is
still on the way (as with a completion that overtakes its acceptance): the assignment is
recorded with the report, so followers see ``task.assigned`` before the first progress.
"""

from __future__ import annotations

from typing import Literal

import orjson
from hivebus_hookspecs.models import ErrorCode, EventName, ProgressRequest, TaskStatus
from hivebus_hookspecs.models.requests import PROGRESS_DATA_BYTES

from ..errors import HivebusError
from .cas import Contended, Skip, update_task
from .kernel import OUTCOME_ROOM, Kernel, known
from .placement import Placement, held_by
from .tasks import TaskRecord

__all__ = ["Progress"]


class Progress:
    def __init__(self, kernel: Kernel, placement: Placement) -> None:
        self._k = kernel
        self._placement = placement

    async def report(self, req: ProgressRequest) -> None:
        """Store the report on the task its agent holds, then announce it with its data."""
        k = self._k
        _check_data(req)

        def note(task: TaskRecord | None) -> TaskRecord | Literal[Skip.SKIP]:
            now = k.clock()
            task = held_by(known(task, req.task_id), req.agent_id, now)
            noted = task.evolve(
                progress=req.progress, progress_message=req.message, progress_at=now
            )
            if noted.size + OUTCOME_ROOM > k.max_record_bytes:
                raise HivebusError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"with this message the task's record would be {noted.size} bytes and "
                    "leave no room for its outcome: report a shorter message",
                )
            return noted

        try:
            seen, noted = await update_task(k.cache, req.task_id, note)
        except Contended:
            raise HivebusError(
                ErrorCode.INTERNAL_ERROR, f"task {req.task_id!r} is contended"
            ) from None
        if seen is None or noted is None:  # never: note() raised or returned a record
            return
        if seen.status is TaskStatus.OFFERED:
            self._placement.assigned(noted)
        k.emit(
            EventName.TASK_PROGRESS,
            task_id=req.task_id,
            agent_id=req.agent_id,
            progress=req.progress,
            message=req.message,
            data=req.data,
        )


def _check_data(req: ProgressRequest) -> None:
    if req.data is None:
        return
    size = len(orjson.dumps(req.data))
    if size > PROGRESS_DATA_BYTES:
        raise HivebusError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"data is {size} bytes as JSON; a progress report carries at most "
            f"{PROGRESS_DATA_BYTES}: pass a reference instead",
        )
