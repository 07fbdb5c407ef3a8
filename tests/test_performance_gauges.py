"""The performance plugin's gauges and latencies: what the docker/ dashboard and alerts read."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from conftest import eventually
from hivebus import HivebusConfig, HiveClient, Offer, TaskStatus
from hivebus.runtime import Core
from hivebus.server import free_port
from hivebus_hookspecs import AgentRole
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


async def scrape(url: str) -> Samples:
    text = await asyncio.to_thread(_get, url)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    settings = {"port": 0, "refresh_s": 0.1}
    return {
        "plugins": ["performance"],
        "state": "jetstream",
        "plugin_config": {"performance": settings},
    }


async def slow(task: Offer) -> Any:
    await asyncio.sleep(0.3)
    return task.payload


async def test_agents_queue_latency_and_health_are_exported(hive: HiveClient, make_agent):
    url = (await hive.status())["extensions"]["performance"]["url"]
    await make_agent("idle-1", ["python"])
    await make_agent("busy-1", ["slow"], slow)
    done = await hive.delegate("t", ["python"], wait=True, wait_timeout=5)
    assert done.status is TaskStatus.COMPLETED
    running = await hive.delegate("t", ["slow"], task_id="running")
    assert running.agent_id == "busy-1"
    await hive.delegate("t", ["gpu"], priority="high", task_id="waits")

    async def seen() -> bool:
        metrics = await scrape(url)
        return metrics.get(("hivebus_core_health", (("status", "healthy"),))) == 1 and (
            metrics[
                ("hivebus_delegation_seconds_count", (("outcome", "queued"), ("priority", "high")))
            ]
            == 1
        )

    await eventually(seen)
    m = await scrape(url)
    assert m[("hivebus_agents", (("state", "idle"),))] == 1
    assert m[("hivebus_agents", (("state", "busy"),))] == 1
    assert m[("hivebus_agents", (("state", "offline"),))] == 0
    assert m[("hivebus_queue_depth_by_priority", (("priority", "high"),))] == 1
    assert m[("hivebus_queue_depth_by_priority", (("priority", "low"),))] == 0
    assert m[("hivebus_queue_depth_by_capability", (("capability", "gpu"),))] == 1
    assert m[("hivebus_capability_live_agents", (("capability", "gpu"),))] == 0
    assert m[("hivebus_queue_oldest_age_seconds", ())] > 0
    assigned = (("outcome", "assigned"), ("priority", "medium"))
    assert m[("hivebus_delegation_seconds_count", assigned)] == 2
    assert m[("hivebus_queue_wait_seconds_count", (("priority", "medium"),))] == 2
    assert m[("hivebus_core_health", (("status", "unhealthy"),))] == 0
    assert m[("hivebus_plugin_health", (("plugin", "performance"), ("status", "healthy")))] == 1
    for bucket in ("hivebus_agents", "hivebus_tasks", "hivebus_seats"):
        assert m[("hivebus_state_bucket_leader", (("bucket", bucket),))] == 1
        assert m[("hivebus_state_bucket_current_replicas", (("bucket", bucket),))] == 1

    # An agent offering the capability arrives: the waiting task is placed and waited > 0.
    await make_agent("gpu-1", ["gpu"])
    await eventually(lambda: _status_is(hive, "waits", TaskStatus.COMPLETED))

    async def waited() -> bool:
        metrics = await scrape(url)
        return metrics[("hivebus_queue_wait_seconds_count", (("priority", "high"),))] == 1

    await eventually(waited)
    m = await scrape(url)
    assert ("hivebus_queue_depth_by_capability", (("capability", "gpu"),)) not in m
    assert m[("hivebus_queue_oldest_age_seconds", ())] == 0


async def test_live_agents_are_counted_for_each_capability_tasks_wait_for(
    hive: HiveClient, make_agent
):
    url = (await hive.status())["extensions"]["performance"]["url"]
    release = asyncio.Event()

    async def hold(task: Offer) -> Any:
        await release.wait()
        return task.payload

    await make_agent("py-1", ["python", "sql"], hold)
    await make_agent("py-2", ["python"], hold)
    await make_agent("go-1", ["go"])
    for n in range(3):  # two run, one waits for a python agent
        await hive.delegate("t", ["python"], task_id=f"py-{n}")

    async def waiting() -> bool:
        metrics = await scrape(url)
        return metrics.get(("hivebus_queue_depth_by_capability", (("capability", "python"),))) == 1

    try:
        await eventually(waiting)
        m = await scrape(url)
        assert m[("hivebus_capability_live_agents", (("capability", "python"),))] == 2
        # Capabilities nothing waits for get no series.
        assert ("hivebus_capability_live_agents", (("capability", "go"),)) not in m
        assert ("hivebus_capability_live_agents", (("capability", "sql"),)) not in m
    finally:
        release.set()


async def test_agent_gauges_count_what_the_views_show(
    hive: HiveClient, make_agent, hivebus_core: Core, nats_client: Any
):
    """Busy, quarantined (on trial too), sleeping and offline agents of several roles: each
    gauge says what counting the agents' views says."""
    url = (await hive.status())["extensions"]["performance"]["url"]
    release = asyncio.Event()

    async def hold(task: Offer) -> Any:
        await release.wait()
        return task.payload

    await make_agent("w-busy", ["python", "go"], hold)
    await make_agent("w-idle", ["python", "sql"], hold)
    await make_agent("s-quarantined", ["python"], hold, role="specialist")
    await make_agent("s-trial", ["gpu"], hold, role="specialist", max_tasks=3)
    await make_agent("c-sleeping", ["gpu"], hold, role="coordinator")
    # Registered, then silent: offline once its heartbeats are missed.
    register = {"agent_id": "w-gone", "capabilities": ["python"]}
    await nats_client.request("agent.register", json.dumps(register).encode(), timeout=5)
    orchestrator = hivebus_core.orchestrator
    await orchestrator.quarantine("s-quarantined", by="test", reason="benched")
    await orchestrator.quarantine("s-trial", by="test", reason="benched", trial=True)
    await orchestrator.sleep("c-sleeping", by="test", reason="rest")
    try:
        await hive.delegate("t", ["go"], task_id="runs")
        await hive.delegate("t", ["gpu"], task_id="on-trial")
        for n in range(2):  # the one agent with both holds one, the other waits
            await hive.delegate("t", ["python", "sql"], task_id=f"waits-{n}", queue=True)

        async def settled() -> bool:
            views = {a.agent_id: a for a in await hive.agents()}
            return (
                views["w-gone"].state.value == "offline"
                and views["w-busy"].active_tasks + views["w-idle"].active_tasks == 2
                and views["s-trial"].active_tasks == 1
            )

        await eventually(settled, timeout=15)
        views = await hive.agents()
        m = await scrape(url)
    finally:
        release.set()
    live = [a for a in views if a.state.value == "active"]
    expected_states = {
        "offline": len(views) - len(live),
        "quarantined": sum(1 for a in live if a.quarantined_by is not None),
        "busy": sum(1 for a in live if a.quarantined_by is None and a.active_tasks),
        "idle": sum(1 for a in live if a.quarantined_by is None and not a.active_tasks),
    }
    assert expected_states == {"offline": 1, "quarantined": 2, "busy": 2, "idle": 1}
    for state, n in expected_states.items():
        assert m[("hivebus_agents", (("state", state),))] == n, state
    assert m[("hivebus_agents_registered", ())] == len(live)
    for role in AgentRole:
        mine = [a for a in live if a.role is role]
        expected_roles = {
            "live": len(mine),
            "busy": sum(1 for a in mine if a.active_tasks),
            "quarantined": sum(1 for a in mine if a.quarantined_by is not None),
            "sleeping": sum(1 for a in mine if a.sleeping),
        }
        for state, n in expected_roles.items():
            key = ("hivebus_agents_by_role", (("role", role.value), ("state", state)))
            assert m[key] == n, (role.value, state)
    for capability in ("python", "sql"):
        holding = sum(1 for a in live if capability in a.capabilities)
        key = ("hivebus_capability_live_agents", (("capability", capability),))
        assert m[key] == holding, capability


async def _status_is(hive: HiveClient, task_id: str, status: TaskStatus) -> bool:
    return (await hive.get(task_id)).status is status


async def test_two_replicas_on_one_host_take_their_ports_from_the_environment(
    hivebus_config: HivebusConfig, monkeypatch: pytest.MonkeyPatch, nats_server
):
    """The docker/ stack's way: one file for every replica, a port each from the environment."""
    ports = [free_port(), free_port()]
    cores = []
    try:
        for port in ports:
            monkeypatch.setenv("HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT", str(port))
            config = HivebusConfig.load(
                nats_url=nats_server.url, state="jetstream", plugins=["performance"]
            )
            assert config.plugin_settings("performance") == {"port": str(port)}
            core = Core(config)
            await core.start()
            cores.append(core)
        async with HiveClient(config=hivebus_config) as hive:
            seen = {
                (await scrape(f"http://127.0.0.1:{port}/metrics"))[("hivebus_queue_depth", ())]
                for port in ports
            }
            assert seen == {0}
            assert (await hive.status())["plugins"]["performance"] == "healthy"
    finally:
        for core in cores:
            await core.stop()
