"""The domain's ports, faked in process, and an orchestrator on them with a hand-moved clock.

The orchestrator is built with in-process ports (offers, events, hooks, the memory state) and a
clock the test moves; nothing runs in the background unless a transition spawns it, and
``await world.tick_after(seconds)`` is the only way time passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hivebus import HivebusConfig
from hivebus.domain import Orchestrator
from hivebus.domain.memory_state import MemoryState
from hivebus.domain.ports import OfferOutcome, OfferResult
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
        self, state: MemoryState | None = None, hooks: Any = None, **settings: Any
    ) -> None:
        self.clock = Clock()
        self.offers = FakeOffers()
        self.events = FakeEvents()
        self.state = state or MemoryState()
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


def agent_record(agent_id: str, tasks: set[str], state: AgentState, now: float) -> AgentRecord:
    return AgentRecord(
        agent_id=agent_id,
        role=AgentRole.WORKER,
        capabilities=("x",),
        max_tasks=1,
        metadata={},
        registered_at=now,
        state=state,
        tasks=frozenset(tasks),
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
