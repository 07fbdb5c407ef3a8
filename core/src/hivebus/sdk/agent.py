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
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from hivebus_hookspecs.models import (
    AgentRole,
    CompleteRequest,
    ControlAction,
    ControlMessage,
    ErrorCode,
    Offer,
    OfferReply,
    ProgressRequest,
    RegisterRequest,
)
from nats.aio.client import Client

from ..config import HivebusConfig, with_creds
from ..connection import connect
from ..errors import RemoteError
from ..owned import cancel_and_wait
from ..subjects import Subjects
from .references import References, ReferenceUnavailable
from .request import call
from .running import RunningTask, running
from .session import AgentSession

__all__ = ["Agent", "PermanentFailure", "TaskHandler"]

TaskHandler = Callable[[Offer], Awaitable[Any]]
"""Receives the task; its return value is the result. Raising reports a failure. While it
runs, ``hivebus.current_task()`` / ``hivebus.report_progress()`` report progress on it."""

log = logging.getLogger("hivebus.agent")


class PermanentFailure(Exception):
    """Raised by a task handler: the task failed and trying again cannot help (bad input, a
    refused permission), so it is ``failed`` at once whatever its retry policy. Any other
    exception is a failure its retry policy may retry."""


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
        progress_interval_s: float = 1.0,
        creds: str | Path | None = None,
    ) -> None:
        self.config = with_creds(config or HivebusConfig.load(nats_url=nats_url), creds)
        self.progress_interval_s = progress_interval_s
        """At most one progress report per task is sent this often (see ``running``)."""
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
        self.session: AgentSession | None = None
        self._running: dict[str, asyncio.Task[None]] = {}  # what occupies a slot
        self._workers: set[asyncio.Task[None]] = set()  # handlers and their reports
        # Results of recent tasks: a re-offer of one (a core recovering after a crash) is
        # answered with the result again, never by running the task twice.
        self._done: OrderedDict[str, tuple[int, CompleteRequest]] = OrderedDict()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._accepting = False
        self._draining = False
        self.sleeping = False
        """Set by a ``sleep`` control message: offers are refused until ``wake``."""
        self.context_window_usage: float | None = None
        """How full the agent's context window is (0 to 1), if it knows: sent with every
        heartbeat, so the core and its plugins see it (``AgentView.context_window_usage``)."""
        self.drained = asyncio.Event()
        """Set once a ``drain`` control message has been carried out: the agent left."""
        self.completed = 0
        self.failed = 0
        self._references: References | None = None

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
        self._references = References(self.nc, self.config)
        self.session = AgentSession(
            self.nc,
            self.subjects,
            self.registration,
            self._decide,
            request_timeout_s=self.config.request_timeout_s,
            on_cancel=self._on_cancel,
            on_control=self._on_control,
        )
        self._accepting = True
        window = self.config.heartbeat_interval_s * (self.config.offline_after_missed + 2)
        retry_every = min(self.config.heartbeat_interval_s / 2, 1.0)
        await self.session.open(patience_s=window, retry_every_s=retry_every)
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat_forever(), name=f"hivebus-heartbeat-{self.agent_id}"
        )

    async def _on_reconnect(self) -> None:
        # The core may have declared us offline while we were away: say hello again.
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.register()

    async def _heartbeat_forever(self) -> None:
        assert self.session is not None
        while self._accepting or self._draining:
            await asyncio.sleep(self.session.heartbeat_interval_s)
            try:
                await self.session.beat(len(self._running), self.context_window_usage)
            except Exception:
                log.exception("heartbeat failed")

    def _decide(self, offer: Offer) -> OfferReply:
        if offer.task_id in self._running:
            return OfferReply(accept=True)  # a re-offer of what we hold
        done = self._done.get(offer.task_id)
        if done is not None and done[0] == offer.attempt:
            # The same attempt offered again (a core recovering an offer it lost track of):
            # the result again, never a second run. A later attempt (a retry) runs anew.
            self._track(asyncio.create_task(self._report(done[1])))
            return OfferReply(accept=True)
        if not self._accepting:
            return OfferReply(accept=False, reason="draining" if self._draining else "stopping")
        if self.sleeping:
            return OfferReply(accept=False, reason="sleeping")
        if len(self._running) >= self.registration.max_tasks:
            return OfferReply(accept=False, reason="busy")
        worker = asyncio.create_task(self._work(offer), name=f"hivebus-task-{offer.task_id}")
        self._running[offer.task_id] = worker
        self._track(worker)
        return OfferReply(accept=True)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    def _on_cancel(self, task_id: str) -> None:
        running = self._running.pop(task_id, None)  # the slot is free from this moment
        if running is not None:
            log.info("task cancelled by the core", extra={"task_id": task_id})
            running.cancel()

    def _on_control(self, control: ControlMessage) -> None:
        if control.action is ControlAction.SLEEP:
            self.sleeping = True
        elif control.action is ControlAction.WAKE:
            self.sleeping = False
        elif control.action is ControlAction.DRAIN and self._accepting:
            self._accepting = False
            self._draining = True
            self._drainer = asyncio.create_task(
                self._drain(), name=f"hivebus-drain-{self.agent_id}"
            )

    async def _drain(self) -> None:
        """Finish what runs, then leave the bus; ``drained`` is set when the agent is gone."""
        if self._workers:
            await asyncio.wait(list(self._workers))
        self._draining = False
        if self.session is not None:
            await self.session.close()
        log.info("agent drained", extra={"agent_id": self.agent_id})
        self.drained.set()

    async def _work(self, offer: Offer) -> None:
        # This asyncio task's own context: the handler (and what it calls) sees its task.
        task = RunningTask(offer, self.agent_id, self._send_progress, self.progress_interval_s)
        running(task)
        try:
            if self._references is not None:  # a large payload arrives as a reference
                offer = offer.model_copy(
                    update={"payload": await self._references.resolve(offer.payload)}
                )
            result = await self.handler(offer)
            # A large result leaves as a reference; either way, a result that is not JSON
            # fails here, with a clear message.
            if self._references is not None:
                result = await self._references.offload(result, f"task/{offer.task_id}/result")
            else:
                orjson.dumps(result)
            report = CompleteRequest(
                task_id=offer.task_id, agent_id=self.agent_id, success=True, result=result
            )
        except asyncio.CancelledError:
            self._running.pop(offer.task_id, None)
            await task.finish(send_kept=False)
            raise
        except Exception as exc:
            log.warning("task handler failed", extra={"task_id": offer.task_id, "error": repr(exc)})
            report = CompleteRequest(
                task_id=offer.task_id,
                agent_id=self.agent_id,
                success=False,
                error=f"{type(exc).__name__}: {exc}"[:8192],
                retryable=not isinstance(exc, PermanentFailure | ReferenceUnavailable),
            )
        await task.finish(send_kept=True)  # the latest progress goes before the outcome
        # The slot is free before the core hears of it: the core offers the next task the
        # moment it records the completion, and that offer must find the slot open.
        self._running.pop(offer.task_id, None)
        self._done[offer.task_id] = (offer.attempt, report)
        while len(self._done) > REMEMBERED_RESULTS:
            self._done.popitem(last=False)
        await self._report(report)

    async def _send_progress(self, report: ProgressRequest) -> None:
        """One progress report; unanswered ones are dropped (the next one tries again)."""
        if self.nc is None:
            return  # stopped meanwhile
        try:
            await call(self.nc, self.subjects.progress, report, self.config.request_timeout_s)
        except (TimeoutError, ConnectionError) as exc:
            log.info("progress not delivered", extra={"task_id": report.task_id, "error": str(exc)})
        except RemoteError as exc:
            if exc.code is not ErrorCode.UNAVAILABLE:
                raise
            log.info("progress not delivered", extra={"task_id": report.task_id, "error": str(exc)})

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
        self._draining = False
        await cancel_and_wait([self._heartbeat_task, self._drainer])
        self._heartbeat_task = self._drainer = None
        if self._workers:
            _, late = await asyncio.wait(list(self._workers), timeout=grace_s)
            await cancel_and_wait(late)
        if self.session is not None:
            await self.session.close()
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
