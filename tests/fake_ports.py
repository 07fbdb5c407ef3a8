"""The domain's ports, faked in process, and an orchestrator on them with a hand-moved clock.

The orchestrator is built with in-process ports (offers, events, hooks, the memory state) and a
clock the test moves; nothing runs in the background unless a transition spawns it, and
``await world.tick_after(seconds)`` is the only way time passes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hivebus import HivebusConfig
from hivebus.domain import Orchestrator
from hivebus.domain.cache import StateCache
from hivebus.domain.memory_state import MemoryState
from hivebus.domain.ports import Conflict, OfferOutcome, OfferResult, StateUnavailable
from hivebus.domain.registry import AgentRecord
from hivebus.domain.tasks import TaskRecord
from hivebus_hookspecs.models import (
    AgentRole,
    AgentState,
    AgentView,
    DelegateRequest,
    Event,
    HealthStatus,
    HeartbeatRequest,
    Offer,
    RegisterRequest,
    TaskPriority,
    TaskStatus,
    TaskView,
)

HEARTBEAT_S = 1.0
OFFER_TIMEOUT_S = 1.0
STALE_OFFER_S = OFFER_TIMEOUT_S * 2 + HEARTBEAT_S
ORPHAN_GRACE_S = HEARTBEAT_S * 2


class Clock:
    """Both of the orchestrator's clocks, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeOffers:
    """The offer port: answers each offer with the agent's scripted outcome, at once."""

    def __init__(self) -> None:
        self.answers: dict[str, OfferResult] = {}
        self.offers: list[tuple[str, Offer]] = []
        self.withdrawn: list[tuple[str, str]] = []

    async def offer(self, agent_id: str, offer: Offer) -> OfferOutcome:
        self.offers.append((agent_id, offer))
        return OfferOutcome(self.answers.get(agent_id, OfferResult.ACCEPTED))

    async def withdraw(self, agent_id: str, task_id: str) -> None:
        self.withdrawn.append((agent_id, task_id))

    def asked(self) -> list[tuple[str, str, int]]:
        return [(agent_id, o.task_id, o.attempt) for agent_id, o in self.offers]


class FakeEvents:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e.model_dump() for e in self.events if e.event == name]

    def names(self) -> list[str]:
        return [str(e.event) for e in self.events]


class NoPlugins:
    """The hook port with no plugin installed."""

    async def check_agent(self, agent: AgentView) -> None:
        return None

    async def amend_task(self, task: TaskView) -> dict[str, Any]:
        return {}

    async def select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None:
        return None

    def notify(self, hook: str, **kwargs: Any) -> None:
        return None

    def wants(self, hook: str) -> bool:
        return False

    async def health(self) -> dict[str, HealthStatus]:
        return {}

    async def status_contributions(self, orchestrator: Any) -> dict[str, Any]:
        return {}


