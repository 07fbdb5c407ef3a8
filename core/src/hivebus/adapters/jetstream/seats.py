"""Seats for ``max_agents``, counted by JetStream itself so that replicas cannot overshoot it.

Each active agent holds a seat: one key in a key-value bucket whose stream keeps at most
``max_agents`` messages and discards *new* ones past that. JetStream refuses the write that
would take the last seat twice, whichever replica sends it, which a check in each replica's
cache cannot do. A seat is given back by purging its key, which removes the message (a delete
would leave a marker, and a marker still takes a seat).
"""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from ...domain.ports import StateUnavailable

__all__ = ["AgentSeats"]

log = logging.getLogger("hivebus.state")

_FULL = 10077
"""JetStream's "maximum messages exceeded": the stream discards new messages when full."""
_TRANSIENT = (
    nats.js.errors.NoStreamResponseError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.NoRespondersError,
)


class AgentSeats:
    def __init__(self, js: JetStreamContext, kv: KeyValue, bucket: str) -> None:
        self._js = js
        self._kv = kv
        self._stream = f"KV_{bucket}"
        self._subject = f"$KV.{bucket}."

    @classmethod
    async def open(
        cls, js: JetStreamContext, bucket: str, seats: int, replicas: int, storage: StorageType
    ) -> AgentSeats:
        """Create the bucket, or set its number of seats to ``seats`` (the configuration of
        the replica that started last wins: give every replica the same ``max_agents``)."""
        stream = f"KV_{bucket}"
        config = StreamConfig(
            name=stream,
            subjects=[f"$KV.{bucket}.>"],
            description="hivebus: one key per active agent, at most max_agents",
            max_msgs=seats,
            max_msgs_per_subject=1,
            discard=DiscardPolicy.NEW,
            allow_rollup_hdrs=True,
            deny_delete=True,
            allow_direct=True,
            num_replicas=replicas,
            storage=storage,
        )
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
        else:
            if info.config.max_msgs != seats:
                await js.update_stream(config)
        return cls(js, await js.key_value(bucket), bucket)

    async def claim(self, agent_id: str) -> bool:
        for _ in range(3):
            try:
                return await self._claim(agent_id)
            except nats.js.errors.KeyNotFoundError:
                # nats-py's create, told the key exists, reads it back to tell a live key
                # from a deleted one; the seat was given back in between: claim it again.
                continue
        raise StateUnavailable(f"the seat of {agent_id!r} keeps changing")

    async def _claim(self, agent_id: str) -> bool:
        try:
            await self._kv.create(agent_id, b"")
        except nats.js.errors.KeyWrongLastSequenceError:
            return True  # the seat is this agent's already
        except nats.js.errors.KeyNotFoundError:
            raise  # see claim(); nats-py builds this one without the API error's fields
        except nats.js.errors.APIError as exc:
            if exc.err_code == _FULL:
                return False
            if isinstance(exc, nats.js.errors.ServiceUnavailableError):
                raise StateUnavailable(f"JetStream did not seat {agent_id!r}") from exc
            raise
        except _TRANSIENT as exc:
            raise StateUnavailable(f"JetStream did not seat {agent_id!r}") from exc
        return True

    async def release(self, agent_id: str) -> None:
        try:
            await self._js.purge_stream(self._stream, subject=self._subject + agent_id)
        except (nats.js.errors.APIError, *_TRANSIENT) as exc:
            # The seat stays taken until the periodic pass finds it unheld and tries again.
            log.warning("seat not released", extra={"agent_id": agent_id, "error": repr(exc)})

    async def holders(self) -> set[str]:
        try:
            return set(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            return set()
        except (nats.js.errors.APIError, *_TRANSIENT) as exc:
            raise StateUnavailable("JetStream did not list the seats") from exc
