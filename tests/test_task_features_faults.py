"""The task rules across replicas and crashes: a concurrency key and a rate limit are limits of
the bus, not of one core; a delayed task, a retry waiting out its backoff and a task waiting
for its dependencies survive a ``kill -9`` of the core."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

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


async def _all_final(hive: HiveClient, ids: list[str]) -> bool:
    for task_id in ids:
        if not (await hive.get(task_id)).status.is_final:
            return False
    return True


async def test_a_concurrency_key_and_a_rate_limit_hold_across_two_replicas(
    nats_server: EmbeddedServer, make_agent
):
    config = js_config(nats_server, rate_limits={"deploy": "5/s"})
    running = Counter[str]()
    most = Counter[str]()

    async def gauge(task: Offer) -> Any:
        key = task.task_type
        running[key] += 1
        most[key] = max(most[key], running[key])
        await asyncio.sleep(0.02)
        running[key] -= 1
        return "ok"

    cores = [Core(config.model_copy(update={"orchestrator_id": f"r{i}"})) for i in range(2)]
    for core in cores:
        await core.start()
    try:
        for i in range(5):
            await make_agent(f"w{i}", ["x"], gauge, max_tasks=10)
        async with HiveClient(config=config) as hive:
            keyed = [f"k{i}" for i in range(100)]
            deploys = [f"d{i}" for i in range(12)]
            await asyncio.gather(
                *(
                    hive.delegate("build", ["x"], task_id=t, concurrency={"key": "k", "limit": 2})
                    for t in keyed
                ),
                *(hive.delegate("deploy", ["x"], task_id=t) for t in deploys),
            )
            await eventually(lambda: _all_final(hive, keyed + deploys), timeout=60)
            tasks = [await hive.get(t) for t in keyed + deploys]
            assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
            assert most["build"] == 2
            # both replicas handled delegations
            assert all(core.orchestrator.stats.delegations_total > 0 for core in cores)
            assigned = sorted(t.assigned_at or 0.0 for t in tasks if t.task_type == "deploy")
            for i in range(len(assigned) - 5):
                assert assigned[i + 5] - assigned[i] >= 1.0 - 0.3, assigned  # an answer's time
    finally:
        for core in cores:
            await core.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_waiting_tasks_survive_a_kill_9_of_the_core(nats_server: EmbeddedServer, tmp_path):
    """A scheduled task, a retry in its backoff and a blocked task, stored when the core dies,
    each run exactly once after a new core takes over."""
    config = js_config(nats_server)
    env = {"HIVEBUS_STATE": "jetstream", "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5"}
    core = spawn("up", "--nats", nats_server.url, "-p", "no:audit", cwd=tmp_path, **env)
    ran: Counter[str] = Counter()
    release_root = asyncio.Event()

    async def work(task: Offer) -> Any:
        ran[task.task_id] += 1
        if task.task_id == "root":
            await release_root.wait()
        if task.task_id == "flaky" and task.attempt == 1:
            raise RuntimeError("first attempt fails")
        return task.attempt

    agent = Agent("worker", ["x"], work, config=config, max_tasks=5)
    hive = HiveClient(config=config)
    try:
        await core.until("serving on")
        await agent.start()
        await hive.connect()
        scheduled = await hive.delegate("t", ["x"], task_id="later", delay_s=3.0)
        assert scheduled.status is TaskStatus.SCHEDULED
        await hive.delegate(
            "t", ["x"], task_id="flaky", retry={"max_attempts": 2, "backoff_s": 3.0}
        )
        await hive.delegate("t", ["x"], task_id="root")
        blocked = await hive.delegate("t", ["x"], task_id="leaf", depends_on=["root"])
        assert blocked.status is TaskStatus.BLOCKED
        await eventually(lambda: _is(hive, "flaky", TaskStatus.RETRYING))

        core.popen.send_signal(signal.SIGKILL)
        core.popen.wait()
        release_root.set()  # root completes while no core runs: its report is retried
        core = spawn("up", "--nats", nats_server.url, "-p", "no:audit", cwd=tmp_path, **env)
        await core.until("serving on")

        ids = ["later", "flaky", "root", "leaf"]
        await eventually(lambda: _all_final(hive, ids), timeout=30)
        for task_id in ids:
            task = await hive.get(task_id)
            assert task.status is TaskStatus.COMPLETED, (task_id, task.status, task.error)
        assert ran == {"later": 1, "flaky": 2, "root": 1, "leaf": 1}
        flaky = await hive.get("flaky")
        assert [h.outcome.value for h in flaky.history] == ["failed", "completed"]
    finally:
        await hive.close()
        await agent.stop(grace_s=1)
        core.stop()


async def _is(hive: HiveClient, task_id: str, status: TaskStatus) -> bool:
    return (await hive.get(task_id)).status is status


async def test_the_other_replica_moves_waiting_tasks_on_when_one_stops(
    nats_server: EmbeddedServer,
):
    """Delegated to one replica, then only the other is left: its timers (armed from what
    the store told it) and its periodic pass queue the scheduled, retrying and blocked tasks."""
    config = js_config(nats_server)
    first, second = (
        Core(config.model_copy(update={"orchestrator_id": name})) for name in ("one", "two")
    )
    await first.start()
    await second.start()
    flaky_attempts: list[int] = []
    gate = asyncio.Event()

    async def work(task: Offer) -> Any:
        if task.task_id == "flaky":
            flaky_attempts.append(task.attempt)
            if task.attempt == 1:
                raise RuntimeError("first attempt fails")
        if task.task_id == "root":
            await gate.wait()
        return task.attempt

    agent = Agent("worker", ["x"], work, config=config, max_tasks=5)
    try:
        await agent.start()
        async with HiveClient(config=config) as hive:
            await hive.delegate("t", ["x"], task_id="later", delay_s=1.0)
            await hive.delegate("t", ["x"], task_id="flaky", retry={"backoff_s": 1.0})
            await hive.delegate("t", ["x"], task_id="root")
            await hive.delegate("t", ["x"], task_id="leaf", depends_on=["root"])
            await eventually(lambda: flaky_attempts == [1])
            await first.stop()
            gate.set()
            ids = ["later", "flaky", "root", "leaf"]
            await eventually(lambda: _all_final(hive, ids), timeout=20)
            statuses = {t: (await hive.get(t)).status for t in ids}
            assert set(statuses.values()) == {TaskStatus.COMPLETED}, statuses
            assert flaky_attempts == [1, 2]
    finally:
        await agent.stop(grace_s=1)
        await second.stop()
        await first.stop()
