"""The task lifecycle's rules where time decides, through fake ports and a hand-moved clock:
giving up after ``max_attempts``, the execution timeout (requeue or fail), what the events
carry and in which order, ``task_retention`` and the ``offer_candidates`` limit.
"""

from __future__ import annotations

import pytest
from fake_ports import HEARTBEAT_S, World, world
from hivebus import ErrorCode, HivebusError
from hivebus.domain.ports import OfferResult
from hivebus_hookspecs.models import CompleteRequest, TaskStatus

__all__ = ["world"]  # the fixture

OFFLINE_AFTER_S = HEARTBEAT_S * 3


async def test_a_task_is_given_up_after_max_attempts():
    w = World(max_attempts=2)
    try:
        await w.register("a", ["x"])
        await w.register("b", ["x"])
        w.beating |= {"a", "b"}
        assert await w.delegate("t", ["x"]) is TaskStatus.ASSIGNED
        assert w.task("t").agent_id == "a"

        w.beating.discard("a")  # a dies holding it: attempt 1 of 2 used, so it moves on
        await w.tick_after(OFFLINE_AFTER_S + 0.1)
        task = w.task("t")
        assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "b", 2)

        w.beating.discard("b")  # b dies too: no attempts left
        await w.tick_after(OFFLINE_AFTER_S + 0.1)
        task = w.task("t")
        assert (task.status, task.agent_id, task.success) == (TaskStatus.DEAD, None, False)
        assert task.error == "gave up after 2 attempts (agent b went offline)"
    finally:
        await w.orch.stop()

    assert w.offers.asked() == [("a", "t", 1), ("b", "t", 2)]
    lifecycle = [
        (e["event"], e["agent_id"], e.get("reason"), e.get("attempts"), e.get("error"))
        for e in (event.model_dump() for event in w.events.events)
        if e["event"] not in ("agent.registered", "task.assigned")
    ]
    assert lifecycle == [
        ("task.requeued", "a", "agent a went offline", 1, None),
        ("agent.offline", "a", None, None, None),  # after the requeue it caused
        ("task.dead", "b", None, 2, "gave up after 2 attempts (agent b went offline)"),
        ("agent.offline", "b", None, None, None),
    ]
    assert w.events.named("agent.offline")[0]["requeued"] == ["t"]
    status = await w.orch.status()
    assert (status["tasks"]["error_total"], status["tasks"]["completed_total"]) == (1, 0)


async def test_past_its_execution_timeout_a_task_is_requeued_by_default(world: World):
    await world.register("slow", ["x"])
    await world.register("spare", ["x"])
    world.beating |= {"slow", "spare"}
    await world.delegate("t", ["x"], execution_timeout_s=5)
    assert world.task("t").agent_id == "slow"

    await world.tick_after(4.9)
    assert world.task("t").agent_id == "slow"
    assert world.offers.withdrawn == []

    await world.tick_after(0.2)
    assert world.offers.withdrawn == [("slow", "t")]  # told to stop
    [requeued] = world.events.named("task.requeued")
    assert (requeued["agent_id"], requeued["reason"], requeued["attempts"]) == (
        "slow",
        "execution timeout of 5.0s",
        1,
    )
    task = world.task("t")
    assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "spare", 2)
    assert world.held("slow") == frozenset()


async def test_on_execution_timeout_fail_fails_the_task_and_withdraws_it():
    w = World(on_execution_timeout="fail")
    try:
        await w.register("slow", ["x"])
        await w.register("spare", ["x"])
        w.beating |= {"slow", "spare"}
        await w.delegate("t", ["x"], execution_timeout_s=5)

        await w.tick_after(5.5)

        task = w.task("t")
        assert (task.status, task.success) == (TaskStatus.FAILED, False)
        assert (task.agent_id, task.error) == ("slow", "execution timeout of 5.0s")
        assert w.offers.withdrawn == [("slow", "t")]
        assert w.held("slow") == frozenset()
        assert w.events.named("task.requeued") == []
        [failed] = w.events.named("task.failed")
        assert failed["agent_id"] == "slow"
        assert failed["error"] == "execution timeout of 5.0s"
        assert failed["duration_ms"] == pytest.approx(5500.0)
        assert w.offers.asked() == [("slow", "t", 1)]  # never offered to anyone else
        assert (await w.orch.status())["tasks"]["error_total"] == 1
    finally:
        await w.orch.stop()


async def test_a_completion_event_carries_the_time_from_assignment(world: World):
    await world.register("a", ["x"])
    await world.delegate("t", ["x"])
    world.clock.advance(2.5)

    await world.orch.complete(CompleteRequest(task_id="t", agent_id="a", result=1))

    [completed] = world.events.named("task.completed")
    assert completed["duration_ms"] == pytest.approx(2500.0)
    assert completed["agent_id"] == "a"


async def test_finished_tasks_beyond_task_retention_are_forgotten_oldest_first():
    w = World(task_retention=2)
    try:
        await w.register("a", ["x"])
        for task_id in ("first", "second", "third"):
            await w.delegate(task_id, ["x"])
            await w.orch.complete(CompleteRequest(task_id=task_id, agent_id="a"))
        await w.settle()

        with pytest.raises(HivebusError) as forgotten:
            w.orch.get_task("first")
        assert forgotten.value.code is ErrorCode.UNKNOWN_TASK
        assert await w.state.load_task("first") is None  # forgotten in the store too
        assert [t.task_id for t in w.orch.tasks()] == ["third", "second"]
        assert await w.state.load_task("second") is not None
    finally:
        await w.orch.stop()


async def test_a_delegation_asks_at_most_offer_candidates_agents():
    w = World(offer_candidates=2)
    try:
        for agent_id in ("a", "b", "c"):
            await w.register(agent_id, ["x"])
            w.offers.answers[agent_id] = OfferResult.REFUSED

        assert await w.delegate("t", ["x"]) is TaskStatus.QUEUED
        assert [agent for agent, _, _ in w.offers.asked()] == ["a", "b"]

        with pytest.raises(HivebusError) as refused:
            await w.delegate("u", ["x"], queue=False)
        assert refused.value.code is ErrorCode.NO_AGENT_AVAILABLE
        for_u = [agent for agent, task_id, _ in w.offers.asked() if task_id == "u"]
        assert len(for_u) == 2  # of the three capable agents, two were asked
        assert len(set(for_u)) == 2
    finally:
        await w.orch.stop()


async def test_a_task_given_up_is_dead_held_by_nobody_and_names_its_last_agent():
    w = World(max_attempts=1)
    try:
        await w.register("a", ["x"])
        await w.delegate("t", ["x"])
        await w.tick_after(OFFLINE_AFTER_S + 0.1)  # a never heartbeats
        task = w.task("t")
        assert (task.status, task.agent_id) == (TaskStatus.DEAD, None)
        assert w.events.named("task.failed") == []
        [dead] = w.events.named("task.dead")
        assert (dead["agent_id"], dead["attempts"]) == ("a", 1)
    finally:
        await w.orch.stop()
