"""The legacy enums. Every one that hivebus already has is the very same class, re-exported."""

from __future__ import annotations

import enum

from hivebus_hookspecs.models import AgentRole, HealthStatus, TaskPriority, TaskStatus

from ..config import OrchestratorMode

__all__ = [
    "AgentRole",
    "HealthStatus",
    "OrchestratorMode",
    "PluginType",
    "TaskPriority",
    "TaskStatus",
    "plain",
]


class PluginType(enum.StrEnum):
    """What a class-based plugin is for; ``plugin_manager.get_plugins(t)`` lists by it."""

    PERFORMANCE = "performance"
    SECURITY = "security"
    CONTEXT = "context"
    WORKFLOW = "workflow"
    COMMUNICATION = "communication"
    AUTOMATION = "automation"
    PRODUCTION = "production"


def plain(value: object) -> object:
    """A legacy enum member (of any enum class) as its value; anything else unchanged."""
    return value.value if isinstance(value, enum.Enum) else value
