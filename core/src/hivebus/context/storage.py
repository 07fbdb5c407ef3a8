"""A plugin's own state: a key-value store and an object store, on JetStream or in memory.

With JetStream each plugin gets a bucket of its own (``<stem>_plugin_<name>``) and an object
store (``<stem>_plugin_<name>_objects``): its state survives a restart of the core and is the
same for every replica. ``update`` is a compare-and-set loop, so a counter kept by two
replicas counts every increment once. In memory (``state = "memory"``) the same API keeps the
state in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import nats.js.errors
import orjson
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from ..adapters.jetstream.state import open_bucket
from ..subjects import plugin_bucket

__all__ = [
    "JetStreamKeyValue",
    "JetStreamObjects",
    "LazyKeyValue",
    "LazyObjects",
    "MemoryKeyValue",
    "MemoryObjects",
    "StoreContended",
    "StoreOpener",
    "open_plugin_stores",
    "plugin_bucket",
]

Change = Callable[[Any], Any | Awaitable[Any]]
"""``change(current_value_or_None) -> new value``; may be a coroutine function."""

UPDATE_RETRIES = 32
"""Compare-and-set attempts of one ``update``, each after a random pause that grows, so that
contenders (coroutines, replicas) spread out instead of colliding again in step."""


WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a compare-and-set that lost (``wrong last sequence``)."""


class StoreContended(Exception):
    """``update`` lost its compare-and-set this many times in a row: try again later."""


async def _apply(change: Change, current: Any) -> Any:
    value = change(current)
    if inspect.isawaitable(value):
        value = await value
    return value


class MemoryKeyValue:
    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        self._changing = asyncio.Lock()  # a change function may await: one at a time

    async def get(self, key: str) -> Any:
        data = self._values.get(key)
        return None if data is None else orjson.loads(data)

    async def put(self, key: str, value: Any) -> None:
        self._values[key] = orjson.dumps(value)

    async def update(self, key: str, change: Change) -> Any:
        async with self._changing:
            value = await _apply(change, await self.get(key))
            await self.put(key, value)
            return value

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def delete_if(self, key: str, condition: Callable[[Any], bool]) -> bool:
        async with self._changing:
            current = await self.get(key)
            if current is None or not condition(current):
                return False
            self._values.pop(key, None)
            return True

    async def keys(self) -> list[str]:
        return sorted(self._values)


