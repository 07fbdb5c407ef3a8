"""Selection, offers, the queue and the task lifecycle, through the real core over NATS."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import ErrorCode, HiveClient, Offer, RemoteError, TaskStatus


@pytest.fixture(params=["memory", "jetstream"])
def hivebus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every scheduling rule holds the same with state in memory and in JetStream.

    The offer timeout stays at the test default (1 s): a live agent on a loaded machine answers
    well within it, so only the silent agent below ever times out.
    """
    return {"state": request.param}


class Gate:
    """A task handler that holds every task until released, to observe busy agents."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def __call__(self, task: Offer) -> Any:
        self.seen.append(task.task_id)
        await self.release.wait()
        return task.payload


async def test_only_agents_with_every_required_capability_are_chosen(hive, make_agent):
    await make_agent("py-only", ["python"])
    await make_agent("py-and-test", ["python", "testing"])
    reply = await hive.delegate("t", ["python", "testing"])
    assert reply.agent_id == "py-and-test"


async def test_an_idle_agent_is_preferred_to_a_busy_one(hive, make_agent):
    gate = Gate()
    await make_agent("busy", ["x"], gate, max_tasks=2)
    first = await hive.delegate("t", ["x"])
    assert first.agent_id == "busy"
    await make_agent("idle", ["x"], gate, max_tasks=2)
    second = await hive.delegate("t", ["x"])
    assert second.agent_id == "idle"
    gate.release.set()


async def test_the_agent_idle_longest_is_chosen_first(hive, make_agent):
    await make_agent("a", ["x"])
    await make_agent("b", ["x"])
    # a takes a task and finishes it: now b has been idle longer than a.
    done = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)
    assert done.agent_id == "a"
    nxt = await hive.delegate("t", ["x"])
    assert nxt.agent_id == "b"


async def test_a_task_waits_when_every_capable_agent_is_full(hive, make_agent):
    gate = Gate()
    await make_agent("solo", ["x"], gate)
    assert (await hive.delegate("t", ["x"], task_id="one")).status is TaskStatus.ASSIGNED
    queued = await hive.delegate("t", ["x"], task_id="two")
    assert queued.status is TaskStatus.QUEUED
    assert queued.agent_id is None
    gate.release.set()
    await eventually(lambda: _status_is(hive, "two", TaskStatus.COMPLETED))


async def _status_is(hive: HiveClient, task_id: str, status: TaskStatus) -> bool:
    return (await hive.get(task_id)).status is status


async def test_queued_tasks_are_served_by_priority_then_age(hive, make_agent):
    order: list[str] = []

    async def record(task: Offer) -> Any:
        order.append(task.task_id)

    ids = [("low-1", "low"), ("high-1", "high"), ("med-1", "medium"), ("high-2", 8)]
    ids += [("crit-1", "critical"), ("low-2", 1)]
    for task_id, priority in ids:
        reply = await hive.delegate("t", ["late"], task_id=task_id, priority=priority)
        assert reply.status is TaskStatus.QUEUED
    await make_agent("late-comer", ["late"], record)
    await eventually(lambda: len(order) == len(ids))
    assert order == ["crit-1", "high-1", "high-2", "med-1", "low-1", "low-2"]


async def test_a_new_agent_takes_queued_work_the_moment_it_registers(hive, make_agent):
    reply = await hive.delegate("t", ["gpu"], payload=42)
    assert reply.status is TaskStatus.QUEUED
    await make_agent("gpu-1", ["gpu"])
    await eventually(lambda: _status_is(hive, reply.task_id, TaskStatus.COMPLETED))
    assert (await hive.get(reply.task_id)).result == 42


async def test_queue_false_answers_no_agent_available_and_keeps_nothing(hive):
    with pytest.raises(RemoteError) as raised:
        await hive.delegate("t", ["nobody-has-this"], task_id="lonely", queue=False)
    assert raised.value.code is ErrorCode.NO_AGENT_AVAILABLE
    with pytest.raises(RemoteError) as missing:
        await hive.get("lonely")
    assert missing.value.code is ErrorCode.UNKNOWN_TASK


async def test_a_refusing_agent_is_skipped_for_the_next_candidate(hive, make_agent, nats_client):
    offers: list[tuple[str, str]] = []

    async def refuse(msg):
        offers.append(("grumpy", orjson.loads(msg.data)["task_id"]))
        await msg.respond(orjson.dumps({"accept": False, "reason": "not today"}))

    async def take(task: Offer) -> Any:
        offers.append(("willing", task.task_id))

    # "grumpy" registers first, so it is idle longest and offered first.
    await nats_client.subscribe("agent.grumpy.assign", cb=refuse)
    await nats_client.request(
        "agent.register", orjson.dumps({"agent_id": "grumpy", "capabilities": ["x"]}), timeout=5
    )
    await make_agent("willing", ["x"], take)
    reply = await hive.delegate("t", ["x"], task_id="picky")
    assert reply.agent_id == "willing"
    await eventually(lambda: ("willing", "picky") in offers)
    assert offers == [("grumpy", "picky"), ("willing", "picky")]  # refused first, then taken
    agents = {a.agent_id: a for a in await hive.agents()}
    assert agents["grumpy"].active_tasks == 0  # the refusal gave its slot back


async def test_a_silent_agent_times_out_and_the_next_one_gets_the_task(
    hive, make_agent, nats_client
):
    offers: list[tuple[str, str]] = []

    async def never_answer(msg):
        offers.append(("mute", orjson.loads(msg.data)["task_id"]))

    async def take(task: Offer) -> Any:
        offers.append(("talkative", task.task_id))

    await nats_client.subscribe("agent.mute.assign", cb=never_answer)
    await nats_client.request(
        "agent.register", orjson.dumps({"agent_id": "mute", "capabilities": ["x"]}), timeout=5
    )
    await make_agent("talkative", ["x"], take)
    reply = await hive.delegate("t", ["x"], task_id="hushed")
    assert reply.agent_id == "talkative"
    await eventually(lambda: ("talkative", "hushed") in offers)
    assert offers == [("mute", "hushed"), ("talkative", "hushed")]  # asked, silent, moved on
    agents = {a.agent_id: a for a in await hive.agents()}
    assert agents["mute"].active_tasks == 0  # its reserved slot was given back


async def test_no_responders_counts_as_a_refusal_and_the_task_queues(hive, nats_client):
    # Registered but never subscribed to its assign subject.
    await nats_client.request(
        "agent.register", orjson.dumps({"agent_id": "ghost", "capabilities": ["x"]}), timeout=5
    )
    reply = await hive.delegate("t", ["x"])
    assert reply.status is TaskStatus.QUEUED


async def test_concurrent_delegations_never_overfill_an_agent(hive, make_agent):
    gate = Gate()
    await make_agent("pair", ["x"], gate, max_tasks=2)
    replies = await asyncio.gather(*(hive.delegate("t", ["x"]) for _ in range(10)))
    assigned = [r for r in replies if r.status is TaskStatus.ASSIGNED]
    assert len(assigned) == 2
    assert {r.agent_id for r in assigned} == {"pair"}
    assert sum(r.status is TaskStatus.QUEUED for r in replies) == 8
    gate.release.set()
    await eventually(lambda: _all_done(hive, [r.task_id for r in replies]), timeout=10)


async def _all_done(hive: HiveClient, task_ids: list[str]) -> bool:
    for task_id in task_ids:
        if (await hive.get(task_id)).status is not TaskStatus.COMPLETED:
            return False
    return True


async def test_a_handler_exception_fails_the_task_with_its_message(hive, make_agent):
    async def broken(task: Offer) -> Any:
        raise ValueError("disk on fire")

    await make_agent("fragile", ["x"], broken)
    task = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)
    assert task.status is TaskStatus.FAILED
    assert task.success is False
    assert task.error is not None
    assert "disk on fire" in task.error
    status = await hive.status()
    assert status["tasks"]["error_total"] == 1


async def test_cancelling_an_assigned_task_frees_the_agent_for_queued_work(
    hive, make_agent, nats_client
):
    finished: list[tuple[str, str]] = []

    async def record(msg: Any) -> None:
        finished.append((msg.subject, orjson.loads(msg.data)["task_id"]))

    await nats_client.subscribe("events.task.completed", cb=record)
    await nats_client.subscribe("events.task.failed", cb=record)
    await nats_client.flush()
    gate = Gate()
    await make_agent("worker", ["x"], gate)
    await hive.delegate("t", ["x"], task_id="long")
    await hive.delegate("t", ["x"], task_id="next")
    cancelled = await hive.cancel("long")
    assert cancelled.status is TaskStatus.CANCELLED
    await eventually(lambda: "next" in gate.seen)
    gate.release.set()
    await eventually(lambda: _status_is(hive, "next", TaskStatus.COMPLETED))
    # The agent's own late completion of the cancelled task is refused, never counted.
    late = {"task_id": "long", "agent_id": "worker", "result": "too late"}
    answer = await nats_client.request("task.complete", orjson.dumps(late), timeout=5)
    assert orjson.loads(answer.data)["error"]["code"] == ErrorCode.INVALID_STATE
    task = await hive.get("long")
    assert (task.status, task.result) == (TaskStatus.CANCELLED, None)
    status = await hive.status()
    assert (status["tasks"]["completed_total"], status["tasks"]["error_total"]) == (1, 0)
    # One more task through: events come in order, so by its completion any event about the
    # late report has arrived too.
    await hive.delegate("t", ["x"], task_id="last")
    await eventually(lambda: ("events.task.completed", "last") in finished)
    assert finished == [("events.task.completed", "next"), ("events.task.completed", "last")]


async def test_cancelling_a_queued_task_removes_it_from_the_queue(hive, make_agent):
    await hive.delegate("t", ["later"], task_id="drop-me")
    await hive.cancel("drop-me")
    status = await hive.status()
    assert status["tasks"]["queued"] == 0
    seen: list[str] = []

    async def record(task: Offer) -> Any:
        seen.append(task.task_id)

    await make_agent("later-agent", ["later"], record)
    await hive.delegate("t", ["later"], task_id="fresh", wait=True, wait_timeout=5)
    assert seen == ["fresh"]


async def test_deregistering_gives_tasks_back_with_the_attempt_raised(hive, make_agent):
    gate = Gate()
    first = await make_agent("leaver", ["x"], gate)
    await hive.delegate("t", ["x"], task_id="handed-back")
    attempts: list[int] = []

    async def record(task: Offer) -> Any:
        attempts.append(task.attempt)

    await make_agent("stayer", ["x"], record)
    first.handler = gate  # still holding the task
    await first.stop(grace_s=0)
    await eventually(lambda: _status_is(hive, "handed-back", TaskStatus.COMPLETED))
    task = await hive.get("handed-back")
    assert task.agent_id == "stayer"
    assert task.attempts == 2
    assert attempts == [2]


async def test_concurrent_delegations_spread_over_idle_agents(hive, make_agent):
    """Simultaneous delegations do not all race for the same idle agent and end up queued."""
    for i in range(12):
        await make_agent(f"idle-{i}", ["x"], Gate())
    replies = await asyncio.gather(*(hive.delegate("t", ["x"]) for _ in range(12)))
    assert [r.status for r in replies] == [TaskStatus.ASSIGNED] * 12
    assert len({r.agent_id for r in replies}) == 12
