"""What a delegator may ask of a task beyond "run it": how to retry it, how many tasks sharing
a key may run at once; and the record of each attempt the core keeps for it."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

from .bodies import CoreBody

__all__ = [
    "MAX_ATTEMPTS_LIMIT",
    "Attempt",
    "AttemptOutcome",
    "ConcurrencyLimit",
    "RetryPolicy",
]

MAX_ATTEMPTS_LIMIT = 50
"""The most attempts a retry policy may allow: every attempt leaves an entry in the task's
``history``, and the whole record must fit in one NATS message."""


class RetryPolicy(BaseModel):
    """How often a task is tried, and how long it waits between attempts.

    The wait before attempt ``n + 1`` is ``backoff_s * backoff_factor ** (n - 1)``, at most
    ``max_backoff_s``. It governs failures reported by the agent, execution timeouts and agents
    lost mid-task alike.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS_LIMIT)
    """Attempts in all, the first included: 1 means never retried."""
    backoff_s: float = Field(default=1.0, ge=0, le=86_400)
    backoff_factor: float = Field(default=2.0, ge=1, le=100)
    max_backoff_s: float = Field(default=300.0, ge=0, le=86_400)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` (1-based) failed."""
        exponent = min(max(attempt - 1, 0), 64)
        return float(min(self.backoff_s * self.backoff_factor**exponent, self.max_backoff_s))


class ConcurrencyLimit(BaseModel):
    """At most ``limit`` tasks with this ``key`` are offered or assigned at once, across every
    core replica; the others wait in the queue in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=256)
    limit: int = Field(ge=1, le=10_000)


class AttemptOutcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    """The agent reported a failure."""
    TIMED_OUT = "timed_out"
    """It ran past ``execution_timeout_s``."""
    LOST = "lost"
    """Its agent went offline or deregistered while holding it."""
    CANCELLED = "cancelled"


class Attempt(CoreBody):
    """One entry of a task's ``history``: an acceptance, and how it ended."""

    attempt: int
    agent_id: str | None
    assigned_at: float | None
    finished_at: float | None
    outcome: AttemptOutcome
    error: str | None = None
    """The first 512 characters of the error; the task's ``error`` has all of the last one."""
