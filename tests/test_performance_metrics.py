"""The performance plugin, installed as ``hivebus-performance`` and found through its entry
point, against a real core on a real nats-server: the metrics an operator reads, the figures and
advice in the status, the context members it relies on, and a port it cannot bind.

Metrics are read by a real HTTP scrape; the plugin's timers run on short intervals and checks
wait for what they produce (``eventually``), never for wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import urllib.request
from collections.abc import AsyncIterator
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Core, HivebusConfig, HiveClient, Offer, RemoteError, TaskStatus
from hivebus.plugins import PluginHost
from hivebus_hookspecs import TaskView, hookimpl
from hivebus_performance import PerformancePlugin
from hivebus_performance.evaluation import Evaluator
from nats.aio.client import Client
from processes import run, spawn
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAST = {"port": 0, "refresh_s": 0.05, "interval_s": 0.05, "min_offers": 2, "min_tasks": 2}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


async def scrape(url: str) -> tuple[str, Samples]:
    text = await asyncio.to_thread(_get, url)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def evaluator_of(core: Core) -> Evaluator:
    plugin = core.plugins.pm.get_plugin("performance")
    assert isinstance(plugin, PerformancePlugin)
    assert plugin.evaluator is not None
    return plugin.evaluator


class RawAgent:
    """An agent spoken on the wire: it registers, heartbeats, and ``refuse``s every offer or
    stays ``silent`` (the offer times out)."""

    def __init__(self, nc: Client, agent_id: str, caps: list[str], answer: str) -> None:
        self.nc, self.agent_id, self.caps, self.answer = nc, agent_id, caps, answer
        self.offers = 0
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> RawAgent:
        async def offered(msg: Any) -> None:
            self.offers += 1
            if self.answer == "refuse":
                await msg.respond(orjson.dumps({"accept": False, "reason": "not today"}))

        await self.nc.subscribe(f"agent.{self.agent_id}.assign", cb=offered)
        body = {"agent_id": self.agent_id, "capabilities": self.caps}
        await self.nc.request("agent.register", orjson.dumps(body), timeout=5)
        self._beat = asyncio.create_task(self._heartbeat())
        return self

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            body = orjson.dumps({"agent_id": self.agent_id})
            with contextlib.suppress(Exception):
                await self.nc.request("agent.heartbeat", body, timeout=2)

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat


@pytest.fixture
async def raw_agents(nats_client: Client) -> AsyncIterator[list[RawAgent]]:
    agents: list[RawAgent] = []
    yield agents
    for agent in agents:
        await agent.stop()


def test_the_plugin_is_an_installed_entry_point_naming_its_class():
    [ep] = [ep for ep in entry_points(group="hivebus") if ep.name == "performance"]
    assert ep.dist is not None
    assert ep.dist.name == "hivebus-performance"
    assert ep.load() is PerformancePlugin


# --- metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        {
            "plugins": ["performance", "security"],
            "plugin_config": {
                "performance": {**FAST, "max_task_types": 2},
                "security": {"denied_capabilities": ["forbidden"]},
            },
        }
    ],
)
async def test_declines_vetoes_roles_task_types_hook_time_and_build_are_exported(
    hivebus_core: Core,
    hive: HiveClient,
    make_agent: Any,
    nats_client: Client,
    raw_agents: list[RawAgent],
):
    declined: list[dict[str, Any]] = []

    async def keep(msg: Any) -> None:
        declined.append(json.loads(msg.data))

    await nats_client.subscribe("events.task.declined", cb=keep)
    url = (await hive.status())["extensions"]["performance"]["url"]
    # Registered first, so idle longest: offered each task before the willing agent.
    raw_agents.append(await RawAgent(nats_client, "grumpy", ["py"], "refuse").start())
    raw_agents.append(await RawAgent(nats_client, "silent", ["slow-py"], "silent").start())
    await make_agent("w1", ["py", "slow-py"])
    await make_agent("boss", ["plan"], role="coordinator")

    for task_type in ("a", "b", "c", "a"):
        done = await hive.delegate(task_type, ["py"], wait=True, wait_timeout=10)
        assert done.status is TaskStatus.COMPLETED
        assert done.agent_id == "w1"
    timed_out = await hive.delegate("d", ["slow-py"], wait=True, wait_timeout=10)
    assert timed_out.agent_id == "w1"
    with pytest.raises(RemoteError):
        await hive.delegate("a", ["forbidden"])

    await eventually(lambda: any(d["outcome"] == "timeout" for d in declined))
    refused = [d for d in declined if d["outcome"] == "refused"]
    assert len(refused) == 4
    assert refused[0]["agent_id"] == "grumpy"
    assert refused[0]["reason"] == "not today"
    assert {d["agent_id"] for d in declined if d["outcome"] == "timeout"} == {"silent"}

    async def counted() -> bool:
        _, m = await scrape(url)
        return m.get(("hivebus_completions_total", ())) == 5

    await eventually(counted)
    text, m = await scrape(url)
    assert m[("hivebus_offers_declined_total", (("outcome", "refused"),))] == 4
    assert m[("hivebus_offers_declined_total", (("outcome", "timeout"),))] == 1
    assert m[("hivebus_plugin_vetoes_total", (("plugin", "security"),))] == 1
    # Two task types keep their name; later ones are "other".
    duration = "hivebus_task_duration_seconds_count"
    assert m[(duration, (("outcome", "completed"), ("task_type", "a")))] == 2
    assert m[(duration, (("outcome", "completed"), ("task_type", "b")))] == 1
    assert m[(duration, (("outcome", "completed"), ("task_type", "other")))] == 2
    assert m[("hivebus_agents_by_role", (("role", "worker"), ("state", "live")))] == 3
    assert m[("hivebus_agents_by_role", (("role", "coordinator"), ("state", "live")))] == 1
    assert m[("hivebus_agents_by_role", (("role", "worker"), ("state", "sleeping")))] == 0
    hook = (("hook", "hivebus_task_delegate"), ("plugin", "security"))
    assert m[("hivebus_plugin_hook_duration_seconds_count", hook)] == 6
    assert m[("hivebus_plugin_hook_duration_seconds_sum", hook)] > 0
    [build] = [labels for name, labels in m if name == "hivebus_build_info"]
    assert dict(build)["version"] == version("hivebus")
    assert m[("process_resident_memory_bytes", ())] > 0
    assert "_created" not in text


# --- status: resources, alerts, recommendations ----------------------------------------------


class SlowGate:
    """A plugin whose delegate hook takes its time: it dominates request time."""

    @hookimpl
    async def hivebus_task_delegate(self, task: TaskView) -> None:
        await asyncio.sleep(0.05)


@pytest.fixture
async def core_with_slow_gate(hivebus_config: HivebusConfig) -> AsyncIterator[Core]:
    host = PluginHost(hivebus_config)
    host.load_entry_points()  # performance, found by its entry point
    assert host.register(SlowGate, "slow-gate")
    async with Core(hivebus_config, plugins=host) as core:
        yield core


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        {
            "plugins": ["performance"],
            "plugin_config": {"performance": {**FAST, "max_memory_mb": 1.0}},
        }
    ],
)
async def test_the_status_shows_resources_alerts_and_advice_with_evidence(
    core_with_slow_gate: Core,
    hivebus_config: HivebusConfig,
    make_agent: Any,
    nats_client: Client,
    raw_agents: list[RawAgent],
):
    alerts: list[dict[str, Any]] = []

    async def keep(msg: Any) -> None:
        alerts.append(json.loads(msg.data))

    await nats_client.subscribe("events.alert.>", cb=keep)
    release = asyncio.Event()

    async def held(task: Offer) -> Any:
        await release.wait()
        return "done"

    raw_agents.append(await RawAgent(nats_client, "grumpy", ["py"], "refuse").start())
    await make_agent("w1", ["py"])
    await make_agent("render-1", ["render"], held, max_tasks=1)
    async with HiveClient(config=hivebus_config) as hive:
        try:
            for _ in range(3):
                await hive.delegate("t", ["py"], wait=True, wait_timeout=10)
            for n in range(3):  # one runs, two wait for the only render agent
                await hive.delegate("r", ["render"], task_id=f"render-{n}")
            await hive.delegate("g", ["gpu"])  # nobody has gpu

            def advice(kind: str) -> list[dict[str, Any]]:
                found = evaluator_of(core_with_slow_gate).recommendations
                return [r for r in found if r["kind"] == kind]

            def capabilities() -> set[str]:
                return {r["capability"] for r in advice("add_agents")}

            await eventually(lambda: capabilities() == {"render", "gpu"})
            await eventually(lambda: advice("agent_declines") and advice("slow_plugin"))
            status = (await hive.status())["extensions"]["performance"]
            by_capability = {r["capability"]: r for r in advice("add_agents")}
        finally:
            release.set()

    assert by_capability["render"]["evidence"] == {
        "waiting": 2, "agents": 1, "busy": 1, "slots": 1
    }  # fmt: skip
    assert "add agents with render" in by_capability["render"]["summary"]
    assert by_capability["gpu"]["evidence"]["agents"] == 0
    [grumpy] = advice("agent_declines")
    assert grumpy["agent_id"] == "grumpy"
    assert grumpy["evidence"]["refused"] == 3
    assert grumpy["evidence"]["accepted"] == 0
    [slow] = advice("slow_plugin")
    assert slow["plugin"] == "slow-gate"
    assert slow["evidence"]["share"] > 0.5
    assert slow["evidence"]["mean_ms"] >= 50
    assert {r["kind"] for r in status["recommendations"]} >= {"add_agents", "agent_declines"}

    resources = status["resources"]
    assert resources["memory_mb"] > 1
    assert 0 < resources["disk_used_percent"] <= 100
    replica = hivebus_config.orchestrator_id
    fingerprint = f"performance:memory_mb:{replica}"
    await eventually(lambda: [a for a in alerts if a["fingerprint"] == fingerprint])
    [memory] = [a for a in alerts if a["fingerprint"] == fingerprint]
    assert memory["status"] == "firing"
    assert memory["details"]["limit"] == 1.0
    assert memory["details"]["orchestrator_id"] == replica
    assert fingerprint in evaluator_of(core_with_slow_gate).book.firing()


@pytest.mark.parametrize("hivebus_settings", [{"plugins": ["performance"]}])
async def test_the_context_gives_the_data_directory_and_hook_times(
    hivebus_core: Core, hivebus_config: HivebusConfig, make_agent: Any, hive: HiveClient
):
    context = evaluator_of(hivebus_core).context
    assert context.data_dir == hivebus_config.data_dir.absolute()
    await make_agent("w1", ["py"])
    await hive.delegate("t", ["py"], wait=True, wait_timeout=10)

    def delegate_calls() -> int:
        return sum(
            t.calls
            for t in context.hook_times()
            if (t.plugin, t.hook) == ("performance", "hivebus_task_delegate")
        )

    await eventually(lambda: delegate_calls() == 1)
    assert all(t.seconds >= 0 for t in context.hook_times())


@pytest.mark.parametrize(
    "hivebus_settings",
    [{"plugins": ["performance"], "plugin_config": {"performance": {"max_cpu_percent": 200}}}],
)
async def test_bad_settings_leave_the_plugin_unhealthy_with_the_reason(hive: HiveClient):
    [info] = [p for p in await hive.plugins() if p.name == "performance"]
    assert info.health.value == "unhealthy"
    assert info.last_error is not None
    assert "max_cpu_percent" in info.last_error


# --- a port another process holds ------------------------------------------------------------


@pytest.mark.slow
async def test_a_taken_port_is_logged_at_start_and_shown_by_hivebus_plugins(
    nats_server: Any, tmp_path: Path
):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    url = nats_server.url
    core = spawn(
        "up", "--nats", url, "-p", "performance",
        cwd=tmp_path,
        HIVEBUS_PLUGIN_AUTOLOAD="false",
        HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT=str(port),
    )  # fmt: skip
    try:
        line = await core.until("cannot serve metrics")
        assert f"127.0.0.1:{port}" in line
        await core.until("serving on")
        listed = await asyncio.to_thread(run, "plugins", HIVEBUS_NATS_URL=url)
        assert listed.returncode == 0, listed.stderr
        [reason] = [ln for ln in listed.stdout.splitlines() if ln.startswith("performance is")]
        assert "degraded" in reason
        assert f"cannot serve metrics on 127.0.0.1:{port}" in reason
        assert "give each its own port" in reason
        async with HiveClient(nats_url=url) as hive:  # the rest of the core runs
            status = await hive.status()
            assert status["extensions"]["performance"]["url"] is None
    finally:
        assert core.stop() == 0
        holder.close()


async def test_a_second_replica_on_the_same_port_reports_the_clash_and_serves_on(
    nats_server: Any, make_agent: Any, hivebus_config: HivebusConfig
):
    """Two replicas on one host given one port: the first serves /metrics, the second says
    why it cannot (its own plugin record, as `hivebus plugins` shows it) and still works."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()  # a free port, for the first replica to take

    def replica(name: str) -> HivebusConfig:
        return HivebusConfig.load(
            nats_url=nats_server.url,
            orchestrator_id=name,
            state="jetstream",
            plugins=["performance"],
            plugin_autoload=False,
            plugin_config={"performance": {"port": port}},
        )

    async with Core(replica("core-1")) as first, Core(replica("core-2")) as second:
        infos = {
            core: {p.name: p for p in await core.plugins.describe()} for core in (first, second)
        }
        assert infos[first]["performance"].health.value == "healthy"
        clash = infos[second]["performance"]
        assert clash.health.value == "degraded"
        assert clash.last_error is not None
        assert f"cannot serve metrics on 127.0.0.1:{port}: address already in use" in (
            clash.last_error
        )
        _, served = await scrape(f"http://127.0.0.1:{port}/metrics")
        [build] = [labels for name, labels in served if name == "hivebus_build_info"]
        assert dict(build)["orchestrator_id"] == "core-1"
        await make_agent("w1", ["py"])
        async with HiveClient(config=hivebus_config) as hive:
            for _ in range(4):  # the queue group spreads them over both replicas
                done = await hive.delegate("t", ["py"], wait=True, wait_timeout=10)
                assert done.status is TaskStatus.COMPLETED
