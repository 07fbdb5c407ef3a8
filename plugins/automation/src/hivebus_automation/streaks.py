"""Consecutive-failure counters: a failure adds one, a success clears the key."""

from __future__ import annotations

__all__ = ["Streaks"]


class Streaks:
    """Only keys with a running streak are kept, and at most ``limit`` of them (oldest first
    out), so free-form task types cannot grow it without bound."""

    def __init__(self, limit: int = 10_000) -> None:
        self._counts: dict[str, int] = {}
        self._limit = limit

    def fail(self, key: str) -> int:
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count  # re-inserted: the most recently failing key is newest
        if len(self._counts) > self._limit:
            del self._counts[next(iter(self._counts))]
        return count

    def clear(self, key: str) -> None:
        self._counts.pop(key, None)

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)

    def at_least(self, threshold: int) -> dict[str, int]:
        return {key: n for key, n in self._counts.items() if n >= threshold}

    def __len__(self) -> int:
        return len(self._counts)
