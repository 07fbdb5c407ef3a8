"""The legacy class-based plugin API, and the adapter that puts such a plugin on pluggy's hooks.

A class plugin is not a second plugin system: ``plugin_manager.register_plugin`` wraps it in a
:class:`ClassPluginAdapter` whose methods are ordinary ``hivebus`` hook implementations,
registered on the running core's plugin host. So class plugins and hook plugins see the same
events, with the same isolation (timeouts, failures counted against the plugin's health).
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hivebus_hookspecs import OrchestratorView, hookimpl
from hivebus_hookspecs.models import AgentView, HealthStatus, TaskView

from .enums import PluginType

if TYPE_CHECKING:
    from ..plugins import PluginHost

__all__ = [
    "ClassPluginAdapter",
    "HookPluginView",
    "OrchestratorPlugin",
    "PluginMetadata",
    "task_context",
]

log = logging.getLogger("hivebus.universal")

PRE_RESULTS_KEPT = 10_000
"""What ``pre_task_execution`` returned is kept for the task's ``post_task_execution``."""


@dataclass
class PluginMetadata:
    name: str
    version: str
    plugin_type: PluginType
    description: str = ""
    dependencies: list[str] = field(default_factory=list)
    """Names of plugins that must be registered first (class or entry-point plugins)."""
    enabled: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a plugin needs a name")
        self.plugin_type = PluginType(self.plugin_type)
        self.dependencies = list(self.dependencies)


class OrchestratorPlugin:
    """Subclass and override what you need; every method may be sync or async.

    ``initialize`` returning ``False`` (or raising) keeps the plugin out. ``pre_task_execution``
    runs once the task is assigned; the dict it returns is merged into the ``task_context``
    that ``post_task_execution`` gets when the task completes or fails.
    """

    metadata: PluginMetadata

    def __init__(self, metadata: PluginMetadata | None = None) -> None:
        if metadata is not None:
            self.metadata = metadata

    @property
    def name(self) -> str:
        return self.metadata.name

    async def initialize(self, orchestrator_context: dict[str, Any]) -> bool:
        return True

    async def cleanup(self) -> None:
        return None

    async def pre_task_execution(self, task_context: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def post_task_execution(self, task_context: dict[str, Any], result: Any) -> None:
        return None

    async def health_check(self) -> dict[str, Any]:
        return {"status": HealthStatus.HEALTHY.value}


def task_context(task: TaskView, agent: AgentView | None = None) -> dict[str, Any]:
    """The dict a class plugin receives for a task."""
    context: dict[str, Any] = {
        "task_id": task.task_id,
        "task_type": task.task_type,
        "required_capabilities": list(task.required_capabilities),
        "priority": task.priority,
        "status": task.status,
        "agent_id": task.agent_id,
        "metadata": dict(task.metadata),
        "payload": task.payload,
        "attempts": task.attempts,
        "success": task.success,
        "error": task.error,
        "created_at": task.created_at,
        "assigned_at": task.assigned_at,
        "finished_at": task.finished_at,
    }
    if agent is not None:
        context["agent_role"] = agent.role
        context["agent_capabilities"] = list(agent.capabilities)
    return context


async def _settle(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _health_value(report: Any) -> str | None:
    status = report.get("status") if isinstance(report, Mapping) else report
    if status is None:
        return None
    if isinstance(status, enum.Enum):
        status = status.value
    return str(status).lower()


class ClassPluginAdapter:
    """One class plugin as pluggy hook implementations (registered under the plugin's name)."""

    def __init__(
        self, plugin: OrchestratorPlugin, context: Callable[[Any], dict[str, Any]]
    ) -> None:
        self.plugin = plugin
        self.name = plugin.metadata.name
        self._context = context
        self.initialized = False
        self._pre: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def hivebus_requires(self) -> list[str]:
        """``metadata.dependencies``, read by the plugin host like any plugin's requirements."""
        return list(self.plugin.metadata.dependencies)

    async def start(self, core_orchestrator: Any) -> bool:
        """Call ``initialize``; only an explicit ``False`` or an exception declines."""
        answer = await _settle(self.plugin.initialize(self._context(core_orchestrator)))
        self.initialized = answer is not False
        return self.initialized

    async def stop(self) -> None:
        if self.initialized:
            self.initialized = False
            self._pre.clear()
            await _settle(self.plugin.cleanup())

    @hookimpl
    async def hivebus_startup(self, orchestrator: OrchestratorView) -> None:
        if not self.initialized:
            await self.start(orchestrator)

    @hookimpl
    async def hivebus_shutdown(self) -> None:
        await self.stop()

    @hookimpl
    async def hivebus_task_assigned(self, task: TaskView, agent: AgentView) -> None:
        if not self.initialized:
            return
        extra = await _settle(self.plugin.pre_task_execution(task_context(task, agent)))
        if isinstance(extra, Mapping) and extra:
            self._pre[task.task_id] = dict(extra)
            while len(self._pre) > PRE_RESULTS_KEPT:
                self._pre.popitem(last=False)

    async def _finished(self, task: TaskView) -> None:
        if not self.initialized:
            return
        context = {**task_context(task), **self._pre.pop(task.task_id, {})}
        await _settle(self.plugin.post_task_execution(context, task.result))

    @hookimpl
    async def hivebus_task_completed(self, task: TaskView) -> None:
        await self._finished(task)

    @hookimpl
    async def hivebus_task_failed(self, task: TaskView) -> None:
        await self._finished(task)

    @hookimpl
    async def hivebus_health(self) -> str | None:
        if not self.initialized:
            return None
        return _health_value(await _settle(self.plugin.health_check()))


class HookPluginView(OrchestratorPlugin):
    """An entry-point (hook) plugin named after a ``PluginType``, seen through the legacy API.

    Read-only: the core starts and stops it; ``health_check`` reports what the host sees.
    """

    def __init__(self, name: str, version: str | None, host: PluginHost) -> None:
        target = host.pm.get_plugin(name)
        doc = (inspect.getdoc(target) or "").strip().splitlines()
        super().__init__(
            PluginMetadata(
                name=name,
                version=version or "unknown",
                plugin_type=PluginType(name),
                description=doc[0] if doc else "",
            )
        )
        self._host = host

    async def health_check(self) -> dict[str, Any]:
        health = (await self._host.health()).get(self.metadata.name)
        return {"status": health.value if health is not None else HealthStatus.UNHEALTHY.value}
