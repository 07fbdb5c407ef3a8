"""The audit plugin: the hook queues, a host-owned timer writes.

``hivebus_event`` only appends the event to a bounded list (constant time, no disk); every
``flush_interval_s`` a timer hands what waits to a worker thread, which appends it to this
replica's segment. When the list is full the event is dropped and counted (status and a log
line), so a slow disk costs audit lines, never the core's time.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hivebus_hookspecs import Event, OrchestratorView, PluginContext, hookimpl
from hivebus_hookspecs.context import AlertBook
from pydantic import JsonValue

from .segments import SegmentedLog
from .settings import AuditSettings

__all__ = ["NAME", "PRUNE_EVERY_S", "AuditLog"]

NAME = "audit"
PRUNE_EVERY_S = 60.0
"""Age-based retention also runs on a quiet bus, where no segment fills up."""

log = logging.getLogger("hivebus_audit_log")


def _write(segments: SegmentedLog, events: list[Event]) -> int:
    """In the worker thread: serialising thousands of events is work the loop should not do."""
    return segments.write([event.model_dump_json().encode() + b"\n" for event in events])


class AuditLog:
    """One per core: its own queue, segment and counts."""

    def __init__(self) -> None:
        self.settings = AuditSettings()
        self.log: SegmentedLog | None = None
        self.pending: list[Event] = []
        self.written = 0
        self.bytes_written = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.start_error: str | None = None
        self.book: AlertBook | None = None
        self.fingerprint = ""
        self.dropped_seen = 0

    @hookimpl
    async def hivebus_startup(self, orchestrator: OrchestratorView, context: PluginContext) -> None:
        try:
            settings = context.settings(AuditSettings)  # a ValueError names the bad setting
            home = context.data_dir
            directory = home / (settings.directory or Path("plugins", NAME))
            segments = SegmentedLog(
                directory,
                orchestrator.orchestrator_id,
                max_file_bytes=settings.max_file_bytes,
                max_files=settings.max_files,
                max_age_s=settings.max_age_s,
            )
            try:
                await asyncio.to_thread(segments.open)  # an unwritable directory fails here
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise RuntimeError(f"cannot write the audit log in {directory}: {reason}") from exc
        except (ValueError, RuntimeError) as exc:
            # The host shows the reason; this keeps the plugin unhealthy for as long as it
            # writes nothing, not only for the moments after the failure.
            self.start_error = str(exc)
            raise
        self.settings, self.log = settings, segments
        # Each replica loses its own events: a cause per replica, fired once (the book); a
        # disk that keeps nearly keeping up makes one alert a minute, not one per look.
        interval = settings.check_interval_s
        self.book = context.alert_book(stale_after_s=3 * interval, cooldown_s=12 * interval)
        self.fingerprint = f"audit:events_dropped:{orchestrator.orchestrator_id}"
        context.every(settings.flush_interval_s, self.flush, name="flush")
        context.every(PRUNE_EVERY_S, self.prune, name="prune")
        context.every(settings.check_interval_s, self.check, name="check")

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        if self.log is None:
            return
        if len(self.pending) < self.settings.queue_size:
            self.pending.append(event)
            return
        self.dropped += 1
        if self.dropped % 1000 == 1:
            log.warning(
                "audit events dropped: the writer is behind", extra={"dropped": self.dropped}
            )

    async def flush(self) -> None:
        """Write what waits; on a failure the batch is counted as dropped and the error
        reported (the host marks the plugin degraded), and the next flush tries again."""
        segments, batch = self.log, self.pending
        if segments is None or not batch:
            return
        self.pending = []
        try:
            self.bytes_written += await asyncio.to_thread(_write, segments, batch)
        except OSError as exc:
            self.dropped += len(batch)
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        self.written += len(batch)
        self.last_error = None

    async def check(self) -> None:
        """Alert while events are being lost; resolve once a whole interval lost none."""
        book, lost = self.book, self.dropped - self.dropped_seen
        if book is None:
            return
        self.dropped_seen = self.dropped
        if lost == 0:
            await book.resolve(self.fingerprint)
            return
        directory = str(self.log.directory) if self.log else None
        await book.fire(
            "warning",
            f"audit log incomplete: {lost} lifecycle events lost in {directory}",
            fingerprint=self.fingerprint,
            details={
                "lost": lost,
                "events_dropped": self.dropped,
                "last_error": self.last_error,
                "directory": directory,
            },
        )

    async def prune(self) -> None:
        if self.log is not None:
            await asyncio.to_thread(self.log.prune)

    @hookimpl
    def hivebus_status(self) -> dict[str, JsonValue]:
        segments = self.log
        return {
            "directory": str(segments.directory) if segments else None,
            "file": str(segments.path) if segments and segments.path else None,
            "events_written": self.written,
            "events_dropped": self.dropped,
            "events_waiting": len(self.pending),
            "bytes_written": self.bytes_written,
            "segments_started": segments.started if segments else 0,
            "segments_removed": segments.removed if segments else 0,
            "last_error": self.last_error,
            "start_error": self.start_error,
        }

    @hookimpl
    def hivebus_health(self) -> str | None:
        if self.start_error is not None:
            return "unhealthy"
        return "degraded" if self.last_error is not None else None

    @hookimpl
    async def hivebus_shutdown(self) -> None:
        segments = self.log
        if segments is None:
            return
        try:
            await self.flush()  # what is left, within the host's hook timeout
        finally:
            self.log = None  # a last timer tick writes nothing more
            await asyncio.to_thread(segments.close)
