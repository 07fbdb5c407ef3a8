"""What the periodic pass repairs after a crash, driven step by step through fake ports.

The crash left behind (a stored offer whose sender died, a task held by an agent that left
before it was given back, a task queued while its placement died) is set up exactly, and each
repair is seen happening at the moment the rules say, not by chance.
"""

from __future__ import annotations

import pytest
from fake_ports import (
    HEARTBEAT_S,
    ORPHAN_GRACE_S,
    STALE_OFFER_S,
    World,
    agent_record,
    task_record,
    world,
)
from hivebus.domain.memory_state import MemoryState
from hivebus.domain.ports import OfferResult
from hivebus.errors import HivebusError
from hivebus_hookspecs.models import AgentState, ErrorCode, TaskStatus

__all__ = ["world"]  # the fixture


# --- an offer whose sender died --------------------------------------------------------------


async def test_a_stale_offer_is_offered_again_to_the_same_agent(world: World):
    now = world.clock.now
    world.beating.add("a")
    await world.stored_by_a_crashed_core(
        agent_record("a", AgentState.ACTIVE, now),
        task_record("t", TaskStatus.OFFERED, "a", now, offered_at=now),
    )

    await world.tick_after(STALE_OFFER_S - 0.1)  # somebody may still be waiting for the answer
    assert world.offers.asked() == []
    assert world.task("t").status is TaskStatus.OFFERED

    await world.tick_after(0.2)  # now nobody is: the same agent is asked again
    assert world.offers.asked() == [("a", "t", 1)]
    task = world.task("t")
    assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "a", 1)
    assert world.events.named("task.assigned") == [
        {"event": "task.assigned", "timestamp": world.clock.now, "agent_id": "a",
         "task_id": "t", "attempt": 1}
    ]  # fmt: skip
    assert world.held("a") == {"t"}


async def test_a_stale_offer_the_agent_refuses_goes_back_in_line(world: World):
    now = world.clock.now
    world.beating.add("a")
    await world.stored_by_a_crashed_core(
        agent_record("a", AgentState.ACTIVE, now),
        task_record("t", TaskStatus.OFFERED, "a", now, offered_at=now),
    )
    world.offers.answers["a"] = OfferResult.REFUSED

    await world.tick_after(STALE_OFFER_S + 0.1)

    assert world.offers.asked() == [("a", "t", 1)]
    task = world.task("t")
    assert (task.status, task.agent_id, task.offered_at) == (TaskStatus.QUEUED, None, None)
    assert world.held("a") == frozenset()
    assert world.events.named("task.assigned") == []


async def test_a_silent_agent_keeps_a_stale_offer_standing_for_the_next_round(world: World):
    now = world.clock.now
    world.beating.add("a")
    await world.stored_by_a_crashed_core(
        agent_record("a", AgentState.ACTIVE, now),
        task_record("t", TaskStatus.OFFERED, "a", now, offered_at=now),
    )
    world.offers.answers["a"] = OfferResult.TIMEOUT

    await world.tick_after(STALE_OFFER_S + 0.1)

    assert world.offers.asked() == [("a", "t", 1)]
    task = world.task("t")
    assert (task.status, task.agent_id) == (TaskStatus.OFFERED, "a")
    assert task.offered_at == world.clock.now  # claimed afresh: the next round is one window on
    assert world.held("a") == {"t"}


# --- a task whose agent left before it was given back ------------------------------------------


async def test_an_orphaned_task_is_requeued_after_a_grace_and_taken_by_a_live_agent(
    world: World,
):
    now = world.clock.now
    await world.stored_by_a_crashed_core(
        agent_record("gone", AgentState.OFFLINE, now),
        task_record("t", TaskStatus.ASSIGNED, "gone", now, attempts=1, assigned_at=now),
    )
    await world.register("alive", ["x"])
    world.beating.add("alive")

    await world.tick_after(0)  # first seen held by a departed agent
    await world.tick_after(ORPHAN_GRACE_S - 0.1)  # maybe another replica is a moment ahead
    assert world.task("t").status is TaskStatus.ASSIGNED
    assert world.events.named("task.requeued") == []

    await world.tick_after(0.2)
    [requeued] = world.events.named("task.requeued")
    assert (requeued["agent_id"], requeued["reason"], requeued["attempts"]) == (
        "gone",
        "agent gone is gone",
        1,
    )
    assert world.offers.asked() == [("alive", "t", 2)]
    task = world.task("t")
    assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "alive", 2)


async def test_a_crash_before_an_offer_was_stored_leaves_no_slot_taken(world: World):
    """An agent's load is the tasks stored as its own: a core that died while placing a task
    (nothing stored yet but the task, queued) took none of the agent's slots, so the first
    pass hands the task out; no grace period, no repair."""
    now = world.clock.now
    world.beating.add("a")
    await world.stored_by_a_crashed_core(
        agent_record("a", AgentState.ACTIVE, now),
        task_record("t", TaskStatus.QUEUED, None, now),
    )
    assert world.held("a") == frozenset()

    await world.tick_after(0)
    assert world.offers.asked() == [("a", "t", 1)]
    task = world.task("t")
    assert (task.status, task.agent_id) == (TaskStatus.ASSIGNED, "a")
    assert world.held("a") == {"t"}


async def test_a_seat_left_behind_by_a_crash_is_given_back_after_a_grace():
    """A core that died between taking an agent's seat and storing the registration leaves a
    seat nobody holds; the periodic pass gives it back, so max_agents is not eaten away."""
    w = World(state=MemoryState(max_seats=1), max_agents=1)
    try:
        assert await w.state.claim_seat("ghost")  # the crash: seat taken, no agent stored
        with pytest.raises(HivebusError) as refused:
            await w.register("real", ["x"])
        assert refused.value.code is ErrorCode.MAX_AGENTS_REACHED
        for _ in range(3):
            await w.tick_after(HEARTBEAT_S * 2)
        assert await w.state.seat_holders() == set()
        await w.register("real", ["x"])
        assert await w.state.seat_holders() == {"real"}
    finally:
        await w.orch.stop()
