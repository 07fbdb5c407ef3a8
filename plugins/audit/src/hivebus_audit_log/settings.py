"""The audit plugin's settings: ``[plugin_config.audit]``, validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuditSettings"]


class AuditSettings(BaseModel):
    """Where the lifecycle log goes and how much of it is kept.

    The bounds hold the disk use to ``max_files`` x ``max_file_bytes`` whatever the traffic,
    and the queue bounds the memory an event storm can take while the disk is slow.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: Path | None = None
    """Where the segments go; ``None``: ``<data_dir>/plugins/audit``. A relative path is
    taken inside the core's data directory, never the working directory."""
    max_file_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """A segment past this size is closed and a new one started."""
    max_files: int = Field(default=20, ge=1)
    """Segments kept in the directory, every replica's counted; the oldest go first."""
    max_age_s: float | None = Field(default=30 * 86400.0, gt=0)
    """Segments not written for this long are removed; ``None``: kept until ``max_files``."""
    queue_size: int = Field(default=10_000, ge=1)
    """Events waiting for the writer; past it, events are dropped and counted, never waited
    for."""
    flush_interval_s: float = Field(default=0.2, gt=0)
    """How often the writer moves the waiting events to disk."""
    check_interval_s: float = Field(default=5.0, gt=0)
    """How often the plugin looks for lost events: any since the last look is a ``warning``
    alert (the log is incomplete), resolved at the first look that finds none, and not fired
    again for twelve intervals (a minute by default)."""
