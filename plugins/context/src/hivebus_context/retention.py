"""Stored payloads and results are removed once their task has ended and ``retention_s`` passed.

Objects are named ``task/<task_id>/payload`` and ``task/<task_id>/result`` by the SDK, so the
task each belongs to is in its name. Every replica sweeps on its own timer: a deletion is
idempotent, and a replica only deletes what its own view shows as long finished (or, for an
object whose task it does not know, what it has seen unclaimed for ``orphan_after_s``), so two
replicas sweeping at once can only both delete the same thing, never anything early.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hivebus_hookspecs import PluginContext

from .settings import ContextSettings

__all__ = ["Retention", "task_of"]

log = logging.getLogger("hivebus.context")

STORE_TIMEOUT_S = 30.0
"""Listing the store, or removing one object, taking longer than this fails the sweep (the
host counts it against the plugin's health); the next sweep tries again."""


def task_of(name: str) -> str | None:
    """The task an object belongs to, from its name (``task/<task_id>/<what>``)."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "task" and parts[1]:
        return parts[1]
    return None


class Retention:
    def __init__(
        self, context: PluginContext, settings: ContextSettings, clock: Callable[[], float]
    ) -> None:
        self._context = context
        self._settings = settings
        self._clock = clock
        self._unclaimed: dict[str, float] = {}
        """Object name -> when a sweep first found no task for it (this replica's memory:
        a restart only delays removal, never hastens it)."""
        self.sweeps = 0
        self.stored = 0
        self.removed = 0

    async def sweep(self) -> None:
        """Remove what is due; one listing of the store per sweep."""
        async with asyncio.timeout(STORE_TIMEOUT_S):
            names = await self._context.objects.list()
        now = self._clock()
        self.stored = len(names)
        self._unclaimed = {n: t for n, t in self._unclaimed.items() if n in set(names)}
        for name in names:
            if self._due(name, now):
                async with asyncio.timeout(STORE_TIMEOUT_S):
                    await self._context.objects.delete(name)
                self._unclaimed.pop(name, None)
                self.removed += 1
                self.stored -= 1
                log.info("stored object removed", extra={"object": name})
        self.sweeps += 1

    def _due(self, name: str, now: float) -> bool:
        task_id = task_of(name)
        task = self._context.task(task_id) if task_id else None
        if task is None:
            first = self._unclaimed.setdefault(name, now)
            return now - first >= self._settings.orphan_after_s
        if not task.status.is_final:
            return False
        ended = task.finished_at
        if ended is None:  # final without an end time: count from when a sweep saw it so
            ended = self._unclaimed.setdefault(name, now)
        return now - ended >= self._settings.retention_s
