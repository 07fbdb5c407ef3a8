"""This replica's cache of the stored state, and the only way the domain writes to the store.

The store (memory or JetStream) holds the truth; the cache holds the latest revision of every
record this replica has seen, plus the indexes selection needs (the agent registry, the
pending queue). A record is taken in only when its revision is newer than the cached one, so
a replica's own writes echoed back by the watch, or a late watch delivery, change nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator

from hivebus_hookspecs.models import AgentState, TaskStatus

from .ports import StatePort
from .queue import PendingQueue
from .registry import AgentRecord, AgentRegistry
from .tasks import ACTIVE, TaskRecord

__all__ = ["StateCache"]

_HOT = frozenset({TaskStatus.QUEUED, TaskStatus.OFFERED, TaskStatus.ASSIGNED})
"""The statuses every task passes through, on the hot path."""


def _holder(task: TaskRecord | None) -> str | None:
    if task is None or task.status not in ACTIVE:
        return None
    return task.agent_id


class StateCache:
    def __init__(
        self,
        state: StatePort,
        retention: int,
        monotonic: Callable[[], float],
        on_forget: Callable[[str], None],
        retention_weight: int | None = None,
        tenant_weights: dict[str, float] | None = None,
    ) -> None:
        self._state = state
        self._retention = retention
        self._retention_weight = retention_weight
        self._monotonic = monotonic
        self._on_forget = on_forget
        self.registry = AgentRegistry()
        self.queue = PendingQueue(tenant_weights)
        self.tasks: dict[str, TaskRecord] = {}
        self.live: set[str] = set()
        self.finished: OrderedDict[str, int] = OrderedDict()  # task id -> its weight
        self.finished_weight = 0
        self.live_weight = 0
        self._live_weights: dict[str, int] = {}
        # Delegations and registrations on their way to the store, counted against the
        # limits until their record is taken in: a limit checked, then awaited, must still
        # hold when a thousand requests arrive at once.
        self.admitting: dict[str, int] = {}  # task id -> weight
        self.admitting_weight = 0
        self.registering: set[str] = set()
        self.dependents: dict[str, set[str]] = {}  # task id -> blocked tasks waiting on it
        self.timers: dict[str, asyncio.TimerHandle] = {}
        """Waiting tasks' timers (kept by ``waiting``): while there are none, and no
        dependents, an active task's change concerns nobody waiting."""
        self.observe: Callable[[TaskRecord | None, TaskRecord], None] = lambda old, new: None
        """Told of a task record taken in (this replica's writes and other replicas'), unless
        it is queued, offered or assigned while no task waits (see ``timers``)."""
        self.written: Callable[[TaskRecord | None, TaskRecord], None] = lambda old, new: None
        """Told of a task record this replica wrote over one holding a concurrency place."""
        # task id -> this replica's write of it now in flight (resolved when it is answered)
        self._saving: dict[str, asyncio.Future[None]] = {}
        self.seen: dict[str, float] = {}  # agent id -> monotonic time of last sign of life
        self.context: dict[str, float] = {}  # agent id -> reported context window usage

    # --- taking records in --------------------------------------------------------------

    def apply_task(self, task: TaskRecord) -> None:
        """Take a stored task in (a local write, a load, or a replica's change)."""
        old = self.tasks.get(task.task_id)
        if old is not None and old.revision >= task.revision:
            return
        task_id = task.task_id
        self.tasks[task_id] = task
        task.drop_encoding()
        before, after = _holder(old), _holder(task)
        if before != after:
            if before is not None:
                self.registry.let_go(before, task_id)
            if after is not None:
                self.registry.hold(after, task_id)
        if task.status is TaskStatus.QUEUED:
            self.queue.push(task)
        else:
            self.queue.discard(task_id)
        if task.depends_on:
            self._index_dependencies(old, task)
        if task.status not in _HOT or self.timers or self.dependents:
            self.observe(old, task)  # else nothing waits on this change: skip the call
        if not task.status.is_final:
            if task_id in self.finished:  # retried: live again
                self.finished_weight -= self.finished.pop(task_id)
            self.live.add(task_id)
            if task_id not in self._live_weights:
                self._live_weights[task_id] = task.weight
                self.live_weight += task.weight
                self.end_admission(task_id)
            return
        self.live.discard(task_id)
        self.live_weight -= self._live_weights.pop(task_id, 0)
        self.finished_weight += task.weight - self.finished.get(task_id, 0)
        self.finished[task_id] = task.weight
        weight_limit = self._retention_weight
        while self.finished and (
            len(self.finished) > self._retention
            or (weight_limit is not None and self.finished_weight > weight_limit)
        ):
            old_id, weight = self.finished.popitem(last=False)
            self.finished_weight -= weight
            self.tasks.pop(old_id, None)
            self._on_forget(old_id)

    def _index_dependencies(self, old: TaskRecord | None, task: TaskRecord) -> None:
        blocked = task.status is TaskStatus.BLOCKED
        if blocked == (old is not None and old.status is TaskStatus.BLOCKED):
            return
        for dep in task.depends_on:
            waiting = self.dependents.setdefault(dep, set())
            if blocked:
                waiting.add(task.task_id)
            else:
                waiting.discard(task.task_id)
                if not waiting:
                    del self.dependents[dep]

    def admit(self, task_id: str, weight: int) -> None:
        """Count a task being delegated against the limits until it is stored."""
        if task_id not in self.admitting:
            self.admitting[task_id] = weight
            self.admitting_weight += weight

    def end_admission(self, task_id: str) -> None:
        self.admitting_weight -= self.admitting.pop(task_id, 0)

    @property
    def live_count(self) -> int:
        """Tasks queued or running, and those on their way to the store."""
        return len(self.live) + len(self.admitting)

    @property
    def committed_weight(self) -> int:
        return self.live_weight + self.admitting_weight

    def forget_task(self, task_id: str) -> None:
        """Drop a task (it is gone from the store)."""
        task = self.tasks.pop(task_id, None)
        holder = _holder(task)
        if holder is not None:
            self.registry.let_go(holder, task_id)
        if task is not None and task.status is TaskStatus.BLOCKED:
            self._index_dependencies(task, task.evolve(status=TaskStatus.FAILED))
        self.live.discard(task_id)
        self.live_weight -= self._live_weights.pop(task_id, 0)
        self.finished_weight -= self.finished.pop(task_id, 0)
        self.queue.discard(task_id)

    def apply_agent(self, agent: AgentRecord) -> None:
        old = self.registry.get(agent.agent_id)
        if old is not None and old.revision >= agent.revision:
            return
        self.registry.add(agent)
        if agent.state is not AgentState.ACTIVE:
            return
        self.registering.discard(agent.agent_id)
        renewed = (
            old is None
            or old.state is not AgentState.ACTIVE
            or old.registered_at != agent.registered_at
        )
        if renewed or agent.agent_id not in self.seen:
            # A new or renewed registration (maybe on another replica): a full window to
            # show its heartbeats here, not the clock of the registration before.
            self.seen[agent.agent_id] = self._monotonic()

    def remove_agent(self, agent_id: str) -> None:
        self.registry.remove(agent_id)
        self.seen.pop(agent_id, None)
        self.context.pop(agent_id, None)

    def on_stored_task(self, task_id: str, task: TaskRecord | None, revision: int) -> None:
        """A change seen in the shared store (this replica's own writes come back too)."""
        if task is not None:
            self.apply_task(task)
            return
        cached = self.tasks.get(task_id)
        if cached is not None and cached.revision < revision:
            self.forget_task(task_id)

    def on_stored_agent(self, agent_id: str, agent: AgentRecord | None, revision: int) -> None:
        if agent is not None:
            self.apply_agent(agent)
            return
        cached = self.registry.get(agent_id)
        if cached is not None and cached.revision < revision:
            self.remove_agent(agent_id)

    def task_revision(self, task_id: str) -> int:
        """The cached revision of a task, 0 when not cached: a change at or below it is
        known here already (most often this replica's own write, coming back)."""
        task = self.tasks.get(task_id)
        return task.revision if task is not None else 0

    def agent_revision(self, agent_id: str) -> int:
        agent = self.registry.get(agent_id)
        return agent.revision if agent is not None else 0

    # --- writing through ----------------------------------------------------------------

    async def save_task(self, task: TaskRecord) -> TaskRecord:
        """Compare-and-set ``task`` (raises ``Conflict``), then cache it."""
        task_id = task.task_id
        old = self.tasks.get(task_id)
        done = asyncio.get_running_loop().create_future()
        self._saving[task_id] = done
        try:
            await self._state.save_task(task)
        finally:
            if self._saving.get(task_id) is done:
                del self._saving[task_id]
            done.set_result(None)
        self.apply_task(task)
        if old is not None and old.gate is not None:
            self.written(old, task)  # only a task holding a concurrency place needs telling
        return task

    async def task_written(self, task_id: str) -> None:
        """Wait until no write of ``task_id`` by this replica is in flight.

        A transition decides on the cached record; deciding while this replica's own write of
        the same task is on its way (an agent's completion arriving while its acceptance is
        being stored, the usual order for quick work) would lose the compare-and-set to it
        and cost a re-read from the store. Waiting for the write costs nothing of the kind.
        """
        while (pending := self._saving.get(task_id)) is not None:
            await asyncio.wait((pending,))  # never cancels the write's future

    async def save_agent(self, agent: AgentRecord) -> AgentRecord:
        await self._state.save_agent(agent)
        self.apply_agent(agent)
        return agent

    async def delete_agent(self, agent: AgentRecord) -> None:
        """Compare-and-delete ``agent`` (raises ``Conflict``), then drop it from the cache."""
        await self._state.delete_agent(agent)
        self.remove_agent(agent.agent_id)

    async def refresh_task(self, task_id: str) -> TaskRecord | None:
        """Re-read a task after a conflict; ``None`` when it no longer exists."""
        stored = await self._state.load_task(task_id)
        if stored is None:
            self.forget_task(task_id)
            return None
        self.apply_task(stored)
        return self.tasks.get(task_id)

    async def refresh_agent(self, agent_id: str) -> AgentRecord | None:
        stored = await self._state.load_agent(agent_id)
        if stored is None:
            self.remove_agent(agent_id)
            return None
        self.apply_agent(stored)
        return self.registry.get(agent_id)

    # --- reading --------------------------------------------------------------------------

    def newest_first(self) -> Iterator[TaskRecord]:
        """Live tasks (newest first), then finished ones (most recently finished first)."""
        yield from sorted(
            (self.tasks[t] for t in self.live if t in self.tasks), key=lambda t: -t.seq
        )
        yield from (self.tasks[t] for t in reversed(self.finished) if t in self.tasks)
