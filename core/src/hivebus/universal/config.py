"""``OrchestratorConfig``: the legacy settings, validated, and how they map onto the core's.

The legacy fields keep their names and defaults. Those the core already understands are passed
to :class:`hivebus.HivebusConfig`; the thresholds the core does not check itself are checked by
the facade (see ``thresholds.py``); the rest are accepted and documented as having no effect.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..config import HivebusConfig, OrchestratorMode
from .enums import plain

__all__ = ["PLUGIN_FLAGS", "ConfigMigrationWarning", "OrchestratorConfig", "migrate_config"]

PLUGIN_FLAGS = {
    "performance": "enable_performance_plugin",
    "security": "enable_security_plugin",
    "context": "enable_context_plugin",
    "automation": "enable_automation_plugin",
    "production": "enable_production_plugin",
    "audit": "enable_audit_plugin",
}
"""Entry-point plugin name -> the legacy flag that switches it on and off."""

_PASSED_TO_CORE = (
    "mode",
    "max_agents",
    "max_concurrent_tasks",
    "max_error_rate_percent",
    "max_memory_mb",
    "nats_url",
    "prefix",
    "heartbeat_interval_s",
    "offer_timeout_s",
    "request_timeout_s",
)
_MERGED_LISTS = ("enable_plugins", "disable_plugins")


def _mode_value(value: Any) -> Any:
    """Accept a legacy enum member (any enum class) or a name in any case."""
    value = plain(value)
    return value.lower() if isinstance(value, str) else value


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value or ()]


class OrchestratorConfig(BaseModel):
    """The legacy configuration, plus what hivebus needs (where the bus is, its timeouts)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Annotated[OrchestratorMode, BeforeValidator(_mode_value)] = OrchestratorMode.PRODUCTION
    max_agents: int = Field(default=100, ge=1)
    max_concurrent_tasks: int = Field(default=1000, ge=1)
    health_check_interval: float = Field(default=30.0, gt=0)
    """Seconds over which the CPU figure is measured."""
    cleanup_interval: float = Field(default=300.0, gt=0)
    """Accepted, no effect: the core reaps silent agents and retires finished tasks itself."""
    auto_scaling_enabled: bool = True
    """Accepted, no effect: hivebus does not start agents."""

    # --- thresholds: passing one turns health `degraded` and names it in health_issues ---
    max_agent_registration_ms: float = Field(default=100.0, gt=0)
    max_task_delegation_ms: float = Field(default=500.0, gt=0)
    max_system_initialization_ms: float = Field(default=2000.0, gt=0)
    max_memory_mb: float = Field(default=50.0, gt=0)
    max_cpu_percent: float = Field(default=80.0, gt=0, le=100)
    max_memory_percent: float = Field(default=80.0, gt=0, le=100)
    max_error_rate_percent: float = Field(default=5.0, ge=0, le=100)

    # --- plugins (entry-point names: performance, security, context, automation, production,
    # audit) ---
    enable_performance_plugin: bool = True
    enable_security_plugin: bool = True
    enable_context_plugin: bool = True
    enable_automation_plugin: bool = True
    enable_production_plugin: bool = False
    enable_audit_plugin: bool = False
    """The lifecycle log on disk (under ``data_dir`` when set, else the core's ``.hivebus``)."""

    # --- hivebus's own ---
    nats_url: str | None = None
    """Join this NATS; ``None`` (and no ``HIVEBUS_NATS_URL``) starts an embedded nats-server."""
    prefix: str = ""
    run_core: bool = True
    """Run the core in this process; ``False`` uses a core already serving on ``nats_url``."""
    data_dir: Path | None = None
    """The embedded nats-server's data directory; ``None``: a temporary one, removed at shutdown."""
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    offer_timeout_s: float = Field(default=2.0, gt=0)
    request_timeout_s: float = Field(default=5.0, gt=0)
    creds: Path | None = None
    """A credentials file for a secure bus (``hivebus auth add``), with ``run_core=False``."""
    core_settings: dict[str, Any] = Field(default_factory=dict)
    """Any other ``HivebusConfig`` field, e.g. ``{"plugin_timeout_s": 1.0}``."""

    @model_validator(mode="after")
    def _maps_onto_the_core(self) -> OrchestratorConfig:
        clash = sorted(set(self.core_settings) & set(_PASSED_TO_CORE))
        if clash:
            raise ValueError(
                f"core_settings may not set {', '.join(clash)}: set them on OrchestratorConfig"
            )
        try:
            self.core_config()
        except ValidationError as exc:
            raise ValueError(f"invalid core settings: {exc}") from None
        return self

    def plugin_switches(self) -> dict[str, bool]:
        """Plugin name -> whether its ``enable_*_plugin`` flag is on."""
        return {name: bool(getattr(self, flag)) for name, flag in PLUGIN_FLAGS.items()}

    def core_config(self, nats_url: str | None = None) -> HivebusConfig:
        """The core's configuration; ``HIVEBUS_*`` variables fill what this one leaves unset."""
        settings = dict(self.core_settings)
        switches = self.plugin_switches()
        settings["enable_plugins"] = _names(settings.get("enable_plugins")) + [
            name for name, on in switches.items() if on
        ]
        settings["disable_plugins"] = _names(settings.get("disable_plugins")) + [
            name for name, on in switches.items() if not on
        ]
        # Legacy deployments ran exactly the flagged plugins; others load only when named.
        settings.setdefault("plugin_autoload", False)
        for key in _PASSED_TO_CORE:
            settings[key] = getattr(self, key)
        if nats_url is not None:
            settings["nats_url"] = nats_url
        if self.creds is not None:
            settings["creds_file"] = self.creds
        if self.data_dir is not None:
            settings.setdefault("data_dir", self.data_dir)  # plugins' files beside the bus's
        return HivebusConfig.load(**settings)


