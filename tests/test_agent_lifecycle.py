"""An agent's life on the bus: restarts, reconnects, outages and oversized results."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Agent, Core, ErrorCode, HiveClient, Offer, RemoteError, TaskStatus, TaskView
from hivebus.server import EmbeddedServer


@pytest.fixture(params=["memory", "jetstream"])
def hivebus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    # Offline after 3 x 0.5 s of silence: a loaded machine still heartbeats well within that.
    return {"state": request.param, "heartbeat_interval_s": 0.5}


async def _register(nc: Any, body: dict[str, Any]) -> dict[str, Any]:
    reply = await nc.request("agent.register", orjson.dumps(body), timeout=5)
    return orjson.loads(reply.data)  # type: ignore[no-any-return]


async def test_the_same_run_registering_again_is_a_success(nats_client, hivebus_core):
    body = {"agent_id": "steady", "capabilities": ["x"], "instance_id": "run-1"}
    assert (await _register(nats_client, body))["ok"] is True
    again = await _register(nats_client, body)
    assert again["ok"] is True
    assert again["assign_subject"] == "agent.steady.assign"
    other = await _register(nats_client, {**body, "instance_id": "run-2"})
    assert other["error"]["code"] == "agent_exists"


async def test_a_restarted_agent_waits_out_its_previous_run_and_takes_no_ghost_tasks(
    hive, hivebus_config, nats_client
):
    # The previous run: registered, took a task, then crashed (gone, and silent).
    async def accept(msg: Any) -> None:
        await msg.respond(orjson.dumps({"accept": True}))

    ghost = await nats_client.subscribe("agent.phoenix.assign", cb=accept)
    old_run = {"agent_id": "phoenix", "capabilities": ["x"], "instance_id": "old"}
    await _register(nats_client, old_run)
    held = await hive.delegate("t", ["x"], task_id="held-by-ghost")
    assert held.agent_id == "phoenix"
    await ghost.unsubscribe()

    async def work(task: Offer) -> Any:
        return f"done on attempt {task.attempt}"

    reborn = Agent("phoenix", ["x"], work, config=hivebus_config)
    await reborn.start()  # returns once the old run is offline and the id is free again
    try:
        await eventually(lambda: _completed(hive, "held-by-ghost"), timeout=10)
        task = await hive.get("held-by-ghost")
        assert task.result == "done on attempt 2"
    finally:
        await reborn.stop()


async def _completed(hive: HiveClient, task_id: str) -> bool:
    return (await hive.get(task_id)).status is TaskStatus.COMPLETED


@pytest.mark.slow
async def test_a_nats_outage_longer_than_the_liveness_window_marks_nobody_offline(
    nats_server: EmbeddedServer, hive, make_agent, nats_client, hivebus_config
):
    await make_agent("patient", ["x"])
    before = {a.agent_id: a for a in await hive.agents()}["patient"]
    seen: list[tuple[str, dict[str, Any]]] = []

    async def record(msg: Any) -> None:
        seen.append((msg.subject, orjson.loads(msg.data)))

    # Subscribed before the outage (the client re-subscribes when NATS is back), so an offline
    # verdict reached during the outage or just after it is heard.
    await nats_client.subscribe("events.>", cb=record)
    await nats_client.flush()
    window = hivebus_config.heartbeat_interval_s * hivebus_config.offline_after_missed
    nats_server.kill()
    await asyncio.sleep(window * 2)  # the fault itself: twice the liveness window, all silent
    nats_server.start()

    async def works() -> bool:
        try:
            done = await hive.delegate("t", ["x"], wait=True, wait_timeout=2)
        except Exception:
            return False
        return done.status is TaskStatus.COMPLETED

    await eventually(works, timeout=30)
    # One more task, seen completing on events.>: the core's events come in order, so anything
    # it said about the agent since the outage has arrived by then.
    last = await hive.delegate("t", ["x"], task_id="after-the-outage")
    await eventually(lambda: ("events.task.completed", last.task_id) in _named(seen), timeout=10)
    about_agents = [subject for subject, _ in seen if subject.startswith("events.agent.")]
    assert about_agents == []  # neither offline nor registered again
    after = {a.agent_id: a for a in await hive.agents()}["patient"]
    assert after.state == "active"
    assert after.registered_at == before.registered_at  # the same registration, not a new one
    assert (await hive.status())["agents"]["offline"] == 0


def _named(seen: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, Any]]:
    return {(subject, body.get("task_id")) for subject, body in seen}


async def test_a_result_too_large_to_deliver_fails_the_task_with_the_reason(
    hive, make_agent, hivebus_config
):
    limit = hivebus_config.max_payload_bytes

    async def verbose(task: Offer) -> Any:
        return "x" * (limit + 1)

    await make_agent("verbose", ["x"], verbose)
    done = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)
    assert done.status is TaskStatus.FAILED
    assert done.error is not None
    assert "payload_too_large" in done.error


async def test_waiting_for_a_task_that_expires_returns_it_expired(hive):
    task = await hive.delegate("t", ["nobody"], queue_timeout_s=0.2, wait=True, wait_timeout=10)
    assert task.status is TaskStatus.EXPIRED


async def test_heartbeats_from_an_unknown_agent_are_refused(hive, nats_client):
    reply = await nats_client.request(
        "agent.heartbeat", orjson.dumps({"agent_id": "stranger"}), timeout=5
    )
    assert orjson.loads(reply.data)["error"]["code"] == ErrorCode.UNKNOWN_AGENT
    with pytest.raises(RemoteError):
        await hive.get("nothing-here")


async def test_an_agent_started_before_the_core_waits_for_it(hivebus_config):
    """Deployments start things in any order: an agent whose core is not up yet keeps trying
    to register (within its patience) instead of failing, and works once the core is up."""

    async def work(task: Offer) -> str:
        return "done"

    agent = Agent("early", ["x"], work, config=hivebus_config)
    starting = asyncio.create_task(agent.start())
    await asyncio.sleep(hivebus_config.heartbeat_interval_s)  # a few attempts meet no core
    assert not starting.done()
    async with Core(hivebus_config), HiveClient(config=hivebus_config) as hive:
        await asyncio.wait_for(starting, timeout=hivebus_config.heartbeat_interval_s * 10)
        done = await hive.delegate("t", ["x"], wait=True, wait_timeout=10)
        assert isinstance(done, TaskView)
        assert (done.status, done.agent_id, done.result) == (TaskStatus.COMPLETED, "early", "done")
        await agent.stop(grace_s=1)
