"""The registry's readings (``context.capacity()``, ``agent_counts()``, ``context_usage()``,
``roster()``) say what the views say, on each of two core replicas sharing one JetStream bus,
with a plugin installed as a distribution and found through its entry point.

The oracle is written here from ``context.agents()``, read in the same step as the readings
(no await between: the registry cannot change in between), on a mix of agents: several
capability sets (one given in another order), busy and full, quarantined, on trial, sleeping,
offline, and some reporting their context window usage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from contract_wire import Wire
from hivebus import Agent, Core, HivebusConfig, HiveClient
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS, running_cores
from hivebus_hookspecs import AgentRole, AgentState, AgentView, PluginContext
from nats.aio.client import Client
from test_plugin_context import install

HERE = Path(__file__).parent / "plugins_under_test"


@pytest.fixture
def reader_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(install(tmp_path / "site", "reader", "reader:Reader")))


def replica_config(server: EmbeddedServer) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "enable_plugins": ["reader"],
        }
    )


@pytest.fixture
async def replicas(
    nats_server: EmbeddedServer, reader_installed: None
) -> AsyncIterator[list[Core]]:
    async with running_cores(replica_config(nats_server), replica_config(nats_server)) as cores:
        yield cores


@pytest.fixture
async def raw(nats_server: EmbeddedServer) -> AsyncIterator[Client]:
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-raw")
    yield nc
    await nc.close()


def context_of(core: Core) -> PluginContext:
    context = core.plugins.pm.get_plugin("reader").context
    assert context is not None
    return context


def capacity_from_views(views: list[AgentView]) -> dict[tuple[str, ...], tuple[int, ...]]:
    """What ``capacity()`` must say, by exact capability set, from the views."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for view in views:
        if view.state is not AgentState.ACTIVE:
            continue
        row = groups.setdefault(tuple(sorted(set(view.capabilities))), [0] * 7)
        if view.quarantined_by is not None:
            row[6] += 1
            continue
        row[0] += 1
        row[1] += view.max_tasks
        row[2] += min(view.active_tasks, view.max_tasks)
        row[3] += view.active_tasks > 0
        row[4] += view.active_tasks >= view.max_tasks
        row[5] += view.sleeping
    return {caps: tuple(row) for caps, row in groups.items()}


def counts_from_views(views: list[AgentView]) -> dict[AgentRole, tuple[int, ...]]:
    rows = {role: [0] * 5 for role in AgentRole}
    for view in views:
        row = rows[view.role]
        if view.state is not AgentState.ACTIVE:
            row[4] += 1
            continue
        row[0] += 1
        row[1] += view.active_tasks > 0
        row[2] += view.quarantined_by is not None
        row[3] += view.sleeping
    return {role: tuple(row) for role, row in rows.items()}


def check_against_views(context: PluginContext) -> None:
    # One synchronous step: the views and the readings are of the same registry.
    views = context.agents()
    capacity = context.capacity()
    counts = context.agent_counts()
    usage = context.context_usage()
    roster = context.roster()

    assert [g.capabilities for g in capacity] == sorted(g.capabilities for g in capacity)
    assert {g.capabilities: tuple(g[1:]) for g in capacity} == capacity_from_views(views)
    assert {role: tuple(c) for role, c in counts.items()} == counts_from_views(views)
    assert usage == {
        v.agent_id: v.context_window_usage
        for v in views
        if v.state is AgentState.ACTIVE and v.context_window_usage is not None
    }
    fields = [
        "agent_id", "role", "capabilities", "max_tasks", "active_tasks", "state",
        "quarantined_by", "on_trial", "sleeping", "context_window_usage",
    ]  # fmt: skip
    assert [r._asdict() for r in roster] == [
        {**{f: getattr(v, f) for f in fields}, "capabilities": tuple(v.capabilities)} for v in views
    ]


