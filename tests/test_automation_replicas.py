"""The automation plugin with two core replicas sharing one JetStream bus, with real agent and
core processes, and through the legacy switch ``enable_automation_plugin``.

Breaker state lives in the plugin's bucket, so each change is published once whichever replica
saw the failure, and a replica killed with a breaker open leaves it to the other to half-open
and close.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import eventually
from contract_wire import Heard
from hivebus import (
    Agent,
    Core,
    HivebusConfig,
    HiveClient,
    Offer,
    OrchestratorConfig,
    TaskStatus,
    get_universal_orchestrator,
    shutdown_universal_orchestrator,
)
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS, running_cores
from hivebus_automation import AutomationPlugin
from nats.aio.client import Client
from processes import Proc, spawn

FAST = 0.05


def transitions(heard: Heard, agent_id: str) -> list[tuple[str, str]]:
    """The breaker changes announced for ``agent_id``, as (from, to)."""
    return [
        (b["from"], b["to"])
        for b in heard.bodies("events.plugin.automation.breaker", agent_id=agent_id)
    ]


@pytest.fixture
async def raw(nats_server: EmbeddedServer) -> AsyncIterator[Client]:
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-raw")
    yield nc
    await nc.close()


# --- two replicas in this process ------------------------------------------------------------


def replica_config(server: EmbeddedServer) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "plugins": ["automation"],
            "plugin_config": {
                # The test runs the evaluations itself, both replicas at once, so that their
                # writes race for the same records.
                "automation": {"interval_s": 3600, "breaker": {"failures": 3, "cooldown_s": 5}}
            },
        }
    )


@pytest.fixture
async def replicas(nats_server: EmbeddedServer) -> AsyncIterator[list[Core]]:
    async with running_cores(replica_config(nats_server), replica_config(nats_server)) as cores:
        yield cores


def plugins_of(cores: list[Core]) -> list[AutomationPlugin]:
    found = [core.plugins.pm.get_plugin("automation") for core in cores]
    assert all(isinstance(p, AutomationPlugin) for p in found)
    return found


async def evaluate_together(plugins: list[AutomationPlugin]) -> None:
    await asyncio.gather(*(p.evaluate() for p in plugins))


async def test_two_replicas_count_one_streak_and_announce_each_change_once(
    replicas: list[Core], raw: Client
):
    config = replicas[0].config
    plugins = plugins_of(replicas)
    heard = await Heard.on(raw, "events.plugin.automation.>")
    failing = {"now": True}

    async def flaky(task: Offer) -> str:
        if failing["now"]:
            raise RuntimeError("bad gpu")
        return "ok"

    agent = Agent("flaky", ["x"], flaky, config=config, max_tasks=2)
    async with agent, HiveClient(config=config) as hive:
        # Failures land on both replicas (the queue group spreads the completions); the
        # streak is one count in the shared bucket, so three in all open the breaker.
        for n in range(3):
            done = await hive.delegate("job", ["x"], task_id=f"f{n}", wait=True, wait_timeout=10)
            assert done.status is TaskStatus.FAILED
        await eventually(lambda: sum(p.failures_seen for p in plugins) == 3)
        await evaluate_together(plugins)
        await eventually(lambda: transitions(heard, "flaky") == [("closed", "open")])

        # Both read the breaker open, then both find the cooldown passed: both try to
        # half-open it, and one does.
        circuits = [p.circuits for p in plugins if p.circuits is not None]
        await asyncio.gather(*(c.refresh() for c in circuits))
        later = time.time() + 6
        await asyncio.gather(*(c.tick(later) for c in circuits))
        for plugin in plugins:
            plugin.clock = lambda: later
        failing["now"] = False
        trial = await hive.delegate("job", ["x"], task_id="trial", wait=True, wait_timeout=15)
        assert trial.status is TaskStatus.COMPLETED
        await eventually(lambda: sum(len(p.inbox) for p in plugins) >= 2)  # assigned, completed
        await evaluate_together(plugins)
        await evaluate_together(plugins)
        await eventually(lambda: ("half_open", "closed") in transitions(heard, "flaky"))
        await evaluate_together(plugins)
        assert transitions(heard, "flaky") == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]
        assert sum(p.circuits.changes for p in plugins if p.circuits is not None) == 3
        for plugin in plugins:  # both replicas agree
            assert "flaky" not in plugin.hivebus_status()["breakers"]  # type: ignore[operator]
        [view] = await hive.agents()
        assert view.quarantined_by is None


# --- real processes --------------------------------------------------------------------------

AGENT_COMMAND = (
    "import json, sys; p = json.load(sys.stdin) or {}; "
    "sys.exit('bad gpu') if p.get('fail') else print('\"ok\"')"
)


def write_config(folder: Path, **automation: str) -> Path:
    config = folder / "hivebus.toml"
    lines = [
        'state = "jetstream"',
        "plugin_autoload = false",
        "heartbeat_interval_s = 0.5",
        "[plugin_config.automation]",
        "interval_s = 0.1",
        *(f"{k} = {v}" for k, v in automation.items()),
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def start_agent(url: str, folder: Path, agent_id: str, capability: str) -> Proc:
    return spawn(
        "agent", "--nats", url, "--id", agent_id, "--cap", capability, "--",
        sys.executable, "-c", AGENT_COMMAND,
        cwd=folder,
    )  # fmt: skip


async def opened_by(cores: list[Proc]) -> Proc:
    """The core process that logged the breaker's opening: its line was written before the
    opening's event, which the caller has heard, so a short look at each core finds it. Only
    the opening: the replica that half-opens the breaker later logs a change too."""
    for core in cores:
        try:
            await core.until("to=open", timeout=1)
        except AssertionError:
            continue
        return core
    raise AssertionError("no core logged the breaker's opening")


async def registered(hive: HiveClient, agent_id: str) -> bool:
    return any(a.agent_id == agent_id for a in await hive.agents())


@pytest.mark.slow
async def test_a_replica_killed_with_a_breaker_open_leaves_the_other_to_readmit_the_agent(
    nats_server: EmbeddedServer, raw: Client, tmp_path: Path
):
    # The cooldown outlasts finding and killing the opener: no replica half-opens the breaker
    # before the opener is gone (a replica killed between storing the half-open and announcing
    # it would take the announcement with it: events are published after the state is stored).
    config = write_config(tmp_path, breaker="{ failures = 2, cooldown_s = 4.0 }")
    heard = await Heard.on(raw, "events.plugin.automation.>")
    url = nats_server.url
    cores = [
        spawn(
            "up",
            "--nats",
            url,
            "--config",
            str(config),
            "-p",
            "automation",
            cwd=tmp_path,
            new_session=True,
        )
        for n in range(2)
    ]
    agent = None
    try:
        for core in cores:
            await core.until("serving on")
        agent = start_agent(url, tmp_path, "gpu-1", "gpu")
        async with HiveClient(nats_url=url) as hive:
            await eventually(lambda: registered(hive, "gpu-1"), timeout=20)
            for n in range(2):
                done = await hive.delegate(
                    "render", ["gpu"], task_id=f"bad-{n}", payload={"fail": True},
                    wait=True, wait_timeout=30,
                )  # fmt: skip
                assert done.status is TaskStatus.FAILED
            await eventually(lambda: transitions(heard, "gpu-1") == [("closed", "open")], 20)

            # The replica that opened the breaker dies; the other, which only knows it from the
            # bucket, half-opens it, gives the agent one trial task, and closes the breaker.
            opener = await opened_by(cores)
            opener.kill_group()
            trial = await hive.delegate(
                "render", ["gpu"], task_id="trial", payload={}, wait=True, wait_timeout=60
            )
            assert trial.status is TaskStatus.COMPLETED
            assert trial.agent_id == "gpu-1"
            await eventually(lambda: ("half_open", "closed") in transitions(heard, "gpu-1"), 20)
            assert transitions(heard, "gpu-1") == [
                ("closed", "open"),
                ("open", "half_open"),
                ("half_open", "closed"),
            ]

            async def readmitted() -> bool:
                [view] = await hive.agents()
                return view.quarantined_by is None

            await eventually(readmitted, timeout=20)
    finally:
        if agent is not None:
            agent.stop()
        for core in cores:
            core.kill_group()


@pytest.mark.slow
async def test_an_idle_agent_process_is_put_to_sleep_and_woken_by_work_that_needs_it(
    nats_server: EmbeddedServer, raw: Client, tmp_path: Path
):
    config = write_config(tmp_path, sleep="{ enabled = true, idle_after_s = 0.5, sleep_s = 600.0 }")
    heard = await Heard.on(raw, "events.agent.>")
    url = nats_server.url
    core = spawn("up", "--nats", url, "--config", str(config), "-p", "automation", cwd=tmp_path)
    agent = None
    try:
        await core.until("serving on")
        agent = start_agent(url, tmp_path, "idle-1", "render")
        async with HiveClient(nats_url=url) as hive:
            await eventually(lambda: heard.bodies("events.agent.sleeping", agent_id="idle-1"), 20)
            [view] = await hive.agents()
            assert view.sleeping

            done = await hive.delegate("frame", ["render"], payload={}, wait=True, wait_timeout=30)
            assert done.status is TaskStatus.COMPLETED
            assert done.agent_id == "idle-1"
            [woken] = heard.bodies("events.agent.woken", agent_id="idle-1")
            assert woken["reason"].startswith("queued task")
    finally:
        if agent is not None:
            agent.stop()
        core.stop()


# --- the legacy switch -----------------------------------------------------------------------


@pytest.mark.parametrize("switched_on", [True, False])
async def test_the_legacy_switch_enable_automation_plugin_still_works(switched_on: bool):
    legacy = OrchestratorConfig(
        max_memory_mb=4096.0,
        enable_performance_plugin=False,
        enable_security_plugin=False,
        enable_context_plugin=False,
        enable_automation_plugin=switched_on,
        core_settings={"plugin_config": {"automation": {"breaker": {"failures": 2}}}},
    )
    try:
        orchestrator = await get_universal_orchestrator(legacy)
        async with HiveClient(nats_url=orchestrator.nats_url) as hive:
            plugins = {p.name: p.health.value for p in await hive.plugins()}
            extensions = (await hive.status()).get("extensions", {})
            if switched_on:
                assert plugins == {"automation": "healthy"}
                assert extensions["automation"]["breakers"] == {}
            else:
                assert plugins == {}
                assert "automation" not in extensions
    finally:
        await shutdown_universal_orchestrator()
