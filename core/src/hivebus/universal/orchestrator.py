"""``UniversalOrchestrator``: the legacy Python API as a client of the core, over NATS.

Every call is a request on the wire contract, answered by the real core, so what legacy code
does here is what NATS clients, ``hivebus status`` and ``hivebus tap`` see. The facade keeps no
registry and schedules nothing: it only remembers which legacy agents it answers for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import orjson
from hivebus_hookspecs.models import (
    AgentRole,
    CompleteRequest,
    DelegateReply,
    DelegateRequest,
    EmptyRequest,
    ErrorCode,
    HealthStatus,
    RegisterRequest,
    TaskPriority,
    TaskRequest,
    TaskStatus,
)
from nats.aio.client import Client
from pydantic import ValidationError

from ..config import HivebusConfig
from ..connection import connect
from ..errors import RemoteError
from ..runtime import Core
from ..sdk.request import call
from ..subjects import Subjects
from .config import OrchestratorConfig
from .enums import plain
from .local_core import LocalCore
from .plugin_manager import PluginManager, warn_missing_plugins
from .responders import LegacyAgents
from .thresholds import Thresholds

__all__ = [
    "AgentOrchestrator",
    "UniversalOrchestrator",
    "get_orchestrator",
    "get_universal_orchestrator",
    "shutdown_universal_orchestrator",
]

log = logging.getLogger("hivebus.universal")

ERROR_TEXT_LIMIT = 8192
_TAKEN = frozenset({TaskStatus.ASSIGNED, TaskStatus.COMPLETED, TaskStatus.FAILED})


def _jsonable(value: Any) -> Any:
    """Legacy values travel as JSON: sets and tuples become lists, anything else a string."""

    def fallback(obj: Any) -> Any:
        if isinstance(obj, set | frozenset | tuple):
            return list(obj)
        return str(obj)

    return orjson.loads(orjson.dumps(value, default=fallback, option=orjson.OPT_NON_STR_KEYS))


def _names(capabilities: Iterable[str] | str) -> list[str]:
    """A lone string is one capability, not a sequence of one-letter ones."""
    return [capabilities] if isinstance(capabilities, str) else list(capabilities)


def _max_tasks(metadata: dict[str, Any] | None) -> Any:
    for key in ("max_tasks", "max_concurrent_tasks"):
        if metadata and key in metadata:
            return metadata[key]
    return 1


def _error_text(result: Any) -> str | None:
    if isinstance(result, dict) and result.get("error") is not None:
        return str(result["error"])[:ERROR_TEXT_LIMIT]
    if isinstance(result, str):
        return result[:ERROR_TEXT_LIMIT]
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return str(exc)


class UniversalOrchestrator:
    """The legacy orchestrator object. Every method is a coroutine; start it before use."""

    def __init__(self, config: OrchestratorConfig | None = None) -> None:
        self.config = config or OrchestratorConfig()
        self.plugin_manager = PluginManager(self._plugin_context)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._local: LocalCore | None = None
        self._nc: Client | None = None
        self._subjects = Subjects()
        self._agents: LegacyAgents | None = None
        self._delegating: dict[str, set[str]] = {}
        self._thresholds = Thresholds(self.config)
        self._background: list[asyncio.Task[None]] = []

    # --- lifecycle --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._nc is not None

    @property
    def core(self) -> Core | None:
        """The core this process runs (``None`` with ``run_core=False`` or when stopped)."""
        return self._local.core if self._local is not None else None

    @property
    def core_config(self) -> HivebusConfig | None:
        return self._local.core_config if self._local is not None else None

    @property
    def nats_url(self) -> str | None:
        """Where the bus is: point ``hivebus status --nats URL`` or a ``HiveClient`` here."""
        core_config = self.core_config
        return core_config.nats_url if core_config is not None else None

    async def start(self) -> UniversalOrchestrator:
        if self.running:
            return self
        started = time.perf_counter()
        self.loop = asyncio.get_running_loop()
        self._thresholds = Thresholds(self.config)
        self._local = local = LocalCore(self.config)
        self.plugin_manager.remote_core = not self.config.run_core
        try:
            core_config = await local.start(self.plugin_manager.attach)
            self._nc = await connect(core_config, "hivebus-universal")
        except BaseException:
            self.plugin_manager.detach()
            await local.stop()
            self._local = None
            raise
        self._subjects = Subjects(core_config.prefix)
        self._agents = LegacyAgents(
            self._nc, self._subjects, core_config.request_timeout_s, self._claim
        )
        self._agents.heartbeat_interval_s = core_config.heartbeat_interval_s
        if local.core is not None:
            self.plugin_manager.started(local.core.orchestrator)
            for check in self._thresholds.checks():
                local.core.orchestrator.add_health_check(check)
            warn_missing_plugins(self.config.plugin_switches(), local.core.plugins.names())
        self._background = [
            asyncio.create_task(self._agents.heartbeat_forever(), name="hivebus-legacy-heartbeat"),
            asyncio.create_task(self._thresholds.sample_forever(), name="hivebus-legacy-sampler"),
        ]
        self._thresholds.initialization_ms = (time.perf_counter() - started) * 1000
        log.info(
            "universal orchestrator ready",
            extra={
                "nats": core_config.nats_url,
                "core": "in-process" if local.core is not None else "remote",
                "ready_ms": round(self._thresholds.initialization_ms, 1),
            },
        )
        return self

    async def shutdown(self) -> None:
        """Deregister the legacy agents, stop the core and the embedded server (if ours)."""
        if not self.running:
            return
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        if self._agents is not None:
            await self._agents.close()
            self._agents = None
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        if self._local is not None:
            await self._local.stop()
        self.plugin_manager.detach()
        log.info("universal orchestrator stopped")

    def abandon(self) -> None:
        """Forget a run whose event loop is gone: only the server process can still be ended."""
        if self._local is not None:
            self._local.abandon()
        self._nc, self._agents, self._background = None, None, []
        self.plugin_manager.detach()

    async def __aenter__(self) -> UniversalOrchestrator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def _connection(self) -> tuple[Client, LegacyAgents, HivebusConfig]:
        if self._nc is None or self._agents is None or self.core_config is None:
            raise RuntimeError("the orchestrator is not running: await start() first")
        return self._nc, self._agents, self.core_config

    def _plugin_context(self, core_orchestrator: Any) -> dict[str, Any]:
        return {
            "orchestrator": self,
            "config": self.config,
            "core": core_orchestrator,
            "nats_url": self.nats_url,
            "mode": self.config.mode,
        }

    # --- agents -----------------------------------------------------------------------

    async def register_agent(
        self,
        agent_id: str,
        role: AgentRole | str,
        capabilities: Iterable[str],
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        """Register a legacy agent; ``False`` on any refusal (the log says why).

        ``metadata["max_tasks"]`` sets how many tasks it holds at once (default 1).
        """
        _, agents, _ = self._connection()
        role_value = plain(role)
        try:
            registration = RegisterRequest(
                agent_id=agent_id,
                role=role_value.lower() if isinstance(role_value, str) else role_value,
                capabilities=_names(capabilities),
                max_tasks=_max_tasks(metadata),
                metadata=_jsonable(metadata or {}),
            )
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning(
                "agent not registered: invalid",
                extra={"agent_id": str(agent_id), "error": _reason(exc)},
            )
            return False
        try:
            with Thresholds.timing(self._thresholds.registration_ms):
                await agents.register(registration)
        except RemoteError as exc:
            log.warning(
                "agent not registered",
                extra={"agent_id": agent_id, "code": exc.code.value, "error": exc.message},
            )
            return False
        return True

    # --- tasks ------------------------------------------------------------------------

    def _claim(self, task_id: str, agent_id: str) -> bool:
        accepted = self._delegating.get(task_id)
        if accepted is None:
            return False
        accepted.add(agent_id)
        return True

    def _release(self, task_id: str, agent_ids: Iterable[str]) -> None:
        if self._agents is None:
            return
        for agent_id in agent_ids:
            responder = self._agents.get(agent_id)
            if responder is not None:
                responder.held.discard(task_id)

    async def delegate_task(
        self,
        task_id: str,
        task_type: str,
        required_capabilities: Iterable[str],
        priority: TaskPriority | int | str = TaskPriority.MEDIUM,
        metadata: dict[str, Any] | None = None,
    ) -> str | None:
        """The id of the agent that took the task, or ``None`` when no capable agent was free.

        Nothing lingers after ``None``: the task is not queued (``queue=False``), so the same
        id can be delegated again later.
        """
        nc, _, core_config = self._connection()
        try:
            request = DelegateRequest(
                task_id=task_id,
                task_type=task_type,
                required_capabilities=_names(required_capabilities),
                priority=plain(priority),
                metadata=_jsonable(metadata or {}),
                queue=False,
            )
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning(
                "task not delegated: invalid",
                extra={"task_id": str(task_id), "error": _reason(exc)},
            )
            return None
        owner = task_id not in self._delegating  # a concurrent duplicate shares the first claim
        if owner:
            self._delegating[task_id] = set()
        timeout = (
            core_config.request_timeout_s
            + core_config.offer_timeout_s * core_config.offer_candidates
        )
        assigned: str | None = None
        try:
            with Thresholds.timing(self._thresholds.delegation_ms):
                raw = await call(nc, self._subjects.delegate, request, timeout)
            reply = DelegateReply.model_validate(raw)
            # A fast agent (a real one on the same bus) may finish before the reply is sent.
            assigned = reply.agent_id if reply.status in _TAKEN else None
        except RemoteError as exc:
            log.info(
                "task not assigned",
                extra={"task_id": task_id, "code": exc.code.value, "error": exc.message},
            )
        except TimeoutError:
            log.warning("delegation not answered; cancelling the task", extra={"task_id": task_id})
            await self._cancel_quietly(nc, task_id)
        finally:
            accepted = self._delegating.pop(task_id, set()) if owner else set()
        # An acceptance that reached the core too late (it had moved on) holds no slot there.
        self._release(task_id, accepted - {assigned} if assigned else accepted)
        return assigned

    async def _cancel_quietly(self, nc: Client, task_id: str) -> None:
        with contextlib.suppress(Exception):
            await call(
                nc,
                self._subjects.cancel,
                TaskRequest(task_id=task_id),
                self.config.request_timeout_s,
            )

    async def complete_task(
        self, task_id: str, agent_id: str, result: Any = None, success: bool = True
    ) -> bool:
        """Report the task done (or failed) by ``agent_id``, freeing its slot."""
        nc, _, core_config = self._connection()
        try:
            request = CompleteRequest(
                task_id=task_id,
                agent_id=agent_id,
                success=bool(success),
                result=_jsonable(result),
                error=None if success else _error_text(result),
            )
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning(
                "completion not sent: invalid",
                extra={"task_id": str(task_id), "error": _reason(exc)},
            )
            return False
        try:
            await call(nc, self._subjects.complete, request, core_config.request_timeout_s)
        except RemoteError as exc:
            if exc.code is ErrorCode.INVALID_STATE:
                self._release(task_id, [agent_id])  # finished another way (cancelled)
            log.warning(
                "completion refused",
                extra={"task_id": task_id, "code": exc.code.value, "error": exc.message},
            )
            return False
        self._release(task_id, [agent_id])
        return True

    # --- status -----------------------------------------------------------------------

    async def get_system_status(self) -> dict[str, Any]:
        """The core's ``orchestrator.status``, plus the facade's figures under ``performance``."""
        nc, _, core_config = self._connection()
        status = await call(
            nc, self._subjects.status, EmptyRequest(), core_config.request_timeout_s
        )
        status.pop("ok", None)
        status.setdefault("performance", {}).update(self._thresholds.figures())
        if self.core is None:
            # The core runs elsewhere and cannot run our checks: fold them in here.
            issues = self._thresholds.issues()
            if issues:
                status["health_issues"] = [
                    *status.get("health_issues", []),
                    *(i for _, i in issues),
                ]
                status["health_status"] = HealthStatus.worst(
                    HealthStatus(status["health_status"]), *(s for s, _ in issues)
                ).value
        return status


AgentOrchestrator = UniversalOrchestrator
"""The other legacy name of the same class."""


# --- the process-wide instance --------------------------------------------------------------


class _ProcessWide:
    instance: UniversalOrchestrator | None = None
    lock: asyncio.Lock | None = None
    lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def lock_for(cls, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        if cls.lock is None or cls.lock_loop is not loop:
            cls.lock, cls.lock_loop = asyncio.Lock(), loop
        return cls.lock


async def get_universal_orchestrator(
    config: OrchestratorConfig | None = None,
) -> UniversalOrchestrator:
    """The process-wide orchestrator, started on first call (later calls return it)."""
    loop = asyncio.get_running_loop()
    async with _ProcessWide.lock_for(loop):
        instance = _ProcessWide.instance
        if instance is not None and instance.running and instance.loop is not loop:
            warnings.warn(
                "the process-wide orchestrator ran on an event loop that is gone; starting anew",
                RuntimeWarning,
                stacklevel=2,
            )
            instance.abandon()
            instance = None
        if instance is not None and instance.running:
            if config is not None and config != instance.config:
                warnings.warn(
                    "get_universal_orchestrator(config) ignored the config: the orchestrator is "
                    "already running; call shutdown_universal_orchestrator() first to change it",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return instance
        instance = UniversalOrchestrator(config)
        await instance.start()
        _ProcessWide.instance = instance
        return instance


get_orchestrator = get_universal_orchestrator
"""The other legacy name of ``get_universal_orchestrator``."""


async def shutdown_universal_orchestrator() -> None:
    """Shut the process-wide orchestrator down (a no-op when none is running)."""
    instance, _ProcessWide.instance = _ProcessWide.instance, None
    if instance is None:
        return
    if instance.loop is asyncio.get_running_loop():
        await instance.shutdown()
    else:
        instance.abandon()
