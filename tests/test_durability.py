"""State in JetStream: a restarted core resumes the bus, replicas share it safely."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, TaskStatus
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


async def test_delegating_the_same_id_on_two_replicas_creates_one_task(
    nats_server, make_agent, nats_client
):
    cores = [Core(js_config(nats_server)) for _ in range(2)]
    for core in cores:
        await core.start()
    assigned: Counter[str] = Counter()
    completed: Counter[str] = Counter()

    async def record(msg: Any) -> None:
        body = orjson.loads(msg.data)
        {"task.assigned": assigned, "task.completed": completed}[body["event"]][
            body["task_id"]
        ] += 1

    await nats_client.subscribe("events.task.assigned", cb=record)
    await nats_client.subscribe("events.task.completed", cb=record)
    await nats_client.flush()
    try:
        worker = Recorder("solo")
        await make_agent("solo", ["x"], worker)
        clients = [HiveClient(config=core.config, nc=core.nc) for core in cores]
        replies = await asyncio.gather(
            *(c.delegate("t", ["x"], task_id="once") for c in clients for _ in range(5))
        )
        assert {r.task_id for r in replies} == {"once"}
        await eventually(lambda: completed["once"] == 1)
        # A second run would come after the first: put one more task through the same agent
        # (it holds one at a time) and only then count what "once" went through.
        await clients[0].delegate("t", ["x"], task_id="after")
        await eventually(lambda: completed["after"] == 1)
        assert worker.ran == ["once", "after"]
        assert assigned == {"once": 1, "after": 1}
        assert completed == {"once": 1, "after": 1}
        assert (await clients[1].get("once")).attempts == 1
    finally:
        for core in cores:
            await core.stop()


async def _all_final(hive: HiveClient, ids: list[str]) -> bool:
    for task_id in ids:
        if not (await hive.get(task_id)).status.is_final:
            return False
    return True


class Bus:
    """Core processes (``hivebus up``) on a 3-node cluster, agents and a client in-test."""

    def __init__(self, cluster: list[EmbeddedServer], workdir: Any) -> None:
        self.url = ",".join(server.url for server in cluster)
        self.workdir = workdir
        self.cores: list[Any] = []
        self.config = HivebusConfig.load(
            **{**TEST_DEFAULTS, "nats_url": self.url, "state": "jetstream", "kv_replicas": 3}
        )
        self.workers = [Recorder(f"w{i}") for i in range(4)]
        self.agents = [Agent(w.name, ["x"], w, config=self.config) for w in self.workers]

    async def start_core(self) -> None:
        env = {
            "HIVEBUS_STATE": "jetstream",
            "HIVEBUS_KV_REPLICAS": "3",
            "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5",
        }
        core = spawn("up", "--nats", self.url, "-p", "no:audit", cwd=self.workdir, **env)
        await core.until("serving on")
        self.cores.append(core)

    def kill_core(self, index: int) -> None:
        self.cores[index].popen.send_signal(signal.SIGKILL)
        self.cores[index].popen.wait()

    async def stop(self) -> None:
        for agent in self.agents:
            await agent.stop(grace_s=1)
        for core in self.cores:
            core.stop()

    async def run(self, ids: list[str], fault: Any) -> HiveClient:
        """Delegate half, cause ``fault``, delegate the rest, wait until all are final."""
        for agent in self.agents:
            await agent.start()
        hive = HiveClient(config=self.config)
        await hive.connect()
        half = len(ids) // 2
        await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[:half]))
        await fault()
        await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[half:]))
        await eventually(lambda: _all_final(hive, ids), timeout=60)
        return hive

    async def check(self, hive: HiveClient, ids: list[str]) -> None:
        """Each task completed exactly once, by one agent; no live agent forgotten."""
        statuses = Counter([(await hive.get(t)).status for t in ids])
        assert statuses == {TaskStatus.COMPLETED: len(ids)}
        ran = Counter(t for worker in self.workers for t in worker.ran)
        assert set(ran) == set(ids)
        assert max(ran.values()) == 1, [t for t, n in ran.items() if n > 1]
        active = sorted(a.agent_id for a in await hive.agents() if a.state == "active")
        assert active == [w.name for w in self.workers]


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_kill_9_of_the_core_under_load_loses_no_task(nats_cluster, tmp_path):
    """Tasks queued, offered and assigned when the core dies all finish, each exactly once."""
    bus = Bus(nats_cluster, tmp_path)
    ids = [f"load-{i}" for i in range(60)]

    async def crash_and_replace() -> None:
        bus.kill_core(0)
        await bus.start_core()

    try:
        await bus.start_core()
        hive = await bus.run(ids, crash_and_replace)
        await bus.check(hive, ids)
        await hive.close()
    finally:
        await bus.stop()


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_two_replicas_share_the_bus_and_survive_losing_one(nats_cluster, tmp_path):
    bus = Bus(nats_cluster, tmp_path)
    ids = [f"shared-{i}" for i in range(80)]

    async def lose_one() -> None:
        bus.kill_core(0)

    try:
        await bus.start_core()
        await bus.start_core()
        hive = await bus.run(ids, lose_one)
        await bus.check(hive, ids)
        await hive.close()
    finally:
        await bus.stop()
