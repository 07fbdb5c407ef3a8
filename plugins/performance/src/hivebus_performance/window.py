"""Recent observations: what the thresholds and recommendations judge, not all history."""

from __future__ import annotations

import math
import time
from collections import deque

__all__ = ["Window"]


class Window:
    """Values of the last ``seconds`` (at most ``limit`` of them, oldest dropped first)."""

    def __init__(self, seconds: float, limit: int = 10_000) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, float]] = deque(maxlen=limit)

    def add(self, value: float, at: float | None = None) -> None:
        self._items.append((time.time() if at is None else at, value))

    def values(self, now: float | None = None) -> list[float]:
        since = (time.time() if now is None else now) - self.seconds
        while self._items and self._items[0][0] < since:
            self._items.popleft()
        return [value for _, value in self._items]

    @staticmethod
    def quantile(values: list[float], q: float) -> float | None:
        """The nearest-rank quantile, ``None`` for no values."""
        if not values:
            return None
        ordered = sorted(values)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
