"""When compare-and-set keeps losing: a rival replica writes the record before every one of
this core's attempts, ``CAS_RETRIES`` times in a row, so the retries run out.

Each kind of caller ends in its own deliberate way (see ``hivebus.domain.cas``): a request
gets an error reply saying so, the periodic pass postpones the step to its next round, and a
step inside a larger transition leaves the record for the rule that repairs it later. No
caller retries forever, and none acts as if it had won.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_ports import (
    HEARTBEAT_S,
    ORPHAN_GRACE_S,
    STALE_OFFER_S,
    RivalState,
    World,
    agent_record,
    touched,
)
from hivebus import ErrorCode, HivebusError
from hivebus.domain.cas import CAS_RETRIES
from hivebus.domain.ports import OfferResult
from hivebus_hookspecs.models import (
    AgentState,
    CompleteRequest,
    DeregisterRequest,
    TaskStatus,
)

FOREVER = 1_000
OFFLINE_AFTER_S = HEARTBEAT_S * 3


@pytest.fixture
async def contended() -> AsyncIterator[tuple[World, RivalState]]:
    state = RivalState()
    world = World(state=state)
    yield world, state
    await world.orch.stop()


# --- requests: an error reply that says so ----------------------------------------------------


async def test_a_registration_contended_is_refused_and_gives_its_seat_back():
    state = RivalState(max_seats=5)
    world = World(state=state)
    try:
        await world.stored_by_a_crashed_core(agent_record("a", AgentState.OFFLINE, world.clock.now))
        state.rival_agent("a", touched, FOREVER)
        with pytest.raises(HivebusError) as refused:
            await world.register("a", ["x"])
        assert refused.value.code is ErrorCode.AGENT_EXISTS
        assert refused.value.message == "agent 'a' is contended"
        assert state.attempts["a"] == 1 + CAS_RETRIES  # stored by the crashed core, then ours
        assert await state.seat_holders() == set()
        assert world.events.named("agent.registered") == []
    finally:
        await world.orch.stop()


async def test_a_deregistration_contended_asks_to_try_again(contended):
    world, state = contended
    await world.register("a", ["x"])
    state.rival_agent("a", touched, FOREVER)

    with pytest.raises(HivebusError) as busy:
        await world.orch.deregister(DeregisterRequest(agent_id="a"))

    assert busy.value.code is ErrorCode.UNAVAILABLE
    assert busy.value.message == "agent 'a' is busy changing; try again"
    assert state.attempts["a"] == 1 + CAS_RETRIES  # its registration, then the deletes
    assert world.agent("a").state is AgentState.ACTIVE
    assert world.events.named("agent.deregistered") == []
    state.truce()
    await world.orch.deregister(DeregisterRequest(agent_id="a"))  # the retry succeeds
    assert world.orch.registry.get("a") is None


@pytest.mark.parametrize("request_name", ["complete", "cancel"])
async def test_a_task_request_contended_is_an_internal_error_and_changes_nothing(
    contended, request_name: str
):
    world, state = contended
    await world.register("a", ["x"])
    await world.delegate("t", ["x"])
    before = state.attempts["t"]
    state.rival_task("t", touched, FOREVER)

    if request_name == "complete":
        attempt = world.orch.complete(CompleteRequest(task_id="t", agent_id="a"))
    else:
        attempt = world.orch.cancel("t")
    with pytest.raises(HivebusError) as failed:
        await attempt

    assert failed.value.code is ErrorCode.INTERNAL_ERROR
    assert failed.value.message == "task 't' is contended"
    assert state.attempts["t"] - before == CAS_RETRIES
    assert world.task("t").status is TaskStatus.ASSIGNED
    assert world.held("a") == {"t"}
    assert world.offers.withdrawn == []
    assert [n for n in world.events.names() if n.startswith("task.")] == ["task.assigned"]


# --- the periodic pass: postponed to its next round ---------------------------------------------


async def test_a_queue_deadline_contended_is_applied_at_the_next_pass(contended):
    world, state = contended
    await world.delegate("t", ["x"], queue_timeout_s=1)  # nobody to take it: queued
    state.rival_task("t", touched, FOREVER)

    await world.tick_after(1.5)  # past the deadline, but every attempt loses

    assert world.task("t").status is TaskStatus.QUEUED
    assert world.events.named("task.expired") == []
    state.truce()
    await world.tick_after(0.1)
    assert world.task("t").status is TaskStatus.EXPIRED
    assert len(world.events.named("task.expired")) == 1


async def test_an_execution_timeout_contended_fails_the_task_at_the_next_pass():
    state = RivalState()
    world = World(state=state, on_execution_timeout="fail")
    try:
        await world.register("a", ["x"])
        world.beating.add("a")
        await world.delegate("t", ["x"], execution_timeout_s=5)
        before = state.attempts["t"]
        state.rival_task("t", touched, FOREVER)

        await world.tick_after(5.5)

        assert state.attempts["t"] - before == CAS_RETRIES
        assert world.task("t").status is TaskStatus.ASSIGNED
        assert world.offers.withdrawn == []
        state.truce()
        await world.tick_after(0.1)
        assert world.task("t").status is TaskStatus.FAILED
        assert world.offers.withdrawn == [("a", "t")]
        assert len(world.events.named("task.failed")) == 1
    finally:
        await world.orch.stop()


# --- a step inside a larger transition: left for the rule that repairs it ------------------------


async def test_a_requeue_contended_leaves_the_task_to_the_orphan_rule(contended):
    world, state = contended
    await world.register("a", ["x"])
    await world.register("b", ["x"])
    world.beating.add("b")
    await world.delegate("t", ["x"])
    assert world.task("t").agent_id == "a"
    state.rival_task("t", touched, FOREVER)

    await world.tick_after(OFFLINE_AFTER_S + 0.1)  # a is silent: offline, t not requeued

    [offline] = world.events.named("agent.offline")
    assert offline["requeued"] == []
    assert world.task("t").agent_id == "a"
    state.truce()
    await world.tick_after(ORPHAN_GRACE_S + 0.1)  # held by a departed agent: requeued now
    task = world.task("t")
    assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "b", 2)
    assert [e["reason"] for e in world.events.named("task.requeued")] == ["agent a is gone"]


async def test_an_acceptance_contended_is_recorded_by_the_stale_offer_rule(contended):
    world, state = contended
    await world.register("a", ["x"])
    world.beating.add("a")
    state.rival_task("t", touched, FOREVER, after=1)  # t is stored offered; then every write loses

    assert await world.delegate("t", ["x"]) is TaskStatus.OFFERED  # the yes is not recorded

    assert state.attempts["t"] == 1 + CAS_RETRIES
    assert world.events.named("task.assigned") == []
    assert world.held("a") == {"t"}  # still reserved: the offer stands
    state.truce()
    await world.tick_after(STALE_OFFER_S + 0.1)  # nobody waits for that offer: asked again
    task = world.task("t")
    assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "a", 1)
    assert len(world.events.named("task.assigned")) == 1


async def test_a_refused_task_that_cannot_go_back_in_line_waits_for_the_stale_offer_rule(
    contended,
):
    world, state = contended
    await world.delegate("t", ["x"])  # nobody yet: queued
    world.offers.answers["a"] = OfferResult.REFUSED
    state.rival_task("t", touched, FOREVER, after=1)  # stored offered to a; then every write loses

    await world.register("a", ["x"])  # fed t, refuses it; t cannot be stored queued again
    await world.settle()

    task = world.task("t")
    assert (task.status, task.agent_id) == (TaskStatus.OFFERED, "a")
    assert world.held("a") == {"t"}  # as its record says, until it is stored otherwise
    state.truce()
    world.beating.add("a")
    await world.tick_after(STALE_OFFER_S + 0.1)  # asked again, refuses again: back in line
    task = world.task("t")
    assert (task.status, task.agent_id) == (TaskStatus.QUEUED, None)
