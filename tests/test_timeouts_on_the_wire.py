"""The execution timeout and the attempt limit as the bus shows them: the cancel notice on
``agent.<id>.cancel``, the refused late completion, and the events with their fields, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from conftest import eventually
from contract_wire import EventLog, RawAgent, Wire
from hivebus import HiveClient, Offer, TaskStatus


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    return {"on_execution_timeout": "fail", "max_attempts": 2}


async def test_on_execution_timeout_fail_fails_the_task_and_sends_a_cancel_notice(
    hive: HiveClient, make_agent: Any, nats_client: Any
):
    events = await EventLog.follow(nats_client)
    notices: list[dict[str, Any]] = []

    async def notice(msg: Any) -> None:
        notices.append(orjson.loads(msg.data))

    await nats_client.subscribe("agent.sloth.cancel", cb=notice)
    stopped = asyncio.Event()

    async def hang(task: Offer) -> Any:
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            stopped.set()  # the SDK acted on the notice
            raise

    await make_agent("sloth", ["x"], hang)
    reply = await hive.delegate("t", ["x"], task_id="slow", execution_timeout_s=1.0)
    assert reply.agent_id == "sloth"

    failed = await asyncio.wait_for(_failed(events, "slow"), timeout=10)
    assert failed["agent_id"] == "sloth"
    assert failed["error"] == "execution timeout of 1.0s"
    assert failed["duration_ms"] >= 1000
    task = await hive.get("slow")
    assert (task.status, task.success, task.error) == (
        TaskStatus.FAILED,
        False,
        "execution timeout of 1.0s",
    )
    await eventually(lambda: notices == [{"task_id": "slow", "reason": "cancelled"}])
    await asyncio.wait_for(stopped.wait(), timeout=10)
    assert "task.requeued" not in events.names()
    await eventually(lambda: _free(hive, "sloth"))


async def _failed(events: EventLog, task_id: str) -> dict[str, Any]:
    return await _wait(events, "task.failed", task_id)


async def _wait(events: EventLog, name: str, task_id: str) -> dict[str, Any]:
    while True:
        found = [e for e in events.events if e["event"] == name and e["task_id"] == task_id]
        if found:
            return found[0]
        await asyncio.sleep(0.02)


async def _free(hive: HiveClient, agent_id: str) -> bool:
    return any(a.agent_id == agent_id and a.active_tasks == 0 for a in await hive.agents())


async def test_leaving_agents_requeue_then_exhaust_the_attempts_and_say_so_in_order(
    wire: Wire, nats_client: Any
):
    events = await EventLog.follow(nats_client)
    first = RawAgent(wire, "first", ["x"])
    await first.start()
    await wire.ok("task.delegate", {"task_id": "hot-potato", "required_capabilities": ["x"]})
    await first.next_offer()
    await events.wait_for("task.assigned", agent_id="first")  # its acceptance is recorded
    second = RawAgent(wire, "second", ["x"])
    await second.start()

    await wire.ok("agent.deregister", {"agent_id": "first"})  # attempt 1 of 2 used
    offer = await second.next_offer()
    assert offer["attempt"] == 2
    await events.wait_for("task.assigned", agent_id="second")
    await wire.ok("agent.deregister", {"agent_id": "second"})  # attempt 2 of 2 used
    await events.wait_for("agent.deregistered", agent_id="second")

    task = (await wire.ok("task.get", {"task_id": "hot-potato"}))["task"]
    assert (task["status"], task["attempts"], task["agent_id"]) == ("dead", 2, None)
    assert task["error"] == "gave up after 2 attempts (agent second deregistered)"
    assert [(h["attempt"], h["agent_id"], h["outcome"]) for h in task["history"]] == [
        (1, "first", "lost"),
        (2, "second", "lost"),
    ]
    told = [
        (e["event"], e["agent_id"], e.get("reason"), e.get("attempts"), e.get("requeued"))
        for e in events.events
        if e["event"] in ("task.requeued", "task.dead", "agent.deregistered")
    ]
    assert told == [
        ("task.requeued", "first", "agent first deregistered", 1, None),
        ("agent.deregistered", "first", None, None, ["hot-potato"]),
        ("task.dead", "second", None, 2, None),  # the agent that held the last attempt
        ("agent.deregistered", "second", None, None, ["hot-potato"]),
    ]
    status = await wire.ok("orchestrator.status")
    assert status["tasks"]["error_total"] == 1
    await first.stop()
    await second.stop()
