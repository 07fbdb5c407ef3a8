"""Two clocks: nobody accepted in time (expired) versus the agent took too long (requeue)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import eventually
from hivebus import HiveClient, Offer, TaskStatus


@pytest.fixture(params=["memory", "jetstream"])
def hivebus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    # The test default heartbeat (0.5 s): agents are marked offline only after 1.5 s of
    # silence, which a loaded machine never comes near; the deadlines are checked every 0.25 s.
    return {"state": request.param}


async def _status(hive: HiveClient, task_id: str) -> TaskStatus:
    return (await hive.get(task_id)).status


async def test_a_queued_task_past_its_queue_timeout_expires(hive, nats_client):
    events: list[str] = []

    async def record(msg: Any) -> None:
        events.append(msg.subject)

    await nats_client.subscribe("events.task.expired", cb=record)
    await hive.delegate("t", ["nobody"], task_id="stale", queue_timeout_s=0.3)
    await eventually(lambda: _is(hive, "stale", TaskStatus.EXPIRED))
    assert (await hive.get("stale")).error == "queue timeout"
    await eventually(lambda: events == ["events.task.expired"])


async def _is(hive: HiveClient, task_id: str, status: TaskStatus) -> bool:
    return await _status(hive, task_id) is status


async def test_a_task_past_its_execution_timeout_moves_to_another_agent(hive, make_agent):
    stuck = asyncio.Event()

    async def hang(task: Offer) -> Any:
        stuck.set()
        await asyncio.sleep(60)

    async def quick(task: Offer) -> Any:
        return f"attempt {task.attempt}"

    await make_agent("sloth", ["x"], hang)
    reply = await hive.delegate("t", ["x"], task_id="slow", execution_timeout_s=0.3)
    assert reply.agent_id == "sloth"
    await stuck.wait()
    await make_agent("hare", ["x"], quick)
    await eventually(lambda: _is(hive, "slow", TaskStatus.COMPLETED))
    task = await hive.get("slow")
    assert task.agent_id == "hare"
    assert task.result == "attempt 2"
    # The sloth was told to stop: its slot is free again.
    agents = {a.agent_id: a for a in await hive.agents()}
    await eventually(lambda: _free(hive, "sloth"))
    assert agents["hare"].active_tasks == 0


async def _free(hive: HiveClient, agent_id: str) -> bool:
    return any(a.agent_id == agent_id and a.active_tasks == 0 for a in await hive.agents())
