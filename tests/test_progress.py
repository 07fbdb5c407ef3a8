"""Progress, and following one task: ``task.progress`` and ``task.<task_id>.updates``.

The agent holding a task reports how far it got; the report is stored on the task (so
``task.get`` shows it and it keeps the task alive against its execution timeout) and published
as ``events.task.progress``. Every event of a task is also published on its own updates
subject, which is what the client follows instead of the whole bus.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from conftest import eventually
from contract_wire import WAIT_S, EventLog, RawAgent, Wire
from fake_ports import World
from hivebus import (
    HivebusError,
    HiveClient,
    Offer,
    RemoteError,
    TaskStatus,
    TaskUpdate,
    current_task,
    report_progress,
)
from hivebus.domain.kernel import OUTCOME_ROOM
from hivebus_hookspecs.models import ErrorCode, ProgressRequest
from nats.aio.client import Client


@pytest.fixture(params=["memory", "jetstream"])
def hivebus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"state": request.param}


class Updates:
    """Everything published on one task's updates subject, in arrival order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    @classmethod
    async def of(cls, nc: Client, task_id: str) -> Updates:
        updates = cls()

        async def on_msg(msg: Any) -> None:
            updates.bodies.append(json.loads(msg.data))

        await nc.subscribe(f"task.{task_id}.updates", cb=on_msg)
        await nc.flush()
        return updates

    def names(self) -> list[str]:
        return [body["event"] for body in self.bodies]


async def _assigned(wire: Wire, task_id: str, agent: RawAgent) -> None:
    reply = await wire.ok("task.delegate", {"task_id": task_id, "required_capabilities": ["x"]})
    assert reply["agent_id"] == agent.agent_id
    await agent.next_offer()


# --- the request, over the wire -----------------------------------------------------------


async def test_progress_is_stored_on_the_task_and_published_twice(wire: Wire, nats_client):
    agent = RawAgent(wire, "worker", ["x"])
    await agent.start()
    updates = await Updates.of(nats_client, "build-1")
    events = await EventLog.follow(nats_client)
    await _assigned(wire, "build-1", agent)
    report = {
        "task_id": "build-1",
        "agent_id": "worker",
        "progress": 0.25,
        "message": "compiling",
        "data": {"step": 3, "of": 12},
    }
    assert await wire.ok("task.progress", report) == {"ok": True}

    task = (await wire.ok("task.get", {"task_id": "build-1"}))["task"]
    assert (task["progress"], task["progress_message"]) == (0.25, "compiling")
    assert task["progress_at"] >= task["assigned_at"]
    assert "data" not in task  # data travels in the event only: records stay small
    event = await events.wait_for("task.progress", task_id="build-1")
    assert event["agent_id"] == "worker"
    assert (event["progress"], event["message"], event["data"]) == (
        0.25,
        "compiling",
        report["data"],
    )

    await agent.complete("build-1", result="ok")
    await eventually(lambda: "task.completed" in updates.names())
    # The same bodies as on events.>, in the same order, for this one task only.
    assert updates.names() == ["task.assigned", "task.progress", "task.completed"]
    assert updates.bodies == [e for e in events.events if e.get("task_id") == "build-1"]


async def test_a_report_without_a_fraction_still_keeps_the_message(wire: Wire):
    agent = RawAgent(wire, "worker", ["x"])
    await agent.start()
    await _assigned(wire, "t", agent)
    await wire.ok("task.progress", {"task_id": "t", "agent_id": "worker", "progress": 0.5})
    await wire.ok("task.progress", {"task_id": "t", "agent_id": "worker", "message": "waiting"})
    task = (await wire.ok("task.get", {"task_id": "t"}))["task"]
    assert (task["progress"], task["progress_message"]) == (None, "waiting")  # the latest report


