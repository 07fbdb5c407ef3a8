"""``[plugin_config.automation]``: one pydantic model per concern, unknown keys refused.

Breakers are on by default (they only take a failing agent out of rotation, which is what a
user of the legacy system expects); recovery and sleep are off by default, because re-running
a task or idling an agent is a decision about the user's work and capacity that the
configuration should state.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AutomationSettings",
    "BreakerSettings",
    "RecoverySettings",
    "SleepSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerSettings(_Section):
    """``[plugin_config.automation.breaker]``: when an agent's circuit opens, and for how long."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)
    """Failed attempts in a row (reported failures, execution timeouts) that open it."""
    refusals: int = Field(default=5, ge=1)
    """Offers refused in a row (reasons in ``ignore_refusals`` do not count) that open it."""
    timeouts: int = Field(default=3, ge=1)
    """Offers left unanswered in a row that open it."""
    ignore_refusals: list[str] = Field(
        default_factory=lambda: ["busy", "sleeping", "draining", "stopping"]
    )
    """Refusal reasons that say nothing about the agent's health."""
    cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open breaker waits before its half-open trial."""
    cooldown_factor: float = Field(default=2.0, ge=1)
    """Each failed trial multiplies the cooldown by this much..."""
    max_cooldown_s: float = Field(default=600.0, gt=0)
    """...up to this."""


class RecoverySettings(_Section):
    """``[plugin_config.automation.recovery]``: what a failed task becomes, by severity."""

    enabled: bool = False
    manual: list[str] = Field(
        default_factory=lambda: [
            r"permission denied",
            r"unauthori[sz]ed",
            r"forbidden",
            r"invalid (api )?key",
            r"quota exceeded",
            r"corrupt",
            r"\bfatal\b",
        ]
    )
    """Patterns (regular expressions, case-insensitive) of errors no retry will fix: the task
    is declared dead at once and a critical alert fires."""
    assisted: list[str] = Field(
        default_factory=lambda: [
            r"out of memory",
            r"\boom\b",
            r"context (window|length)",
            r"resource exhausted",
            r"too many open files",
            r"no space left",
            r"disk full",
        ]
    )
    """Patterns of errors the agent must recover from: it is put to sleep (or drained) first,
    then the task is retried elsewhere."""
    default_tier: Literal["automatic", "assisted", "manual"] = "automatic"
    """The tier of an error no pattern matches."""
    assisted_action: Literal["sleep", "drain"] = "sleep"
    max_attempts: int = Field(default=3, ge=1)
    """A task is retried while it has had fewer attempts than this."""
    backoff_s: float = Field(default=1.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    max_backoff_s: float = Field(default=60.0, ge=0)

    @field_validator("manual", "assisted")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns


class SleepSettings(_Section):
    """``[plugin_config.automation.sleep]``: when an agent sleeps, and when it wakes."""

    enabled: bool = False
    idle_after_s: float | None = Field(default=300.0, gt=0)
    """An agent with nothing to do for this long is put to sleep (``None``: never for idling)."""
    context_usage_above: float | None = Field(default=0.9, gt=0, le=1)
    """An idle agent whose reported ``context_window_usage`` is at least this sleeps at once."""
    sleep_s: float = Field(default=60.0, gt=0)
    """How long the first sleep lasts before the agent is woken..."""
    sleep_factor: float = Field(default=2.0, ge=1)
    """...each further sleep in a row (no task between) lasts this much longer..."""
    max_sleep_s: float = Field(default=3600.0, gt=0)
    """...up to this."""
    wake_for_work: bool = True
    """Wake a sleeping agent when a queued task needs its capabilities and no awake agent
    has a free slot for it."""


class AutomationSettings(_Section):
    """``[plugin_config.automation]``."""

    interval_s: float = Field(default=1.0, gt=0)
    """How often a replica applies what it saw and checks breakers and sleepers."""
    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive failures of one agent or one task type that turn this plugin degraded."""
    priority_boost_types: list[str] = Field(default_factory=list)
    """Task types delegated below ``high`` are raised to ``high``."""
    max_tracked: int = Field(default=10_000, ge=1)
    """Outcomes waiting for the next evaluation, at most (the oldest are dropped beyond)."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    recovery: RecoverySettings = Field(default_factory=RecoverySettings)
    sleep: SleepSettings = Field(default_factory=SleepSettings)

    @model_validator(mode="after")
    def _cooldowns_ordered(self) -> AutomationSettings:
        if self.breaker.max_cooldown_s < self.breaker.cooldown_s:
            raise ValueError("breaker.max_cooldown_s must be at least breaker.cooldown_s")
        if self.sleep.max_sleep_s < self.sleep.sleep_s:
            raise ValueError("sleep.max_sleep_s must be at least sleep.sleep_s")
        return self