class World:
    """An orchestrator on fake ports, plus what it said and asked."""

    def __init__(
        self, state: Any = None, hooks: Any = None, offers: Any = None, **settings: Any
    ) -> None:
        self.clock = Clock()
        self.offers = offers if offers is not None else FakeOffers()
        self.events = FakeEvents()
        self.state = state if state is not None else MemoryState()
        self.beating: set[str] = set()
        config = HivebusConfig.load(
            heartbeat_interval_s=HEARTBEAT_S,
            offer_timeout_s=OFFER_TIMEOUT_S,
            state="memory",
            plugin_autoload=False,
            **settings,
        )
        self.orch = Orchestrator(
            config,
            self.offers,
            self.events,
            hooks or NoPlugins(),
            self.state,
            clock=self.clock,
            monotonic=self.clock,
        )

    async def settle(self) -> None:
        """Let the transitions a step spawned run to their end (fake ports never block)."""
        for _ in range(100):
            await asyncio.sleep(0)

    async def tick_after(self, seconds: float) -> None:
        """Let ``seconds`` pass (the agents in ``beating`` heartbeat meanwhile), then tick."""
        self.clock.advance(seconds)
        for agent_id in self.beating:
            self.orch.heartbeat(HeartbeatRequest(agent_id=agent_id))
        await self.orch.tick()
        await self.settle()

    async def stored_by_a_crashed_core(self, *records: AgentRecord | TaskRecord) -> None:
        """Records a core stored before it died, as a new core loads them at start-up."""
        for record in records:
            if isinstance(record, AgentRecord):
                await self.state.save_agent(record)
                self.orch.cache.apply_agent(record)
            else:
                await self.state.save_task(record)
                self.orch.cache.apply_task(record)

    def task(self, task_id: str) -> TaskRecord:
        return self.orch.cache.tasks[task_id]

    def agent(self, agent_id: str) -> AgentRecord:
        agent = self.orch.registry.get(agent_id)
        assert agent is not None
        return agent

    def held(self, agent_id: str) -> frozenset[str]:
        """The tasks whose records say the agent holds them: its load."""
        return self.orch.registry.tasks_of(agent_id)

    async def register(self, agent_id: str, caps: list[str], max_tasks: int = 1) -> None:
        await self.orch.register(
            RegisterRequest(agent_id=agent_id, capabilities=caps, max_tasks=max_tasks)
        )

    async def delegate(self, task_id: str, caps: list[str], **fields: Any) -> TaskStatus:
        req = DelegateRequest(task_id=task_id, required_capabilities=caps, **fields)
        return (await self.orch.delegate(req, task_id)).status


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = World()
    yield world
    await world.orch.stop()  # cancels whatever a transition left running


def agent_record(agent_id: str, state: AgentState, now: float) -> AgentRecord:
    return AgentRecord(
        agent_id=agent_id,
        role=AgentRole.WORKER,
        capabilities=("x",),
        max_tasks=1,
        metadata={},
        registered_at=now,
        state=state,
    )


def task_record(
    task_id: str, status: TaskStatus, agent_id: str | None, now: float, **extra: Any
) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        task_type="t",
        required_list=["x"],
        priority=TaskPriority.MEDIUM,
        payload={"n": 1},
        metadata={},
        created_at=now,
        seq=1,
        status=status,
        agent_id=agent_id,
        **extra,
    )


# --- state ports that race ------------------------------------------------------------------

Rival = Callable[[Any], Any]


def touched(record: Any) -> Any:
    """A rival's write that changes nothing that matters (a new revision only)."""
    return record.evolve()


class RivalState(MemoryState):
    """Memory state where a rival replica may write a record first: ``rival_task(id, change)``
    stores ``change(stored)`` just before this core's next save of that task, which conflicts.

    ``times``: how many of this core's saves in a row lose that way (the rival keeps winning);
    ``after``: how many saves of the record go through before the rival starts.
    ``attempts`` counts this core's saves (and deletes) per record id, lost ones included.
    """

    def __init__(self, max_seats: int | None = None) -> None:
        super().__init__(max_seats)
        self._task_rivals: dict[str, tuple[Rival, int, int]] = {}
        self._agent_rivals: dict[str, tuple[Rival, int, int]] = {}
        self.attempts: Counter[str] = Counter()
        self.unavailable = False

    def rival_task(self, task_id: str, change: Rival, times: int = 1, after: int = 0) -> None:
        self._task_rivals[task_id] = (change, times, after)

    def rival_agent(self, agent_id: str, change: Rival, times: int = 1, after: int = 0) -> None:
        self._agent_rivals[agent_id] = (change, times, after)

    def truce(self) -> None:
        """The rivals stop writing."""
        self._task_rivals.clear()
        self._agent_rivals.clear()

    @staticmethod
    def _rival(rivals: dict[str, tuple[Rival, int, int]], key: str) -> Rival | None:
        entry = rivals.get(key)
        if entry is None:
            return None
        change, times, after = entry
        if after:
            rivals[key] = (change, times, after - 1)
            return None
        if times <= 1:
            del rivals[key]
        else:
            rivals[key] = (change, times - 1, 0)
        return change

    async def save_task(self, task: TaskRecord) -> int:
        if self.unavailable:
            raise StateUnavailable("failing over")
        self.attempts[task.task_id] += 1
        change = self._rival(self._task_rivals, task.task_id)
        if change is not None:
            stored = await self.load_task(task.task_id)
            await super().save_task(change(stored))
            raise Conflict(task.task_id)
        return await super().save_task(task)

    async def save_agent(self, agent: AgentRecord) -> int:
        if self.unavailable:
            raise StateUnavailable("failing over")
        self.attempts[agent.agent_id] += 1
        change = self._rival(self._agent_rivals, agent.agent_id)
        if change is not None:
            stored = await self.load_agent(agent.agent_id)
            await super().save_agent(change(stored))
            raise Conflict(agent.agent_id)
        return await super().save_agent(agent)

    async def delete_agent(self, agent: AgentRecord) -> None:
        self.attempts[agent.agent_id] += 1
        change = self._rival(self._agent_rivals, agent.agent_id)
        if change is not None:
            stored = await self.load_agent(agent.agent_id)
            await super().save_agent(change(stored))
            raise Conflict(agent.agent_id)
        await super().delete_agent(agent)


