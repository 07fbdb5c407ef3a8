"""``[plugin_config.context]``: every setting of the plugin, validated once at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ContextSettings", "SessionSettings", "UsageSettings"]

OFFLOAD_ABOVE_BYTES = 256 * 1024
"""The SDK's default too (``hivebus.sdk.references``): half the core's ``max_payload_bytes``."""


class SessionSettings(BaseModel):
    """``[plugin_config.context.sessions]``: shared session contexts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_bytes: int = Field(default=256 * 1024, ge=1024, le=768 * 1024)
    """Past this (the JSON size of its fragments) a session drops its oldest unpinned
    fragments. At most 768 KiB: a session is one value in the bucket, one NATS message."""
    idle_expiry_s: float = Field(default=3600.0, gt=0)
    """A session nobody has put to or appended to for this long is removed."""
    sweep_interval_s: float = Field(default=60.0, gt=0)
    """How often idle sessions are looked for."""


class UsageSettings(BaseModel):
    """``[plugin_config.context.usage]``: context-window monitoring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warning: float = Field(default=0.85, gt=0.0, le=1.0)
    """An agent reporting this usage or more is alerted on at ``warning``."""
    critical: float = Field(default=0.95, gt=0.0, le=1.0)
    """... and at ``critical`` from this usage (the severity the alert fires with)."""
    interval_s: float = Field(default=5.0, gt=0)
    """How often reported usage is checked."""
    cooldown_s: float = Field(default=60.0, ge=0)
    """An agent's alert resolved fires again no sooner than this (no flapping)."""

    @model_validator(mode="after")
    def _ordered(self) -> UsageSettings:
        if self.critical < self.warning:
            raise ValueError("critical must be at least warning")
        return self


class ContextSettings(BaseModel):
    """``[plugin_config.context]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_context_usage: float = Field(default=0.9, ge=0.0, le=1.0)
    """Agents reporting more than this are skipped, unless every candidate does."""
    context_hint: bool = False
    """Add ``metadata.context_hint`` (payload size and a token estimate) to delegated tasks."""
    offload_above_bytes: int = Field(default=OFFLOAD_ABOVE_BYTES, ge=1024)
    """Payloads and results whose JSON is larger travel by reference. Read by the SDK from
    the same table: clients and agents given this configuration file use it too."""
    retention_s: float = Field(default=3600.0, ge=0)
    """A task's stored payload and result are removed this long after the task ends."""
    orphan_after_s: float = Field(default=86400.0, gt=0)
    """An object whose task no core knows (a delegation that never arrived, a task long
    forgotten) is removed this long after a sweep first found it."""
    sweep_interval_s: float = Field(default=60.0, gt=0)
    """How often stored objects are checked for removal."""
    sessions: SessionSettings = SessionSettings()
    usage: UsageSettings = UsageSettings()
