"""``KeyValueStore.delete_if``, which the context plugin expires idle sessions with: the same
behaviour in memory and on JetStream, and a value changed between the look and the delete is
judged again rather than lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hivebus import HivebusConfig
from hivebus.connection import connect
from hivebus.context.storage import JetStreamKeyValue, open_plugin_stores
from nats.js.api import KeyValueConfig, StorageType
from pydantic import JsonValue


@pytest.fixture(params=["memory", "jetstream"])
async def kv(request: pytest.FixtureRequest, nats_server: Any) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield (await open_plugin_stores(None, "hivebus", "p", 1, StorageType.MEMORY))[0]
        return
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "stores")
    try:
        yield (await open_plugin_stores(nc.jetstream(), "hivebus", "p", 1, StorageType.FILE))[0]
    finally:
        await nc.close()


def older_than(limit: int) -> Any:
    def check(value: JsonValue) -> bool:
        return isinstance(value, dict) and isinstance(value["at"], int) and value["at"] < limit

    return check


async def test_delete_if_deletes_only_what_the_condition_holds_for(kv: Any):
    await kv.put("old", {"at": 1})
    await kv.put("new", {"at": 9})
    assert await kv.delete_if("old", older_than(5)) is True
    assert await kv.delete_if("new", older_than(5)) is False
    assert await kv.delete_if("missing", older_than(5)) is False
    assert await kv.keys() == ["new"]
    assert await kv.get("old") is None
    assert await kv.update("old", lambda v: {"at": 10}) == {"at": 10}  # a fresh start


async def test_a_value_changed_between_the_look_and_the_delete_is_kept(nats_server: Any):
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "stores")
    try:
        raw = await nc.jetstream().create_key_value(KeyValueConfig(bucket="race"))
        kv = JetStreamKeyValue(raw)
        await kv.put("session", {"at": 1})
        delete = raw.delete

        async def another_replica_writes_first(key: str, last: int | None = None) -> bool:
            if last is not None and (await raw.get(key)).value == b'{"at":1}':
                await raw.put(key, b'{"at":9}')  # an append lands after the look
            return await delete(key, last=last)

        raw.delete = another_replica_writes_first  # type: ignore[method-assign]
        looked: list[JsonValue] = []

        def idle(value: JsonValue) -> bool:
            looked.append(value)
            return older_than(5)(value)  # type: ignore[no-any-return]

        assert await kv.delete_if("session", idle) is False
        assert looked == [{"at": 1}, {"at": 9}]  # judged again, on the newer value
        assert await kv.get("session") == {"at": 9}
    finally:
        await nc.close()
