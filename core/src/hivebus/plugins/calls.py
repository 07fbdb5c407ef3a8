"""Calling hooks, each implementation on its own.

pluggy calls every implementation in one loop and lets the first exception escape. A core that
must survive its plugins calls each implementation on its own instead (in pluggy's order, with
pluggy's argument-subset rule), awaits what is awaitable under a timeout, and records each
failure against its plugin. Only an explicit veto (``Rejected``, or ``False``) stops a
request; the hooks that may veto, amend a task or choose an agent are answered here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import orjson
import pluggy
from hivebus_hookspecs import Rejected
from hivebus_hookspecs.models import (
    AgentView,
    ErrorCode,
    Event,
    EventName,
    TaskPriority,
    TaskView,
)

from ..domain.ports import Later
from ..errors import HivebusError
from . import checks
from .records import HookTimeout, PluginRecords

if TYPE_CHECKING:
    from ..config import HivebusConfig

__all__ = ["HookCalls", "HookManager"]

log = logging.getLogger("hivebus.plugins")


class HookManager(pluggy.PluginManager):
    """pluggy's manager, counting the changes to what it would call, so the host can keep
    each hook's implementations at hand (asked for several times per task) and look them up
    again only after a plugin came or went."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.generation = 0

    def register(self, plugin: object, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            self.generation += 1

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        try:
            return super().unregister(plugin, name)
        finally:
            self.generation += 1

    def add_hookspecs(self, module_or_class: ModuleType | type) -> None:
        try:
            super().add_hookspecs(module_or_class)
        finally:
            self.generation += 1


class HookCalls:
    """The isolated calls of the hooks registered on ``pm``. ``announce`` receives the events
    the calls produce (``plugin.vetoed``)."""

    def __init__(
        self,
        config: HivebusConfig,
        pm: HookManager,
        records: PluginRecords,
        announce: Callable[[Event], None],
    ) -> None:
        self.config = config
        self.pm = pm
        self.records = records
        self.announce = announce
        self._impls: dict[str, tuple[pluggy.HookImpl, ...]] = {}
        self._arguments: dict[str, frozenset[str]] = {}
        self._generation = pm.generation

    def wants(self, hook: str) -> bool:
        return bool(self.impls(hook))

    def impls(self, hook: str) -> tuple[pluggy.HookImpl, ...]:
        """``hook``'s implementations in call order."""
        if self._generation != self.pm.generation:
            self._impls.clear()
            self._arguments.clear()
            self._generation = self.pm.generation
        impls = self._impls.get(hook)
        if impls is None:
            # pluggy calls the last registered first, tryfirst ones before and trylast ones
            # after the rest: its list is in the reverse of that order. Wrappers were refused
            # at load.
            impls = tuple(reversed(getattr(self.pm.hook, hook).get_hookimpls()))
            self._impls[hook] = impls
            self._arguments[hook] = frozenset(a for impl in impls for a in impl.argnames)
        return impls

    def in_requirement_order(self, hook: str) -> list[pluggy.HookImpl]:
        """``hook``'s implementations, each plugin after the plugins it requires."""
        return checks.in_requirement_order(self.pm, self.impls(hook))

    async def call(self, impl: pluggy.HookImpl, hook: str, kwargs: dict[str, Any]) -> Any:
        """One implementation, isolated. Raises ``Rejected``; returns None on any failure."""
        # Always timed (a clock read is cheap): the figures feed ``context.hook_times()``.
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            if result is not None and inspect.isawaitable(result):
                try:
                    async with asyncio.timeout(self.config.plugin_timeout_s):
                        result = await result
                except TimeoutError:
                    raise HookTimeout(f"timed out after {self.config.plugin_timeout_s}s") from None
            return result
        except Rejected:
            outcome = "rejected"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = "timeout" if isinstance(exc, HookTimeout) else "failed"
            self.records.failed(impl.plugin_name, hook, exc)
            return None
        finally:
            elapsed = time.perf_counter() - started
            self.records.timed(impl.plugin_name, hook, elapsed)
            if self.config.trace_plugins:
                log.info(
                    "plugin hook called",
                    extra={
                        "plugin": impl.plugin_name,
                        "hook": hook,
                        "duration_ms": round(elapsed * 1000, 3),
                        "outcome": outcome,
                    },
                )

    async def deliver(self, hook: str, kwargs: dict[str, Any]) -> None:
        """A notification: its ``Later`` arguments built now, those an implementation takes
        (an implementation may take fewer arguments than the hook has), then every call."""
        if not self.impls(hook):
            return  # its plugins went while it waited
        taken = self._arguments[hook]
        for name, value in kwargs.items():
            if type(value) is Later and name in taken:
                kwargs[name] = value.build()
        await self.call_each(hook, **kwargs)

    async def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; a ``Rejected`` from one is treated as a failure."""
        results: list[tuple[str, Any]] = []
        for impl in self.impls(hook):
            try:
                results.append((impl.plugin_name, await self.call(impl, hook, kwargs)))
            except Rejected as exc:
                self.records.failed(impl.plugin_name, hook, exc)
        return results

    # --- the hooks that answer --------------------------------------------------------

    async def check_agent(self, agent: AgentView) -> None:
        await self._vetoable("hivebus_agent_register", agent=agent)

    async def amend_task(self, task: TaskView) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for name, changes in await self._vetoable("hivebus_task_delegate", task=task):
            if changes is None or changes is True:
                continue
            if not isinstance(changes, dict):
                self.records.failed(name, "hivebus_task_delegate", TypeError("must return a dict"))
                continue
            for key, value in changes.items():
                problem = _amendment_problem(key, value)
                if problem is not None:
                    # A bad amendment is the plugin's fault, not the delegator's: skip it.
                    self.records.failed(name, "hivebus_task_delegate", ValueError(problem))
                elif key == "metadata":
                    merged["metadata"] = {**merged.get("metadata", {}), **value}
                else:
                    merged[key] = value
        return merged

    async def select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None:
        """``firstresult``: stops at the first implementation that answers."""
        kwargs = {"task": task, "candidates": candidates}
        for impl in self.impls("hivebus_select_agent"):
            try:
                result = await self.call(impl, "hivebus_select_agent", kwargs)
            except Rejected as exc:
                self.records.failed(impl.plugin_name, "hivebus_select_agent", exc)
                continue
            if result is not None:
                return str(result)
        return None

    async def _vetoable(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        results: list[tuple[str, Any]] = []
        for impl in self.impls(hook):
            try:
                result = await self.call(impl, hook, kwargs)
            except Rejected as exc:
                raise self._vetoed(impl.plugin_name, hook, exc.reason, kwargs) from None
            if result is False:
                raise self._vetoed(impl.plugin_name, hook, "refused", kwargs)
            results.append((impl.plugin_name, result))
        return results

    def _vetoed(self, name: str, hook: str, reason: str, kwargs: dict[str, Any]) -> HivebusError:
        """Count the veto, announce it (``events.plugin.vetoed``), and build the error."""
        self.records.vetoed(name)
        agent, task = kwargs.get("agent"), kwargs.get("task")
        event = Event(
            event=EventName.PLUGIN_VETOED,
            timestamp=time.time(),
            agent_id=agent.agent_id if isinstance(agent, AgentView) else None,
            task_id=task.task_id if isinstance(task, TaskView) else None,
            plugin=name,
            hook=hook,
            reason=reason,
        )
        log.info("vetoed by plugin", extra={"plugin": name, "hook": hook, "reason": reason})
        self.announce(event)
        return HivebusError(ErrorCode.REJECTED_BY_PLUGIN, f"rejected by plugin {name}: {reason}")


def _amendment_problem(key: str, value: Any) -> str | None:
    """Why an amendment cannot be applied, or None when it can."""
    if key == "priority":
        try:
            TaskPriority.parse(value)
        except ValueError as exc:
            return str(exc)
    elif key == "required_capabilities":
        if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
            return "required_capabilities must be a list of non-empty strings"
    elif key == "metadata":
        if not isinstance(value, dict):
            return "metadata must be an object"
    elif key != "payload":
        return f"{key!r} cannot be amended"
    try:
        orjson.dumps(value)
    except TypeError:
        return f"{key} must be JSON"
    return None
