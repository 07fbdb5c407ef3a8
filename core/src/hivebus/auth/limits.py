"""Per-principal rate limits: a token bucket each, refilled continuously."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``allow(name, rate, burst)`` takes one token from ``name``'s bucket if it has one.

    A bucket holds at most ``burst`` tokens and gains ``rate`` per second; a full bucket is
    forgotten (it is the same as a new one), so idle principals cost nothing.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def allow(self, name: str, rate: float, burst: float) -> bool:
        now = self._now()
        tokens, at = self._buckets.get(name, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[name] = (tokens, now)
            return False
        self._buckets[name] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:
            self._forget_full(rate, burst, now)
        return True

    def _forget_full(self, rate: float, burst: float, now: float) -> None:
        for name, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= burst:
                del self._buckets[name]
