"""Running figures for the status report: totals, averages and a recent rate."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Stats"]

RATE_WINDOW_S = 60.0


@dataclass(slots=True)
class Stats:
    delegations_total: int = 0
    completed_total: int = 0
    error_total: int = 0
    _duration_sum_ms: float = 0.0
    _duration_count: int = 0
    _recent: deque[float] = field(default_factory=deque)

    def delegated(self, now: float) -> None:
        self.delegations_total += 1
        self._recent.append(now)
        self._trim(now)

    def finished(self, success: bool, duration_ms: float | None) -> None:
        if success:
            self.completed_total += 1
        else:
            self.error_total += 1
        if duration_ms is not None:
            self._duration_sum_ms += duration_ms
            self._duration_count += 1

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] < now - RATE_WINDOW_S:
            self._recent.popleft()

    @property
    def average_task_duration_ms(self) -> float:
        return self._duration_sum_ms / self._duration_count if self._duration_count else 0.0

    @property
    def error_rate_percent(self) -> float:
        finished = self.completed_total + self.error_total
        return 100.0 * self.error_total / finished if finished else 0.0

    def delegations_per_second(self, now: float, uptime_s: float) -> float:
        self._trim(now)
        window = min(RATE_WINDOW_S, max(uptime_s, 1e-9))
        return len(self._recent) / window
