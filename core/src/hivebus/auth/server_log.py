"""Refusals the NATS server makes itself, read from its log into the audit.

The server enforces subject permissions (who may subscribe to an agent's offers, publish
events, touch JetStream) and authentication; the core never sees those attempts. The server
logs each one, naming the account and the nkey: this follower turns those lines into
security events, so the audit holds them too. It reads the log of the embedded server that
``hivebus up --auth`` starts (configuration ``nats_server_log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["ServerLogFollower", "parse_refusal"]

log = logging.getLogger("hivebus.audit")

# The identity and the subject end the line; the connection name before them is the client's
# own choice, so nothing is read from it (the pattern is anchored at the end of the line).
_VIOLATION = re.compile(
    r' - "(?P<account>[A-Za-z0-9_$-]+)/nkey:(?P<key>U[A-Z2-7]{55})"'
    r' - (?P<what>Publish|Subscription) Violation - Subject "(?P<subject>[^"]*)"'
    r'(?:[^"\n]*"(?P<queue>[^"]*)")?[^"\n]*$'
)
_AUTH = re.compile(r'\[ERR\] .* - authentication error(?: - Nkey "(?P<key>U[A-Z2-7]{55})")?\s*$')

Refusal = tuple[str, str | None, str]
"""(operation, nkey or None, what was refused)."""


def parse_refusal(line: str) -> Refusal | None:
    found = _VIOLATION.search(line)
    if found is not None:
        operation = "server-publish" if found["what"] == "Publish" else "server-subscribe"
        verb = "publish to" if found["what"] == "Publish" else "subscribe to"
        what = f"the NATS server refused to let it {verb} {found['subject']}"
        if found["queue"]:
            what += f" (queue group {found['queue']})"
        return operation, found["key"], what
    found = _AUTH.search(line)
    if found is not None:
        return "server-connect", found["key"], "the NATS server refused the connection"
    return None


class ServerLogFollower:
    def __init__(
        self, path: Path, on_refusal: Callable[[Refusal], None], poll_s: float = 0.2
    ) -> None:
        self._path = path
        self._on_refusal = on_refusal
        self._poll_s = poll_s
        self._offset = path.stat().st_size if path.exists() else 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hivebus-server-log-audit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        pending = b""
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                chunk = await asyncio.to_thread(self._read)
            except OSError:
                continue
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for raw in lines:
                refusal = parse_refusal(raw.decode(errors="replace"))
                if refusal is not None:
                    try:
                        self._on_refusal(refusal)
                    except Exception:
                        log.exception("server refusal not audited")

    def _read(self) -> bytes:
        with open(self._path, "rb") as file:
            size = file.seek(0, 2)
            if size < self._offset:  # rotated or truncated: start over
                self._offset = 0
            file.seek(self._offset)
            data = file.read(1024 * 1024)
            self._offset += len(data)
            return data
