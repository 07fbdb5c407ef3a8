"""The audit: every denial and every allowed state-changing request, kept and announced.

Each record is published on ``events.security.<decision>``. Where it is kept depends on the
core's state: with JetStream, a stream of the core's account captures those subjects (so the
publish is the append, see ``audit_stream.py``); in memory-state mode, a rotating JSON-lines
file (``FileAuditStore``) keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import orjson
from hivebus_hookspecs.models import AuditRequest, Decision, SecurityEvent
from pydantic import ValidationError

from ..codec import encode
from ..subjects import Subjects

__all__ = ["AuditLog", "AuditStore", "FileAuditStore", "matches"]

log = logging.getLogger("hivebus.audit")


class AuditStore(Protocol):
    def append(self, event: SecurityEvent, payload: bytes) -> None: ...

    async def newest(self, req: AuditRequest) -> list[SecurityEvent]: ...


def matches(event: SecurityEvent, req: AuditRequest) -> bool:
    if req.denied and event.decision is Decision.ALLOWED:
        return False
    return req.principal is None or event.principal == req.principal


class AuditLog:
    def __init__(
        self, publish: Callable[[str, bytes], None], subjects: Subjects, store: AuditStore
    ) -> None:
        self._publish = publish
        self._subjects = subjects
        self.store = store

    def record(self, event: SecurityEvent) -> None:
        payload = encode(event)
        self.store.append(event, payload)
        self._publish(self._subjects.event(event.event), payload)
        if event.decision is not Decision.ALLOWED:
            log.warning(
                "request refused",
                extra={
                    "decision": event.decision.value,
                    "principal": event.principal or "-",
                    "operation": event.operation,
                    "reason": event.reason,
                },
            )

    async def newest(self, req: AuditRequest) -> list[SecurityEvent]:
        return await self.store.newest(req)


class FileAuditStore:
    """JSON lines in ``path``, rotated to ``path.1`` ... ``path.<backups>`` past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, event: SecurityEvent, payload: bytes) -> None:
        try:
            if self.path.exists() and self.path.stat().st_size + len(payload) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as file:
                file.write(payload + b"\n")
        except OSError:
            log.exception("audit record not written", extra={"path": str(self.path)})

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def _files(self) -> Iterator[Path]:
        yield self.path
        for i in range(1, self.backups + 1):
            yield self.path.with_name(f"{self.path.name}.{i}")

    async def newest(self, req: AuditRequest) -> list[SecurityEvent]:
        # Up to (backups + 1) files of max_bytes: read off the event loop.
        return await asyncio.to_thread(self._newest, req)

    def _newest(self, req: AuditRequest) -> list[SecurityEvent]:
        found: list[SecurityEvent] = []
        for path in self._files():
            lines: list[bytes] = []
            with contextlib.suppress(FileNotFoundError):
                lines = path.read_bytes().splitlines()
            for line in reversed(lines):
                try:
                    event = SecurityEvent.model_validate(orjson.loads(line))
                except (orjson.JSONDecodeError, ValidationError):
                    continue
                if matches(event, req):
                    found.append(event)
                    if len(found) >= req.limit:
                        return found
        return found
