"""Fixed-size windows of what happened to one task type: memory never grows with traffic.

``Samples`` keeps the last N latencies with their times (a ring buffer); ``Outcomes`` counts
successes and failures in time buckets, so a one-hour window costs the same at one task a
minute as at a thousand a second. Every method takes ``now``: no clock is read here.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Outcomes", "Samples", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method: always one of ``values``."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class Samples:
    def __init__(self, size: int) -> None:
        self._items: deque[tuple[float, float]] = deque(maxlen=size)

    def add(self, at: float, value: float) -> None:
        self._items.append((at, value))

    def since(self, start: float) -> list[float]:
        return [value for at, value in self._items if at >= start]

    def __len__(self) -> int:
        return len(self._items)


class Outcomes:
    """Successes and failures per bucket of ``bucket_s`` seconds, over ``span_s`` seconds."""

    def __init__(self, bucket_s: float, span_s: float) -> None:
        self.bucket_s = bucket_s
        self._buckets: deque[list[int]] = deque(maxlen=math.ceil(span_s / bucket_s) + 1)
        self._first = 0  # index (time // bucket_s) of self._buckets[0]

    def add(self, at: float, ok: bool) -> None:
        index = self._advance(at)
        if index < self._first:
            return  # older than the window: nothing to count it in
        self._buckets[index - self._first][0 if ok else 1] += 1

    def counts(self, now: float, window_s: float) -> tuple[int, int]:
        """``(successes, failures)`` in the buckets that overlap the last ``window_s``."""
        self._advance(now)
        oldest = math.floor((now - window_s) / self.bucket_s) + 1
        ok = failed = 0
        for offset, (good, bad) in enumerate(self._buckets):
            if self._first + offset >= oldest:
                ok, failed = ok + good, failed + bad
        return ok, failed

    def _advance(self, at: float) -> int:
        index = math.floor(at / self.bucket_s)
        if not self._buckets:
            self._first = index
            self._buckets.append([0, 0])
        last = self._first + len(self._buckets) - 1
        if index > last:
            if index - last > (self._buckets.maxlen or 1):
                self._buckets.clear()  # silent past the whole span: start over
                self._first = index
                self._buckets.append([0, 0])
            else:
                for _ in range(index - last):
                    if len(self._buckets) == self._buckets.maxlen:
                        self._first += 1
                    self._buckets.append([0, 0])
        return index
