"""Legacy agents on the bus: in-process responders that accept offers on their behalf.

Legacy agents were tracked, not contacted: the caller of ``delegate_task`` learns the agent id
and does the work itself. So each legacy agent is a real hivebus agent whose assign subject is
answered here, and which accepts only the tasks its own orchestrator object is delegating (the
caller will hear of those), while a slot is free. Offers of anybody else's tasks are refused,
because nobody would ever do them. One loop heartbeats every legacy agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from hivebus_hookspecs.models import (
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
from ..sdk.request import call
from ..subjects import Subjects

__all__ = ["Claim", "LegacyAgents", "LegacyResponder"]

log = logging.getLogger("hivebus.universal")

Claim = Callable[[str, str], bool]
"""``claim(task_id, agent_id)``: True when the facade is delegating ``task_id`` right now."""

HEARTBEATS_IN_FLIGHT = 256

_FOREIGN = "a legacy agent takes only tasks delegated through its own orchestrator"


class LegacyResponder:
    def __init__(self, registration: RegisterRequest, claim: Claim) -> None:
        self.registration = registration
        self.held: set[str] = set()
        """Tasks accepted and not yet completed through the facade."""
        self.accepting = False
        self.sub: Subscription | None = None
        self._claim = claim

    @property
    def agent_id(self) -> str:
        return self.registration.agent_id

    def decide(self, task_id: str) -> OfferReply:
        if task_id in self.held:
            return OfferReply(accept=True)  # a re-offer of what it holds
        if not self.accepting:
            return OfferReply(accept=False, reason="not registered")
        if len(self.held) >= self.registration.max_tasks:
            return OfferReply(accept=False, reason="busy")
        if not self._claim(task_id, self.agent_id):
            return OfferReply(accept=False, reason=_FOREIGN)
        self.held.add(task_id)
        return OfferReply(accept=True)

    async def on_offer(self, msg: Msg) -> None:
        try:
            offer = Offer.model_validate_json(msg.data)
        except ValidationError:
            await msg.respond(encode(OfferReply(accept=False, reason="malformed offer")))
            return
        await msg.respond(encode(self.decide(offer.task_id)))


class LegacyAgents:
    """The responders of one facade, their registration, heartbeats and departure."""

    def __init__(self, nc: Client, subjects: Subjects, timeout_s: float, claim: Claim) -> None:
        self._nc = nc
        self._subjects = subjects
        self._timeout_s = timeout_s
        self._claim = claim
        self.responders: dict[str, LegacyResponder] = {}
        self.heartbeat_interval_s = 5.0

    def get(self, agent_id: str) -> LegacyResponder | None:
        return self.responders.get(agent_id)

    async def register(self, registration: RegisterRequest) -> None:
        """Answer the agent's offers, then register it; raises ``RemoteError`` if refused."""
        agent_id = registration.agent_id
        if agent_id in self.responders:
            raise RemoteError(ErrorCode.AGENT_EXISTS, f"agent {agent_id!r} is already registered")
        responder = LegacyResponder(registration, self._claim)
        self.responders[agent_id] = responder
        # The SUB goes out before the registration on the same connection, and NATS keeps a
        # connection's order, so no offer can precede the subscription: no flush needed.
        responder.sub = await self._nc.subscribe(
            self._subjects.assign(agent_id), cb=responder.on_offer
        )
        try:
            reply = await call(self._nc, self._subjects.register, registration, self._timeout_s)
        except BaseException:
            await self._forget(agent_id)
            raise
        self.heartbeat_interval_s = float(reply["heartbeat_interval_s"])
        responder.accepting = True

    async def _forget(self, agent_id: str) -> None:
        responder = self.responders.pop(agent_id, None)
        if responder is not None and responder.sub is not None:
            responder.accepting = False
            with contextlib.suppress(Exception):
                await responder.sub.unsubscribe()

    async def deregister(self, agent_id: str) -> None:
        await self._forget(agent_id)
        with contextlib.suppress(Exception):
            await call(
                self._nc,
                self._subjects.deregister,
                DeregisterRequest(agent_id=agent_id),
                self._timeout_s,
            )

    async def close(self) -> None:
        """Deregister every legacy agent (so none lingers until it is declared offline)."""
        await asyncio.gather(*(self.deregister(a) for a in list(self.responders)))

    # --- liveness ---------------------------------------------------------------------

    async def heartbeat_forever(self) -> None:
        limit = asyncio.Semaphore(HEARTBEATS_IN_FLIGHT)
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            beating = [r for r in self.responders.values() if r.accepting]
            await asyncio.gather(*(self._beat(r, limit) for r in beating))

    async def _beat(self, responder: LegacyResponder, limit: asyncio.Semaphore) -> None:
        beat = HeartbeatRequest(agent_id=responder.agent_id, active_tasks=len(responder.held))
        async with limit:
            try:
                await call(self._nc, self._subjects.heartbeat, beat, self._timeout_s)
            except RemoteError as exc:
                if exc.code is ErrorCode.UNKNOWN_AGENT:
                    await self._register_again(responder)
            except (TimeoutError, ConnectionError) as exc:
                log.warning(
                    "heartbeat not answered",
                    extra={"agent_id": responder.agent_id, "error": str(exc)},
                )

    async def _register_again(self, responder: LegacyResponder) -> None:
        # The core declared the agent offline (this process stalled for three heartbeats) and
        # gave its tasks to others: what it held is no longer its own.
        log.warning(
            "core forgot a legacy agent; registering again",
            extra={"agent_id": responder.agent_id, "dropped_tasks": sorted(responder.held)},
        )
        responder.held.clear()
        with contextlib.suppress(Exception):
            await call(self._nc, self._subjects.register, responder.registration, self._timeout_s)
