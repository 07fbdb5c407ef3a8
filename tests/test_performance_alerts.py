"""The performance plugin's threshold alerts with two core replicas sharing one JetStream bus:
a breach fires one alert, whichever replicas see it, and one ``resolved`` when it recovers.

The plugin evaluates on a short timer; checks wait for what it publishes (``eventually``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import eventually
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, TaskStatus
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS, running_cores
from hivebus_performance import PerformancePlugin
from hivebus_performance.evaluation import Evaluator

FINGERPRINT = "performance:error_rate"


def replica_config(server: EmbeddedServer) -> HivebusConfig:
    settings = {
        "port": 0,
        "interval_s": 0.05,
        "window_s": 1.5,
        "min_tasks": 4,
        "max_error_rate_percent": 20.0,
        "alert_cooldown_s": 0.0,
        # only the error rate is under test: the machine's own figures must not alert
        "max_cpu_percent": None,
        "max_memory_percent": None,
        "max_memory_mb": None,
        "max_disk_percent": None,
        "max_task_delegation_ms": None,
    }
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "plugins": ["performance"],
            "plugin_config": {"performance": settings},
        }
    )


@pytest.fixture
async def replicas(nats_server: EmbeddedServer) -> AsyncIterator[list[Core]]:
    async with running_cores(replica_config(nats_server), replica_config(nats_server)) as cores:
        yield cores


def evaluator_of(core: Core) -> Evaluator:
    plugin = core.plugins.pm.get_plugin("performance")
    assert isinstance(plugin, PerformancePlugin)
    assert plugin.evaluator is not None
    return plugin.evaluator


def firing(core: Core) -> list[str]:
    return evaluator_of(core).book.firing()


async def fail_or_not(task: Offer) -> Any:
    if task.payload == "fail":
        raise RuntimeError("asked to fail")
    return "ok"


async def test_an_error_rate_breach_fires_once_across_replicas_and_resolves_once(
    replicas: list[Core], nats_server: EmbeddedServer
):
    config = replicas[0].config
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-alerts")
    alerts: list[dict[str, Any]] = []

    async def keep(msg: Any) -> None:
        alerts.append(json.loads(msg.data))

    await nc.subscribe("events.alert.>", cb=keep)
    await nc.flush()

    def heard(status: str | None = None) -> list[dict[str, Any]]:
        return [
            a
            for a in alerts
            if a["fingerprint"] == FINGERPRINT and (status is None or a["status"] == status)
        ]

    agent = Agent("w1", ["py"], fail_or_not, config=config, max_tasks=4)
    try:
        async with agent, HiveClient(config=config) as hive:
            # Failures until both replicas see the breach (the queue group spreads the
            # transitions, so each replica's plugin judges its own share).
            for _ in range(30):
                for _ in range(4):
                    task = await hive.delegate("job", ["py"], payload="fail", wait=True)
                    assert task.status is TaskStatus.FAILED
                if all(FINGERPRINT in firing(core) for core in replicas):
                    break
            await eventually(lambda: heard("firing"))
            for core in replicas:
                assert FINGERPRINT in firing(core)
            fired = heard("firing")
            assert len(fired) == 1, fired
            assert fired[0]["source"] == "performance"
            assert fired[0]["severity"] == "warning"
            assert fired[0]["details"]["limit"] == 20.0
            assert sum(evaluator_of(core).alerts_fired for core in replicas) == 1
            status = await hive.status()
            assert FINGERPRINT in status["extensions"]["performance"]["alerts_firing"]

            # The failures leave the window: the rate is judged within the limit again.
            await eventually(lambda: heard("resolved"), timeout=10)
            evaluated = [evaluator_of(core).evaluated_at for core in replicas]
            await eventually(
                lambda: all(
                    evaluator_of(core).evaluated_at != seen
                    for core, seen in zip(replicas, evaluated, strict=True)
                )
            )
            assert [a["status"] for a in heard()] == ["firing", "resolved"]
            for core in replicas:
                assert FINGERPRINT not in firing(core)
    finally:
        await nc.close()
