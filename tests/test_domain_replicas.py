"""Two core replicas on one store, each deciding on a cache the other's writes have not
reached yet (the bucket's watch running late), provoked step by step.

Whatever a replica believes, the compare-and-set on the shared store decides: the replica
that is behind loses, re-reads and re-decides, so a task is assigned once, finished once,
and an agent's departure is announced and acted on once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_ports import HEARTBEAT_S, SharedStore, World
from hivebus import ErrorCode, HivebusError
from hivebus_hookspecs.models import AgentState, CompleteRequest, TaskStatus

OFFLINE_AFTER_S = HEARTBEAT_S * 3


class Replicas:
    def __init__(self) -> None:
        self.store = SharedStore()
        self.one = self._replica()
        self.two = self._replica()

    def _replica(self) -> World:
        state = self.store.replica()
        world = World(state=state)
        state.follow(world.orch.cache)
        return world

    def deliver(self) -> None:
        self.store.deliver()

    def events(self, name: str) -> list[dict[str, object]]:
        return self.one.events.named(name) + self.two.events.named(name)


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    pair = Replicas()
    yield pair
    await pair.one.orch.stop()
    await pair.two.orch.stop()


def assert_caches_agree(pair: Replicas, task_id: str) -> None:
    one, two = pair.one.task(task_id), pair.two.task(task_id)
    assert (one.revision, one.status, one.agent_id) == (two.revision, two.status, two.agent_id)


async def test_two_replicas_feeding_one_queued_task_assign_it_once(replicas: Replicas):
    one, two = replicas.one, replicas.two
    await one.delegate("t", ["x"])  # nobody yet: queued, and both replicas know it
    replicas.deliver()
    await one.register("a", ["x"])
    await two.register("b", ["x"])
    # Each replica offers t to the agent it just registered, before hearing of the other
    # (both spawned their offer; they run together on the loop).
    await one.settle()
    assert two.task("t").agent_id == "a"  # two lost the compare-and-set and re-read it
    replicas.deliver()

    assigned = replicas.events("task.assigned")
    assert [(e["task_id"], e["agent_id"]) for e in assigned] == [("t", "a")]
    assert [agent for agent, _, _ in one.offers.asked() + two.offers.asked()] == ["a"]
    assert_caches_agree(replicas, "t")
    for world in (one, two):
        assert world.held("a") == {"t"}
        assert world.held("b") == frozenset()  # the loser gave its slot back


async def test_a_cancel_on_a_replica_behind_loses_to_the_completion(replicas: Replicas):
    one, two = replicas.one, replicas.two
    await one.register("a", ["x"])
    await one.delegate("t", ["x"])
    replicas.deliver()
    assert two.task("t").status is TaskStatus.ASSIGNED

    await one.orch.complete(CompleteRequest(task_id="t", agent_id="a", result=1))
    with pytest.raises(HivebusError) as late:  # two still believes t is running
        await two.orch.cancel("t")

    assert late.value.code is ErrorCode.INVALID_STATE
    assert "already completed" in late.value.message
    assert two.task("t").status is TaskStatus.COMPLETED  # it re-read the record
    assert two.offers.withdrawn == []  # the agent is not told to stop a finished task
    assert replicas.events("task.cancelled") == []
    assert len(replicas.events("task.completed")) == 1
    replicas.deliver()
    assert_caches_agree(replicas, "t")
    assert two.held("a") == frozenset()


async def test_two_replicas_noticing_a_silent_agent_requeue_its_task_once(replicas: Replicas):
    one, two = replicas.one, replicas.two
    await one.register("a", ["x"])
    await one.register("b", ["x"], max_tasks=2)
    await one.delegate("t", ["x"])
    await one.delegate("busy", ["x"])  # keeps b's first slot, so t went to a
    replicas.deliver()
    assert two.task("t").agent_id == "a"
    for world in (one, two):
        world.beating.add("b")  # a falls silent; b goes on

    await one.tick_after(OFFLINE_AFTER_S + 0.1)  # one marks a offline and requeues t to b
    await two.tick_after(OFFLINE_AFTER_S + 0.1)  # two, not told yet, tries the same
    replicas.deliver()

    assert [e["agent_id"] for e in replicas.events("agent.offline")] == ["a"]
    requeued = replicas.events("task.requeued")
    assert [(e["task_id"], e["agent_id"]) for e in requeued] == [("t", "a")]
    assigned = [e["agent_id"] for e in replicas.events("task.assigned") if e["task_id"] == "t"]
    assert assigned == ["a", "b"]
    for world in (one, two):
        assert world.agent("a").state is AgentState.OFFLINE
        assert world.held("b") == {"t", "busy"}
        task = world.task("t")
        assert (task.status, task.agent_id, task.attempts) == (TaskStatus.ASSIGNED, "b", 2)


async def test_the_same_task_delegated_to_both_replicas_at_once_is_one_task(
    replicas: Replicas,
):
    one, two = replicas.one, replicas.two
    await one.register("a", ["x"])
    replicas.deliver()

    first = await one.delegate("t", ["x"])
    second = await two.delegate("t", ["x"])  # two has not heard of t, nor of a's slot

    assert first is second is TaskStatus.ASSIGNED  # the second answer repeats the first
    replicas.deliver()
    assert [agent for agent, _, _ in one.offers.asked() + two.offers.asked()] == ["a"]
    assert len(replicas.events("task.assigned")) == 1
    assert replicas.events("task.queued") == []
    assert_caches_agree(replicas, "t")
    for world in (one, two):
        assert world.held("a") == {"t"}
