"""A plugin acting through its context alone, installed as a distribution and found through
its entry point, with two core replicas sharing one JetStream bus."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from contract_wire import EventLog, Wire
from hivebus import Agent, Core, HivebusConfig, HiveClient, TaskStatus
from hivebus.connection import connect
from hivebus.errors import RemoteError
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS, running_cores
from nats.aio.client import Client

HERE = Path(__file__).parent / "plugins_under_test"


def install(folder: Path, name: str, target: str) -> Path:
    """A ``*.dist-info`` with one ``hivebus`` entry point: importlib.metadata finds it."""
    info = folder / f"hivebus_{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hivebus-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hivebus]\n{name} = {target}\n")
    return folder


@pytest.fixture
def medic_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(install(tmp_path / "site", "medic", "medic:Medic")))


def replica_config(server: EmbeddedServer) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "enable_plugins": ["medic"],
            "plugin_config": {"medic": {"retry_after_s": 1.0, "bench_after": 2}},
        }
    )


@pytest.fixture
async def replicas(nats_server: EmbeddedServer, medic_installed: None) -> AsyncIterator[list[Core]]:
    async with running_cores(replica_config(nats_server), replica_config(nats_server)) as cores:
        yield cores


@pytest.fixture
async def raw(nats_server: EmbeddedServer) -> AsyncIterator[Client]:
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-raw")
    yield nc
    await nc.close()


async def test_the_plugin_serves_retries_benches_and_alerts_through_its_context(
    replicas: list[Core], raw: Client, nats_server: EmbeddedServer
):
    config = replicas[0].config
    wire = Wire(raw)
    events = await EventLog.follow(raw)
    alerts: list[dict[str, Any]] = []

    async def on_alert(msg: Any) -> None:
        alerts.append(json.loads(msg.data))

    await raw.subscribe("events.alert.>", cb=on_alert)
    # Both replicas loaded the plugin from its entry point and serve its endpoint.
    for core in replicas:
        assert "medic" in core.plugins.names()
    assert (await wire.ok("plugin.medic.ping", {"say": "hi"}))["pong"] == "hi"
    info = await raw.request("$SRV.INFO.hivebus", b"", timeout=5)
    assert any(e["subject"] == "plugin.medic.ping" for e in json.loads(info.data)["endpoints"])

    runs: Counter[str] = Counter()
    running: set[str] = set()
    overlapped: list[str] = []

    async def first_time_fails(task: Any) -> str:
        if task.task_id in running:
            overlapped.append(task.task_id)
        running.add(task.task_id)
        runs[task.task_id] += 1
        try:
            await asyncio.sleep(0.01)
            if runs[task.task_id] == 1:
                raise RuntimeError("first try fails")
            return "second try works"
        finally:
            running.discard(task.task_id)

    async def always_fails(task: Any) -> str:
        raise RuntimeError("broken")

    good = Agent("good", ["g"], first_time_fails, config=config)
    bad = Agent("bad", ["b"], always_fails, config=config)
    async with good, bad, HiveClient(config=config) as hive:
        # The retry after a pause: the task fails, the plugin queues it again, it completes.
        await hive.delegate("retry-me", ["g"], task_id="r1")

        async def completed() -> bool:
            return (await hive.get("r1")).status is TaskStatus.COMPLETED

        await eventually(completed, timeout=20)
        done = await hive.get("r1")
        assert done.result == "second try works"
        assert runs["r1"] == 2
        assert overlapped == []
        requeued = await events.wait_for("task.requeued", task_id="r1")
        assert requeued["reason"] == "retried by medic: once"
        assert requeued["not_before"] is not None
        assert [e["event"] for e in events.events if e.get("task_id") == "r1"].count(
            "task.assigned"
        ) == 2

        # Two failures bench the bad agent: quarantined, told to sleep, an alert fired.
        for task_id in ("d1", "d2"):
            failed = await hive.delegate(
                "doomed", ["b"], task_id=task_id, wait=True, wait_timeout=20
            )
            assert failed.status is TaskStatus.FAILED
        await events.wait_for("agent.quarantined", agent_id="bad")
        await eventually(lambda: bad.sleeping)

        def both_replicas_know() -> bool:
            # Each replica learns the other's writes from the bucket a moment later.
            seen = [core.orchestrator.registry.get("bad") for core in replicas]
            return all(agent is not None and agent.quarantined_by == "medic" for agent in seen)

        await eventually(both_replicas_know)
        agents = {a.agent_id: a for a in await hive.agents()}
        assert agents["bad"].quarantined_by == "medic"
        assert agents["bad"].quarantine_reason == "2 failures"
        assert agents["good"].quarantined_by is None
        with pytest.raises(RemoteError, match="no_agent_available"):
            await hive.delegate("doomed", ["b"], queue=False)
        await eventually(lambda: any(a["fingerprint"] == "medic-bench-bad" for a in alerts))
        assert [a["source"] for a in alerts] == ["medic"]
        for core in replicas:
            assert (await core.orchestrator.status())["agents"]["quarantined"] == 1

    # The counter lives in the plugin's bucket: it survives both replicas going away.
    failures = (await wire.ok("plugin.medic.ping"))["failures"]
    assert failures == 3  # r1 once, d1, d2
    for core in replicas:
        await core.stop()
    fresh = Core(replica_config(nats_server))
    await fresh.start()
    try:
        assert (await wire.ok("plugin.medic.ping"))["failures"] == 3
    finally:
        await fresh.stop()
    await events.close()


async def test_a_plugin_endpoint_answers_errors_with_the_core_contract(
    replicas: list[Core], raw: Client
):
    wire = Wire(raw)
    await wire.fail("plugin.medic.ping", raw=b"[1, 2]", code="invalid_request")
    await wire.fail("plugin.medic.ping", raw=b'{"say": NaN}', code="invalid_json")
    await wire.ok("plugin.medic.ping")
