"""Payloads and results too large for a message travel by reference, both ways, unseen.

A value whose JSON encoding is above ``offload_above_bytes`` is stored, zlib-compressed, in the
context plugin's JetStream object store, and the message carries a small reference in its
place (``hivebus_hookspecs.models.references``). ``HiveClient`` offloads payloads and resolves
results; ``Agent`` resolves payloads and offloads results: neither side's code changes.

The SDK reaches the store through JetStream directly, not through the core: one object-store
put or get moves the bytes in 128 KiB chunks with flow control, no core replica holds them in
memory, and the core's request path never sees more than the reference (docs/context.md
gives the figures). Where the store cannot be reached (no context plugin on a JetStream core,
or a secure bus, whose clients have no JetStream), a value that fits a message goes inline as
before and a larger one is refused with ``ReferenceUnavailable`` saying why.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib

import nats.errors
import nats.js.errors
import orjson
from hivebus_hookspecs.models.references import Reference, as_reference
from nats.aio.client import Client
from nats.js.object_store import ObjectStore
from pydantic import JsonValue

from ..config import HivebusConfig
from ..subjects import plugin_bucket

__all__ = [
    "DEFAULT_OFFLOAD_ABOVE_BYTES",
    "ReferenceUnavailable",
    "References",
]

log = logging.getLogger("hivebus.references")

DEFAULT_OFFLOAD_ABOVE_BYTES = 256 * 1024
"""Half the core's default ``max_payload_bytes``: room for the rest of the request."""
PLUGIN = "context"
COMPRESSION_LEVEL = 6
PROBE_TIMEOUT_S = 2.0
"""How long the first look for JetStream may take: a healthy server answers in milliseconds."""
RECHECK_S = 60.0
"""A look that went unanswered is tried again after this long (it may have been a hiccup)."""


class ReferenceUnavailable(Exception):
    """A value cannot travel: too large for a message and no object store to put it in, or a
    reference that cannot be read back (store unreachable, object removed, corrupted)."""


def _pack(data: bytes) -> tuple[bytes, str]:
    """The compressed form and the digest of a JSON encoding; run in a thread."""
    return zlib.compress(data, COMPRESSION_LEVEL), hashlib.sha256(data).hexdigest()


def _unpack(ref: Reference, stored: bytes) -> JsonValue:
    data = zlib.decompress(stored)
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ReferenceUnavailable(f"object {ref.name!r} does not match its reference")
    value: JsonValue = orjson.loads(data)
    return value


class References:
    """Offloads and resolves values for one connection; opens the store on first need."""

    def __init__(self, nc: Client, config: HivebusConfig) -> None:
        self.nc = nc
        self._timeout_s = config.request_timeout_s
        configured = config.plugin_settings(PLUGIN).get(
            "offload_above_bytes", DEFAULT_OFFLOAD_ABOVE_BYTES
        )
        if not isinstance(configured, int) or isinstance(configured, bool) or configured < 1:
            raise ValueError(
                f"plugin_config.context.offload_above_bytes: a positive integer, not {configured!r}"
            )
        # Never above half what the server carries: the rest of the message needs room too.
        self.offload_above_bytes = min(configured, max(1, nc.max_payload // 2))
        """From ``[plugin_config.context]``, the same table the plugin reads."""
        self.bucket = f"{plugin_bucket(config.prefix, PLUGIN)}_objects"
        self._store: ObjectStore | None = None
        self._checked = False
        self._no_jetstream = ""
        self._recheck_at = 0.0

    async def _open(self, bucket: str | None = None) -> tuple[ObjectStore | None, str]:
        """The store (ours unless ``bucket`` names another), or ``None`` and the reason it
        cannot be reached."""
        bucket = bucket or self.bucket
        if bucket == self.bucket and self._store is not None:
            return self._store, ""
        loop = asyncio.get_running_loop()
        if self._no_jetstream and loop.time() < self._recheck_at:
            return None, self._no_jetstream
        js = self.nc.jetstream(timeout=self._timeout_s)
        if not self._checked:
            # A secure bus's clients may not publish to $JS.API at all (the server drops it,
            # the request can only time out): ask once, briefly, and remember the answer
            # rather than wait out a store lookup for every large value.
            probe = self.nc.jetstream(timeout=min(self._timeout_s, PROBE_TIMEOUT_S))
            try:
                await probe.account_info()
            except nats.errors.Error as exc:
                self._no_jetstream = (
                    "this connection has no JetStream (a secure bus, or a server without -js): "
                    f"{type(exc).__name__}: {exc}"
                )
                silent = isinstance(exc, nats.errors.TimeoutError | nats.errors.NoRespondersError)
                self._recheck_at = loop.time() + (RECHECK_S if silent else float("inf"))
                return None, self._no_jetstream
            self._checked = True
        try:
            store = await js.object_store(bucket)
        except nats.js.errors.BucketNotFoundError:
            return None, (
                f"the object store {bucket!r} does not exist: enable the context plugin "
                "on a core with JetStream state"
            )
        except nats.errors.Error as exc:
            return None, f"the object store {bucket!r} cannot be reached: {exc!r}"
        if bucket == self.bucket:
            self._store = store
        return store, ""

    async def offload(self, value: JsonValue, name: str) -> JsonValue:
        """``value`` itself when it is small, else a reference to its stored copy."""
        if value is None or isinstance(value, bool | int | float):
            return value
        data = orjson.dumps(value)
        if len(data) <= self.offload_above_bytes:
            return value
        store, why_not = await self._open()
        if store is None:
            if len(data) < self.nc.max_payload:
                log.info("sent inline, no store for references", extra={"reason": why_not})
                return value  # as before references: the core takes it or says it is too large
            raise ReferenceUnavailable(
                f"{name}: {len(data)} bytes cannot travel in a message and cannot be sent by "
                f"reference: {why_not}"
            )
        packed, digest = await asyncio.to_thread(_pack, data)
        async with asyncio.timeout(self._store_timeout(len(packed))):
            await store.put(name, packed)
        ref = Reference(
            bucket=self.bucket, name=name, size=len(data), stored=len(packed), sha256=digest
        )
        log.debug("value sent by reference", extra={"object": name, "bytes": len(data)})
        return ref.wire()

    async def resolve(self, value: JsonValue) -> JsonValue:
        """The value a reference stands for; any other value as it is."""
        try:
            ref = as_reference(value)
        except ValueError as exc:
            raise ReferenceUnavailable(str(exc)) from None
        if ref is None:
            return value
        store, why_not = await self._open(ref.bucket)
        if store is None:
            raise ReferenceUnavailable(f"cannot read {ref.name!r}: {why_not}")
        try:
            async with asyncio.timeout(self._store_timeout(ref.stored)):
                result = await store.get(ref.name)
        except nats.js.errors.ObjectNotFoundError:
            raise ReferenceUnavailable(
                f"{ref.name!r} is no longer in {ref.bucket!r} (removed after its task ended?)"
            ) from None
        return await asyncio.to_thread(_unpack, ref, result.data or b"")

    def _store_timeout(self, size: int) -> float:
        """The request timeout, plus a second for every 8 MiB moved (a slow link)."""
        return self._timeout_s + size / (8 * 1024 * 1024)
