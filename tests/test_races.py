"""Races between replicas, provoked deterministically: a state port that lets a "rival" write a
record just before this orchestrator's compare-and-set, which then conflicts. Whatever the rival
did, the loser re-reads and re-decides: it never acts twice, never announces twice, and never
loses the task.

Also here: a store failing over during the periodic pass, and plugins taking part (the hook
port's notifications, selection and amendments).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fake_ports import (
    HEARTBEAT_S,
    STALE_OFFER_S,
    NoPlugins,
    RivalState,
    World,
    agent_record,
    task_record,
    touched,
)
from hivebus.domain.memory_state import MemoryState
from hivebus.domain.registry import AgentRecord
from hivebus.domain.tasks import TaskRecord
from hivebus_hookspecs.models import (
    AgentState,
    AgentView,
    CompleteRequest,
    DeregisterRequest,
    TaskStatus,
    TaskView,
)


@pytest.fixture
async def rivals() -> Any:
    state = RivalState()
    world = World(state=state)
    yield world, state
    await world.orch.stop()


async def test_a_rival_marking_the_agent_offline_first_is_not_announced_twice(rivals):
    world, state = rivals
    await world.register("a", ["x"])
    state.rival_agent("a", lambda stored: stored.evolve(state=AgentState.OFFLINE))

    await world.tick_after(HEARTBEAT_S * 3 + 0.1)  # a is silent: this core marks it offline

    assert world.agent("a").state is AgentState.OFFLINE  # the rival's verdict, re-read
    assert world.events.named("agent.offline") == []  # the rival announces it, not us


async def test_a_rival_claiming_a_stale_offer_first_leaves_the_asking_to_it(rivals):
    world, state = rivals
    now = world.clock.now
    world.beating.add("a")
    await world.stored_by_a_crashed_core(
        agent_record("a", AgentState.ACTIVE, now),
        task_record("t", TaskStatus.OFFERED, "a", now, offered_at=now),
    )
    state.rival_task("t", lambda stored: stored.evolve(offered_at=stored.offered_at + 100))

    await world.tick_after(STALE_OFFER_S + 0.1)

    assert world.offers.asked() == []  # the rival asks; asking twice would be a second offer
    assert world.task("t").status is TaskStatus.OFFERED


async def test_a_rival_dispatching_a_queued_task_first_wins_it(rivals):
    world, state = rivals
    await world.delegate("t", ["x"])  # nobody yet: queued
    state.rival_task("t", lambda stored: stored.evolve(status=TaskStatus.OFFERED, agent_id="b"))

    await world.register("a", ["x"])  # this core would offer it to a
    await world.settle()

    assert world.offers.asked() == []
    assert world.held("a") == frozenset()  # the slot it reserved is given back
    assert world.task("t").agent_id == "b"


@pytest.mark.parametrize("step", ["register", "deregister", "cancel", "complete", "requeue"])
async def test_an_unrelated_rival_write_is_retried_and_the_transition_still_happens(
    rivals, step: str
):
    world, state = rivals
    if step == "register":
        await world.stored_by_a_crashed_core(agent_record("a", AgentState.OFFLINE, world.clock.now))
        state.rival_agent("a", touched)
        await world.register("a", ["x"])
        assert world.agent("a").state is AgentState.ACTIVE
        return
    await world.register("a", ["x"])
    await world.delegate("t", ["x"])
    if step == "deregister":
        state.rival_agent("a", touched)
        reply = await world.orch.deregister(DeregisterRequest(agent_id="a"))
        assert reply.requeued == ["t"]
        assert world.task("t").status is TaskStatus.QUEUED
    elif step == "cancel":
        state.rival_task("t", touched)
        assert (await world.orch.cancel("t")).status is TaskStatus.CANCELLED
        assert world.offers.withdrawn == [("a", "t")]
    elif step == "complete":
        state.rival_task("t", touched)
        done = await world.orch.complete(CompleteRequest(task_id="t", agent_id="a", result=1))
        assert (done.status, done.result) == (TaskStatus.COMPLETED, 1)
    else:
        state.rival_task("t", touched)
        await world.tick_after(HEARTBEAT_S * 3 + 0.1)  # a is silent
        assert world.task("t").status is TaskStatus.QUEUED
        assert [e["reason"] for e in world.events.named("task.requeued")] == [
            "agent a went offline"
        ]
    assert len(world.events.named("task.completed")) == (step == "complete")


async def test_a_store_failing_over_postpones_the_periodic_pass_without_stopping_it(rivals):
    world, state = rivals
    await world.register("a", ["x"])
    await world.delegate("t", ["x"], execution_timeout_s=5)
    state.unavailable = True

    await world.tick_after(HEARTBEAT_S * 3 + 0.1)  # every step fails, none raises

    assert world.agent("a").state is AgentState.ACTIVE
    assert world.task("t").status is TaskStatus.ASSIGNED
    state.unavailable = False
    await world.tick_after(0.1)  # back: the agent's silence and the timeout are both acted on
    assert world.agent("a").state is AgentState.OFFLINE
    assert world.task("t").status is TaskStatus.QUEUED


class Plugins(NoPlugins):
    """A hook port with plugins that want everything: it records what it was told."""

    def __init__(self, choose: str | None, amend: dict[str, Any]) -> None:
        self.choose = choose
        self.amend = amend
        self.notified: list[str] = []
        self.chose_among: list[list[str]] = []

    def wants(self, hook: str) -> bool:
        return True

    def notify(self, hook: str, **kwargs: Any) -> None:
        self.notified.append(hook)

    async def amend_task(self, task: TaskView) -> dict[str, Any]:
        return self.amend

    async def select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None:
        self.chose_among.append([c.agent_id for c in candidates])
        return self.choose


@pytest.mark.parametrize(("choose", "first"), [("b", "b"), ("stranger", "a"), (None, "a")])
async def test_a_plugin_picks_among_the_candidates_or_is_ignored(choose: str | None, first: str):
    plugins = Plugins(choose, {"payload": "amended", "required_capabilities": ["x", "y"]})
    world = World(hooks=plugins)
    try:
        await world.register("a", ["x", "y"])
        await world.register("b", ["x", "y"])
        await world.delegate("t", ["x"], payload="original")

        assert world.offers.asked()[0][0] == first
        assert plugins.chose_among == [["a", "b"]]
        task = world.task("t")
        assert (task.payload, task.required_list) == ("amended", ["x", "y"])
        await world.orch.deregister(DeregisterRequest(agent_id=first))
        await world.settle()
        for hook in ("hivebus_agent_registered", "hivebus_task_assigned", "hivebus_event"):
            assert hook in plugins.notified
        assert "hivebus_agent_removed" in plugins.notified
    finally:
        await world.orch.stop()


class SlowState(MemoryState):
    """Every write takes a turn of the event loop, as a network round trip does."""

    async def save_task(self, task: TaskRecord) -> int:
        await asyncio.sleep(0)
        return await super().save_task(task)

    async def save_agent(self, agent: AgentRecord) -> int:
        await asyncio.sleep(0)
        return await super().save_agent(agent)


async def test_duplicates_arriving_together_count_as_one_delegation():
    world = World(state=SlowState())
    try:
        await world.register("a", ["x"])
        statuses = await asyncio.gather(*(world.delegate("t", ["x"]) for _ in range(5)))
        assert set(statuses) == {TaskStatus.ASSIGNED}
        assert world.offers.asked() == [("a", "t", 1)]
        assert (await world.orch.status())["tasks"]["delegations_total"] == 1
    finally:
        await world.orch.stop()
