"""``[plugin_config.performance]``: the endpoint, the metrics' bounds, thresholds and windows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .metrics import DEFAULT_BUCKETS

__all__ = ["PerformanceSettings"]


class PerformanceSettings(BaseModel):
    """Validated at start-up: a bad value leaves the plugin unhealthy, naming the setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    """``0`` picks a free port; the bound one is in the status contribution."""
    buckets: tuple[float, ...] = Field(default=DEFAULT_BUCKETS, min_length=1)
    """Histogram buckets for task durations, in seconds."""
    refresh_s: float = Field(default=5.0, gt=0)
    """How often the health gauges (core, plugins, state buckets) are read from the status."""
    max_capabilities: int = Field(default=50, ge=1, le=1000)
    """Capability label values exported at most (those with the most waiting tasks)."""
    max_task_types: int = Field(default=50, ge=1, le=1000)
    """Task types with a label of their own; later ones are counted as ``other``."""

    interval_s: float = Field(default=5.0, gt=0)
    """How often resources are sampled, thresholds judged and recommendations made."""
    window_s: float = Field(default=300.0, gt=0)
    """The recent past that error rate, delegation time and recommendations judge."""
    alert_cooldown_s: float = Field(default=300.0, ge=0)
    """After a resolved alert, the same cause fires again no sooner than this."""

    max_cpu_percent: float | None = Field(default=80.0, gt=0, le=100)
    """This core's share of the machine's CPU over one interval; ``null``: no alert."""
    max_memory_percent: float | None = Field(default=80.0, gt=0, le=100)
    """This core's resident memory as a share of the machine's."""
    max_memory_mb: float | None = Field(default=512.0, gt=0)
    """This core's resident memory, MiB."""
    max_disk_percent: float | None = Field(default=90.0, gt=0, le=100)
    """Used share of the disk holding the data directory."""
    max_error_rate_percent: float | None = Field(default=5.0, ge=0, le=100)
    """Failed share of the tasks this core saw finish within ``window_s``."""
    max_task_delegation_ms: float | None = Field(default=500.0, gt=0)
    """95th percentile of this core's delegation times (request to answer) within ``window_s``."""
    min_tasks: int = Field(default=10, ge=1)
    """Finished tasks (error rate) or delegations (delegation time) a window needs to be judged."""

    min_offers: int = Field(default=5, ge=1)
    """Offers to one agent within ``window_s`` before its refusals are judged."""
    max_recommendations: int = Field(default=10, ge=0, le=100)
