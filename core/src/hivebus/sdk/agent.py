"""The agent SDK: register, heartbeat, accept offers while slots are free, report results.

It is a reference client of the wire contract and nothing more: an agent in another language
does the same with plain NATS request/reply (see subjects.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import orjson
from hivebus_hookspecs.models import (
    AgentRole,
    CompleteRequest,
    DeregisterRequest,
    ErrorCode,
    HeartbeatRequest,
    Offer,
    OfferReply,
    RegisterRequest,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from ..codec import encode
from ..config import HivebusConfig
from ..connection import connect
from ..errors import RemoteError
from ..owned import cancel_and_wait
from ..subjects import Subjects
from .request import call

__all__ = ["Agent", "TaskHandler"]

TaskHandler = Callable[[Offer], Awaitable[Any]]
"""Receives the task; its return value is the result. Raising reports a failure."""

log = logging.getLogger("hivebus.agent")

REMEMBERED_RESULTS = 1000
REPORT_PATIENCE_S = 300.0
"""How long a result is retried while no core answers (a restart, a failover)."""


class Agent:
    """A hivebus agent. ``async with Agent(...)`` registers it and deregisters on exit."""

    def __init__(
        self,
        agent_id: str,
        capabilities: list[str],
        handler: TaskHandler,
        *,
        role: AgentRole | str = AgentRole.WORKER,
        max_tasks: int = 1,
        metadata: dict[str, Any] | None = None,
        config: HivebusConfig | None = None,
        nats_url: str | None = None,
        nc: Client | None = None,
    ) -> None:
        self.config = config or HivebusConfig.load(nats_url=nats_url)
        self.registration = RegisterRequest(
            agent_id=agent_id,
            role=AgentRole(role),
            capabilities=capabilities,
            max_tasks=max_tasks,
            metadata=metadata or {},
            instance_id=uuid.uuid4().hex,
        )
        self.handler = handler
        self.subjects = Subjects(self.config.prefix)
        self.nc = nc
        self._owns_connection = nc is None
        self._subs: list[Subscription] = []
        self._running: dict[str, asyncio.Task[None]] = {}  # what occupies a slot
        self._workers: set[asyncio.Task[None]] = set()  # handlers and their reports
        # Results of recent tasks: a re-offer of one (a core recovering after a crash) is
        # answered with the result again, never by running the task twice.
        self._done: OrderedDict[str, CompleteRequest] = OrderedDict()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._heartbeat_interval = self.config.heartbeat_interval_s
        self._accepting = False
        self.completed = 0
        self.failed = 0

    @property
    def agent_id(self) -> str:
        return self.registration.agent_id

    @property
    def active_tasks(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        if self.nc is None:
            self.nc = await connect(
                self.config, f"hivebus-agent-{self.agent_id}", on_reconnect=self._on_reconnect
            )
        # Subscribe first: the core may offer queued work the moment registration succeeds.
        self._subs = [
            await self.nc.subscribe(self.subjects.assign(self.agent_id), cb=self._on_offer),
            await self.nc.subscribe(self.subjects.withdraw(self.agent_id), cb=self._on_cancel),
        ]
        await self.nc.flush()
        self._accepting = True
        await self._register_first()
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_forever(), name=f"hivebus-heartbeat-{self.agent_id}"
        )

    async def _register_first(self) -> None:
        """Register; if a previous run of this agent is still on the books, outwait it.

        A restarted agent reuses its id, but its last run only leaves once the core misses
        its heartbeats (and gives its tasks to others): until then the id is taken.
        """
        loop = asyncio.get_running_loop()
        window = self.config.heartbeat_interval_s * (self.config.offline_after_missed + 2)
        give_up_at = loop.time() + window
        while True:
            try:
                await self._register()
                return
            except RemoteError as exc:
                if exc.code is not ErrorCode.AGENT_EXISTS or loop.time() > give_up_at:
                    raise
            log.info(
                "agent id still held by an earlier run; waiting", extra={"agent_id": self.agent_id}
            )
            await asyncio.sleep(min(self.config.heartbeat_interval_s / 2, 1.0))

    async def _register(self) -> None:
        assert self.nc is not None
        reply = await call(
            self.nc, self.subjects.register, self.registration, self.config.request_timeout_s
        )
        self._heartbeat_interval = float(reply["heartbeat_interval_s"])
        log.info("agent registered", extra={"agent_id": self.agent_id})

    async def _on_reconnect(self) -> None:
        # The core may have declared us offline while we were away: say hello again.
        with contextlib.suppress(Exception):
            await self._register()

    async def _heartbeat_forever(self) -> None:
        assert self.nc is not None
        while self._accepting:
            await asyncio.sleep(self._heartbeat_interval)
            beat = HeartbeatRequest(agent_id=self.agent_id, active_tasks=len(self._running))
            try:
                await call(self.nc, self.subjects.heartbeat, beat, self.config.request_timeout_s)
            except RemoteError as exc:
                if exc.code is ErrorCode.UNKNOWN_AGENT:
                    log.warning("core forgot this agent; registering again")
                    with contextlib.suppress(Exception):
                        await self._register()
            except (TimeoutError, ConnectionError) as exc:
                log.warning("heartbeat not answered", extra={"error": str(exc)})
            except Exception:
                log.exception("heartbeat failed")

    async def _on_offer(self, msg: Msg) -> None:
        try:
            offer = Offer.model_validate_json(msg.data)
        except ValidationError:
            await msg.respond(encode(OfferReply(accept=False, reason="malformed offer")))
            return
        if offer.task_id in self._running:
            await msg.respond(encode(OfferReply(accept=True)))  # a re-offer of what we hold
            return
        done = self._done.get(offer.task_id)
        if done is not None:
            await msg.respond(encode(OfferReply(accept=True)))
            self._track(asyncio.create_task(self._report(done)))
            return
        if not self._accepting or len(self._running) >= self.registration.max_tasks:
            await msg.respond(encode(OfferReply(accept=False, reason="busy")))
            return
        worker = asyncio.create_task(self._work(offer), name=f"hivebus-task-{offer.task_id}")
        self._running[offer.task_id] = worker
        self._track(worker)
        await msg.respond(encode(OfferReply(accept=True)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            task_id = orjson.loads(msg.data)["task_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        running = self._running.pop(task_id, None)  # the slot is free from this moment
        if running is not None:
            log.info("task cancelled by the core", extra={"task_id": task_id})
            running.cancel()

    async def _work(self, offer: Offer) -> None:
        try:
            result = await self.handler(offer)
            orjson.dumps(result)  # fail here, with a clear message, if not JSON-ready
            report = CompleteRequest(
                task_id=offer.task_id, agent_id=self.agent_id, success=True, result=result
            )
        except asyncio.CancelledError:
            self._running.pop(offer.task_id, None)
            raise
        except Exception as exc:
            log.warning("task handler failed", extra={"task_id": offer.task_id, "error": repr(exc)})
            report = CompleteRequest(
                task_id=offer.task_id,
                agent_id=self.agent_id,
                success=False,
                error=f"{type(exc).__name__}: {exc}"[:8192],
            )
        # The slot is free before the core hears of it: the core offers the next task the
        # moment it records the completion, and that offer must find the slot open.
        self._running.pop(offer.task_id, None)
        self._done[offer.task_id] = report
        while len(self._done) > REMEMBERED_RESULTS:
            self._done.popitem(last=False)
        await self._report(report)

    async def _report(self, report: CompleteRequest) -> None:
        """Deliver a result; completion is idempotent, so retry until a core answers."""
        assert self.nc is not None
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + REPORT_PATIENCE_S
        backoff = 0.1
        while True:
            try:
                await call(self.nc, self.subjects.complete, report, self.config.request_timeout_s)
            except (TimeoutError, ConnectionError, RemoteError) as exc:
                too_large = isinstance(exc, RemoteError) and exc.code is ErrorCode.PAYLOAD_TOO_LARGE
                if too_large and report.success:
                    # The work is done but its result cannot travel: say so, as a failure,
                    # rather than leave the task assigned forever.
                    error = str(exc)
                    report = report.model_copy(
                        update={"success": False, "result": None, "error": error}
                    )
                    continue
                if isinstance(exc, RemoteError) and exc.code is not ErrorCode.UNAVAILABLE:
                    log.warning(
                        "completion refused",
                        extra={"task_id": report.task_id, "code": exc.code.value},
                    )
                    return
                if loop.time() > give_up_at:
                    log.error("completion not delivered", extra={"task_id": report.task_id})
                    return
                log.info("completion not answered yet", extra={"error": str(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if report.success:
                self.completed += 1
            else:
                self.failed += 1
            return

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking offers, let running tasks finish (up to ``grace_s``), deregister."""
        self._accepting = False
        if self._heartbeat_task is not None:
            await cancel_and_wait([self._heartbeat_task])
            self._heartbeat_task = None
        if self._workers:
            _, late = await asyncio.wait(list(self._workers), timeout=grace_s)
            await cancel_and_wait(late)
        if self.nc is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):
                await call(
                    self.nc,
                    self.subjects.deregister,
                    DeregisterRequest(agent_id=self.agent_id),
                    self.config.request_timeout_s,
                )
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        if self.nc is not None and self._owns_connection:
            with contextlib.suppress(Exception):
                await self.nc.close()
            self.nc = None

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
