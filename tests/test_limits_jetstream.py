"""``max_agents`` and ``max_concurrent_tasks`` with state in JetStream: the limits count what is
in the buckets, so they hold across a core restart and across replicas sharing the buckets.
"""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import eventually
from contract_wire import Wire
from hivebus import Core, HivebusConfig
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS


def js_config(server: EmbeddedServer, **extra: Any) -> HivebusConfig:
    # Raw agents never heartbeat: a long interval keeps them registered for the whole test.
    settings = {"nats_url": server.url, "state": "jetstream", "heartbeat_interval_s": 30.0}
    return HivebusConfig.load(**{**TEST_DEFAULTS, **settings, **extra})


async def test_the_agent_limit_counts_the_agents_in_the_bucket_after_a_restart(
    nats_server: EmbeddedServer, nats_client: Any
):
    wire = Wire(nats_client)
    config = js_config(nats_server, max_agents=2)
    first = Core(config)
    await first.start()
    try:
        await wire.ok("agent.register", {"agent_id": "a1"})
        await wire.ok("agent.register", {"agent_id": "a2"})
        await wire.fail("agent.register", {"agent_id": "a3"}, code="max_agents_reached")
    finally:
        await first.stop()

    second = Core(config)
    await second.start()
    try:
        assert second.state_kind == "jetstream"
        await wire.fail("agent.register", {"agent_id": "a3"}, code="max_agents_reached")
        await wire.ok("agent.deregister", {"agent_id": "a1"})
        await wire.ok("agent.register", {"agent_id": "a3"})
    finally:
        await second.stop()


async def test_the_task_limit_counts_live_tasks_in_the_bucket_after_a_restart(
    nats_server: EmbeddedServer, nats_client: Any
):
    wire = Wire(nats_client)
    config = js_config(nats_server, max_concurrent_tasks=2)
    first = Core(config)
    await first.start()
    try:
        for task_id in ("q1", "q2"):
            reply = await wire.ok(
                "task.delegate", {"task_id": task_id, "required_capabilities": ["z"]}
            )
            assert reply["status"] == "queued"
        await wire.fail("task.delegate", {"task_id": "q3"}, code="over_capacity")
    finally:
        await first.stop()

    second = Core(config)
    await second.start()
    try:
        await wire.fail("task.delegate", {"task_id": "q3"}, code="over_capacity")
        await wire.ok("task.cancel", {"task_id": "q1"})  # a finished task no longer counts
        await wire.ok("task.delegate", {"task_id": "q3", "required_capabilities": ["z"]})
    finally:
        await second.stop()


async def test_the_limits_hold_across_two_replicas(nats_server: EmbeddedServer, nats_client: Any):
    wire = Wire(nats_client)
    config = js_config(nats_server, max_agents=2, max_concurrent_tasks=2)
    cores = [Core(config), Core(config)]
    for core in cores:
        await core.start()

    async def both_see(agents: int, live: int) -> bool:
        return all(
            core.orchestrator.registry.count_active() == agents
            and core.orchestrator.live_count == live
            for core in cores
        )

    try:
        for n, agent_id in enumerate(("a1", "a2"), start=1):
            await wire.ok("agent.register", {"agent_id": agent_id, "capabilities": ["busy"]})
            await eventually(lambda n=n: both_see(n, 0))
        for n, task_id in enumerate(("q1", "q2"), start=1):
            await wire.ok("task.delegate", {"task_id": task_id, "required_capabilities": ["z"]})
            await eventually(lambda n=n: both_see(2, n))
        # Whichever replica answers, each refuses: the count is the shared one.
        for _ in range(6):
            await wire.fail("agent.register", {"agent_id": "a3"}, code="max_agents_reached")
            await wire.fail("task.delegate", {"task_id": "q3"}, code="over_capacity")
    finally:
        for core in cores:
            await core.stop()


async def test_a_burst_of_registrations_on_two_replicas_never_passes_max_agents(
    nats_server: EmbeddedServer, nats_client: Any
):
    """Both replicas answer (a queue group); neither has seen the other's writes when it
    checks. The seats, counted by JetStream, admit exactly max_agents."""
    wire = Wire(nats_client)
    config = js_config(nats_server, max_agents=10)
    cores = [Core(config), Core(config)]
    for core in cores:
        await core.start()
    try:
        replies = await asyncio.gather(
            *(wire.request("agent.register", {"agent_id": f"burst-{i}"}) for i in range(80))
        )
        codes = [r.body.get("error", {}).get("code", "ok") for r in replies]
        assert codes.count("ok") == 10, codes
        assert set(codes) == {"ok", "max_agents_reached"}

        async def both_see_ten() -> bool:
            return all(core.orchestrator.registry.count_active() == 10 for core in cores)

        await eventually(both_see_ten)
        # a seat given back is a seat another agent can take, on either replica
        registered = [f"burst-{i}" for i, code in enumerate(codes) if code == "ok"]
        await wire.ok("agent.deregister", {"agent_id": registered[0]})
        await wire.ok("agent.register", {"agent_id": "late"})
        await wire.fail("agent.register", {"agent_id": "later"}, code="max_agents_reached")
    finally:
        for core in cores:
            await core.stop()


async def test_a_seat_freed_while_it_is_claimed_is_claimed_again(
    nats_server: EmbeddedServer, nats_client: Any, monkeypatch: Any
):
    """nats-py's create reads a key back when told it exists; if the seat was given back in
    between, that read finds nothing. The claim must try again, not fail the registration
    (it once answered internal_error, under the hostile storm)."""
    import nats.js.errors

    config = js_config(nats_server, max_agents=5)
    async with Core(config) as core:
        seats = core._state._seats  # type: ignore[union-attr]
        create = seats._kv.create
        raced: list[str] = []

        async def freed_meanwhile(key: str, value: bytes, **kwargs: Any) -> int:
            if not raced:
                raced.append(key)
                raise nats.js.errors.KeyNotFoundError
            return await create(key, value, **kwargs)

        monkeypatch.setattr(seats._kv, "create", freed_meanwhile)
        await Wire(nats_client).ok("agent.register", {"agent_id": "raced"})
        assert raced == ["raced"]
        assert await core._state.seat_holders() == {"raced"}  # type: ignore[union-attr]
