"""``PluginHost``: the domain's hook port, and everything the core asks of its plugins.

pluggy holds the specs, the registrations and the discovery; the host composes what it adds on
top: loading and refusing (``loading``), calling each implementation in isolation
(``calls``), notifications off the request path (``notifications``) and a record per plugin
(``records``). It starts and stops the plugins, and reports their health.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import pluggy
from hivebus_hookspecs import PROJECT, HookTime, Rejected, hookspecs
from hivebus_hookspecs.models import Event, HealthStatus, PluginInfo, TaskView

from .calls import HookCalls, HookManager
from .loading import PluginLoader
from .notifications import Notifications
from .records import PluginRecords

if TYPE_CHECKING:
    from hivebus_hookspecs.context import OrchestratorView, PluginContext
    from hivebus_hookspecs.models import AgentView

    from ..config import HivebusConfig

__all__ = ["EventSink", "PluginHost"]


class EventSink(Protocol):
    """Where the host publishes the events it produces itself (``plugin.vetoed``)."""

    def publish(self, event: Event) -> None: ...


class PluginHost:
    """Implements the domain's hook port on a pluggy ``PluginManager``."""

    def __init__(self, config: HivebusConfig) -> None:
        self.config = config
        self.pm = HookManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._records = PluginRecords()
        self._loader = PluginLoader(config, self.pm, self._records)
        self._calls = HookCalls(config, self.pm, self._records, self._announce)
        self._notifications = Notifications(self._calls.deliver)
        self._events: EventSink | None = None

    # --- loading ----------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Register the installed plugins the configuration allows, each once."""
        self._loader.load_entry_points()

    def register(self, plugin: object, name: str, version: str | None = None) -> bool:
        """Register a plugin: a module, an instance, or a class (instantiated here, so each
        host has its own). ``False`` when refused: it is then listed as ``unhealthy``."""
        return self._loader.register(plugin, name, version)

    def unregister(self, name: str) -> None:
        self._loader.unregister(name)

    def names(self) -> list[str]:
        return self._records.names()

    # --- calling ----------------------------------------------------------------------

    def wants(self, hook: str) -> bool:
        return self._calls.wants(hook)

    async def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; a ``Rejected`` from one is treated as a failure."""
        return await self._calls.call_each(hook, **kwargs)

    async def check_agent(self, agent: AgentView) -> None:
        await self._calls.check_agent(agent)

    async def amend_task(self, task: TaskView) -> dict[str, Any]:
        return await self._calls.amend_task(task)

    async def select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None:
        """``firstresult``: stops at the first implementation that answers."""
        return await self._calls.select_agent(task, candidates)

    def report_failure(self, name: str, what: str, exc: BaseException) -> None:
        """Count a failure of plugin ``name`` outside a hook call (an endpoint, a timer)."""
        self._records.failed(
            name, what, exc if isinstance(exc, Exception) else Exception(repr(exc))
        )

    def notify(self, hook: str, **kwargs: Any) -> None:
        self._notifications.put(hook, kwargs)

    @property
    def dropped_notifications(self) -> int:
        return self._notifications.dropped

    def _announce(self, event: Event) -> None:
        if self._events is not None:
            self._events.publish(event)
        if self.wants("hivebus_event"):
            self.notify("hivebus_event", event=event)

    # --- lifecycle --------------------------------------------------------------------

    async def start(
        self,
        orchestrator: OrchestratorView,
        events: EventSink | None = None,
        contexts: Mapping[str, PluginContext] | None = None,
    ) -> None:
        """Refuse the plugins whose requirements are missing, then start the others, each
        after the plugins it requires, each with its own ``context``. ``events`` receives the
        events the host produces."""
        self._loader.check_requirements()
        self._events = events
        self._loader.started = True
        self._notifications.start()
        for impl in self._calls.in_requirement_order("hivebus_startup"):
            kwargs = {
                "orchestrator": orchestrator,
                "config": self.config,
                "context": (contexts or {}).get(impl.plugin_name),
            }
            name = impl.plugin_name
            failures = self._records.failures_of(name)
            try:
                await self._calls.call(impl, "hivebus_startup", kwargs)
            except Rejected as exc:
                self._records.failed(name, "hivebus_startup", exc)
            if self._records.failures_of(name) > failures:
                self._records.start_failed(name)

    async def stop(self, orchestrator: OrchestratorView, grace_s: float = 2.0) -> None:
        """Deliver what is queued (within ``grace_s``), then shut plugins down in reverse."""
        await self._notifications.stop(grace_s)
        self._loader.started = False
        for impl in reversed(self._calls.in_requirement_order("hivebus_shutdown")):
            with contextlib.suppress(Rejected):
                await self._calls.call(impl, "hivebus_shutdown", {"orchestrator": orchestrator})
        self._events = None

    # --- health and introspection -----------------------------------------------------

    async def health(self) -> dict[str, HealthStatus]:
        reported: dict[str, HealthStatus] = {}
        for name, answer in await self.call_each("hivebus_health"):
            try:
                reported[name] = (
                    HealthStatus(answer) if answer is not None else HealthStatus.HEALTHY
                )
            except ValueError:
                self._records.failed(
                    name, "hivebus_health", ValueError(f"unknown health {answer!r}")
                )
        return self._records.health(reported)

    async def status_contributions(self, orchestrator: OrchestratorView) -> dict[str, Any]:
        contributions: dict[str, Any] = {}
        for name, result in await self.call_each("hivebus_status", orchestrator=orchestrator):
            if result is None:
                continue
            try:
                orjson.dumps(result)
            except TypeError as exc:  # one plugin's odd value must not fail the status
                self._records.failed(name, "hivebus_status", exc)
                continue
            contributions[name] = result
        return contributions

    def hook_times(self) -> list[HookTime]:
        """Time each plugin's hooks took, by plugin and hook, since the host started."""
        return [
            HookTime(record.name, hook, calls, seconds)
            for record in self._records
            for hook, (calls, seconds) in sorted(record.hook_times.items())
        ]

    async def describe(self) -> list[PluginInfo]:
        health = await self.health()
        infos = []
        for record in self._records:
            plugin = self.pm.get_plugin(record.name)
            hooks = [] if plugin is None else _hook_names(self.pm.get_hookcallers(plugin))
            infos.append(
                PluginInfo(
                    name=record.name,
                    version=record.version,
                    hooks=hooks,
                    health=health[record.name],
                    failures=record.failures,
                    last_error=record.last_error,
                    vetoes=record.vetoes,
                )
            )
        return infos


def _hook_names(callers: Iterable[pluggy.HookCaller] | None) -> list[str]:
    return sorted(caller.name for caller in callers or ())