async def test_only_the_holder_may_report_and_a_refusal_changes_nothing(wire: Wire, nats_client):
    holder = RawAgent(wire, "holder", ["x"])
    other = RawAgent(wire, "other", ["y"])
    await holder.start()
    await other.start()
    events = await EventLog.follow(nats_client)
    await _assigned(wire, "mine", holder)
    before = (await wire.ok("task.get", {"task_id": "mine"}))["task"]

    message = await wire.fail(
        "task.progress",
        {"task_id": "mine", "agent_id": "other", "progress": 0.9},
        code="not_task_owner",
    )
    assert "other" in message
    await wire.fail("task.progress", {"task_id": "nope", "agent_id": "holder"}, code="unknown_task")
    queued = {"task_id": "waiting", "required_capabilities": ["nobody"]}
    await wire.ok("task.delegate", queued)
    await wire.fail(
        "task.progress", {"task_id": "waiting", "agent_id": "holder"}, code="not_task_owner"
    )
    assert (await wire.ok("task.get", {"task_id": "mine"}))["task"] == before

    await holder.complete("mine", result=1)
    await wire.fail(
        "task.progress", {"task_id": "mine", "agent_id": "holder"}, code="invalid_state"
    )
    await events.wait_for("task.completed", task_id="mine")
    assert "task.progress" not in events.names()


async def test_reports_are_bounded(wire: Wire):
    agent = RawAgent(wire, "worker", ["x"])
    await agent.start()
    await _assigned(wire, "t", agent)
    base = {"task_id": "t", "agent_id": "worker"}
    await wire.fail("task.progress", {**base, "progress": 1.5}, code="invalid_request")
    await wire.fail("task.progress", {**base, "progress": -0.1}, code="invalid_request")
    await wire.fail("task.progress", {**base, "message": "m" * 1025}, code="invalid_request")
    message = await wire.fail(
        "task.progress", {**base, "data": {"blob": "b" * 17_000}}, code="payload_too_large"
    )
    assert "16384" in message
    await wire.ok("task.progress", {**base, "message": "m" * 1024, "data": {"b": "b" * 16_000}})


async def test_a_report_overtaking_the_acceptance_records_the_assignment(wire: Wire, nats_client):
    agent = RawAgent(wire, "eager", ["x"])
    agent.gate = asyncio.Event()  # the acceptance is held back
    await agent.start()
    updates = await Updates.of(nats_client, "t")
    delegation = asyncio.create_task(
        wire.ok("task.delegate", {"task_id": "t", "required_capabilities": ["x"]})
    )
    async with asyncio.timeout(WAIT_S):
        await agent.offered.wait()
    await wire.ok("task.progress", {"task_id": "t", "agent_id": "eager", "progress": 0.1})
    task = (await wire.ok("task.get", {"task_id": "t"}))["task"]
    assert (task["status"], task["attempts"], task["progress"]) == ("assigned", 1, 0.1)
    agent.gate.set()
    assert (await delegation)["status"] == "assigned"
    await eventually(lambda: len(updates.bodies) >= 2)
    assert updates.names() == ["task.assigned", "task.progress"]
    assert (await wire.ok("task.get", {"task_id": "t"}))["task"]["attempts"] == 1


async def test_dotted_task_ids_follow_under_a_longer_subject(wire: Wire, nats_client):
    agent = RawAgent(wire, "worker", ["x"])
    await agent.start()
    updates = await Updates.of(nats_client, "release.v2.build")
    await _assigned(wire, "release.v2.build", agent)
    await agent.complete("release.v2.build", result=None)
    await eventually(lambda: updates.names() == ["task.assigned", "task.completed"])


# --- the execution timeout counts from the latest report ---------------------------------

TIMEOUT_S = 1.0
"""A task's execution timeout here; the agent works three times as long."""


async def _work_for(seconds: float, report: bool) -> Any:
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        await asyncio.sleep(0.1)
        if report:
            await report_progress(message="still going")
    return "done"