class JetStreamKeyValue:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def _entry(self, key: str) -> tuple[Any, int]:
        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        if entry.value is None or entry.revision is None:
            return None, 0
        return orjson.loads(entry.value), entry.revision

    async def get(self, key: str) -> Any:
        return (await self._entry(key))[0]

    async def put(self, key: str, value: Any) -> None:
        await self._kv.put(key, orjson.dumps(value))

    async def update(self, key: str, change: Change) -> Any:
        for attempt in range(UPDATE_RETRIES):
            if attempt:
                await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))
            current, revision = await self._entry(key)
            value = await _apply(change, current)
            data = orjson.dumps(value)
            try:
                if revision:
                    await self._kv.update(key, data, last=revision)
                else:
                    await self._kv.create(key, data)
                return value
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another replica changed it: decide again on its value
        raise StoreContended(f"key {key!r} kept changing under {UPDATE_RETRIES} updates")

    async def delete(self, key: str) -> None:
        await self._kv.delete(key)

    async def delete_if(self, key: str, condition: Callable[[Any], bool]) -> bool:
        for attempt in range(UPDATE_RETRIES):
            if attempt:
                await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))
            current, revision = await self._entry(key)
            if not revision or not condition(current):
                return False
            try:
                await self._kv.delete(key, last=revision)
                return True
            except nats.js.errors.APIError as exc:
                # nats.py names this error for update() only; delete() raises the API's own
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                continue  # changed meanwhile: judge the newer value
        raise StoreContended(f"key {key!r} kept changing under {UPDATE_RETRIES} deletes")

    async def keys(self) -> list[str]:
        try:
            return sorted(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            return []


class MemoryObjects:
    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    async def put(self, name: str, data: bytes) -> None:
        self._objects[name] = bytes(data)

    async def get(self, name: str) -> bytes | None:
        return self._objects.get(name)

    async def delete(self, name: str) -> None:
        self._objects.pop(name, None)

    async def list(self) -> list[str]:
        return sorted(self._objects)


class JetStreamObjects:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def put(self, name: str, data: bytes) -> None:
        await self._store.put(name, data)

    async def get(self, name: str) -> bytes | None:
        try:
            result = await self._store.get(name)
        except nats.js.errors.ObjectNotFoundError:
            return None
        return result.data

    async def delete(self, name: str) -> None:
        with contextlib.suppress(nats.js.errors.ObjectNotFoundError):
            await self._store.delete(name)

    async def list(self) -> list[str]:
        try:
            infos = await self._store.list()
        except nats.js.errors.NotFoundError:
            return []
        return sorted(info.name for info in infos if not info.deleted)


async def open_plugin_stores(
    js: JetStreamContext | None, stem: str, plugin: str, replicas: int, storage: StorageType
) -> tuple[MemoryKeyValue | JetStreamKeyValue, MemoryObjects | JetStreamObjects]:
    """The plugin's stores: on JetStream when ``js`` is given, else in memory."""
    if js is None:
        return MemoryKeyValue(), MemoryObjects()
    bucket = f"{stem}_plugin_{re.sub(r'[^A-Za-z0-9_-]', '_', plugin)}"
    described = f"hivebus plugin {plugin}"
    kv = await open_bucket(js, bucket, replicas, storage, f"{described}: its key-value state")
    try:
        objects = await js.object_store(f"{bucket}_objects")
    except nats.js.errors.BucketNotFoundError:
        objects = await js.create_object_store(
            f"{bucket}_objects",
            config=ObjectStoreConfig(
                replicas=replicas,
                storage=storage,
                description=f"{described}: its objects",
            ),
        )
    return JetStreamKeyValue(kv), JetStreamObjects(objects)


Stores = tuple[MemoryKeyValue | JetStreamKeyValue, MemoryObjects | JetStreamObjects]


class StoreOpener:
    """Opens a plugin's stores on first use, once: a plugin that keeps no state costs no
    bucket."""

    def __init__(self, open_stores: Callable[[], Awaitable[Stores]]) -> None:
        self._open = open_stores
        self._stores: Stores | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Stores:
        if self._stores is None:
            async with self._lock:
                if self._stores is None:
                    self._stores = await self._open()
        return self._stores


class LazyKeyValue:
    def __init__(self, stores: StoreOpener) -> None:
        self._stores = stores

    async def get(self, key: str) -> Any:
        return await (await self._stores())[0].get(key)

    async def put(self, key: str, value: Any) -> None:
        await (await self._stores())[0].put(key, value)

    async def update(self, key: str, change: Change) -> Any:
        return await (await self._stores())[0].update(key, change)

    async def delete(self, key: str) -> None:
        await (await self._stores())[0].delete(key)

    async def delete_if(self, key: str, condition: Callable[[Any], bool]) -> bool:
        return await (await self._stores())[0].delete_if(key, condition)

    async def keys(self) -> list[str]:
        return await (await self._stores())[0].keys()


class LazyObjects:
    def __init__(self, stores: StoreOpener) -> None:
        self._stores = stores

    async def put(self, name: str, data: bytes) -> None:
        await (await self._stores())[1].put(name, data)

    async def get(self, name: str) -> bytes | None:
        return await (await self._stores())[1].get(name)

    async def delete(self, name: str) -> None:
        await (await self._stores())[1].delete(name)

    async def list(self) -> list[str]:
        return await (await self._stores())[1].list()
