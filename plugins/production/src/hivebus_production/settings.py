"""``[plugin_config.production]``: every number the plugin decides by, with its reason.

Defaults follow the Google SRE workbook's multi-window burn-rate alert (a 5 minute and a 1 hour
window, both burning the error budget 14.4 times faster than sustainable) and leave latency
targets off until an operator names them: a target nobody chose would only make noise.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AnomalySettings", "Objective", "ProductionSettings", "ScalingSettings"]


class Objective(BaseModel):
    """The service level of one task type (or the default for every type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assignment_p95_s: float | None = Field(default=None, gt=0)
    """Time from delegation to assignment (queue wait), 95th percentile, at most this."""
    assignment_p99_s: float | None = Field(default=None, gt=0)
    completion_p95_s: float | None = Field(default=None, gt=0)
    """Time from delegation to completion, 95th percentile, at most this."""
    completion_p99_s: float | None = Field(default=None, gt=0)
    success_target: float = Field(default=0.99, gt=0, lt=1)
    """The fraction of finished tasks that should succeed: 1 - this is the error budget."""

    def latency_targets(self) -> dict[str, float]:
        """``{"assignment_p95": 2.0, ...}`` for the targets that are set."""
        named = {
            "assignment_p95": self.assignment_p95_s,
            "assignment_p99": self.assignment_p99_s,
            "completion_p95": self.completion_p95_s,
            "completion_p99": self.completion_p99_s,
        }
        return {name: value for name, value in named.items() if value is not None}


class AnomalySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    slow_alpha: float = Field(default=0.02, gt=0, lt=1)
    """Weight of a new sample in the baseline (about the last 1/alpha samples): it adapts."""
    fast_alpha: float = Field(default=0.3, gt=0, le=1)
    """Weight of a new sample in the recent level compared with the baseline."""
    z_threshold: float = Field(default=4.0, gt=0)
    """How many baseline standard deviations above the baseline is anomalous."""
    warmup: int = Field(default=30, ge=2)
    """Samples of a task type before its baseline is trusted."""
    min_duration_delta_s: float = Field(default=0.05, ge=0)
    """A duration anomaly must also be at least this much slower than the baseline."""
    min_failure_delta: float = Field(default=0.3, ge=0, le=1)
    """A failure-rate anomaly must also be this much above the baseline's rate."""


class ScalingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    up_queue_depth: int = Field(default=10, ge=1)
    """Waiting tasks of one capability set that call for more agents."""
    up_wait_s: float = Field(default=30.0, gt=0)
    """The oldest waiting task of a set waited this long: more agents."""
    up_utilisation: float = Field(default=0.9, gt=0, le=1)
    """Busy slots over all slots of the set's agents at or above this, with work waiting."""
    down_utilisation: float = Field(default=0.3, ge=0, lt=1)
    """Below this with nothing waiting: fewer agents. The gap to ``up_utilisation`` is the
    hysteresis band, where nothing is signalled."""
    sustain: int = Field(default=3, ge=1)
    """Consecutive evaluations a condition must hold before it is signalled."""
    cooldown_s: float = Field(default=120.0, ge=0)
    """After a signal for a capability set, none for that set for this long (all replicas)."""
    max_step: int = Field(default=5, ge=1)
    """At most this many agents asked for or given back per signal."""
    min_agents: int = Field(default=1, ge=0)
    """Never ask to go below this many agents in a capability set."""
    max_queued_scanned: int = Field(default=1000, ge=1)
    """Waiting tasks read per evaluation to group them by capability set."""


class ProductionSettings(BaseModel):
    """``[plugin_config.production]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(default=5.0, gt=0)
    """How often service levels, anomalies and scaling are evaluated."""
    objective: Objective = Objective()
    """The service level of every task type without its own."""
    task_types: dict[str, Objective] = Field(default_factory=dict)
    """Service levels by task type, replacing ``objective`` for that type."""
    latency_window_s: float = Field(default=300.0, gt=0)
    """Latency percentiles count the tasks finished within this many seconds..."""
    window_size: int = Field(default=256, ge=1, le=100_000)
    """...and at most this many of them per task type (the memory bound)."""
    min_samples: int = Field(default=5, ge=1)
    """Fewer samples than this in the window: no latency verdict."""
    short_window_s: float = Field(default=300.0, gt=0)
    long_window_s: float = Field(default=3600.0, gt=0)
    burn_rate_threshold: float = Field(default=14.4, gt=0)
    """Both windows must burn the error budget at least this fast to alert (critical)."""
    max_task_types: int = Field(default=200, ge=1)
    """Task types tracked at once; the least recently seen is forgotten past it."""
    alert_stale_s: float | None = Field(default=None, gt=0)
    """A firing alert whose replica stopped confirming it for this long may be resolved by
    another replica; ``None``: three intervals."""
    anomaly: AnomalySettings = AnomalySettings()
    scaling: ScalingSettings = ScalingSettings()

    @model_validator(mode="after")
    def _windows_in_order(self) -> ProductionSettings:
        if self.long_window_s < self.short_window_s:
            raise ValueError("long_window_s must be at least short_window_s")
        if self.scaling.down_utilisation >= self.scaling.up_utilisation:
            raise ValueError("scaling.down_utilisation must be below scaling.up_utilisation")
        return self

    def objective_for(self, task_type: str) -> Objective:
        return self.task_types.get(task_type, self.objective)

    @property
    def stale_after_s(self) -> float:
        return self.alert_stale_s if self.alert_stale_s is not None else 3 * self.interval_s
