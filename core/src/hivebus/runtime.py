"""The running core: one NATS connection, the plugin host, the orchestrator and the service."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from hivebus_hookspecs.context import EndpointHandler
from hivebus_hookspecs.models import HealthStatus
from nats.aio.client import Client

from .adapters.events import EventPublisher
from .adapters.jetstream import BucketNames, JetStreamState, jetstream_available
from .adapters.jetstream.quorum import QuorumWatch
from .adapters.offers import NatsOffers
from .adapters.service import CoreService
from .auth.guard import Guard
from .config import HivebusConfig
from .connection import connect, redact
from .context import CorePluginContext, build_contexts
from .domain import Orchestrator
from .domain.memory_state import MemoryState
from .plugins import PluginHost
from .subjects import Subjects

__all__ = ["Core"]

log = logging.getLogger("hivebus.core")


class Core:
    """Start with ``await core.start()`` (or ``async with Core(config) as core``)."""

    def __init__(self, config: HivebusConfig, plugins: PluginHost | None = None) -> None:
        self.config = config
        self.subjects = Subjects(config.prefix)
        self.plugins = plugins or PluginHost(config)
        self.nc: Client | None = None
        self._orchestrator: Orchestrator | None = None
        self._service: CoreService | None = None
        self._events: EventPublisher | None = None
        self._owns_connection = False
        self._state: JetStreamState | None = None
        self._quorum: QuorumWatch | None = None
        self.state_kind = "none"
        self.ready_in_s: float | None = None
        self._contexts: dict[str, CorePluginContext] = {}
        self.lost = asyncio.Event()
        """Set when the NATS connection closed for good without ``stop()``: the owner should
        exit non-zero so a supervisor restarts the core (see ``hivebus up``)."""
        self._stopping = False
        self._guard: Guard | None = None

    @property
    def orchestrator(self) -> Orchestrator:
        if self._orchestrator is None:
            raise RuntimeError("the core is not started")
        return self._orchestrator

    async def start(self, nc: Client | None = None) -> None:
        started = time.perf_counter()
        if nc is None:
            nc = await connect(
                self.config,
                f"hivebus-core-{self.config.orchestrator_id}",
                on_disconnect=self._bus_lost,
                on_reconnect=self._bus_restored,
                on_closed=self._connection_closed,
            )
            self._owns_connection = True
        self.nc = nc
        self.plugins.load_entry_points()
        self._events = EventPublisher(nc, self.subjects)
        state = await self._open_state(nc)
        orchestrator = Orchestrator(
            self.config,
            NatsOffers(nc, self.subjects, self.config.offer_timeout_s),
            self._events,
            self.plugins,
            state,
            max_message_bytes=nc.max_payload,
        )
        if isinstance(state, JetStreamState):
            # The cache is complete before anything is served: resume where the bus was.
            cache = orchestrator.cache
            await state.follow(
                cache.on_stored_agent,
                cache.on_stored_task,
                self.config.request_timeout_s,
                known_agent=cache.agent_revision,
                known_task=cache.task_revision,
            )
        orchestrator.add_health_check(self._connection_health)
        orchestrator.add_health_check(self._state_health)
        if isinstance(state, JetStreamState):
            names = BucketNames.for_prefix(self.config.prefix)
            self._quorum = QuorumWatch(
                nc.jetstream(timeout=self.config.request_timeout_s),
                (names.agents, names.tasks, names.seats),
                interval_s=self.config.heartbeat_interval_s,
                timeout_s=min(self.config.request_timeout_s, 2.0),
            )
            await self._quorum.start()
            orchestrator.add_health_check(self._quorum.health)
        orchestrator.add_status_section("state", self._state_section)
        self._orchestrator = orchestrator
        self._events.start()
        js = nc.jetstream(timeout=self.config.request_timeout_s) if self._state else None
        self._contexts = build_contexts(
            self.plugins.names(),
            orchestrator,
            self._events,
            self.subjects,
            self.config,
            js,
            self.plugins.report_failure,
            self.plugins.hook_times,
        )
        await self.plugins.start(orchestrator, self._events, self._contexts)
        orchestrator.start()
        guard = None
        if self.config.auth_dir is not None:  # secure mode: docs/security.md
            from .auth.wiring import open_guard

            guard = await open_guard(self.config, orchestrator, self._events, self.subjects, js)
            guard.start()
        self._guard = guard
        self._service = CoreService(nc, orchestrator, self.plugins, self.subjects, guard)
        await self._service.start()
        for context in self._contexts.values():
            await context.bind(self._endpoint_binder(context.name))
        # The server has every subscription once it answers a ping: "serving" means a request
        # sent now, from any connection, finds a responder (plugin endpoints included).
        await nc.flush(timeout=max(1, round(self.config.request_timeout_s)))
        self.ready_in_s = time.perf_counter() - started
        log.info(
            "hivebus core serving",
            extra={
                "orchestrator_id": self.config.orchestrator_id,
                "nats": redact(nc.connected_url.geturl()) if nc.connected_url else None,
                "plugins": ",".join(self.plugins.names()) or "-",
                "state": self.state_kind,
                "ready_ms": round(self.ready_in_s * 1000, 1),
            },
        )

    def _endpoint_binder(self, plugin: str) -> Callable[[str, EndpointHandler], Awaitable[str]]:
        service = self._service
        assert service is not None

        def failed(what: str, exc: BaseException) -> None:
            self.plugins.report_failure(plugin, what, exc)

        def serve(endpoint: str, handler: EndpointHandler) -> Awaitable[str]:
            return service.add_plugin_endpoint(plugin, endpoint, handler, failed)

        return serve

    async def _open_state(self, nc: Client) -> MemoryState | JetStreamState:
        wanted = self.config.state
        if wanted == "auto":
            has_js = await jetstream_available(nc, self.config.request_timeout_s)
            wanted = "jetstream" if has_js else "memory"
            if not has_js:
                log.warning(
                    "NATS has no JetStream: state is in memory and a restart forgets it "
                    "(start nats-server with -js, or set state=memory to silence this)"
                )
        if wanted == "memory":
            self.state_kind = "memory"
            return MemoryState(max_seats=self.config.max_agents)
        try:
            self._state = await JetStreamState.open(nc, self.config)
        except Exception as exc:
            raise ConnectionError(
                f"cannot open the JetStream state buckets ({exc!r}): is JetStream enabled, "
                f"and does the cluster have kv_replicas={self.config.kv_replicas} nodes?"
            ) from exc
        self.state_kind = "jetstream"
        return self._state

    async def _bus_lost(self) -> None:
        if self._orchestrator is not None:
            self._orchestrator.bus_lost()

    async def _bus_restored(self) -> None:
        if self._orchestrator is not None:
            self._orchestrator.bus_restored()

    async def _connection_closed(self) -> None:
        if self._stopping:
            return
        log.critical(
            "the NATS connection is closed for good; the core cannot serve",
            extra={"orchestrator_id": self.config.orchestrator_id},
        )
        if self._orchestrator is not None:
            self._orchestrator.bus_lost()
        self.lost.set()

    def _connection_health(self) -> tuple[HealthStatus, str] | None:
        if self.nc is not None and not self.nc.is_connected:
            return HealthStatus.UNHEALTHY, "disconnected from NATS"
        return None

    def _state_health(self) -> tuple[HealthStatus, str] | None:
        unreadable = self._state.unreadable.count if self._state is not None else 0
        if unreadable:
            return (
                HealthStatus.DEGRADED,
                f"{unreadable} unreadable records in the state buckets were skipped (see log)",
            )
        return None

    def _state_section(self) -> dict[str, Any]:
        buckets = self._quorum.section() if self._quorum is not None else {}
        return {"kind": self.state_kind, "buckets": buckets}

    async def stop(self) -> None:
        """Finish in-flight replies, stop background work, shut plugins down, disconnect."""
        grace = self.config.shutdown_grace_s
        self._stopping = True
        if self._quorum is not None:
            await self._quorum.stop()
            self._quorum = None
        if self._service is not None:
            await self._service.stop(grace)
            self._service = None
        if self._guard is not None:
            await self._guard.close()
            self._guard = None
        for context in self._contexts.values():
            await context.close()
        if self._orchestrator is not None:
            await self._orchestrator.stop()
            await self.plugins.stop(self._orchestrator, grace)
        if self._events is not None:
            await self._events.stop()
            self._events = None
        if self._state is not None:
            await self._state.close()
            self._state = None
        if self.nc is not None:
            if self.nc.is_closed:
                pass  # lost for good: nothing to drain
            elif self._owns_connection:
                await self.nc.drain()
            else:
                await self.nc.flush()
            self.nc = None
        log.info("hivebus core stopped", extra={"orchestrator_id": self.config.orchestrator_id})

    async def __aenter__(self) -> Core:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
