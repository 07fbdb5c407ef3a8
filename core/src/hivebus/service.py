"""The wire layer: NATS subjects bound to orchestrator calls.

It decodes, calls the domain, encodes; it decides no policy. It runs as a NATS micro service
(``$SRV.PING|INFO|STATS`` discovery, a queue group so replicas share load). nats-py runs one
subscription's callbacks one after another, and a delegation awaits an offer round trip, so
each request is handled in its own task: a slow offer never holds up the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from hivebus_hookspecs.models import (
    AgentsReply,
    CompleteRequest,
    DelegateRequest,
    DeregisterRequest,
    EmptyRequest,
    ErrorCode,
    HeartbeatRequest,
    OkReply,
    PluginsReply,
    RegisterReply,
    RegisterRequest,
    TaskReply,
    TaskRequest,
    TasksReply,
    TasksRequest,
)
from nats import micro
from nats.aio.client import Client
from nats.micro.request import Request
from nats.micro.service import Service
from pydantic import BaseModel

from .codec import decode, encode
from .domain import Orchestrator
from .domain.ports import StateUnavailable
from .errors import HivebusError, status_code
from .owned import cancel_and_wait
from .plugins import PluginHost
from .subjects import Subjects

__all__ = ["SERVICE_NAME", "CoreService"]

SERVICE_NAME = "hivebus"
QUEUE_GROUP = "hivebus"

log = logging.getLogger("hivebus.service")

Op = Callable[[bytes], Awaitable[BaseModel | dict[str, Any]]]


class CoreService:
    def __init__(
        self,
        nc: Client,
        orchestrator: Orchestrator,
        plugins: PluginHost,
        subjects: Subjects,
    ) -> None:
        self._nc = nc
        self._orch = orchestrator
        self._plugins = plugins
        self._subjects = subjects
        self._limit = orchestrator.config.max_payload_bytes
        self._service: Service | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def _routes(self) -> dict[str, tuple[str, Op]]:
        s = self._subjects
        return {
            "agent-register": (s.register, self._register),
            "agent-heartbeat": (s.heartbeat, self._heartbeat),
            "agent-deregister": (s.deregister, self._deregister),
            "task-delegate": (s.delegate, self._delegate),
            "task-complete": (s.complete, self._complete),
            "task-get": (s.get, self._get),
            "task-cancel": (s.cancel, self._cancel),
            "orchestrator-status": (s.status, self._status),
            "orchestrator-agents": (s.agents, self._agents),
            "orchestrator-tasks": (s.tasks, self._tasks),
            "orchestrator-plugins": (s.plugins, self._plugins_list),
        }

    async def start(self) -> None:
        self._service = await micro.add_service(
            self._nc,
            name=SERVICE_NAME,
            version=version("hivebus"),
            description="hivebus agent orchestrator",
            metadata={"orchestrator_id": self._orch.orchestrator_id},
            queue_group=QUEUE_GROUP,
        )
        for name, (subject, op) in self._routes().items():
            # Every replica must see every heartbeat (each judges liveness), so heartbeats
            # use a queue group of this replica's own; the rest is shared by the replicas.
            group = self._orch.orchestrator_id if name == "agent-heartbeat" else None
            await self._service.add_endpoint(
                name=name, subject=subject, handler=self._dispatcher(op), queue_group=group
            )
        await self._nc.flush()

    async def stop(self, grace_s: float) -> None:
        """Stop taking requests, then let in-flight ones answer (up to ``grace_s``)."""
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._inflight:
            _, late = await asyncio.wait(self._inflight, timeout=grace_s)
            await cancel_and_wait(late)

    def _dispatcher(self, op: Op) -> Callable[[Request], Awaitable[None]]:
        async def dispatch(request: Request) -> None:
            task = asyncio.create_task(self._serve(request, op))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        return dispatch

    async def _serve(self, request: Request, op: Op) -> None:
        try:
            # Encoding is inside the try: a reply that cannot be encoded (say, a plugin's
            # status contribution that is not JSON) must still be answered, as internal_error.
            payload = encode(await op(request.data))
        except HivebusError as exc:
            await _respond_error(request, exc)
            return
        except StateUnavailable as exc:
            log.warning("state store unavailable", extra={"subject": request.subject})
            await _respond_error(request, HivebusError(ErrorCode.UNAVAILABLE, str(exc)))
            return
        except Exception:
            log.exception("request failed", extra={"subject": request.subject})
            await _respond_error(
                request, HivebusError(ErrorCode.INTERNAL_ERROR, "internal error; see core log")
            )
            return
        await _respond(request, payload)

    # --- operations ----------------------------------------------------------------------

    async def _register(self, data: bytes) -> RegisterReply:
        req = decode(data, RegisterRequest, self._limit)
        agent = await self._orch.register(req)
        return RegisterReply(
            agent_id=agent.agent_id,
            assign_subject=self._subjects.assign(agent.agent_id),
            heartbeat_interval_s=self._orch.config.heartbeat_interval_s,
        )

    async def _heartbeat(self, data: bytes) -> OkReply:
        self._orch.heartbeat(decode(data, HeartbeatRequest, self._limit))
        return OkReply()

    async def _deregister(self, data: bytes) -> BaseModel:
        return await self._orch.deregister(decode(data, DeregisterRequest, self._limit))

    async def _delegate(self, data: bytes) -> BaseModel:
        req = decode(data, DelegateRequest, self._limit)
        # 32 hex characters from the OS's random source, as uuid4().hex gave, at a third of
        # its cost (no UUID object on every delegation).
        return await self._orch.delegate(req, req.task_id or secrets.token_hex(16))

    async def _complete(self, data: bytes) -> TaskReply:
        req = decode(data, CompleteRequest, self._limit)
        return TaskReply(task=await self._orch.complete(req))

    async def _get(self, data: bytes) -> TaskReply:
        req = decode(data, TaskRequest, self._limit)
        return TaskReply(task=self._orch.get_task(req.task_id))

    async def _cancel(self, data: bytes) -> TaskReply:
        req = decode(data, TaskRequest, self._limit)
        return TaskReply(task=await self._orch.cancel(req.task_id))

    async def _status(self, data: bytes) -> dict[str, Any]:
        decode(data, EmptyRequest, self._limit)
        return {"ok": True, **(await self._orch.status())}

    async def _agents(self, data: bytes) -> AgentsReply:
        decode(data, EmptyRequest, self._limit)
        return AgentsReply(agents=self._orch.agents())

    async def _tasks(self, data: bytes) -> TasksReply:
        req = decode(data, TasksRequest, self._limit)
        return TasksReply(tasks=self._orch.tasks(req.status, req.limit))

    async def _plugins_list(self, data: bytes) -> PluginsReply:
        decode(data, EmptyRequest, self._limit)
        return PluginsReply(plugins=await self._plugins.describe())


async def _respond(request: Request, payload: bytes) -> None:
    # A request published without a reply subject (a heartbeat sent with `publish`).
    with contextlib.suppress(ValueError):
        await request.respond(payload)


async def _respond_error(request: Request, exc: HivebusError) -> None:
    body = encode(exc.to_reply())
    try:
        await request.respond_error(str(status_code(exc.code)), exc.message, data=body)
    except ValueError:
        log.info(
            "error for a request without reply subject",
            extra={"subject": request.subject, "code": exc.code.value},
        )
