"""``UniversalOrchestrator``: the legacy Python API as a client of the core, over NATS.

Every call is a request on the wire contract, answered by the real core, so what legacy code
does here is what NATS clients, ``hivebus status`` and ``hivebus tap`` see. The facade keeps no
registry and schedules nothing: it only remembers which legacy agents it answers for
(``responders``) and which tasks it is delegating (``tasks``). This module holds its lifecycle
and its API; ``arguments`` turns legacy arguments into requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from hivebus_hookspecs.models import AgentRole, EmptyRequest, HealthStatus, TaskPriority
from nats.aio.client import Client
from pydantic import ValidationError

from ..config import HivebusConfig
from ..connection import connect
from ..errors import RemoteError
from ..runtime import Core
from ..sdk.request import call
from ..subjects import Subjects
from . import arguments
from .config import OrchestratorConfig
from .local_core import LocalCore
from .plugin_manager import PluginManager, warn_missing_plugins
from .responders import LegacyAgents
from .tasks import LegacyTasks
from .thresholds import Thresholds

__all__ = ["AgentOrchestrator", "UniversalOrchestrator"]

log = logging.getLogger("hivebus.universal")


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
        self._tasks: LegacyTasks | None = None
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
        self._tasks = LegacyTasks(
            self._nc, self._subjects, core_config, self._thresholds, self.config.request_timeout_s
        )
        self._agents = LegacyAgents(
            self._nc, self._subjects, core_config.request_timeout_s, self._tasks.claim
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
        self._tasks = None
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
        self._nc, self._agents, self._tasks, self._background = None, None, None, []
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

    def _tasks_and_agents(self) -> tuple[LegacyTasks, LegacyAgents]:
        _, agents, _ = self._connection()
        assert self._tasks is not None  # set with the connection
        return self._tasks, agents

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
        try:
            registration = arguments.registration(agent_id, role, capabilities, metadata)
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning(
                "agent not registered: invalid",
                extra={"agent_id": str(agent_id), "error": arguments.invalid_reason(exc)},
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
        tasks, agents = self._tasks_and_agents()
        try:
            request = arguments.delegation(
                task_id, task_type, required_capabilities, priority, metadata
            )
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning(
                "task not delegated: invalid",
                extra={"task_id": str(task_id), "error": arguments.invalid_reason(exc)},
            )
            return None
        return await tasks.delegate(request, agents)

    async def complete_task(
        self, task_id: str, agent_id: str, result: Any = None, success: bool = True
    ) -> bool:
        """Report the task done (or failed) by ``agent_id``, freeing its slot."""
        tasks, agents = self._tasks_and_agents()
        try:
            request = arguments.completion(task_id, agent_id, result, success)
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning(
                "completion not sent: invalid",
                extra={"task_id": str(task_id), "error": arguments.invalid_reason(exc)},
            )
            return False
        return await tasks.complete(request, agents)

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
