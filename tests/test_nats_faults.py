"""The core on a real NATS cluster: a node dies under load, the bus carries on."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from conftest import eventually
from hivebus import Agent, Core, HealthStatus, HivebusConfig, HiveClient, Offer, TaskStatus
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def cluster_config(servers: list[EmbeddedServer], **extra: Any) -> HivebusConfig:
    url = ",".join(server.url for server in servers)
    settings = {"nats_url": url, "state": "jetstream", "kv_replicas": 3, **extra}
    return HivebusConfig.load(**{**TEST_DEFAULTS, **settings})


async def test_losing_a_cluster_node_under_load_loses_no_task(nats_cluster):
    config = cluster_config(nats_cluster)
    core = Core(config)
    await core.start()
    ran: Counter[str] = Counter()

    async def work(task: Offer) -> Any:
        ran[task.task_id] += 1
        await asyncio.sleep(0.02)
        return task.payload

    agents = [Agent(f"n{i}", ["x"], work, config=config) for i in range(3)]
    ids = [f"node-{i}" for i in range(60)]
    try:
        for agent in agents:
            await agent.start()
        async with HiveClient(config=config) as hive:
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[:30]))
            # Kill the node the core talks to: it must fail over, buckets keep quorum.
            assert core.nc is not None
            assert core.nc.connected_url is not None
            port = core.nc.connected_url.port
            victim = next(s for s in nats_cluster if s.port == port)
            victim.kill()
            await _retrying(lambda: _delegate_all(hive, ids[30:]))
            await eventually(lambda: _all_final(hive, ids), timeout=60, explain=_explain(hive, ids))
            statuses = Counter([(await hive.get(t)).status for t in ids])
    finally:
        for agent in agents:
            await agent.stop(grace_s=1)
        await core.stop()
    assert statuses == {TaskStatus.COMPLETED: len(ids)}
    assert set(ran) == set(ids)
    assert max(ran.values()) == 1


async def _delegate_all(hive: HiveClient, ids: list[str]) -> None:
    await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids))


async def _retrying(action: Any, timeout: float = 30) -> None:
    """While the cluster fails over, requests may time out: delegating again is idempotent."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await action()
            return
        except (TimeoutError, ConnectionError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


def _explain(hive: HiveClient, ids: list[str]) -> Any:
    async def explain() -> str:
        stuck = [await hive.get(t) for t in ids]
        lines = [f"{t.task_id} {t.status} {t.agent_id} {t.attempts}" for t in stuck]
        lines += [f"agent {a.agent_id} {a.state} {a.active_tasks}" for a in await hive.agents()]
        return "\n".join(line for line in lines if " completed " not in line)

    return explain


async def _all_final(hive: HiveClient, ids: list[str]) -> bool:
    for task_id in ids:
        if not (await hive.get(task_id)).status.is_final:
            return False
    return True


async def test_health_is_unhealthy_while_nats_is_away(nats_server: EmbeddedServer, hivebus_core):
    assert (await hivebus_core.orchestrator.health())[0] is HealthStatus.HEALTHY
    nats_server.kill()
    await eventually(lambda: not hivebus_core.nc.is_connected)
    health, issues = await hivebus_core.orchestrator.health()
    assert health is HealthStatus.UNHEALTHY
    assert "disconnected from NATS" in issues
    nats_server.start()
    await eventually(lambda: hivebus_core.nc.is_connected, timeout=15)
    assert (await hivebus_core.orchestrator.health())[0] is HealthStatus.HEALTHY
