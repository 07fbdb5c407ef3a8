"""Compare-and-set writes to JetStream key-value buckets, on the hot path of every transition.

A write is what nats-py's ``KeyValue.update`` sends: a publish to ``$KV.<bucket>.<key>`` with
the ``Nats-Expected-Last-Subject-Sequence`` header, answered by the stream's acknowledgement
(``{"stream", "seq"}``, or ``{"error": {...}}``). ``KeyValue.update`` goes through the generic
request path for it: random bytes from the OS for a reply token, ``asyncio.wait_for``, the
standard library's JSON parser and a ``PubAck`` object, which together cost the core about as
much CPU as the rest of the write. Here the answers come to one inbox subscription, keyed by a
counter, parsed with orjson. A delegation stores three transitions in a row, so this is on
its critical path three times.

Errors are nats-py's own (``KeyWrongLastSequenceError``, ``TimeoutError``,
``NoRespondersError``, ``APIError``), so callers handle both paths the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["CasWriter"]

_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST = frozenset({10071, 10164})
"""JetStream's "wrong last sequence" error codes (as nats-py's ``KeyValue`` reads them)."""
_NO_RESPONDERS = "503"
_HEADROOM = 256
"""Bytes for the reply subject and the compare-and-set header on top of subject and data."""


class CasWriter:
    def __init__(self, nc: Client, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = ""
        self._tokens = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._answer)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None

    async def _answer(self, msg: Msg) -> None:
        waiter = self._waiting.get(msg.subject[len(self._prefix) :])
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    async def write(self, subject: str, data: bytes, last: int) -> int:
        """Store ``data`` if the key's last revision is ``last`` (0: it has none); the new one.

        Raises ``KeyWrongLastSequenceError`` when the key is at another revision.
        """
        if len(data) + len(subject) + _HEADROOM > self._nc.max_payload:
            # The server would close the connection for it (headers count too), taking
            # the core off the bus: refuse here instead.
            raise nats.errors.MaxPayloadError
        token = str(next(self._tokens))
        waiter: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiter
        try:
            await self._nc.publish(
                subject, data, reply=self._prefix + token, headers={_EXPECTED_LAST: str(last)}
            )
            try:
                async with asyncio.timeout(self._timeout):
                    msg = await waiter
            except TimeoutError:
                raise nats.errors.TimeoutError from None
        finally:
            del self._waiting[token]
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            raise nats.js.errors.NoStreamResponseError
        ack = orjson.loads(msg.data)
        error = ack.get("error")
        if error is not None:
            if error.get("err_code") in _WRONG_LAST:
                raise nats.js.errors.KeyWrongLastSequenceError(description=error.get("description"))
            nats.js.errors.APIError.from_error(error)  # raises the matching nats-py error
        return int(ack["seq"])
