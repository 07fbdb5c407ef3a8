"""One delegation's writes, each made to lose a race in turn, and an agent that finishes
before its acceptance is recorded.

A delegation writes the task twice (stored as offered, then as assigned; an agent's load is
derived from those records, never written). A rival replica may write either first, so the
write conflicts. Whichever write loses, the delegation must still end right: the task assigned
exactly once, announced once, and no agent left holding a task that is not its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fake_ports import HEARTBEAT_S, FakeOffers, World
from hivebus.domain.memory_state import MemoryState
from hivebus.domain.ports import Conflict, Later, OfferOutcome, OfferResult
from hivebus.domain.registry import AgentRecord
from hivebus.domain.tasks import TaskRecord
from hivebus_hookspecs.models import (
    CompleteRequest,
    DelegateRequest,
    Offer,
    TaskStatus,
    TaskView,
)


class ConflictAt(MemoryState):
    """Memory state that numbers the writes from ``arm()`` on; write number ``at`` loses to
    a rival replica that wrote the same record just before.

    The rival changes nothing that matters to an existing record (it only moves its revision
    on); a record that does not exist yet was created by the rival first as a queued task: the
    same task delegated to another replica at the same instant, which found no agent.
    """

    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at = at
        self.writes: list[str] | None = None  # None until armed

    def arm(self) -> None:
        self.writes = []

    def _loses(self, what: str) -> bool:
        if self.writes is None:
            return False
        self.writes.append(what)
        return len(self.writes) - 1 == self.at

    async def save_task(self, task: TaskRecord) -> int:
        if self._loses(f"task {task.task_id} {task.status.value}"):
            stored = await self.load_task(task.task_id)
            if stored is None:
                rival = task.evolve(status=TaskStatus.QUEUED, agent_id=None, offered_at=None)
            else:
                rival = stored.evolve()
            await super().save_task(rival)
            raise Conflict(task.task_id)
        return await super().save_task(task)

    async def save_agent(self, agent: AgentRecord) -> int:
        self._loses(f"agent {agent.agent_id}")  # counted: a delegation should write none
        return await super().save_agent(agent)


Scenario = Callable[[World], Awaitable[None]]


async def delegated_to_a_free_agent(world: World) -> None:
    await world.register("a", ["x"])
    await world.register("b", ["x"])
    world.beating |= {"a", "b"}
    world.state.arm()
    await world.delegate("t", ["x"])


async def fed_from_the_queue_when_a_slot_frees(world: World) -> None:
    await world.register("a", ["x"])
    world.beating.add("a")
    await world.delegate("u", ["x"])  # a is busy with u
    world.state.arm()
    assert await world.delegate("t", ["x"]) is TaskStatus.QUEUED
    await world.orch.complete(CompleteRequest(task_id="u", agent_id="a"))


SCENARIOS = [delegated_to_a_free_agent, fed_from_the_queue_when_a_slot_frees]


async def run(scenario: Scenario, at: int | None) -> World:
    world = World(state=ConflictAt(at))
    try:
        await scenario(world)
        await world.settle()
        for _ in range(2):  # what the first try left queued, the periodic pass hands out
            await world.tick_after(HEARTBEAT_S / 2)
    finally:
        await world.orch.stop()
    return world


def assert_ended_right(world: World) -> None:
    task = world.task("t")
    assert task.status is TaskStatus.ASSIGNED
    assigned = [e for e in world.events.named("task.assigned") if e["task_id"] == "t"]
    assert [e["agent_id"] for e in assigned] == [task.agent_id]  # exactly one assignment
    assert task.attempts == 1
    for agent in world.orch.registry:
        expected = {"t"} if agent.agent_id == task.agent_id else set()
        held = world.held(agent.agent_id)
        assert held == expected, f"{agent.agent_id} holds {set(held)}"
    if "u" in world.orch.cache.tasks:
        assert world.task("u").status is TaskStatus.COMPLETED
        assert len(world.events.named("task.completed")) == 1


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_a_conflict_at_any_write_of_a_delegation_still_ends_in_one_assignment(
    scenario: Scenario,
):
    clean = await run(scenario, at=None)
    assert_ended_right(clean)
    writes = clean.state.writes
    assert writes is not None
    assert writes[-2:] == ["task t offered", "task t assigned"]
    assert not [w for w in writes if w.startswith("agent ")]  # no agent record rewritten

    for at, write in enumerate(writes):
        world = await run(scenario, at)
        assert world.state.writes is not None
        assert world.state.writes[at] == write  # the same path up to the lost write
        try:
            assert_ended_right(world)
        except AssertionError as failure:
            raise AssertionError(f"after losing write {at} ({write}): {failure}") from None


class FinishingFirst(FakeOffers):
    """The agent accepts, runs and reports the task before its "yes" reaches the core."""

    world: World

    async def offer(self, agent_id: str, offer: Offer) -> OfferOutcome:
        self.offers.append((agent_id, offer))
        done = await self.world.orch.complete(
            CompleteRequest(task_id=offer.task_id, agent_id=agent_id, result="early")
        )
        assert done.status is TaskStatus.COMPLETED
        return OfferOutcome(OfferResult.ACCEPTED)


async def test_a_completion_overtaking_its_acceptance_is_recorded_once_in_order():
    offers = FinishingFirst()
    world = offers.world = World(offers=offers)
    try:
        await world.register("a", ["x"])
        reply_status = await world.delegate("t", ["x"])
        await world.settle()
    finally:
        await world.orch.stop()

    assert reply_status is TaskStatus.COMPLETED  # the delegation answers what it became
    task = world.task("t")
    assert (task.status, task.agent_id, task.result, task.attempts) == (
        TaskStatus.COMPLETED,
        "a",
        "early",
        1,
    )
    assert task.assigned_at is not None
    lifecycle = [n for n in world.events.names() if n.startswith("task.")]
    assert lifecycle == ["task.assigned", "task.completed"]  # the late "yes" adds nothing
    assert world.held("a") == frozenset()  # the slot is free again
    status = await world.orch.status()
    assert (status["tasks"]["completed_total"], status["tasks"]["active"]) == (1, 0)


class SeesViews:
    """A hook port whose plugins take every view they are given."""

    def __init__(self) -> None:
        self.views: list[Any] = []

    def wants(self, hook: str) -> bool:
        return True

    def notify(self, hook: str, **kwargs: Any) -> None:
        for value in kwargs.values():
            self.views.append(value.build() if isinstance(value, Later) else value)

    async def amend_task(self, task: Any) -> dict[str, Any]:
        self.views.append(task)
        return {}

    async def select_agent(self, task: Any, candidates: list[Any]) -> str | None:
        return None

    async def check_agent(self, agent: Any) -> None:
        return None


async def test_a_payload_and_a_result_reach_offers_and_views_as_they_came_never_walked():
    # Views and offers carry them as they are: checked when the request came in, never walked
    # or copied again however many hooks see the task (a large payload cost ~1 ms per view).
    plugins = SeesViews()
    world = World(hooks=plugins)
    await world.register("a", ["x"])
    payload = {"prompt": "x" * 1000, "context": [{"turn": i} for i in range(100)]}
    result = {"answer": ["y"] * 100}
    request = DelegateRequest(task_id="t", required_capabilities=["x"], payload=payload)
    await world.orch.delegate(request, "t")
    await world.orch.complete(CompleteRequest(task_id="t", agent_id="a", result=result))

    [(_, offer)] = world.offers.offers
    assert offer.payload is request.payload
    tasks = [view for view in plugins.views if isinstance(view, TaskView)]
    assert len(tasks) >= 3  # delegated, assigned, completed
    assert all(view.payload is request.payload for view in tasks)
    assert tasks[-1].result is not None
    assert tasks[-1].result == result
    assert TaskView.model_validate_json(tasks[-1].model_dump_json()).payload == payload