class SharedStore:
    """One store shared by several core replicas, as a JetStream bucket is.

    Each replica gets its own state port (``replica()``); a write one replica makes reaches the
    other replicas' caches only when the test calls ``deliver()``: until then their caches are
    behind, as when the bucket's watch runs late. A replica's compare-and-set still goes to the
    one store, so a replica deciding on a stale cache loses and re-reads.
    """

    def __init__(self) -> None:
        self.memory = MemoryState()
        self.replicas: list[ReplicaState] = []

    def replica(self) -> ReplicaState:
        replica = ReplicaState(self)
        self.replicas.append(replica)
        return replica

    def deliver(self) -> None:
        """Every write made so far reaches every replica's cache."""
        for replica in self.replicas:
            replica.deliver()


class ReplicaState:
    """One replica's state port on a ``SharedStore`` (``follow(cache)`` once it is built)."""

    def __init__(self, store: SharedStore) -> None:
        self._store = store
        self._memory = store.memory
        self._cache: StateCache | None = None
        self._inbox: list[tuple[str, str, Any, int]] = []

    def follow(self, cache: StateCache) -> None:
        self._cache = cache

    def _tell_the_others(self, kind: str, key: str, record: Any, revision: int) -> None:
        for replica in self._store.replicas:
            if replica is not self:
                replica._inbox.append((kind, key, record, revision))

    def deliver(self) -> None:
        """The other replicas' writes reach this replica's cache, in the order they happened."""
        assert self._cache is not None
        inbox, self._inbox = self._inbox, []
        for kind, key, record, revision in inbox:
            if kind == "task":
                self._cache.on_stored_task(key, record, revision)
            else:
                self._cache.on_stored_agent(key, record, revision)

    async def save_agent(self, agent: AgentRecord) -> int:
        revision = await self._memory.save_agent(agent)
        self._tell_the_others("agent", agent.agent_id, agent, revision)
        return revision

    async def delete_agent(self, agent: AgentRecord) -> None:
        await self._memory.delete_agent(agent)
        self._tell_the_others("agent", agent.agent_id, None, agent.revision + 1)

    async def load_agent(self, agent_id: str) -> AgentRecord | None:
        return await self._memory.load_agent(agent_id)

    async def save_task(self, task: TaskRecord) -> int:
        revision = await self._memory.save_task(task)
        self._tell_the_others("task", task.task_id, task, revision)
        return revision

    async def load_task(self, task_id: str) -> TaskRecord | None:
        return await self._memory.load_task(task_id)

    async def forget_task(self, task_id: str) -> None:
        await self._memory.forget_task(task_id)

    async def claim_seat(self, agent_id: str) -> bool:
        return await self._memory.claim_seat(agent_id)

    async def release_seat(self, agent_id: str) -> None:
        await self._memory.release_seat(agent_id)

    async def seat_holders(self) -> set[str]:
        return await self._memory.seat_holders()