async def test_progress_keeps_a_task_alive_past_its_execution_timeout(hive, make_agent):
    async def steady(task: Offer) -> Any:
        return await _work_for(TIMEOUT_S * 3, report=True)

    # Reports go out at least every 0.2 s, well inside the 1 s timeout (the default
    # throttle, 1 s, is for real timeouts of minutes).
    await make_agent("steady", ["x"], steady, progress_interval_s=0.2)
    done = await hive.delegate(
        "t", ["x"], task_id="long", execution_timeout_s=TIMEOUT_S, wait=True, wait_timeout=30
    )
    assert (done.status, done.attempts, done.result) == (TaskStatus.COMPLETED, 1, "done")
    assert done.progress_message == "still going"


async def test_without_progress_the_same_task_times_out(hive, make_agent):
    started = asyncio.Event()

    async def silent(task: Offer) -> Any:
        started.set()
        return await _work_for(TIMEOUT_S * 3, report=False)

    await make_agent("silent", ["x"], silent)
    await hive.delegate("t", ["x"], task_id="long", execution_timeout_s=TIMEOUT_S)
    await started.wait()

    async def taken_back() -> bool:
        task = await hive.get("long")
        return task.agent_id != "silent" or task.status is not TaskStatus.ASSIGNED

    await eventually(taken_back, timeout=10)


# --- the SDK: reporting from a handler, following, waiting -----------------------------


async def test_a_handler_reports_through_current_task(hive, make_agent):
    seen: list[str] = []

    async def handler(task: Offer) -> Any:
        running = current_task()
        seen.append(running.task_id)
        await running.report_progress(0.5, "half", data={"rows": 10})
        with pytest.raises(ValueError, match="progress"):
            await running.report_progress(2.0)
        return "ok"

    await make_agent("reporter", ["x"], handler)
    done = await hive.delegate("t", ["x"], task_id="t1", wait=True, wait_timeout=10)
    assert seen == ["t1"]
    assert (done.progress, done.progress_message) == (0.5, "half")


async def test_reports_are_throttled_and_the_latest_goes_before_the_outcome(
    hive, make_agent, nats_client
):
    async def chatty(task: Offer) -> Any:
        for i in range(100):
            await report_progress(i / 100, f"item {i}")
        return "done"

    await make_agent("chatty", ["x"], chatty)  # at most one report a second
    updates = await Updates.of(nats_client, "loop")
    done = await hive.delegate("t", ["x"], task_id="loop", wait=True, wait_timeout=10)
    assert done.progress_message == "item 99"
    await eventually(lambda: "task.completed" in updates.names())
    reports = [b["message"] for b in updates.bodies if b["event"] == "task.progress"]
    assert reports == ["item 0", "item 99"]  # the first at once, the latest before the end
    assert updates.names()[-1] == "task.completed"


async def test_current_task_outside_a_handler_says_so():
    with pytest.raises(RuntimeError, match="task handler"):
        current_task()


async def test_a_task_taken_away_refuses_the_report(hive, make_agent):
    refused: list[ErrorCode] = []
    over = asyncio.Event()

    async def handler(task: Offer) -> Any:
        try:
            await hive.cancel(task.task_id)
            await report_progress(0.1)  # refused, unless the cancel notice stops us first
        except RemoteError as exc:
            refused.append(exc.code)
        finally:
            over.set()

    await make_agent("loser", ["x"], handler)
    await hive.delegate("t", ["x"], task_id="gone")
    async with asyncio.timeout(WAIT_S):
        await over.wait()
    assert refused in ([ErrorCode.INVALID_STATE], [])


