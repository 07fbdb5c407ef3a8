"""Change a stored record with compare-and-set: the one retry loop of the domain.

A transition is a *change function*. It is given the record as this replica has it cached
(``None`` when there is none) and returns the evolved copy to store, or ``SKIP`` when there is
nothing to write (the record is already where the caller wanted it, or no longer the caller's
to change), or raises a ``HivebusError``. The copy is stored with compare-and-set on the
record's revision. On ``Conflict`` (another coroutine or replica wrote first) the record is
re-read from the store and the change function decides again, on the record as it is now; the
helper returns ``(seen, stored)``: the record the last decision was made on and the record
written, ``None`` when the function returned ``SKIP``.

After ``CAS_RETRIES`` lost writes in a row the helper raises ``Contended``, and every caller
maps it deliberately:

=================================  ===========================================================
caller                             when the retries run out
=================================  ===========================================================
register                           ``agent_exists`` "agent X is contended"; the seat goes back
deregister                         ``unavailable`` "agent X is busy changing; try again"
complete, cancel                   ``internal_error`` "task X is contended"
queue deadline, execution timeout  postponed: the periodic pass tries again at its next round
requeue (agent gone, timeout)      not requeued now: the orphan rule requeues it later
reserve a slot                     the agent is passed over (the next candidate is tried)
give a slot back                   the slot stays taken: the phantom-slot rule frees it later
record an acceptance               the task stays offered: the stale-offer rule asks again
put an unplaced task back in line  the task stays offered: the stale-offer rule asks again
=================================  ===========================================================

Single writes whose conflict means "another replica is doing this now" (storing a task as
offered to the agent just reserved, marking an agent offline, claiming a stale offer, pruning
an agent) do not retry: the loser re-reads and stands back, and these stay plain
compare-and-sets on the cache.

The loop costs a closure and a tuple per transition and no await beyond the store's own.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal, overload

from .ports import Conflict

if TYPE_CHECKING:
    from .cache import StateCache
    from .registry import AgentRecord
    from .tasks import TaskRecord

__all__ = [
    "CAS_RETRIES",
    "SKIP",
    "AgentChange",
    "AgentRenewal",
    "Contended",
    "Skip",
    "TaskChange",
    "delete_agent",
    "update_agent",
    "update_task",
]

CAS_RETRIES = 5
"""Compare-and-set attempts on one record before the caller is told it is contended."""


class Skip(enum.Enum):
    SKIP = "skip"


SKIP: Final = Skip.SKIP
"""What a change function returns when there is nothing to write."""

TaskChange = Callable[["TaskRecord | None"], "TaskRecord | Literal[Skip.SKIP]"]
AgentChange = Callable[["AgentRecord | None"], "AgentRecord | Literal[Skip.SKIP]"]
AgentRenewal = Callable[["AgentRecord | None"], "AgentRecord"]
"""A change function that never skips: the helper then always returns a record."""


class Contended(Exception):
    """``CAS_RETRIES`` compare-and-sets of one record lost in a row: it keeps changing."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} is contended")
        self.kind = kind
        self.key = key


async def update_task(
    cache: StateCache, task_id: str, change: TaskChange
) -> tuple[TaskRecord | None, TaskRecord | None]:
    """Store ``change(cached task)``; on conflict re-read and decide again (see the module)."""
    for _ in range(CAS_RETRIES):
        await cache.task_written(task_id)
        seen = cache.tasks.get(task_id)
        evolved = change(seen)
        if evolved is SKIP:
            return seen, None
        try:
            return seen, await cache.save_task(evolved)
        except Conflict:
            await cache.refresh_task(task_id)
    raise Contended("task", task_id)


@overload
async def update_agent(
    cache: StateCache, agent_id: str, change: AgentRenewal
) -> tuple[AgentRecord | None, AgentRecord]: ...


@overload
async def update_agent(
    cache: StateCache, agent_id: str, change: AgentChange
) -> tuple[AgentRecord | None, AgentRecord | None]: ...


async def update_agent(
    cache: StateCache, agent_id: str, change: AgentChange
) -> tuple[AgentRecord | None, AgentRecord | None]:
    """Store ``change(cached agent)``; on conflict re-read and decide again."""
    for _ in range(CAS_RETRIES):
        seen = cache.registry.get(agent_id)
        evolved = change(seen)
        if evolved is SKIP:
            return seen, None
        try:
            return seen, await cache.save_agent(evolved)
        except Conflict:
            await cache.refresh_agent(agent_id)
    raise Contended("agent", agent_id)


@overload
async def delete_agent(cache: StateCache, agent_id: str, change: AgentRenewal) -> AgentRecord: ...


@overload
async def delete_agent(
    cache: StateCache, agent_id: str, change: AgentChange
) -> AgentRecord | None: ...


async def delete_agent(cache: StateCache, agent_id: str, change: AgentChange) -> AgentRecord | None:
    """Delete the record ``change(cached agent)`` returns (the one it was given), or nothing
    on ``SKIP``; on conflict re-read and decide again. Returns the deleted record."""
    for _ in range(CAS_RETRIES):
        chosen = change(cache.registry.get(agent_id))
        if chosen is SKIP:
            return None
        try:
            await cache.delete_agent(chosen)
            return chosen
        except Conflict:
            await cache.refresh_agent(agent_id)
    raise Contended("agent", agent_id)
