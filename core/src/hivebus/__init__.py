"""hivebus: an agent orchestrator that lives on NATS.

The public API is exactly ``__all__``: the agent SDK, the client, the core runtime and its
configuration, and the wire models re-exported from ``hivebus_hookspecs``.

Everything but the wire models loads on first use (PEP 562): an agent that imports ``Agent``
never pays for the core, the legacy facade or the embedded server, and the core never pays
for the legacy facade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

from .lazy import lazy_exports

if TYPE_CHECKING:
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


_LAZY = {
    "Agent": "hivebus.sdk",
    "AgentOrchestrator": "hivebus.universal",
    "ConfigMigrationWarning": "hivebus.universal",
    "Core": "hivebus.runtime",
    "EmbeddedServer": "hivebus.server",
    "HiveClient": "hivebus.sdk",
    "HivebusConfig": "hivebus.config",
    "HivebusError": "hivebus.errors",
    "Orchestrator": "hivebus.domain",
    "OrchestratorConfig": "hivebus.universal",
    "OrchestratorMode": "hivebus.config",
    "OrchestratorPlugin": "hivebus.universal",
    "PermanentFailure": "hivebus.sdk",
    "PluginMetadata": "hivebus.universal",
    "PluginNotInstalledWarning": "hivebus.universal",
    "PluginType": "hivebus.universal",
    "ReferenceUnavailable": "hivebus.sdk",
    "RemoteError": "hivebus.errors",
    "RunningTask": "hivebus.sdk",
    "TaskHandler": "hivebus.sdk",
    "TaskUpdate": "hivebus.sdk",
    "UniversalOrchestrator": "hivebus.universal",
    "current_task": "hivebus.sdk",
    "get_orchestrator": "hivebus.universal",
    "get_universal_orchestrator": "hivebus.universal",
    "migrate_config": "hivebus.universal",
    "report_progress": "hivebus.sdk",
    "shutdown_universal_orchestrator": "hivebus.universal",
}
"""Where each name that loads on first use lives."""


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
