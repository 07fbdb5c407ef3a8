"""State in JetStream: a restarted core resumes the bus, replicas share it safely."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

import pytest
from conftest import eventually
from hivebus import Core, HivebusConfig, HiveClient, Offer, TaskStatus
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from processes import spawn


def js_config(server: EmbeddedServer, **extra: Any) -> HivebusConfig:
    return HivebusConfig.load(
        **{**TEST_DEFAULTS, "nats_url": server.url, "state": "jetstream", **extra}
    )


class Recorder:
    """An agent handler that remembers every task it ran, and can be held."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran: list[str] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def __call__(self, task: Offer) -> Any:
        self.ran.append(task.task_id)
        await self.hold.wait()
        await asyncio.sleep(0.01)
        return {"by": self.name}


async def test_a_new_core_resumes_agents_and_tasks_from_the_buckets(nats_server, make_agent):
    first = Core(js_config(nats_server))
    await first.start()
    assert first.state_kind == "jetstream"
    worker = Recorder("w")
    worker.hold.clear()
    await make_agent("keeper", ["x"], worker)
    async with HiveClient(config=first.config) as hive:
        running = await hive.delegate("t", ["x"], task_id="running")
        waiting = await hive.delegate("t", ["x"], task_id="waiting", priority="high")
    assert running.status is TaskStatus.ASSIGNED
    assert waiting.status is TaskStatus.QUEUED
    await first.stop()

    second = Core(js_config(nats_server))
    await second.start()
    try:
        async with HiveClient(config=second.config) as hive:
            assert (await hive.get("running")).agent_id == "keeper"
            assert (await hive.get("waiting")).status is TaskStatus.QUEUED
            assert [a.agent_id for a in await hive.agents()] == ["keeper"]
            worker.hold.set()  # the agent completes through the new core
            for task_id in ("running", "waiting"):
                await eventually(lambda t=task_id: _done(hive, t), timeout=10)
            assert worker.ran == ["running", "waiting"]
    finally:
        await second.stop()


async def _done(hive: HiveClient, task_id: str) -> bool:
    return (await hive.get(task_id)).status is TaskStatus.COMPLETED


async def test_delegating_the_same_id_on_two_replicas_creates_one_task(nats_server, make_agent):
    cores = [Core(js_config(nats_server)) for _ in range(2)]
    for core in cores:
        await core.start()
    try:
        worker = Recorder("solo")
        await make_agent("solo", ["x"], worker)
        clients = [HiveClient(config=core.config, nc=core.nc) for core in cores]
        replies = await asyncio.gather(
            *(c.delegate("t", ["x"], task_id="once") for c in clients for _ in range(5))
        )
        assert {r.task_id for r in replies} == {"once"}
        await eventually(lambda: worker.ran == ["once"])
    finally:
        for core in cores:
            await core.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_kill_9_of_the_core_under_load_loses_no_task(nats_server, make_agent, tmp_path):
    """Tasks queued, offered and assigned when the core dies all finish, each exactly once."""
    env = {"HIVEBUS_STATE": "jetstream", "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5"}
    core = spawn("up", "--nats", nats_server.url, "-p", "no:echo-audit", cwd=tmp_path, **env)
    await core.until("serving on")
    config = js_config(nats_server)
    workers = [Recorder(f"w{i}") for i in range(4)]
    for worker in workers:
        await make_agent(worker.name, ["x"], worker)
    ids = [f"load-{i}" for i in range(60)]
    async with HiveClient(config=config) as hive:
        await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[:30]))
        core.popen.send_signal(signal.SIGKILL)
        core.popen.wait()
        replacement = spawn(
            "up", "--nats", nats_server.url, "-p", "no:echo-audit", cwd=tmp_path, **env
        )
        try:
            await replacement.until("serving on")
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[30:]))
            await eventually(lambda: _all_final(hive, ids), timeout=60)
            statuses = Counter([(await hive.get(t)).status for t in ids])
        finally:
            replacement.stop()
    assert statuses == {TaskStatus.COMPLETED: len(ids)}
    ran = Counter(t for worker in workers for t in worker.ran)
    assert set(ran) == set(ids)
    assert max(ran.values()) == 1, [t for t, n in ran.items() if n > 1]


async def _all_final(hive: HiveClient, ids: list[str]) -> bool:
    for task_id in ids:
        if not (await hive.get(task_id)).status.is_final:
            return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_two_replicas_share_the_bus_and_survive_losing_one(nats_server, make_agent, tmp_path):
    env = {"HIVEBUS_STATE": "jetstream", "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5"}
    replicas = [
        spawn("up", "--nats", nats_server.url, "-p", "no:echo-audit", cwd=tmp_path, **env)
        for _ in range(2)
    ]
    for replica in replicas:
        await replica.until("serving on")
    config = js_config(nats_server)
    workers = [Recorder(f"r{i}") for i in range(4)]
    for worker in workers:
        await make_agent(worker.name, ["x"], worker)
    ids = [f"shared-{i}" for i in range(80)]
    try:
        async with HiveClient(config=config) as hive:
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[:40]))
            replicas[0].popen.send_signal(signal.SIGKILL)
            replicas[0].popen.wait()
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[40:]))
            await eventually(lambda: _all_final(hive, ids), timeout=60)
            statuses = Counter([(await hive.get(t)).status for t in ids])
            agents = await hive.agents()
    finally:
        for replica in replicas:
            replica.stop()
    assert statuses == {TaskStatus.COMPLETED: len(ids)}
    ran = Counter(t for worker in workers for t in worker.ran)
    assert max(ran.values()) == 1
    assert sorted(a.agent_id for a in agents if a.state == "active") == ["r0", "r1", "r2", "r3"]
