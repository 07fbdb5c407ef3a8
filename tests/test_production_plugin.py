"""The production plugin, installed as the distribution ``hivebus-production`` and found through
its ``hivebus`` entry point, against real cores on a real nats-server: a backed-up queue asks
for agents, a latency breach alerts and resolves, an anomaly is found against a learned
baseline, two replicas on JetStream raise one alert for one cause, and without the plugin
the core is as before.

The plugin evaluates on a timer, so checks wait for what it publishes (``eventually``) and
count evaluations through its report, never wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from contract_wire import Heard
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, TaskStatus
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from hivebus_production import ProductionPlugin
from nats.aio.client import Client
from nats.errors import NoRespondersError
from processes import spawn

FAST = 0.05
"""Seconds between evaluations in these tests."""


def production_settings(**plugin_config: Any) -> dict[str, Any]:
    return {
        "plugins": ["production"],
        "plugin_config": {"production": {"interval_s": FAST, **plugin_config}},
    }


async def evaluations_after(core: Core, count: int) -> None:
    """Wait until the plugin has evaluated ``count`` more times."""
    plugin = core.plugins.pm.get_plugin("production")
    assert isinstance(plugin, ProductionPlugin)
    seen: list[object] = []

    def moved() -> bool:
        at = plugin.report.get("evaluated_at")
        if not seen or seen[-1] != at:
            seen.append(at)
        return len(seen) > count

    await eventually(moved, timeout=10)


async def slow_or_fast(task: Offer) -> Any:
    if isinstance(task.payload, dict) and task.payload.get("sleep"):
        await asyncio.sleep(float(task.payload["sleep"]))
    return "done"


def test_the_plugin_is_an_installed_entry_point_naming_its_class():
    [ep] = [ep for ep in entry_points(group="hivebus") if ep.name == "production"]
    assert ep.dist is not None
    assert ep.dist.name == "hivebus-production"
    assert ep.load() is ProductionPlugin


# --- scaling signals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        production_settings(
            scaling={"up_queue_depth": 3, "sustain": 2, "cooldown_s": 600, "max_step": 3}
        )
    ],
)
async def test_a_queue_that_backs_up_asks_for_agents_and_idle_agents_are_offered_back(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    heard = await Heard.on(nats_client, "events.scale.>")
    release = asyncio.Event()

    async def busy(task: Offer) -> str:
        await release.wait()
        return "done"

    await make_agent("gpu-1", ["gpu"], handler=busy, max_tasks=1)
    for n in range(3):
        await make_agent(f"cpu-{n}", ["cpu"])
    for n in range(6):
        await hive.delegate("render", ["gpu"], task_id=f"r{n}")

    await eventually(lambda: heard.bodies("events.scale.up"))
    [up] = heard.bodies("events.scale.up")
    assert (up["direction"], up["source"]) == ("up", "production")
    assert up["capabilities"] == ["gpu"]
    # The signal goes out as soon as the backlog held for two evaluations: one agent of one
    # slot per waiting task, at most max_step at once.
    evidence = up["details"]
    assert 1 <= evidence["queued"] <= 5
    assert up["agents"] == min(3, evidence["queued"])
    assert (evidence["agents_now"], evidence["busy_slots"], evidence["slots"]) == (1, 1, 1)
    assert "utilisation 100%" in up["reason"]

    # Three idle cpu agents and nothing for them to do: give two back, keep min_agents.
    await eventually(lambda: heard.bodies("events.scale.down"))
    [down] = heard.bodies("events.scale.down")
    assert (down["capabilities"], down["agents"]) == (["cpu"], 2)

    # The cooldown holds: more evaluations of the same backlog send nothing more.
    await evaluations_after(hivebus_core, 10)
    assert len(heard.bodies("events.scale.up")) == 1
    status = await hive.status()
    report = status["extensions"]["production"]
    assert report["scaling_signals"] == 2
    assert report["components"]["capacity"]["score"] < 1
    assert "gpu" in report["components"]["capacity"]["why"]
    served = await nats_client.request("plugin.production.report", b"{}", timeout=5)
    body = json.loads(served.data)
    assert body["ok"] is True
    assert body["report"]["scaling_signals"] == 2
    release.set()

    async def all_done() -> bool:
        tasks = [await hive.get(f"r{n}") for n in range(6)]
        return all(t.status is TaskStatus.COMPLETED for t in tasks)

    await eventually(all_done, timeout=10)


# --- service levels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        production_settings(
            objective={"completion_p95_s": 0.2},
            window_size=3,
            min_samples=3,
            anomaly={"enabled": False},
        )
    ],
)
async def test_a_latency_breach_alerts_and_resolves_when_it_recovers(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    heard = await Heard.on(nats_client, "events.alert.>")
    await make_agent("w1", ["py"], handler=slow_or_fast, max_tasks=3)
    fingerprint = "production:slo:report:completion_p95"

    slow = [
        hive.delegate("report", ["py"], payload={"sleep": 0.3}, wait=True, wait_timeout=10)
        for _ in range(3)
    ]
    assert all(t.status is TaskStatus.COMPLETED for t in await asyncio.gather(*slow))
    await eventually(lambda: heard.bodies(fingerprint=fingerprint))
    [firing] = heard.bodies(fingerprint=fingerprint)
    assert firing["status"] == "firing"
    assert (firing["severity"], firing["source"]) == ("warning", "production")
    assert firing["details"]["objective"] == "completion_p95"
    assert firing["details"]["target_s"] == 0.2
    assert firing["details"]["value_s"] >= 0.3
    report = (await hive.status())["extensions"]["production"]
    assert report["alerts_firing"] == [fingerprint]
    assert report["health_score"] < 100
    assert "report" in report["components"]["service_levels"]["why"]
    assert report["task_types"]["report"]["completion_p95_s"] >= 0.3

    for _ in range(3):  # fast tasks push the slow ones out of the window
        await hive.delegate("report", ["py"], wait=True, wait_timeout=10)
    await eventually(lambda: len(heard.bodies(fingerprint=fingerprint)) == 2)
    resolved = heard.bodies(fingerprint=fingerprint)[1]
    assert resolved["status"] == "resolved"
    await evaluations_after(hivebus_core, 3)
    assert len(heard.bodies(fingerprint=fingerprint)) == 2  # fired once, resolved once
    report = (await hive.status())["extensions"]["production"]
    assert (report["alerts_firing"], report["health_score"]) == ([], 100)


# --- anomalies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [production_settings(anomaly={"warmup": 10, "min_duration_delta_s": 0.15})],
)
async def test_a_slowdown_is_an_anomaly_against_the_learned_baseline(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    heard = await Heard.on(nats_client, "events.alert.>")
    await make_agent("w1", ["py"], handler=slow_or_fast)
    for _ in range(12):  # the baseline: fast
        await hive.delegate("index", ["py"], wait=True, wait_timeout=10)
    await evaluations_after(hivebus_core, 2)
    assert heard.bodies() == []

    fingerprint = "production:anomaly:index:duration"
    for _ in range(6):  # now slow, until the plugin notices (two or three are enough)
        await hive.delegate("index", ["py"], payload={"sleep": 0.5}, wait=True, wait_timeout=10)
        await evaluations_after(hivebus_core, 2)
        if heard.bodies(fingerprint=fingerprint):
            break
    [alert] = heard.bodies(fingerprint=fingerprint)
    assert alert["status"] == "firing"
    details = alert["details"]
    assert details["series"] == "duration"
    assert details["baseline_mean"] < 0.15
    assert details["recent"] > details["baseline_mean"] + 0.15
    assert details["z_score"] is None or details["z_score"] > 4
    assert details["samples"] >= 13


# --- replicas --------------------------------------------------------------------------------


def replica_config(server: EmbeddedServer) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            **production_settings(
                objective={"completion_p95_s": 0.1},
                window_size=4,
                min_samples=1,
                anomaly={"enabled": False},
                scaling={"enabled": False},
            ),
        }
    )


@pytest.fixture
async def replicas(nats_server: EmbeddedServer) -> AsyncIterator[list[Core]]:
    cores = [Core(replica_config(nats_server)), Core(replica_config(nats_server))]
    for core in cores:
        await core.start()
    yield cores
    for core in cores:
        await core.stop()


def samples_seen(core: Core, task_type: str) -> int:
    plugin = core.plugins.pm.get_plugin("production")
    assert isinstance(plugin, ProductionPlugin)
    figures = plugin.report.get("task_types") or {}
    assert isinstance(figures, dict)
    entry = figures.get(task_type) or {}
    assert isinstance(entry, dict)
    return int(entry.get("completion_samples") or 0)  # type: ignore[call-overload]


async def test_two_replicas_on_jetstream_raise_one_alert_for_one_cause(
    replicas: list[Core], nats_server: EmbeddedServer
):
    config = replicas[0].config
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-alerts")
    heard = await Heard.on(nc, "events.alert.>")
    fingerprint = "production:slo:export:completion_p95"
    agent = Agent("w1", ["py"], slow_or_fast, config=config, max_tasks=4)
    try:
        async with agent, HiveClient(config=config) as hive:
            # Slow tasks until both replicas have seen some finish (the queue group spreads
            # the transitions, so each replica's plugin sees the breach for itself).
            for _ in range(40):
                await asyncio.gather(
                    *(
                        hive.delegate(
                            "export", ["py"], payload={"sleep": 0.2}, wait=True, wait_timeout=10
                        )
                        for _ in range(2)
                    )
                )
                if all(samples_seen(core, "export") for core in replicas):
                    break
            assert all(samples_seen(core, "export") for core in replicas)
            await eventually(lambda: heard.bodies(fingerprint=fingerprint))
            for core in replicas:
                await evaluations_after(core, 5)
            firing = heard.bodies(fingerprint=fingerprint, status="firing")
            assert len(firing) == 1, firing
            plugins = [core.plugins.pm.get_plugin("production") for core in replicas]
            assert all(fingerprint in p.book.firing() for p in plugins)  # both see it...
            assert sum(p.alerts_fired for p in plugins) == 1  # ...one published it

            # Fast tasks until neither replica sees the breach: one resolved alert.
            for _ in range(40):
                await asyncio.gather(
                    *(hive.delegate("export", ["py"], wait=True, wait_timeout=10) for _ in range(4))
                )
                if heard.bodies(fingerprint=fingerprint, status="resolved"):
                    break
                for core in replicas:
                    await evaluations_after(core, 1)
            await eventually(lambda: heard.bodies(fingerprint=fingerprint, status="resolved"))
            for core in replicas:
                await evaluations_after(core, 5)
            assert [b["status"] for b in heard.bodies(fingerprint=fingerprint)] == [
                "firing",
                "resolved",
            ]
    finally:
        await nc.close()


# --- disabled --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [{"plugin_autoload": True, "disable_plugins": ["production"], "plugins": ["production"]}],
)
async def test_with_the_plugin_disabled_the_core_behaves_as_before(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    heard = await Heard.on(nats_client, "events.>")
    await make_agent("w1", ["py"], handler=slow_or_fast)
    assert "production" not in hivebus_core.plugins.names()
    done = await hive.delegate("report", ["py"], wait=True, wait_timeout=10)
    assert done.status is TaskStatus.COMPLETED
    status = await hive.status()
    assert "production" not in status.get("extensions", {})
    assert status["health_status"] == "healthy"
    assert [p.name for p in await hive.plugins()] == []
    with pytest.raises(NoRespondersError):  # nobody serves the plugin's endpoint
        await nats_client.request("plugin.production.report", b"{}", timeout=2)
    assert not any(
        s.startswith(("events.plugin.production", "events.alert", "events.scale"))
        for s, _ in heard.messages
    )


# --- real processes --------------------------------------------------------------------------

AGENT_COMMAND = (
    "import json, sys, time; time.sleep(json.load(sys.stdin).get('sleep', 0)); print('\"ok\"')"
)


@pytest.mark.slow
async def test_with_real_processes_a_backlog_asks_for_agents_and_a_breach_alerts_and_resolves(
    nats_server: EmbeddedServer, nats_client: Client, tmp_path: Path
):
    config = tmp_path / "hivebus.toml"
    config.write_text(
        "plugin_autoload = false\n"
        "[plugin_config.production]\n"
        "interval_s = 0.1\nwindow_size = 3\nmin_samples = 3\n"
        "[plugin_config.production.objective]\ncompletion_p95_s = 1.5\n"
        "[plugin_config.production.anomaly]\nenabled = false\n"
        "[plugin_config.production.scaling]\nup_queue_depth = 3\nsustain = 2\ncooldown_s = 600\n"
    )
    signals = await Heard.on(nats_client, "events.scale.>")
    alerts = await Heard.on(nats_client, "events.alert.>")
    url = nats_server.url
    core = spawn("up", "--nats", url, "--config", str(config), "-p", "production", cwd=tmp_path)
    agent = None
    try:
        await core.until("serving on")
        agent = spawn(
            "agent", "--nats", url, "--id", "sh-1", "--cap", "sh", "--",
            sys.executable, "-c", AGENT_COMMAND,
            cwd=tmp_path,
        )  # fmt: skip
        async with HiveClient(nats_url=url) as hive:

            async def registered() -> bool:
                return any(a.agent_id == "sh-1" for a in await hive.agents())

            await eventually(registered, timeout=20)
            # One slot, four slow tasks: the queue backs up and every task finishes late.
            for n in range(4):
                await hive.delegate("render", ["sh"], task_id=f"slow-{n}", payload={"sleep": 0.8})
            await eventually(lambda: signals.bodies("events.scale.up"), 20)
            [up] = signals.bodies("events.scale.up")
            assert (up["capabilities"], up["details"]["agents_now"]) == (["sh"], 1)
            assert up["agents"] >= 1

            fingerprint = "production:slo:render:completion_p95"
            await eventually(lambda: alerts.bodies(fingerprint=fingerprint), timeout=30)
            assert alerts.bodies(fingerprint=fingerprint)[0]["status"] == "firing"
            for _ in range(3):  # quick ones push the late ones out of the window
                done = await hive.delegate("render", ["sh"], payload={}, wait=True, wait_timeout=30)
                assert done.status is TaskStatus.COMPLETED
            await eventually(lambda: alerts.bodies(fingerprint=fingerprint, status="resolved"), 20)
            assert [a["status"] for a in alerts.bodies(fingerprint=fingerprint)] == [
                "firing",
                "resolved",
            ]
            listed = {p.name: p.health.value for p in await hive.plugins()}
            assert listed == {"production": "healthy"}
    finally:
        if agent is not None:
            agent.stop()
        core.stop()
