"""The plugin host: pluggy for specs, registration and discovery; isolation added on top.

pluggy calls every implementation in one loop and lets the first exception escape. A core that
must survive its plugins calls each implementation on its own instead (in pluggy's order, with
pluggy's argument-subset rule), awaits what is awaitable under a timeout, and keeps a health
record per plugin. Notifications go through a queue drained by one worker, so a slow plugin
delays other plugins' notifications, never a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import orjson
import pluggy
from hivebus_hookspecs import PROJECT, Rejected, hookspecs
from hivebus_hookspecs.models import (
    AgentView,
    ErrorCode,
    HealthStatus,
    PluginInfo,
    TaskPriority,
    TaskView,
)

from .errors import HivebusError
from .owned import cancel_and_wait

if TYPE_CHECKING:
    from pluggy._hooks import HookImpl

    from .config import HivebusConfig

__all__ = ["ENTRY_POINT_GROUP", "PluginHost"]

ENTRY_POINT_GROUP = PROJECT
DEGRADED_FOR_S = 300.0
"""A plugin that failed stays degraded this long after its last failure."""
NOTIFY_QUEUE_SIZE = 10_000

log = logging.getLogger("hivebus.plugins")


class _Timeout(Exception):
    pass


@dataclass(slots=True)
class _PluginRecord:
    name: str
    version: str | None
    failures: int = 0
    last_error: str | None = None
    last_failure_at: float | None = None
    load_error: str | None = None


class PluginHost:
    """Implements the domain's hook port on a pluggy ``PluginManager``."""

    def __init__(self, config: HivebusConfig) -> None:
        self.config = config
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._records: dict[str, _PluginRecord] = {}
        self._notifications: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.dropped_notifications = 0

    # --- loading ----------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Register the installed plugins the configuration allows, each once."""
        config = self.config
        enabled = set(config.enable_plugins)
        disabled = set(config.disable_plugins) - enabled
        allowed: set[str] | None = None
        if config.plugins is not None:
            allowed = set(config.plugins) | enabled
        elif not config.plugin_autoload:
            allowed = enabled
        found: set[str] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            found.add(ep.name)
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                log.debug("plugin skipped by configuration", extra={"plugin": ep.name})
                continue
            if ep.name in self._records:
                continue
            version = ep.dist.version if ep.dist is not None else None
            try:
                plugin = ep.load()
            except Exception as exc:
                log.exception("plugin failed to load", extra={"plugin": ep.name})
                self._records[ep.name] = _PluginRecord(
                    ep.name, version, failures=1, load_error=repr(exc), last_error=repr(exc)
                )
                continue
            self.register(plugin, ep.name, version)
        for name in sorted(enabled - found):
            log.warning("enabled plugin is not installed", extra={"plugin": name})

    def register(self, plugin: object, name: str, version: str | None = None) -> None:
        """Register a plugin object (a module, class instance, anything with hookimpls)."""
        self.pm.register(plugin, name=name)
        self._records[name] = _PluginRecord(name, version)
        log.info("plugin loaded", extra={"plugin": name, "version": version})

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._records.pop(name, None)

    def names(self) -> list[str]:
        return list(self._records)

    # --- calling ----------------------------------------------------------------------

    def wants(self, hook: str) -> bool:
        caller = getattr(self.pm.hook, hook)
        return bool(caller.get_hookimpls())

    def _impls(self, hook: str) -> list[HookImpl]:
        # pluggy calls the last registered first (respecting tryfirst/trylast): same here.
        return list(reversed(getattr(self.pm.hook, hook).get_hookimpls()))

    async def _call(self, impl: HookImpl, hook: str, kwargs: dict[str, Any]) -> Any:
        """One implementation, isolated. Raises ``Rejected``; returns None on any failure."""
        try:
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            if inspect.isawaitable(result):
                try:
                    async with asyncio.timeout(self.config.plugin_timeout_s):
                        result = await result
                except TimeoutError:
                    raise _Timeout(f"timed out after {self.config.plugin_timeout_s}s") from None
            return result
        except Rejected:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(impl.plugin_name, hook, exc)
            return None

    def _failed(self, name: str, hook: str, exc: Exception) -> None:
        record = self._records.get(name)
        if record is not None:
            record.failures += 1
            detail = str(exc) if isinstance(exc, _Timeout) else repr(exc)
            record.last_error = f"{hook}: {detail}"
            record.last_failure_at = time.monotonic()
        if isinstance(exc, _Timeout):
            log.error("plugin hook timed out", extra={"plugin": name, "hook": hook})
        else:
            log.error("plugin hook failed", extra={"plugin": name, "hook": hook}, exc_info=exc)

    async def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; a ``Rejected`` from one is treated as a failure."""
        results: list[tuple[str, Any]] = []
        for impl in self._impls(hook):
            try:
                results.append((impl.plugin_name, await self._call(impl, hook, kwargs)))
            except Rejected as exc:
                self._failed(impl.plugin_name, hook, exc)
        return results

    async def _vetoable(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        results: list[tuple[str, Any]] = []
        for impl in self._impls(hook):
            try:
                result = await self._call(impl, hook, kwargs)
            except Rejected as exc:
                raise _veto(impl.plugin_name, exc.reason) from None
            if result is False:
                raise _veto(impl.plugin_name, "refused")
            results.append((impl.plugin_name, result))
        return results

    async def check_agent(self, agent: AgentView) -> None:
        await self._vetoable("hivebus_agent_register", agent=agent)

    async def amend_task(self, task: TaskView) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for name, changes in await self._vetoable("hivebus_task_delegate", task=task):
            if changes is None or changes is True:
                continue
            if not isinstance(changes, dict):
                self._failed(name, "hivebus_task_delegate", TypeError("must return a dict"))
                continue
            for key, value in changes.items():
                problem = _amendment_problem(key, value)
                if problem is not None:
                    # A bad amendment is the plugin's fault, not the delegator's: skip it.
                    self._failed(name, "hivebus_task_delegate", ValueError(problem))
                elif key == "metadata":
                    merged["metadata"] = {**merged.get("metadata", {}), **value}
                else:
                    merged[key] = value
        return merged

    async def select_agent(self, task: TaskView, candidates: list[AgentView]) -> str | None:
        """``firstresult``: stops at the first implementation that answers."""
        kwargs = {"task": task, "candidates": candidates}
        for impl in self._impls("hivebus_select_agent"):
            try:
                result = await self._call(impl, "hivebus_select_agent", kwargs)
            except Rejected as exc:
                self._failed(impl.plugin_name, "hivebus_select_agent", exc)
                continue
            if result is not None:
                return str(result)
        return None

    # --- notifications ----------------------------------------------------------------

    def notify(self, hook: str, **kwargs: Any) -> None:
        if self._notifications is None:
            return
        try:
            self._notifications.put_nowait((hook, kwargs))
        except asyncio.QueueFull:
            self.dropped_notifications += 1
            if self.dropped_notifications % 1000 == 1:
                log.warning("plugin notifications dropped", extra={"hook": hook})

    async def _drain(self) -> None:
        queue = self._notifications
        assert queue is not None
        while True:
            woken = queue.empty()
            hook, kwargs = await queue.get() if woken else queue.get_nowait()
            try:
                if woken:
                    # By the request being handled right now: let its reply reach the socket
                    # first (the connection's flusher is scheduled behind this wake-up).
                    await asyncio.sleep(0)
                await self.call_each(hook, **kwargs)
            finally:
                queue.task_done()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, orchestrator: Any) -> None:
        self._notifications = asyncio.Queue(NOTIFY_QUEUE_SIZE)
        self._worker = asyncio.create_task(self._drain(), name="hivebus-plugin-notify")
        await self.call_each("hivebus_startup", orchestrator=orchestrator, config=self.config)

    async def stop(self, orchestrator: Any, grace_s: float = 2.0) -> None:
        """Deliver what is queued (within ``grace_s``), then shut plugins down in reverse."""
        if self._notifications is not None and self._worker is not None:
            try:
                async with asyncio.timeout(grace_s):
                    await self._notifications.join()
            except TimeoutError:
                log.warning("plugin notifications left undelivered at shutdown")
            await cancel_and_wait([self._worker])
        self._notifications, self._worker = None, None
        for impl in list(reversed(self._impls("hivebus_shutdown"))):
            with contextlib.suppress(Rejected):
                await self._call(impl, "hivebus_shutdown", {"orchestrator": orchestrator})

    # --- health and introspection -----------------------------------------------------

    async def health(self) -> dict[str, HealthStatus]:
        reported: dict[str, HealthStatus] = {}
        for name, answer in await self.call_each("hivebus_health"):
            try:
                reported[name] = (
                    HealthStatus(answer) if answer is not None else HealthStatus.HEALTHY
                )
            except ValueError:
                self._failed(name, "hivebus_health", ValueError(f"unknown health {answer!r}"))
        now = time.monotonic()
        health: dict[str, HealthStatus] = {}
        for name, record in self._records.items():
            observed = HealthStatus.HEALTHY
            if record.load_error is not None:
                observed = HealthStatus.UNHEALTHY
            elif record.last_failure_at is not None and now - record.last_failure_at < (
                DEGRADED_FOR_S
            ):
                observed = HealthStatus.DEGRADED
            health[name] = HealthStatus.worst(observed, reported.get(name, HealthStatus.HEALTHY))
        return health

    async def status_contributions(self, orchestrator: Any) -> dict[str, Any]:
        contributions: dict[str, Any] = {}
        for name, result in await self.call_each("hivebus_status", orchestrator=orchestrator):
            if result is None:
                continue
            try:
                orjson.dumps(result)
            except TypeError as exc:  # one plugin's odd value must not fail the status
                self._failed(name, "hivebus_status", exc)
                continue
            contributions[name] = result
        return contributions

    async def describe(self) -> list[PluginInfo]:
        health = await self.health()
        infos = []
        for name, record in self._records.items():
            plugin = self.pm.get_plugin(name)
            hooks = [] if plugin is None else _hook_names(self.pm.get_hookcallers(plugin))
            infos.append(
                PluginInfo(
                    name=name,
                    version=record.version,
                    hooks=hooks,
                    health=health[name],
                    failures=record.failures,
                    last_error=record.last_error,
                )
            )
        return infos


def _hook_names(callers: Iterable[Any] | None) -> list[str]:
    return sorted(caller.name for caller in callers or ())


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


def _veto(plugin: str, reason: str) -> HivebusError:
    return HivebusError(ErrorCode.REJECTED_BY_PLUGIN, f"rejected by plugin {plugin}: {reason}")
