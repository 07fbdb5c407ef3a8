"""Recovery tiers: how bad a failure is, read from the agent's error, and what follows.

``automatic``: retry elsewhere with backoff (the core's placement offers a retried task to the
agent that failed it last). ``assisted``: the agent needs to recover first: it is put to sleep
(or drained), then the task is retried elsewhere. ``manual``: no retry will help: the task is
declared dead at once and a critical alert fires. A task with a retry policy of its own is the
core's to retry: the plugin never retries it, only sleeps the agent (assisted) or stops the
retries (manual).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .settings import RecoverySettings

__all__ = ["Classifier", "Tier", "backoff"]


class Tier(enum.StrEnum):
    AUTOMATIC = "automatic"
    ASSISTED = "assisted"
    MANUAL = "manual"


@dataclass(frozen=True)
class Classifier:
    manual: re.Pattern[str] | None
    assisted: re.Pattern[str] | None
    default: Tier

    @classmethod
    def of(cls, settings: RecoverySettings) -> Classifier:
        return cls(
            _joined(settings.manual), _joined(settings.assisted), Tier(settings.default_tier)
        )

    def tier(self, error: str | None) -> Tier:
        """Manual patterns first: an error that matches both is the worse one."""
        text = error or ""
        if self.manual is not None and self.manual.search(text):
            return Tier.MANUAL
        if self.assisted is not None and self.assisted.search(text):
            return Tier.ASSISTED
        return self.default


def _joined(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def backoff(settings: RecoverySettings, attempts: int) -> float:
    """Seconds before the retry after attempt number ``attempts`` (1-based) failed."""
    exponent = min(max(attempts - 1, 0), 64)
    return float(
        min(settings.backoff_s * settings.backoff_factor**exponent, settings.max_backoff_s)
    )
