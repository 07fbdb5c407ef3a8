"""What hivebus plugin authors depend on: hook specs, the ``hookimpl`` marker, wire models."""

from . import commands, context, hookspecs, models, readings
from .commands import COMMANDS_GROUP, RegisterCommand
from .context import (
    EndpointError,
    HookTime,
    KeyValueStore,
    ObjectStore,
    OrchestratorView,
    PluginConfig,
    PluginContext,
    TaskAmendment,
    bucket_key,
)
from .hookspecs import PROJECT, hookimpl, hookspec
from .models import (
    AgentRole,
    AgentState,
    AgentView,
    ErrorCode,
    Event,
    EventName,
    HealthStatus,
    TaskPriority,
    TaskStatus,
    TaskView,
)
from .readings import AgentCounts, AgentReading, CapacityGroup, capacity_of

__all__ = [
    "COMMANDS_GROUP",
    "PROJECT",
    "AgentCounts",
    "AgentReading",
    "AgentRole",
    "AgentState",
    "AgentView",
    "CapacityGroup",
    "EndpointError",
    "ErrorCode",
    "Event",
    "EventName",
    "HealthStatus",
    "HookTime",
    "KeyValueStore",
    "ObjectStore",
    "OrchestratorView",
    "PluginConfig",
    "PluginContext",
    "RegisterCommand",
    "Rejected",
    "TaskAmendment",
    "TaskPriority",
    "TaskStatus",
    "TaskView",
    "bucket_key",
    "capacity_of",
    "commands",
    "context",
    "hookimpl",
    "hookspec",
    "hookspecs",
    "models",
    "readings",
]


class Rejected(Exception):
    """Raised by a hook that may veto, to refuse the agent or task with a reason."""

    def __init__(self, reason: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
