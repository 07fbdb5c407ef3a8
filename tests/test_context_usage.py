"""Context-window monitoring by the context plugin (installed, found by its entry point), with
two core replicas on JetStream: an agent's usage, reported by the SDK in its heartbeats, shows
in the plugin's status; passing the threshold fires one alert for that agent, however many
replicas see it and however often they check; dropping back resolves it once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import eventually
from hivebus import Agent, Core, HivebusConfig, HiveClient
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS, echo, running_cores
from hivebus_context import ContextPlugin
from nats.aio.client import Client

FINGERPRINT = "context:usage:llm-1"


def replica_config(server: EmbeddedServer, name: str) -> HivebusConfig:
    usage = {"warning": 0.8, "critical": 0.95, "interval_s": 0.05, "cooldown_s": 0}
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "orchestrator_id": name,
            "plugins": ["context"],
            "plugin_config": {"context": {"usage": usage}},
        }
    )


@pytest.fixture
async def replicas(nats_server: EmbeddedServer) -> AsyncIterator[list[Core]]:
    async with running_cores(
        *(replica_config(nats_server, f"replica-{n}") for n in range(2))
    ) as cores:
        yield cores


@pytest.fixture
async def alerts(nats_server: EmbeddedServer) -> AsyncIterator[list[dict[str, Any]]]:
    heard: list[dict[str, Any]] = []
    nc: Client = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-alerts")

    async def keep(msg: Any) -> None:
        body = json.loads(msg.data)
        if body.get("fingerprint") == FINGERPRINT:
            heard.append(body)

    await nc.subscribe("events.alert.>", cb=keep)
    await nc.flush()
    yield heard
    await nc.close()


def monitor_checks(cores: list[Core]) -> list[int]:
    checks = []
    for core in cores:
        plugin = core.plugins.pm.get_plugin("context")
        assert isinstance(plugin, ContextPlugin)
        assert plugin.usage is not None
        checks.append(plugin.usage.checks)
    return checks


async def after_more_checks(cores: list[Core], count: int) -> None:
    start = monitor_checks(cores)

    def moved() -> bool:
        now = monitor_checks(cores)
        return all(n >= s + count for n, s in zip(now, start, strict=True))

    await eventually(moved, timeout=10)


async def test_an_agent_running_full_alerts_once_and_resolves_once(
    replicas: list[Core], alerts: list[dict[str, Any]]
):
    config = replicas[0].config
    async with (
        Agent("llm-1", ["llm"], echo, config=config) as agent,
        HiveClient(config=config) as hive,
    ):
        agent.context_window_usage = 0.5  # the SDK sends it with the next heartbeat

        async def reported() -> bool:
            usage = (await hive.status())["extensions"]["context"]["usage"]
            return bool(usage["agents"] == {"llm-1": 0.5})

        await eventually(reported, timeout=10)
        await after_more_checks(replicas, 3)
        assert alerts == []

        agent.context_window_usage = 0.9
        await eventually(lambda: alerts, timeout=10)
        await after_more_checks(replicas, 10)  # both replicas saw it, many times over
        [fired] = alerts
        assert (fired["status"], fired["severity"], fired["source"]) == (
            "firing",
            "warning",
            "context",
        )
        assert fired["details"]["usage"] == 0.9
        assert "llm-1" in fired["summary"]
        status = (await hive.status())["extensions"]["context"]["usage"]
        assert status["over_warning"] == 1

        agent.context_window_usage = 0.3
        await eventually(lambda: len(alerts) == 2, timeout=10)
        await after_more_checks(replicas, 10)
        assert [a["status"] for a in alerts] == ["firing", "resolved"]


class TestBadSettings:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        usage = {"warning": 0.9, "critical": 0.5}
        return {"plugins": ["context"], "plugin_config": {"context": {"usage": usage}}}

    async def test_bad_settings_mark_the_plugin_unhealthy_saying_which(self, hive: HiveClient):
        [info] = await hive.plugins()
        assert info.name == "context"
        assert info.health.value == "unhealthy"
        assert "plugin_config.context" in (info.last_error or "")
        assert "critical must be at least warning" in (info.last_error or "")
        assert (await hive.status())["ok"] is True  # the core itself goes on
