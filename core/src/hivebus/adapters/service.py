"""The wire layer: NATS subjects bound to orchestrator calls.

It decodes, calls the domain, encodes; it decides no policy. It runs as a NATS micro service
(``$SRV.PING|INFO|STATS`` discovery, a queue group so replicas share load). nats-py runs one
subscription's callbacks one after another, and a delegation awaits an offer round trip, so
each request is handled in its own task: a slow offer never holds up the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from hivebus_hookspecs import EndpointError
from hivebus_hookspecs.context import EndpointHandler
from hivebus_hookspecs.models import (
    AgentsReply,
    AgentsRequest,
    AgentView,
    AuditReply,
    AuditRequest,
    CompleteRequest,
    DelegateRequest,
    DeregisterRequest,
    EmptyRequest,
    ErrorCode,
    HeartbeatRequest,
    OkReply,
    PluginsReply,
    ProgressRequest,
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
from pydantic import BaseModel, JsonValue, RootModel

from ..auth import Admitted, Guard
from ..codec import decode, encode
from ..domain import Orchestrator
from ..domain.ports import StateUnavailable
from ..errors import HivebusError, status_code
from ..owned import cancel_and_wait
from ..plugins import PluginHost
from ..subjects import Subjects
from .paging import page

__all__ = ["SERVICE_NAME", "CoreService"]

SERVICE_NAME = "hivebus"
QUEUE_GROUP = "hivebus"

log = logging.getLogger("hivebus.service")

Op = Callable[[bytes], Awaitable[BaseModel | dict[str, Any]]]
Failed = Callable[[str, BaseException], None]
"""``failed(what, exc)``: tell the plugin host that a plugin's endpoint failed."""


class _JsonObject(RootModel[dict[str, JsonValue]]):
    """A plugin endpoint's request: any JSON object (the plugin validates the rest)."""