async def test_following_a_task_sees_each_step_and_ends(hive, make_agent, nats_client):
    await hive.delegate("t", ["x"], task_id="watched")  # nobody yet: queued
    seen: list[TaskUpdate] = []

    async def collect() -> None:
        async for update in hive.follow("watched"):
            seen.append(update)

    following = asyncio.create_task(collect())
    # Once the follower's subscription exists, a ping on the subject reaches it; what is not
    # an event at all is passed over.
    ping = json.dumps({"event": "test.ping"}).encode()

    async def subscribed() -> bool:
        await nats_client.publish("task.watched.updates", b"not json")
        await nats_client.publish("task.watched.updates", b'{"no": "event"}')
        await nats_client.publish("task.watched.updates", ping)
        return bool(seen)

    await eventually(subscribed)

    async def work(task: Offer) -> Any:
        await report_progress(0.5, "half way")
        return "done"

    await make_agent("worker", ["x"], work)
    async with asyncio.timeout(WAIT_S):
        await following  # it ends by itself after the completion
    # Events go out after the reply: task.queued may still reach a follower that subscribed
    # once delegate() had returned, and then it comes first.
    steps = [u.event for u in seen if u.event != "test.ping"]
    assert steps in (
        ["task.assigned", "task.progress", "task.completed"],
        ["task.queued", "task.assigned", "task.progress", "task.completed"],
    )
    progress = next(u for u in seen if u.is_progress)
    assert (progress.progress, progress.message, progress.agent_id) == (0.5, "half way", "worker")
    assert seen[-1].looks_final


async def test_following_a_finished_task_ends_at_once(hive, make_agent):
    await make_agent("worker", ["x"])
    await hive.delegate("t", ["x"], task_id="over", wait=True, wait_timeout=10)
    assert [u async for u in hive.follow("over")] == []
    with pytest.raises(RemoteError) as unknown:
        async for _ in hive.follow("never-delegated"):
            pass
    assert unknown.value.code is ErrorCode.UNKNOWN_TASK


async def test_waiting_shows_progress_and_hears_only_its_own_task(hivebus_core, make_agent, hive):
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow(task: Offer) -> Any:
        started.set()
        await report_progress(0.3, "warming up")
        await gate.wait()
        await report_progress(0.9, "nearly")
        return "slow done"

    await make_agent("slow", ["x"], slow)
    await make_agent("fast", ["y"], max_tasks=8)
    progress: list[tuple[float | None, str | None]] = []
    async with HiveClient(config=hivebus_core.config) as waiter:
        assert waiter.nc is not None
        before = waiter.nc.stats["in_msgs"]
        waiting = asyncio.create_task(
            waiter.delegate(
                "t",
                ["x"],
                task_id="mine",
                wait=True,
                wait_timeout=30,
                on_progress=lambda u: progress.append((u.progress, u.message)),
            )
        )
        await started.wait()
        # Thirty other tasks finish on the bus while the waiter waits.
        others = [f"other-{i}" for i in range(30)]
        await asyncio.gather(*(hive.delegate("t", ["y"], task_id=t) for t in others))
        for task_id in others:
            await eventually(lambda t=task_id: _completed(hive, t))
        gate.set()
        done = await waiting
        received = waiter.nc.stats["in_msgs"] - before
    assert (done.status, done.result) == (TaskStatus.COMPLETED, "slow done")
    assert progress == [(0.3, "warming up"), (0.9, "nearly")]
    # Its own task's updates and replies only: the 30 other completions never reached it
    # (before, waiting subscribed to every final event on the bus).
    assert received < len(others), received


async def _completed(hive: HiveClient, task_id: str) -> bool:
    return (await hive.get(task_id)).status is TaskStatus.COMPLETED


# --- the record keeps room for the outcome (the domain on fake ports) ----------------------


async def test_a_message_that_would_crowd_out_the_outcome_is_refused():
    world = World()
    try:
        await world.register("a", ["x"])
        await world.delegate("small", ["x"])
        bare = world.task("small").size
        # A task delegated just inside the limit: its record leaves the failure room and
        # about 100 bytes more.
        room = world.orch.max_record_bytes - OUTCOME_ROOM - bare - 100
        await world.register("b", ["y"])
        await world.delegate("big", ["y"], payload="p" * room)

        def report(message: str) -> ProgressRequest:
            return ProgressRequest(task_id="big", agent_id="b", message=message)

        with pytest.raises(HivebusError) as refused:
            await world.orch.progress(report("é" * 1024))
        assert refused.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert world.task("big").progress_message is None
        await world.orch.progress(report("short"))
        assert world.task("big").progress_message == "short"
    finally:
        await world.orch.stop()
