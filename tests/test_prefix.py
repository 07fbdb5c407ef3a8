"""A dotted prefix (``prod.hive``): two buses share one NATS and never see each other.

Subjects, events and the JetStream buckets all sit under the prefix, for the core, the SDK and
the CLI alike.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, TaskStatus
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from processes import run, spawn


def bus_config(server: EmbeddedServer, prefix: str, **extra: Any) -> HivebusConfig:
    return HivebusConfig.load(
        **{**TEST_DEFAULTS, "nats_url": server.url, "state": "jetstream", "prefix": prefix} | extra
    )


def tagged(bus: str) -> Any:
    async def handle(task: Offer) -> Any:
        return {"bus": bus, "payload": task.payload}

    return handle


async def test_two_prefixed_buses_share_one_nats_without_crossing(nats_server, nats_client):
    prod, dev = bus_config(nats_server, "prod.hive"), bus_config(nats_server, "dev.hive")
    seen: dict[str, list[str]] = {"prod": [], "dev": [], "bare": []}

    def recorder(name: str) -> Any:
        async def record(msg: Any) -> None:
            seen[name].append(msg.subject)

        return record

    await nats_client.subscribe("prod.hive.events.>", cb=recorder("prod"))
    await nats_client.subscribe("dev.hive.events.>", cb=recorder("dev"))
    await nats_client.subscribe("events.>", cb=recorder("bare"))
    await nats_client.flush()
    cores = [Core(prod), Core(dev)]
    agents = [Agent("same-id", ["x"], tagged("prod"), config=prod)]
    agents.append(Agent("same-id", ["x"], tagged("dev"), config=dev))  # one id on each bus
    try:
        for core in cores:
            await core.start()
            assert core.state_kind == "jetstream"
        for agent in agents:
            await agent.start()
        async with HiveClient(config=prod) as on_prod, HiveClient(config=dev) as on_dev:
            done_prod = await on_prod.delegate("t", ["x"], task_id="job", payload=1, wait=True)
            done_dev = await on_dev.delegate("t", ["x"], task_id="job", payload=2, wait=True)
            assert (done_prod.status, done_prod.result) == (
                TaskStatus.COMPLETED,
                {"bus": "prod", "payload": 1},
            )
            assert done_dev.result == {"bus": "dev", "payload": 2}
            assert [a.agent_id for a in await on_prod.agents()] == ["same-id"]
            assert (await on_prod.status())["tasks"]["completed_total"] == 1
            assert (await on_dev.status())["tasks"]["completed_total"] == 1

        # The buckets: the prefix with dots as underscores, one pair per bus.
        js = nats_client.jetstream(timeout=5)
        for stem, payload in (("prod_hive", 1), ("dev_hive", 2)):
            tasks = await js.key_value(f"{stem}_tasks")
            stored = orjson.loads((await tasks.get("job")).value)
            assert (stored["status"], stored["payload"]) == ("completed", payload)
            assert await (await js.key_value(f"{stem}_agents")).get("same-id")
        names = {info.config.name for info in await js.streams_info()}
        assert "KV_hivebus_tasks" not in names  # nothing on the unprefixed bus

        want = [
            "agent.registered",
            "task.assigned",
            "task.completed",
        ]
        for name, prefix in (("prod", "prod.hive"), ("dev", "dev.hive")):
            await eventually(lambda n=name: len(seen[n]) >= len(want))
            assert seen[name] == [f"{prefix}.events.{event}" for event in want]
        assert seen["bare"] == []
    finally:
        for agent in agents:
            await agent.stop(grace_s=1)
        for core in cores:
            await core.stop()


UPPER = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]


@pytest.mark.timeout(90)
async def test_the_cli_runs_a_prefixed_bus_end_to_end(nats_server, nats_client, tmp_path: Path):
    url = nats_server.url
    env = {"HIVEBUS_PREFIX": "prod.hive", "HIVEBUS_STATE": "jetstream"}
    events: list[str] = []

    async def record(msg: Any) -> None:
        events.append(msg.subject)

    await nats_client.subscribe(">", cb=record)  # every subject anyone uses on this NATS
    await nats_client.flush()
    core = spawn("up", "--nats", url, "-p", "no:performance", cwd=tmp_path, **env)
    agent = None
    try:
        await core.until("serving on")
        agent = spawn("agent", "--nats", url, "--id", "shout", "--cap", "text", "--", *UPPER, **env)
        await agent.until("ready")
        delegate = ["delegate", "--nats", url, "--cap", "text", "--payload", '"hi"', "--wait"]
        done = await asyncio.to_thread(run, *delegate, **env)
        assert done.returncode == 0, done.stderr
        assert '"HI"' in done.stdout
        status = await asyncio.to_thread(run, "status", "--nats", url, "--json", **env)
        assert json.loads(status.stdout)["tasks"]["completed_total"] == 1
        # Without the prefix nobody answers: it is another bus.
        bare = await asyncio.to_thread(run, "status", "--nats", url, "--json", timeout=60)
        assert bare.returncode != 0
    finally:
        if agent is not None:
            agent.stop()
        core.stop()
    ours = [s for s in events if not s.startswith(("_INBOX.", "$JS.", "$KV.", "$SRV.", "$O."))]
    stray = [s for s in ours if not s.startswith("prod.hive.") and s != "orchestrator.status"]
    assert stray == []  # only the deliberate unprefixed status request left the prefix
    assert "prod.hive.events.task.completed" in ours
