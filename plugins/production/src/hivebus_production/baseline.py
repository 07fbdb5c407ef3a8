"""An adaptive baseline: what is normal for a series is learned from the series itself.

Two exponentially weighted averages follow each series (a task type's durations, or its
failures as 0/1): a slow one with its variance is the baseline, a fast one is the recent
level. The recent level standing more than ``z`` baseline deviations above the baseline (and
more than a minimum absolute step, so a near-constant series does not alarm on noise) is an
anomaly. The baseline keeps learning from every sample, so a lasting change becomes the new
normal and the anomaly resolves by itself: it flags change, not a fixed number.

The baseline learns from each sample's deviation clipped to the alarm bound (a Huber-style
update): unclipped, the first slow samples would inflate the variance so much that the change
they announce could never stand out; clipped, the baseline still follows a lasting change,
at a pace set by ``slow_alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import JsonValue

__all__ = ["Baseline"]


@dataclass
class Baseline:
    slow_alpha: float
    fast_alpha: float
    z: float = 4.0
    """How many deviations above the baseline is anomalous."""
    min_delta: float = 0.0
    """...and by at least this much, so a near-constant series does not alarm on noise."""
    mean: float = 0.0
    variance: float = 0.0
    recent: float = 0.0
    count: int = 0
    last: float = 0.0

    def observe(self, value: float) -> None:
        self.last = value
        self.count += 1
        if self.count == 1:
            self.mean = self.recent = value
            return
        # Every completed task lands here twice (durations, failures): the arithmetic is
        # spelled out on locals, without the ``deviation`` property or min/max calls.
        mean, variance = self.mean, self.variance
        bound = self.z * math.sqrt(variance) if variance > 0.0 else self.z * 0.0
        if bound < self.min_delta:
            bound = self.min_delta
        diff = value - mean
        if bound > 0:
            if not diff <= bound:  # a NaN clips to the bound too
                diff = bound
            elif diff < -bound:
                diff = -bound
        # West's exponentially weighted mean and variance, of the clipped deviation.
        alpha = self.slow_alpha
        increment = alpha * diff
        self.mean = mean + increment
        self.variance = (1.0 - alpha) * (variance + diff * increment)
        self.recent += self.fast_alpha * (value - self.recent)

    @property
    def deviation(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    def anomalous(self, warmup: int) -> bool:
        """The recent level is above the baseline by ``z`` deviations and ``min_delta``."""
        if self.count < warmup:
            return False
        excess = self.recent - self.mean
        return excess > self.min_delta and excess > self.z * self.deviation

    def evidence(self) -> dict[str, JsonValue]:
        return {
            "baseline_mean": round(self.mean, 6),
            "baseline_stddev": round(self.deviation, 6),
            "recent": round(self.recent, 6),
            "last": round(self.last, 6),
            "samples": self.count,
            "z_score": round((self.recent - self.mean) / self.deviation, 2)
            if self.deviation > 0
            else None,
        }
