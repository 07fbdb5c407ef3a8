"""The legacy thresholds the core does not check itself, measured where the facade stands.

The core already turns ``degraded`` on ``max_error_rate_percent`` and ``max_memory_mb``. The
facade measures the rest (CPU and memory share of this process, registration and delegation
latency as its callers see them, its own start-up time) and hands the core one health check
per threshold, so the verdict shows in every ``orchestrator.status`` reply, not only here.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from hivebus_hookspecs.models import HealthStatus

from ..domain import HealthCheck
from .config import OrchestratorConfig

__all__ = ["LATENCY_WINDOW", "Thresholds"]

LATENCY_WINDOW = 100
"""Latency thresholds judge the p95 of this many most recent calls."""

Issue = tuple[HealthStatus, str]


def _p95(samples: deque[float]) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _total_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class Thresholds:
    """Measurements and their health checks for one running facade."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self.registration_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.delegation_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.initialization_ms: float | None = None
        self.cpu_percent: float | None = None
        """Share of the machine's CPU used by this process over the last sampling window."""
        self._cpu_mark = (time.monotonic(), time.process_time())

    @staticmethod
    @contextmanager
    def timing(samples: deque[float]) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            samples.append((time.perf_counter() - started) * 1000)

    def sample_cpu(self) -> None:
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu_mark
        if wall - last_wall > 0:
            share = (cpu - last_cpu) / ((wall - last_wall) * (os.cpu_count() or 1))
            self.cpu_percent = 100.0 * share
        self._cpu_mark = (wall, cpu)

    async def sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_check_interval)
            self.sample_cpu()

    @staticmethod
    def memory_percent() -> float | None:
        rss, total = _rss_bytes(), _total_memory_bytes()
        if rss is None or not total:
            return None
        return 100.0 * rss / total

    # --- checks -----------------------------------------------------------------------

    def checks(self) -> list[HealthCheck]:
        return [
            self._cpu,
            self._memory_share,
            self._registration,
            self._delegation,
            self._initialization,
        ]

    def issues(self) -> list[Issue]:
        return [issue for check in self.checks() if (issue := check()) is not None]

    def _cpu(self) -> Issue | None:
        cpu, limit = self.cpu_percent, self.config.max_cpu_percent
        if cpu is not None and cpu > limit:
            return HealthStatus.DEGRADED, f"cpu {cpu:.1f}% exceeds max_cpu_percent={limit}%"
        return None

    def _memory_share(self) -> Issue | None:
        share, limit = self.memory_percent(), self.config.max_memory_percent
        if share is not None and share > limit:
            return (
                HealthStatus.DEGRADED,
                f"memory {share:.2f}% of the machine exceeds max_memory_percent={limit}%",
            )
        return None

    def _registration(self) -> Issue | None:
        p95, limit = _p95(self.registration_ms), self.config.max_agent_registration_ms
        if p95 is not None and p95 > limit:
            return (
                HealthStatus.DEGRADED,
                f"agent registration p95 {p95:.1f} ms exceeds max_agent_registration_ms={limit}",
            )
        return None

    def _delegation(self) -> Issue | None:
        p95, limit = _p95(self.delegation_ms), self.config.max_task_delegation_ms
        if p95 is not None and p95 > limit:
            return (
                HealthStatus.DEGRADED,
                f"task delegation p95 {p95:.1f} ms exceeds max_task_delegation_ms={limit}",
            )
        return None

    def _initialization(self) -> Issue | None:
        took, limit = self.initialization_ms, self.config.max_system_initialization_ms
        if took is not None and took > limit:
            return (
                HealthStatus.DEGRADED,
                f"initialization took {took:.0f} ms, over max_system_initialization_ms={limit}",
            )
        return None

    def figures(self) -> dict[str, float | None]:
        """The measured figures, added to the ``performance`` section of the status."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "cpu_percent": rounded(self.cpu_percent),
            "memory_percent": rounded(self.memory_percent()),
            "agent_registration_p95_ms": rounded(_p95(self.registration_ms)),
            "task_delegation_p95_ms": rounded(_p95(self.delegation_ms)),
            "initialization_ms": rounded(self.initialization_ms),
        }
