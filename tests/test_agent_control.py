"""Control messages on ``agent.<id>.control``: the SDK's agent sleeps, wakes and drains."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from conftest import eventually
from contract_wire import EventLog
from hivebus import HiveClient, TaskStatus
from hivebus.errors import RemoteError
from nats.aio.client import Client


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    return {"offer_timeout_s": 1.0}


async def control(nc: Client, agent_id: str, action: str, **fields: Any) -> None:
    body = {"action": action, "source": "test", **fields}
    await nc.publish(f"agent.{agent_id}.control", orjson.dumps(body))
    await nc.flush()


async def test_a_sleeping_agent_refuses_offers_until_it_wakes(
    hive: HiveClient, make_agent, nats_client: Client
):
    agent = await make_agent("sleepy", ["s"])
    await control(nats_client, "sleepy", "sleep", reason="quiet hours")
    await eventually(lambda: agent.sleeping)
    with pytest.raises(RemoteError, match="no_agent_available"):
        await hive.delegate("t", ["s"], queue=False)
    await control(nats_client, "sleepy", "wake")
    await eventually(lambda: not agent.sleeping)
    done = await hive.delegate("t", ["s"], payload=1, wait=True, wait_timeout=10)
    assert done.status is TaskStatus.COMPLETED


async def test_a_draining_agent_finishes_its_task_then_leaves(
    hive: HiveClient, make_agent, nats_client: Client
):
    release = asyncio.Event()

    async def slow(task: Any) -> str:
        await release.wait()
        return "finished"

    agent = await make_agent("drainer", ["d"], handler=slow)
    events = await EventLog.follow(nats_client)
    receipt = await hive.delegate("t", ["d"], task_id="running")
    assert receipt.status is TaskStatus.ASSIGNED
    await control(nats_client, "drainer", "drain")
    with pytest.raises(RemoteError, match="no_agent_available"):
        await hive.delegate("t", ["d"], queue=False)  # refused while draining
    assert not agent.drained.is_set()
    release.set()
    await asyncio.wait_for(agent.drained.wait(), 10)
    assert (await hive.get("running")).status is TaskStatus.COMPLETED
    left = await events.wait_for("agent.deregistered", agent_id="drainer")
    assert left["requeued"] == []
    assert [a.agent_id for a in await hive.agents()] == []
    await events.close()


async def test_a_malformed_control_message_changes_nothing(
    hive: HiveClient, make_agent, nats_client: Client
):
    agent = await make_agent("steady", ["x"])
    await nats_client.publish("agent.steady.control", b'{"action": "explode"}')
    await nats_client.publish("agent.steady.control", b"not json")
    await control(nats_client, "steady", "sleep")
    await eventually(lambda: agent.sleeping)  # the good one after the bad ones still counts
    await control(nats_client, "steady", "wake")
    await eventually(lambda: not agent.sleeping)
    done = await hive.delegate("t", ["x"], payload=2, wait=True, wait_timeout=10)
    assert done.result == 2