class ConfigMigrationWarning(UserWarning):
    """``migrate_config`` met keys that mean nothing in hivebus; the message lists them."""


_RENAMED = {
    "max_tasks": "max_concurrent_tasks",
    "heartbeat_interval": "heartbeat_interval_s",
    "offer_timeout": "offer_timeout_s",
    "request_timeout": "request_timeout_s",
}
_TO_CORE_SETTINGS = frozenset({"log_level", "log_format", "orchestrator_id", "plugin_config"})


def _as_mapping(old: Any) -> Mapping[str, Any]:
    if isinstance(old, Mapping):
        return old
    if isinstance(old, BaseModel):
        return old.model_dump()
    if hasattr(old, "__dict__"):
        return {k: v for k, v in vars(old).items() if not k.startswith("_")}
    raise TypeError(f"migrate_config takes a dict of the old settings, not {type(old).__name__}")


def migrate_config(old: Mapping[str, Any] | Any) -> OrchestratorConfig:
    """Build an ``OrchestratorConfig`` from a legacy configuration dict (or object).

    Keys with a meaning are mapped (``max_tasks`` becomes ``max_concurrent_tasks``; fields of
    the same name are copied); the others are ignored and reported in one
    :class:`ConfigMigrationWarning`. Invalid values raise pydantic's ``ValidationError``.
    """
    fields: dict[str, Any] = {}
    core: dict[str, Any] = {}
    ignored: list[str] = []
    source = _as_mapping(old)
    for key, value in source.items():
        if key in OrchestratorConfig.model_fields:
            if key == "core_settings":
                core.update(value or {})
            else:
                fields[key] = value
        elif key in _RENAMED and _RENAMED[key] not in source:
            fields[_RENAMED[key]] = value
        elif key in _TO_CORE_SETTINGS:
            core[key] = value
        else:
            ignored.append(str(key))
    if core:
        fields["core_settings"] = core
    if ignored:
        warnings.warn(
            ConfigMigrationWarning(
                "migrate_config ignored settings that have no meaning in hivebus: "
                + ", ".join(sorted(ignored))
            ),
            stacklevel=2,
        )
    return OrchestratorConfig(**fields)
