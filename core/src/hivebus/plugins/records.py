"""What the host knows of each plugin: its version, why it was refused, its failures and vetoes;
and the health it derives from them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from hivebus_hookspecs.models import HealthStatus

__all__ = ["DEGRADED_FOR_S", "HookTimeout", "PluginRecord", "PluginRecords"]

DEGRADED_FOR_S = 300.0
"""A plugin that failed stays degraded this long after its last failure."""

log = logging.getLogger("hivebus.plugins")


class HookTimeout(Exception):
    """A hook call that ran out of time: recorded with its message, logged without a trace."""


@dataclass(slots=True)
class PluginRecord:
    name: str
    version: str | None
    failures: int = 0
    last_error: str | None = None
    last_failure_at: float | None = None
    load_error: str | None = None
    started: bool = True
    """False when its ``hivebus_startup`` failed: it runs without what it set up there."""
    vetoes: int = 0
    hook_times: dict[str, tuple[int, float]] = field(default_factory=dict)
    """By hook: calls and seconds, summed."""


class PluginRecords:
    """One record per plugin the host loaded or refused, in the order they came."""

    def __init__(self) -> None:
        self._by_name: dict[str, PluginRecord] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[PluginRecord]:
        return iter(list(self._by_name.values()))

    def get(self, name: str) -> PluginRecord | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def loaded(self, name: str, version: str | None) -> None:
        self._by_name[name] = PluginRecord(name, version)

    def forget(self, name: str) -> None:
        self._by_name.pop(name, None)

    def refuse(self, name: str, version: str | None, reason: str) -> None:
        self._by_name[name] = PluginRecord(
            name, version, failures=1, load_error=reason, last_error=reason
        )
        log.error("plugin not loaded", extra={"plugin": name, "reason": reason})

    def failed(self, name: str, hook: str, exc: Exception) -> None:
        """Count a failure of plugin ``name`` in ``hook`` (or an endpoint, a timer) and log it."""
        record = self._by_name.get(name)
        if record is not None:
            record.failures += 1
            detail = str(exc) if isinstance(exc, HookTimeout) else repr(exc)
            record.last_error = f"{hook}: {detail}"
            record.last_failure_at = time.monotonic()
        if isinstance(exc, HookTimeout):
            log.error("plugin hook timed out", extra={"plugin": name, "hook": hook})
        else:
            log.error("plugin hook failed", extra={"plugin": name, "hook": hook}, exc_info=exc)

    def failures_of(self, name: str) -> int:
        record = self._by_name.get(name)
        return record.failures if record is not None else 0

    def start_failed(self, name: str) -> None:
        """Its ``hivebus_startup`` failed: degraded until the core restarts, not for a while
        (what it set up there, timers and endpoints, is missing for good)."""
        record = self._by_name.get(name)
        if record is not None:
            record.started = False

    def timed(self, name: str, hook: str, seconds: float) -> None:
        """Add one call of ``hook`` by plugin ``name`` that took ``seconds``."""
        record = self._by_name.get(name)
        if record is not None:
            calls, total = record.hook_times.get(hook, (0, 0.0))
            record.hook_times[hook] = (calls + 1, total + seconds)

    def vetoed(self, name: str) -> None:
        record = self._by_name.get(name)
        if record is not None:
            record.vetoes += 1

    def health(self, reported: Mapping[str, HealthStatus]) -> dict[str, HealthStatus]:
        """Each plugin's health: the worse of what it ``reported`` and what the host saw
        (refused: unhealthy; its start-up failed, or it failed in the last
        ``DEGRADED_FOR_S``: degraded)."""
        now = time.monotonic()
        health: dict[str, HealthStatus] = {}
        for name, record in self._by_name.items():
            observed = HealthStatus.HEALTHY
            if record.load_error is not None:
                observed = HealthStatus.UNHEALTHY
            elif not record.started or (
                record.last_failure_at is not None and now - record.last_failure_at < DEGRADED_FOR_S
            ):
                observed = HealthStatus.DEGRADED
            health[name] = HealthStatus.worst(observed, reported.get(name, HealthStatus.HEALTHY))
        return health
