"""One agent's side of the wire contract on a NATS connection, written once.

An agent subscribes to its fixed subjects *before* it registers (the core may offer queued work
the moment registration succeeds), registers (waiting out an earlier run of itself that still
holds the id), heartbeats, registers again when the core has forgotten it, and deregisters when
it leaves. What to do with an offer, a cancel notice or a control message is the owner's
business: the SDK's ``Agent`` runs a handler, the legacy facade accepts only its own tasks.
Both own their sessions; neither speaks the protocol itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

import orjson
from hivebus_hookspecs.models import (
    ControlMessage,
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
from ..errors import RemoteError
from ..subjects import Subjects
from .request import call

__all__ = ["AgentSession", "Decide", "OnCancel", "OnControl"]

log = logging.getLogger("hivebus.agent")

Decide = Callable[[Offer], OfferReply | Awaitable[OfferReply]]
"""Answers an offer; may start the work as a side effect before it returns."""
OnCancel = Callable[[str], None]
"""Told the id of a task the core took back (cancelled, timed out, given to another)."""
OnControl = Callable[[ControlMessage], None]
"""Told what the core (or a plugin through it) asks of the agent: sleep, wake, drain."""


class AgentSession:
    def __init__(
        self,
        nc: Client,
        subjects: Subjects,
        registration: RegisterRequest,
        decide: Decide,
        *,
        request_timeout_s: float,
        on_cancel: OnCancel | None = None,
        on_control: OnControl | None = None,
        on_forgotten: Callable[[], None] | None = None,
    ) -> None:
        self.nc = nc
        self.subjects = subjects
        self.registration = registration
        self.heartbeat_interval_s = 5.0
        self.registered = False
        self._decide = decide
        self._timeout_s = request_timeout_s
        self._on_cancel = on_cancel
        self._on_control = on_control
        self._on_forgotten = on_forgotten
        self._subs: list[Subscription] = []

    @property
    def agent_id(self) -> str:
        return self.registration.agent_id

    async def open(self, patience_s: float = 0.0, retry_every_s: float = 1.0) -> None:
        """Subscribe, then register; wait up to ``patience_s`` for an earlier run to leave.

        A restarted agent reuses its id, but its last run only leaves once the core misses
        its heartbeats (and gives its tasks to others): until then the id is taken. No core
        answering yet (an agent started before the core, as a deployment may start them, or
        a core whose subscriptions have not reached this agent's cluster node yet) is waited
        for the same way; registering again is safe (the same ``instance_id``).
        """
        await self.subscribe()
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + patience_s
        try:
            while True:
                try:
                    await self.register()
                    return
                except RemoteError as exc:
                    if exc.code is not ErrorCode.AGENT_EXISTS or loop.time() > give_up_at:
                        raise
                    log.info("agent id still held by an earlier run; waiting", extra=self._ids())
                except (ConnectionError, TimeoutError) as exc:
                    if loop.time() > give_up_at:
                        raise
                    log.info(
                        "no core answers yet; waiting", extra={**self._ids(), "error": str(exc)}
                    )
                await asyncio.sleep(retry_every_s)
        except BaseException:
            await self.unsubscribe()
            raise

    async def subscribe(self) -> None:
        # NATS keeps a connection's order: the SUBs reach the server before the registration
        # that follows them on the same connection, so no offer can precede them.
        self._subs = [
            await self.nc.subscribe(self.subjects.assign(self.agent_id), cb=self._offered)
        ]
        if self._on_cancel is not None:
            withdraw = self.subjects.withdraw(self.agent_id)
            self._subs.append(await self.nc.subscribe(withdraw, cb=self._cancelled))
        if self._on_control is not None:
            control = self.subjects.control(self.agent_id)
            self._subs.append(await self.nc.subscribe(control, cb=self._controlled))

    async def register(self) -> None:
        reply = await call(self.nc, self.subjects.register, self.registration, self._timeout_s)
        self.heartbeat_interval_s = float(reply["heartbeat_interval_s"])
        self.registered = True
        log.info("agent registered", extra=self._ids())

    async def beat(self, active_tasks: int, context_window_usage: float | None = None) -> None:
        """One heartbeat; if the core forgot the agent (marked it offline), register again."""
        beat = HeartbeatRequest(
            agent_id=self.agent_id,
            active_tasks=active_tasks,
            context_window_usage=context_window_usage,
        )
        try:
            await call(self.nc, self.subjects.heartbeat, beat, self._timeout_s)
        except RemoteError as exc:
            if exc.code is not ErrorCode.UNKNOWN_AGENT:
                raise
            # Marked offline (this process stalled, or the bus was away): what it held was
            # given to others. Say so to the owner, then come back.
            log.warning("core forgot this agent; registering again", extra=self._ids())
            if self._on_forgotten is not None:
                self._on_forgotten()
            with contextlib.suppress(Exception):
                await self.register()
        except (TimeoutError, ConnectionError) as exc:
            log.warning("heartbeat not answered", extra={**self._ids(), "error": str(exc)})

    async def close(self, deregister: bool = True) -> None:
        """Stop hearing offers, then leave the bus (the core requeues what the agent held)."""
        await self.unsubscribe()
        if deregister and self.registered and self.nc.is_connected:
            self.registered = False
            with contextlib.suppress(Exception):
                request = DeregisterRequest(agent_id=self.agent_id)
                await call(self.nc, self.subjects.deregister, request, self._timeout_s)

    async def unsubscribe(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # --- what arrives -----------------------------------------------------------------

    async def _offered(self, msg: Msg) -> None:
        try:
            offer = Offer.model_validate_json(msg.data)
        except ValidationError:
            await msg.respond(encode(OfferReply(accept=False, reason="malformed offer")))
            return
        answer = self._decide(offer)
        if inspect.isawaitable(answer):
            answer = await answer
        await msg.respond(encode(answer))

    async def _cancelled(self, msg: Msg) -> None:
        try:
            task_id = orjson.loads(msg.data)["task_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if isinstance(task_id, str) and self._on_cancel is not None:
            self._on_cancel(task_id)

    async def _controlled(self, msg: Msg) -> None:
        try:
            control = ControlMessage.model_validate_json(msg.data)
        except ValidationError:
            log.warning("malformed control message ignored", extra=self._ids())
            return
        log.info("control message", extra={**self._ids(), "action": control.action.value})
        if self._on_control is not None:
            self._on_control(control)

    def _ids(self) -> dict[str, str]:
        return {"agent_id": self.agent_id}