class CoreService:
    def __init__(
        self,
        nc: Client,
        orchestrator: Orchestrator,
        plugins: PluginHost,
        subjects: Subjects,
        guard: Guard | None = None,
    ) -> None:
        self._nc = nc
        self._guard = guard
        """Secure mode: every request is authorized (and audited) before it is served."""
        self._orch = orchestrator
        self._plugins = plugins
        self._subjects = subjects
        self._limit = orchestrator.config.max_payload_bytes
        self._service: Service | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._inflight_bytes = 0

    def _routes(self) -> dict[str, tuple[str, Op]]:
        s = self._subjects
        routes: dict[str, tuple[str, Op]] = {
            "agent-register": (s.register, self._register),
            "agent-heartbeat": (s.heartbeat, self._heartbeat),
            "agent-deregister": (s.deregister, self._deregister),
            "task-delegate": (s.delegate, self._delegate),
            "task-complete": (s.complete, self._complete),
            "task-get": (s.get, self._get),
            "task-cancel": (s.cancel, self._cancel),
            "task-retry": (s.retry, self._retry),
            "task-progress": (s.progress, self._progress),
            "orchestrator-status": (s.status, self._status),
            "orchestrator-agents": (s.agents, self._agents),
            "orchestrator-tasks": (s.tasks, self._tasks),
            "orchestrator-plugins": (s.plugins, self._plugins_list),
        }
        if self._guard is not None:
            routes["orchestrator-audit"] = (s.audit, self._audit)
        return routes

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
                name=name, subject=subject, handler=self._dispatcher(op, name), queue_group=group
            )
        await self._nc.flush()

    async def add_plugin_endpoint(
        self, plugin: str, endpoint: str, handler: EndpointHandler, failed: Failed
    ) -> str:
        """Serve ``plugin.<plugin>.<endpoint>`` with the core's error contract; the subject."""
        if self._service is None:
            raise RuntimeError("the service is not started")
        subject = self._subjects.plugin(plugin, endpoint)
        timeout = self._orch.config.request_timeout_s

        async def op(data: bytes) -> dict[str, Any]:
            body = decode(data, _JsonObject, self._limit).root
            try:
                async with asyncio.timeout(timeout):
                    result = handler(body)
                    if inspect.isawaitable(result):
                        result = await result
            except HivebusError:
                raise
            except EndpointError as exc:
                raise HivebusError(exc.code, exc.message) from None
            except TimeoutError as exc:
                failed(f"endpoint {endpoint}", exc)
                raise HivebusError(
                    ErrorCode.UNAVAILABLE, f"plugin {plugin} did not answer within {timeout}s"
                ) from None
            except Exception as exc:
                failed(f"endpoint {endpoint}", exc)
                raise HivebusError(
                    ErrorCode.INTERNAL_ERROR, f"plugin {plugin} failed to answer; see core log"
                ) from exc
            if not isinstance(result, dict):
                failed(f"endpoint {endpoint}", TypeError(f"returned {type(result).__name__}"))
                raise HivebusError(
                    ErrorCode.INTERNAL_ERROR, f"plugin {plugin} answered something not an object"
                )
            return {**result, "ok": True}

        name = f"plugin-{plugin}-{endpoint}"
        await self._service.add_endpoint(
            name=name,
            subject=subject,
            handler=self._dispatcher(op, name),
            metadata={"plugin": plugin},
        )
        await self._nc.flush()  # served once this returns, for any connection's request
        return subject

    async def stop(self, grace_s: float) -> None:
        """Stop taking requests, then let in-flight ones answer (up to ``grace_s``)."""
        if self._service is not None:
            if not self._nc.is_closed:  # a closed connection took the subscriptions along
                await self._service.stop()
            self._service = None
        if self._inflight:
            _, late = await asyncio.wait(self._inflight, timeout=grace_s)
            await cancel_and_wait(late)

    def _dispatcher(self, op: Op, operation: str) -> Callable[[Request], Awaitable[None]]:
        config = self._orch.config

        async def dispatch(request: Request) -> None:
            size = len(request.data)
            if (
                len(self._inflight) >= config.max_inflight_requests
                or self._inflight_bytes + size > config.max_inflight_bytes
            ):
                # Shed load before reading: a flood must not pile up tasks and bodies without
                # bound. The answer costs nothing to make, and a retry is safe.
                busy = f"the core is busy with {len(self._inflight)} requests; try again"
                await _respond_error(request, HivebusError(ErrorCode.UNAVAILABLE, busy))
                return
            self._inflight_bytes += size
            task = asyncio.create_task(self._serve(request, op, operation))
            self._inflight.add(task)
            task.add_done_callback(lambda done: self._done(done, size))

        return dispatch

    def _done(self, task: asyncio.Task[None], size: int) -> None:
        self._inflight.discard(task)
        self._inflight_bytes -= size

    async def _serve(self, request: Request, op: Op, operation: str) -> None:
        admitted: Admitted | None = None
        outcome, task_id = "ok", None
        try:
            data = request.data
            if self._guard is not None:
                # Authorization before anything is read or changed (refusals are audited).
                admitted = self._guard.admit(operation, request.headers, data)
                data = admitted.data
            result = await op(data)
            task_id = getattr(result, "task_id", None)
            # Encoding is inside the try: a reply that cannot be encoded (say, a plugin's
            # status contribution that is not JSON) must still be answered, as internal_error.
            payload = encode(result)
            if len(payload) > self._nc.max_payload:
                # Sent, it would make the server close this connection: the core would be
                # alive but deaf. Answer what can be answered instead.
                raise HivebusError(
                    ErrorCode.REPLY_TOO_LARGE,
                    f"the reply would be {len(payload)} bytes and NATS carries at most "
                    f"{self._nc.max_payload}; ask for less (limit, cursor)",
                )
        except HivebusError as exc:
            outcome = exc.code.value
            await _respond_error(request, exc)
            return
        except StateUnavailable as exc:
            outcome = ErrorCode.UNAVAILABLE.value
            log.warning("state store unavailable", extra={"subject": request.subject})
            await _respond_error(request, HivebusError(ErrorCode.UNAVAILABLE, str(exc)))
            return
        except Exception:
            outcome = ErrorCode.INTERNAL_ERROR.value
            log.exception("request failed", extra={"subject": request.subject})
            await _respond_error(
                request, HivebusError(ErrorCode.INTERNAL_ERROR, "internal error; see core log")
            )
            return
        finally:
            if admitted is not None and self._guard is not None:
                self._guard.settle(admitted, outcome, task_id if isinstance(task_id, str) else None)
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

    async def _retry(self, data: bytes) -> TaskReply:
        req = decode(data, TaskRequest, self._limit)
        return TaskReply(task=await self._orch.retry(req.task_id, by="task.retry"))

    async def _progress(self, data: bytes) -> OkReply:
        await self._orch.progress(decode(data, ProgressRequest, self._limit))
        return OkReply()

    async def _status(self, data: bytes) -> dict[str, Any]:
        decode(data, EmptyRequest, self._limit)
        return {"ok": True, **(await self._orch.status())}

    async def _agents(self, data: bytes) -> AgentsReply:
        req = decode(data, AgentsRequest, self._limit)
        views = self._orch.agents(after=req.cursor)
        agents, cursor = page(views, req.limit, self._nc.max_payload, _agent_cursor)
        return AgentsReply(agents=agents, next_cursor=cursor)

    async def _tasks(self, data: bytes) -> TasksReply:
        req = decode(data, TasksRequest, self._limit)
        skip = _offset(req.cursor)
        views = self._orch.tasks(req.status, skip)
        tasks, cursor = page(
            views, req.limit, self._nc.max_payload, lambda _, taken: f"o{skip + taken}"
        )
        return TasksReply(tasks=tasks, next_cursor=cursor)

    async def _audit(self, data: bytes) -> AuditReply:
        req = decode(data, AuditRequest, self._limit)
        assert self._guard is not None
        async with asyncio.timeout(self._orch.config.request_timeout_s):
            return AuditReply(records=await self._guard.audit.newest(req))

    async def _plugins_list(self, data: bytes) -> PluginsReply:
        decode(data, EmptyRequest, self._limit)
        return PluginsReply(plugins=await self._plugins.describe())


def _agent_cursor(last: AgentView, taken: int) -> str:
    return last.agent_id


def _offset(cursor: str | None) -> int:
    """Task pages are positions in the listing: ``o<offset>``."""
    if cursor is None:
        return 0
    if cursor.startswith("o") and cursor[1:].isdigit() and len(cursor) < 12:
        return int(cursor[1:])
    raise HivebusError(ErrorCode.INVALID_REQUEST, "cursor: not a cursor this listing gave")


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