async def test_readings_say_what_the_views_say_on_each_replica(replicas: list[Core], raw: Client):
    config = replicas[0].config
    release = asyncio.Event()
    held: set[str] = set()

    async def hold(task: Any) -> str:
        held.add(task.task_id)
        await release.wait()
        return "done"

    agents = [
        Agent("a1", ["code", "review"], hold, max_tasks=2, config=config),
        Agent("a2", ["review", "code"], hold, max_tasks=3, config=config, role="specialist"),
        Agent("b1", ["gpu"], hold, config=config),
        Agent("d1", [], hold, config=config, role="coordinator"),
        Agent("q1", ["gpu"], hold, max_tasks=4, config=config),
        Agent("t1", ["etl"], hold, max_tasks=4, config=config, role="specialist"),
        Agent("s1", ["code", "review"], hold, max_tasks=2, config=config),
    ]
    agents[0].context_window_usage = 0.91
    agents[2].context_window_usage = 0.25
    agents[4].context_window_usage = 0.5  # quarantined, still live: its usage is read
    wire = Wire(raw)
    # An agent that registers and then goes silent: offline once its heartbeats are missed.
    await wire.ok("agent.register", {"agent_id": "o1", "capabilities": ["docs"], "max_tasks": 2})
    for _ in range(6):  # its usage is kept, but it is not live: context_usage() leaves it out
        await wire.ok("agent.heartbeat", {"agent_id": "o1", "context_window_usage": 0.7})
    async with contextlib.AsyncExitStack() as stack:
        for agent in agents:
            await stack.enter_async_context(agent)
        hive = await stack.enter_async_context(HiveClient(config=config))
        stack.callback(release.set)  # first thing on the way out: the agents can stop
        first = context_of(replicas[0])
        await first.quarantine("q1", "tests")
        await first.quarantine("t1", "tests", trial=True)
        await first.sleep("s1", "tests")
        # Two tasks on the code agents awake, b1 full with one, t1 (on trial) holding one.
        work = [("k1", ["code"]), ("k2", ["code"]), ("k3", ["gpu"]), ("k4", ["etl"])]
        for task_id, caps in work:
            await hive.delegate("hold", caps, task_id=task_id)
        await eventually(lambda: held >= {"k1", "k2", "k3", "k4"}, timeout=10)

        def settled(core: Core) -> bool:
            views = {v.agent_id: v for v in context_of(core).agents()}
            return (
                len(views) == 8
                and views["o1"].state is AgentState.OFFLINE
                and views["q1"].quarantined_by is not None
                and views["t1"].on_trial
                and views["s1"].sleeping
                and sum(v.active_tasks for v in views.values()) == 4
                and views["a1"].context_window_usage == 0.91
                and views["q1"].context_window_usage == 0.5
                and views["b1"].context_window_usage == 0.25
            )

        for core in replicas:
            await eventually(lambda core=core: settled(core), timeout=15)
            check_against_views(context_of(core))
        # The figures the mix must give, not only agreement with the views.
        capacity = {g.capabilities: g for g in context_of(replicas[1]).capacity()}
        assert set(capacity) == {("code", "review"), ("gpu",), (), ("etl",)}
        gpu = capacity[("gpu",)]
        assert (gpu.agents, gpu.slots, gpu.busy_slots, gpu.full, gpu.quarantined) == (1, 1, 1, 1, 1)
        code = capacity[("code", "review")]
        assert (code.agents, code.sleeping, code.slots, code.busy_slots) == (3, 1, 7, 2)
        assert (capacity[("etl",)].agents, capacity[("etl",)].quarantined) == (0, 1)
        counts = context_of(replicas[1]).agent_counts()
        assert (counts[AgentRole.WORKER].offline, counts[AgentRole.SPECIALIST].quarantined) == (
            1,
            1,
        )
        assert context_of(replicas[1]).context_usage() == {"a1": 0.91, "b1": 0.25, "q1": 0.5}

        release.set()

        def idle(core: Core) -> bool:
            return not any(r.active_tasks for r in context_of(core).roster())

        for core in replicas:
            await eventually(lambda core=core: idle(core), timeout=15)
            check_against_views(context_of(core))
