"""The audit kept in JetStream: a stream of the core's account that captures the
``events.security.>`` publishes, with a configurable retention."""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
import orjson
from hivebus_hookspecs.models import AuditRequest, SecurityEvent
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from pydantic import ValidationError

from ..subjects import Subjects
from .audit import matches

__all__ = ["AUDIT_STREAM", "StreamAuditStore"]

AUDIT_STREAM = "hivebus_audit"
_SCAN = 5000
"""A query reads at most this many of the newest records."""

log = logging.getLogger("hivebus.audit")


class StreamAuditStore:
    def __init__(self, js: JetStreamContext, stream: str) -> None:
        self._js = js
        self._stream = stream

    @classmethod
    async def open(
        cls, js: JetStreamContext, subjects: Subjects, retention_s: float, replicas: int
    ) -> StreamAuditStore:
        name = AUDIT_STREAM if not subjects.prefix else f"{AUDIT_STREAM}_{_token(subjects)}"
        config = StreamConfig(
            name=name,
            subjects=[subjects.event("security.>")],
            max_age=retention_s,
            num_replicas=replicas,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)
        return cls(js, name)

    def append(self, event: SecurityEvent, payload: bytes) -> None:
        """The stream captures the published event: nothing to do here."""

    async def newest(self, req: AuditRequest) -> list[SecurityEvent]:
        info = await self._js.stream_info(self._stream)
        first, last = info.state.first_seq, info.state.last_seq
        found: list[SecurityEvent] = []
        seq = last
        while seq >= max(first, last - _SCAN + 1) and seq > 0 and len(found) < req.limit:
            try:
                msg = await self._js.get_msg(self._stream, seq)
            except (nats.js.errors.NotFoundError, nats.errors.Error):
                seq -= 1
                continue
            seq -= 1
            try:
                event = SecurityEvent.model_validate(orjson.loads(msg.data or b""))
            except (orjson.JSONDecodeError, ValidationError):
                continue
            if matches(event, req):
                found.append(event)
        return found


def _token(subjects: Subjects) -> str:
    return subjects.prefix.replace(".", "_")
