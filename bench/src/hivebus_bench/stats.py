"""Latency samples summarised: percentiles by linear interpolation, medians of repeats."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["median", "median_tree", "percentile", "summarize"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """``n``, ``p50``, ``p90``, ``p99``, ``mean``, ``min``, ``max`` in milliseconds."""
    if not latencies_ms:
        return {"n": 0}
    return {
        "n": len(latencies_ms),
        "p50": round(percentile(latencies_ms, 50), 4),
        "p90": round(percentile(latencies_ms, 90), 4),
        "p99": round(percentile(latencies_ms, 99), 4),
        "mean": round(statistics.fmean(latencies_ms), 4),
        "min": round(min(latencies_ms), 4),
        "max": round(max(latencies_ms), 4),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def median_tree(trees: Sequence[Any]) -> Any:
    """Merge same-shaped JSON trees: each number becomes the median of its values.

    Keys of the first tree are kept; anything not a number (text, lists) is taken from it.
    """
    first = trees[0]
    if isinstance(first, dict):
        return {
            k: median_tree([t[k] for t in trees if isinstance(t, dict) and k in t]) for k in first
        }
    numbers = [t for t in trees if isinstance(t, int | float) and not isinstance(t, bool)]
    if numbers and len(numbers) == len(trees):
        return round(median(numbers), 4)
    return first
