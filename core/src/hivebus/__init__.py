"""hivebus: an agent orchestrator that lives on NATS.

The public API is exactly ``__all__``: the agent SDK, the client, the core runtime and its
configuration, and the wire models re-exported from ``hivebus_hookspecs``.
"""

from hivebus_hookspecs import Rejected, hookimpl
from hivebus_hookspecs.models import (
    AgentRole,
    AgentView,
    ConcurrencyLimit,
    ErrorCode,
    Event,
    EventName,
    HealthStatus,
    Offer,
    RetryPolicy,
    TaskPriority,
    TaskStatus,
    TaskView,
)

from .config import HivebusConfig, OrchestratorMode
from .domain import Orchestrator
from .errors import HivebusError, RemoteError
from .runtime import Core
from .sdk import (
    Agent,
    HiveClient,
    PermanentFailure,
    ReferenceUnavailable,
    RunningTask,
    TaskHandler,
    TaskUpdate,
    current_task,
    report_progress,
)
from .server import EmbeddedServer
from .universal import (
    AgentOrchestrator,
    ConfigMigrationWarning,
    OrchestratorConfig,
    OrchestratorPlugin,
    PluginMetadata,
    PluginNotInstalledWarning,
    PluginType,
    UniversalOrchestrator,
    get_orchestrator,
    get_universal_orchestrator,
    migrate_config,
    shutdown_universal_orchestrator,
)

__all__ = [
    "Agent",
    "AgentOrchestrator",
    "AgentRole",
    "AgentView",
    "ConcurrencyLimit",
    "ConfigMigrationWarning",
    "Core",
    "EmbeddedServer",
    "ErrorCode",
    "Event",
    "EventName",
    "HealthStatus",
    "HiveClient",
    "HivebusConfig",
    "HivebusError",
    "Offer",
    "Orchestrator",
    "OrchestratorConfig",
    "OrchestratorMode",
    "OrchestratorPlugin",
    "PermanentFailure",
    "PluginMetadata",
    "PluginNotInstalledWarning",
    "PluginType",
    "ReferenceUnavailable",
    "Rejected",
    "RemoteError",
    "RetryPolicy",
    "RunningTask",
    "TaskHandler",
    "TaskPriority",
    "TaskStatus",
    "TaskUpdate",
    "TaskView",
    "UniversalOrchestrator",
    "current_task",
    "get_orchestrator",
    "get_universal_orchestrator",
    "hookimpl",
    "migrate_config",
    "report_progress",
    "shutdown_universal_orchestrator",
]
