"""Progress is stored, not remembered: it keeps a task alive on every replica and after a
``kill -9`` of the core, because the execution timeout counts from the stored ``progress_at``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import eventually
from fake_ports import HEARTBEAT_S, SharedStore, World
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, TaskStatus, report_progress
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from hivebus_hookspecs.models import ProgressRequest
from processes import spawn

# --- two replicas, one store, provoked step by step (fake ports, a hand-moved clock) -------


class Pair:
    def __init__(self) -> None:
        self.store = SharedStore()
        self.one = self._replica()
        self.two = self._replica()

    def _replica(self) -> World:
        state = self.store.replica()
        world = World(state=state)
        state.follow(world.orch.cache)
        return world

    async def pass_time(self, seconds: float) -> None:
        """Both replicas' clocks move together; the agent heartbeats to both."""
        for world in (self.one, self.two):
            world.beating.add("a")
            await world.tick_after(seconds)
        self.store.deliver()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    replicas = Pair()
    yield replicas
    await replicas.one.orch.stop()
    await replicas.two.orch.stop()


async def test_progress_stored_by_one_replica_keeps_the_other_from_timing_out(pair: Pair):
    limit = HEARTBEAT_S * 4
    await pair.one.register("a", ["x"])
    await pair.one.delegate("t", ["x"], execution_timeout_s=limit)
    pair.store.deliver()
    await pair.pass_time(limit * 0.75)
    await pair.one.orch.progress(ProgressRequest(task_id="t", agent_id="a", progress=0.5))
    pair.store.deliver()
    assert pair.two.task("t").progress == 0.5

    # Past assigned_at + limit, not past progress_at + limit: replica two leaves it alone.
    await pair.pass_time(limit * 0.5)
    for world in (pair.one, pair.two):
        assert world.task("t").status is TaskStatus.ASSIGNED
        assert world.events.named("task.requeued") == []
    # Silence for longer than the limit after the report: now it times out.
    await pair.pass_time(limit * 0.75)
    requeued = pair.one.events.named("task.requeued") + pair.two.events.named("task.requeued")
    assert [e["reason"] for e in requeued] == [f"execution timeout of {limit}s"]


async def test_a_report_from_an_earlier_attempt_does_not_extend_the_next(pair: Pair):
    limit = HEARTBEAT_S * 4
    world = pair.one
    await world.register("a", ["x"])
    await world.delegate("t", ["x"], execution_timeout_s=limit)
    await world.orch.progress(ProgressRequest(task_id="t", agent_id="a", message="early"))
    pair.store.deliver()
    await pair.pass_time(limit + HEARTBEAT_S)  # timed out: requeued, and offered to a again
    assert world.task("t").attempts == 2
    assert world.task("t").progress_message == "early"  # shown until the new holder reports
    # The new attempt gets its full limit from its own assignment, not from the old report.
    await pair.pass_time(HEARTBEAT_S)
    assert world.task("t").attempts == 2
    assert world.task("t").status is TaskStatus.ASSIGNED


# --- real cores on JetStream -----------------------------------------------------------------

TIMEOUT_S = 1.5
"""The task's execution timeout; the agent works well past it, reporting all along."""


def js_config(server: EmbeddedServer) -> HivebusConfig:
    return HivebusConfig.load(**{**TEST_DEFAULTS, "nats_url": server.url, "state": "jetstream"})


class Steady:
    """A handler that reports progress every 0.1 s until released, then completes."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.reports = 0

    async def __call__(self, task: Offer) -> Any:
        self.started.set()
        while not self.release.is_set():
            await report_progress(message=f"report {self.reports}")
            self.reports += 1
            await asyncio.sleep(0.1)
        return "done"


async def _work_past(seconds: float) -> None:
    """Let the agent work (and report) this long; the test's own loop keeps running."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    await eventually(lambda: loop.time() > until, timeout=seconds * 2)


async def test_two_jetstream_replicas_both_honour_progress(nats_server, make_agent):
    cores = [Core(js_config(nats_server)) for _ in range(2)]
    for core in cores:
        await core.start()
    try:
        steady = Steady()
        await make_agent("steady", ["x"], steady, progress_interval_s=0.2)
        async with HiveClient(config=cores[0].config) as hive:
            await hive.delegate("t", ["x"], task_id="long", execution_timeout_s=TIMEOUT_S)
            await steady.started.wait()
            await _work_past(TIMEOUT_S * 2.5)  # reports land on either replica
            steady.release.set()
            await eventually(lambda: _status(hive, "long", TaskStatus.COMPLETED), timeout=10)
            task = await hive.get("long")
        assert (task.attempts, task.agent_id) == (1, "steady")
        assert task.progress_message is not None
    finally:
        for core in cores:
            await core.stop()


async def _status(hive: HiveClient, task_id: str, status: TaskStatus) -> bool:
    return (await hive.get(task_id)).status is status


RESTART_TIMEOUT_S = 6.0
"""Longer than a core takes to start on a loaded machine: the reports before the kill must
still be fresh when the new core first checks the task."""


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_progress_counts_after_a_kill_9_of_the_core(nats_server, tmp_path):
    """A new core reads progress_at from the bucket: a task past assigned_at + timeout, but
    reported on recently, is not timed out by the core that replaces a killed one."""
    env = {"HIVEBUS_STATE": "jetstream", "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5"}
    up = ["up", "--nats", nats_server.url, "-p", "no:audit", "-p", "no:performance"]
    first = spawn(*up, cwd=tmp_path, **env)
    second = None
    agent = None
    try:
        await first.until("serving on")
        config = js_config(nats_server)
        steady = Steady()
        agent = Agent("steady", ["x"], steady, config=config)
        await agent.start()
        async with HiveClient(config=config) as hive:
            await hive.delegate("t", ["x"], task_id="long", execution_timeout_s=RESTART_TIMEOUT_S)
            await steady.started.wait()
            await _work_past(RESTART_TIMEOUT_S * 1.2)
            first.popen.send_signal(signal.SIGKILL)
            first.popen.wait()
            killed_at = time.time()
            second = spawn(*up, cwd=tmp_path, **env)
            await second.until("serving on")
            # The new core hears the reports again (the task is still the agent's: a timed
            # out task would refuse them, and the handler would fail).
            await eventually(lambda: _reported_since(hive, "long", killed_at), timeout=10)
            steady.release.set()
            await eventually(lambda: _status(hive, "long", TaskStatus.COMPLETED), timeout=10)
            task = await hive.get("long")
        assert (task.attempts, task.agent_id, task.result) == (1, "steady", "done")
    finally:
        if agent is not None:
            await agent.stop(grace_s=1)
        first.stop()
        if second is not None:
            second.stop()


async def _reported_since(hive: HiveClient, task_id: str, since: float) -> bool:
    task = await hive.get(task_id)
    return task.status is TaskStatus.ASSIGNED and (task.progress_at or 0.0) > since
