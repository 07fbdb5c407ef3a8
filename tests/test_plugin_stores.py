"""A plugin's own stores: the same API in memory and on JetStream, counters safe with replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hivebus import HivebusConfig
from hivebus.connection import connect
from hivebus.context.storage import open_plugin_stores
from hivebus.context.timers import TimerSet
from nats.aio.client import Client
from nats.js.api import StorageType


@pytest.fixture(params=["memory", "jetstream"])
async def stores(request: pytest.FixtureRequest, nats_server) -> AsyncIterator[tuple[Any, Any]]:
    if request.param == "memory":
        yield await open_plugin_stores(None, "hivebus", "p", 1, StorageType.MEMORY)
        return
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "stores")
    try:
        yield await open_plugin_stores(nc.jetstream(), "hivebus", "p", 1, StorageType.FILE)
    finally:
        await nc.close()


async def test_values_are_json_and_keys_list_what_is_there(stores):
    kv, _ = stores
    assert await kv.get("missing") is None
    await kv.put("config", {"threshold": 5, "names": ["a"]})
    await kv.put("count", 1)
    assert await kv.get("config") == {"threshold": 5, "names": ["a"]}
    assert await kv.keys() == ["config", "count"]
    await kv.delete("config")
    assert await kv.keys() == ["count"]


async def test_update_applies_every_change_once_under_contention(stores):
    kv, _ = stores

    async def bump(value: Any) -> int:
        await asyncio.sleep(0)  # let the others read the same value: a real race
        return (value or 0) + 1

    await asyncio.gather(*(kv.update("count", bump) for _ in range(20)))
    assert await kv.get("count") == 20


async def test_objects_hold_bytes_by_name(stores):
    _, objects = stores
    assert await objects.get("report.pdf") is None
    await objects.put("report.pdf", b"%PDF" + bytes(200_000))
    assert (await objects.get("report.pdf"))[:4] == b"%PDF"
    assert await objects.list() == ["report.pdf"]
    await objects.delete("report.pdf")
    assert await objects.list() == []


async def test_two_replicas_share_one_counter(nats_server):
    """Two cores' contexts of the same plugin: the bucket is one, every increment counts."""
    config = HivebusConfig.load(nats_url=nats_server.url)
    clients: list[Client] = [await connect(config, f"replica-{i}") for i in range(2)]
    try:
        kvs = [
            (await open_plugin_stores(nc.jetstream(), "hivebus", "p", 1, StorageType.FILE))[0]
            for nc in clients
        ]
        await asyncio.gather(
            *(kv.update("n", lambda v: (v or 0) + 1) for kv in kvs for _ in range(15))
        )
        assert await kvs[0].get("n") == 30
        assert await kvs[1].get("n") == 30
    finally:
        for nc in clients:
            await nc.close()


async def test_timers_run_report_failures_and_stop():
    failures: list[str] = []
    ran: list[str] = []
    timers = TimerSet("p", lambda what, exc: failures.append(f"{what}: {exc}"))

    fourth = asyncio.Event()

    def tick() -> None:
        ran.append("tick")
        if len(ran) == 2:
            raise RuntimeError("second tick fails")
        if len(ran) == 4:
            fourth.set()

    timers.every(0.01, tick, name="tick")
    done = asyncio.Event()
    timers.at(0.0, done.set, name="once")
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.wait_for(fourth.wait(), 5)
    assert failures == ["timer tick: second tick fails"]  # reported, and the timer went on
    await timers.stop()
    stopped_at = len(ran)
    await asyncio.sleep(0.05)
    assert len(ran) == stopped_at
    assert len(timers) == 0
