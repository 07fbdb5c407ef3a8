"""The plugin context's alert book: one alert per cause across replicas, resolved once.

Two books stand for two core replicas: they share one bucket (the plugin's, on a real
JetStream server, or in memory) and each announces through its own recorder. A clock moved by
hand makes staleness and the cooldown exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from hivebus import HivebusConfig
from hivebus.connection import connect
from hivebus.context.alerts import CoreAlertBook
from hivebus.context.storage import open_plugin_stores
from hivebus_hookspecs.models import Alert, AlertSeverity, AlertStatus
from nats.js.api import StorageType


class Announcer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool]] = []

    def alert(
        self,
        severity: AlertSeverity | str,
        summary: str,
        *,
        fingerprint: str,
        details: Mapping[str, Any] | None = None,
        resolved: bool = False,
    ) -> Alert:
        self.sent.append((fingerprint, str(severity), resolved))
        return Alert(
            severity=AlertSeverity(severity),
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            source="test",
            summary=summary,
            details=dict(details or {}),
            fingerprint=fingerprint,
            timestamp=0.0,
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "jetstream"])
async def kv(request: pytest.FixtureRequest, nats_server) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield (await open_plugin_stores(None, "hivebus", "p", 1, StorageType.MEMORY))[0]
        return
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "alerts")
    try:
        yield (await open_plugin_stores(nc.jetstream(), "hivebus", "p", 1, StorageType.FILE))[0]
    finally:
        await nc.close()


def replicas(kv: Any, clock: Clock, **settings: float) -> list[tuple[CoreAlertBook, Announcer]]:
    books = []
    for name in ("core-a", "core-b"):
        announcer = Announcer()
        settings = {"stale_after_s": 60.0, "cooldown_s": 0.0, **settings}
        books.append((CoreAlertBook(kv, announcer, name, clock=clock, **settings), announcer))
    return books


def sent(*books: tuple[CoreAlertBook, Announcer]) -> list[tuple[str, str, bool]]:
    return [message for _, announcer in books for message in announcer.sent]


async def test_a_cause_both_replicas_see_fires_once_and_resolves_once(kv):
    clock = Clock()
    (a, a_out), (b, b_out) = replicas(kv, clock)
    for _ in range(3):  # every evaluation restates what each replica sees
        results = await asyncio.gather(
            a.fire("warning", "queue backs up", fingerprint="queue"),
            b.fire("warning", "queue backs up", fingerprint="queue"),
        )
        clock.now += 5
    assert sent((a, a_out), (b, b_out)) == [("queue", "warning", False)]
    assert a.firing() == b.firing() == ["queue"]
    assert results == [False, False]

    assert await a.resolve("queue") is False  # b still sees it
    assert sent((a, a_out), (b, b_out)) == [("queue", "warning", False)]
    assert await b.resolve("queue") is True
    assert b_out.sent[-1] == ("queue", "warning", True)
    assert b.firing() == []
    # a keeps restating what it no longer sees while the record says firing (so it would
    # resolve the alert if b went away); here it learns b resolved it, and publishes nothing.
    assert await a.resolve("queue") is False
    assert a.firing() == []
    assert len(sent((a, a_out), (b, b_out))) == 2


async def test_a_replica_that_went_away_does_not_hold_an_alert_firing(kv):
    clock = Clock()
    (a, _), (b, b_out) = replicas(kv, clock, stale_after_s=30.0)
    await a.fire("critical", "disk full", fingerprint="disk")
    await b.fire("critical", "disk full", fingerprint="disk")
    clock.now += 31  # a stops confirming: it crashed
    assert await b.resolve("disk") is True
    assert b_out.sent == [("disk", "critical", True)]


async def test_a_flapping_cause_fires_again_only_after_the_cooldown(kv):
    clock = Clock()
    (a, a_out), _ = replicas(kv, clock, cooldown_s=60.0)
    assert await a.fire("warning", "slow", fingerprint="latency") is True
    assert await a.resolve("latency") is True
    clock.now += 10
    assert await a.fire("warning", "slow", fingerprint="latency") is False  # within cooldown
    assert a.firing() == []
    clock.now += 51
    assert await a.fire("warning", "slow", fingerprint="latency") is True
    assert [resolved for _, _, resolved in a_out.sent] == [False, True, False]


async def test_a_restarted_replica_resolves_what_it_left_firing(kv):
    clock = Clock()
    (a, _), _ = replicas(kv, clock)
    await a.fire("warning", "offers refused", fingerprint="agent-7", details={"refused": 9})
    restarted_out = Announcer()
    restarted = CoreAlertBook(
        kv, restarted_out, "core-a", stale_after_s=60.0, cooldown_s=0.0, clock=clock
    )
    assert await restarted.resolve("agent-7") is True
    assert restarted_out.sent == [("agent-7", "warning", True)]


async def test_a_cause_held_only_by_a_replica_that_went_away_is_swept_once(kv):
    clock = Clock()
    (a, _), (b, b_out) = replicas(kv, clock, stale_after_s=30.0)
    await a.fire("warning", "agent-7 refuses offers", fingerprint="agent-7")
    assert await b.sweep() == 0  # a still confirms it: nothing to write
    clock.now += 31  # a went away for good; b never saw the cause, so never restates it
    assert b.firing() == []
    assert await b.sweep() == 1
    assert b_out.sent == [("agent-7", "warning", True)]
    assert await b.sweep() == 0  # resolved once
    assert await a.fire("warning", "agent-7 refuses offers", fingerprint="agent-7") is True
