"""The legacy Python API, as a thin facade over the hivebus core (``docs/migration.md``).

Legacy code migrates by changing its imports to ``from hivebus import ...``. Nothing starts at
import: ``await get_universal_orchestrator()`` starts the embedded nats-server and the core.
"""

from .config import ConfigMigrationWarning, OrchestratorConfig, migrate_config
from .enums import (
    AgentRole,
    HealthStatus,
    OrchestratorMode,
    PluginType,
    TaskPriority,
    TaskStatus,
)
from .orchestrator import AgentOrchestrator, UniversalOrchestrator
from .plugin_api import OrchestratorPlugin, PluginMetadata
from .plugin_manager import PluginManager, PluginNotInstalledWarning
from .process_wide import (
    get_orchestrator,
    get_universal_orchestrator,
    shutdown_universal_orchestrator,
)

__all__ = [
    "AgentOrchestrator",
    "AgentRole",
    "ConfigMigrationWarning",
    "HealthStatus",
    "OrchestratorConfig",
    "OrchestratorMode",
    "OrchestratorPlugin",
    "PluginManager",
    "PluginMetadata",
    "PluginNotInstalledWarning",
    "PluginType",
    "TaskPriority",
    "TaskStatus",
    "UniversalOrchestrator",
    "get_orchestrator",
    "get_universal_orchestrator",
    "migrate_config",
    "shutdown_universal_orchestrator",
]
