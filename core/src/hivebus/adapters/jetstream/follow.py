"""Following a key-value bucket: its current contents once, then every change as it is stored.

This is what nats-py's ``KeyValue.watchall()`` does (an ordered push consumer on
``$KV.<bucket>.>``, starting with the last value of each key), with a lighter delivery. The
watcher turns each message into an ``Entry`` (its metadata parsed into dataclasses and a
``datetime``) and hands it to a second task through a queue; here the subscription's callback
reads only the key, the operation and the stream sequence, and delivers in place. Every write
of the core comes back to it this way, three per delegation, each on the delegation's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

__all__ = ["BucketFollower", "Deliver"]

log = logging.getLogger("hivebus.state")

Deliver = Callable[[str, bytes | None, int], None]
"""``deliver(key, value, revision)``; ``value`` is ``None`` when the key was deleted."""

_INACTIVE_THRESHOLD_S = 5 * 60.0
"""As ``KeyValue.watch``: the server removes the consumer after this long disconnected."""
_MARKER_REASON = "Nats-Marker-Reason"
_MARKER_OPS = {"MaxAge": KV_PURGE, "Purge": KV_PURGE, "Remove": KV_DEL}
"""nats-server 2.11+ expiry markers, read as ``KeyValue.watch`` reads them."""


def _sequence_and_pending(reply: str) -> tuple[int, int]:
    """The stream sequence and the messages still pending, from a JetStream reply subject:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or the form
    with a domain and an account hash after ``$JS.ACK``."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[8])
    return int(tokens[7]), int(tokens[10])


class BucketFollower:
    def __init__(self, js: JetStreamContext, kv: KeyValue, deliver: Deliver) -> None:
        self._js = js
        self._kv = kv
        self._prefix = kv._pre
        self._deliver = deliver
        self._sub: JetStreamContext.PushSubscription | None = None
        self._caught_up = asyncio.Event()
        self._delivered = 0
        self._failure: BaseException | None = None

    async def start(self, timeout: float) -> None:
        """Subscribe; return once the bucket's current contents have been delivered.

        ``timeout`` bounds each wait for the next record, not the whole snapshot. A record
        that cannot be delivered during the snapshot fails the start, as it would have with
        ``watchall``; after it, such a record is logged and skipped.
        """
        self._sub = await self._js.subscribe(
            f"{self._prefix}>",
            stream=self._kv._stream,
            cb=self._on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=_INACTIVE_THRESHOLD_S,
        )
        try:
            info = await self._sub.consumer_info()
            if info.num_pending == 0 and self._sub.delivered == 0:
                self._caught_up.set()  # an empty bucket: nothing will come to say so
            while not self._caught_up.is_set():
                seen = self._delivered
                try:
                    await asyncio.wait_for(self._caught_up.wait(), timeout)
                except TimeoutError:
                    if self._delivered == seen:  # no record for ``timeout``
                        raise nats.errors.TimeoutError from None
            if self._failure is not None:
                raise self._failure
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            # Closed or draining: the subscription goes with the connection.
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        revision, pending = _sequence_and_pending(msg.reply)
        op: str | None = None
        headers = msg.headers
        if headers:
            op = headers.get(KV_OP)
            if op is None and _MARKER_REASON in headers:
                op = _MARKER_OPS.get(headers[_MARKER_REASON])
                if op is None:  # an unknown marker: skipped, as KeyValue.watch skips it
                    self._progress(pending)
                    return
        value = None if op in (KV_DEL, KV_PURGE) or not msg.data else msg.data
        key = msg.subject[len(self._prefix) :]
        try:
            self._deliver(key, value, revision)
        except Exception as exc:
            if not self._caught_up.is_set():
                self._failure = self._failure or exc
            else:
                log.exception("state change not applied", extra={"key": key})
        self._progress(pending)

    def _progress(self, pending: int) -> None:
        self._delivered += 1
        if pending == 0:
            self._caught_up.set()
