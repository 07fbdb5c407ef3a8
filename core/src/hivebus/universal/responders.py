"""Legacy agents on the bus: in-process responders that accept offers on their behalf.

Legacy agents were tracked, not contacted: the caller of ``delegate_task`` learns the agent id
and does the work itself. So each legacy agent is a real hivebus agent whose assign subject is
answered here, and which accepts only the tasks its own orchestrator object is delegating (the
caller will hear of those), while a slot is free. Offers of anybody else's tasks are refused,
because nobody would ever do them. One loop heartbeats every legacy agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hivebus_hookspecs.models import ErrorCode, Offer, OfferReply, RegisterRequest
from nats.aio.client import Client

from ..errors import RemoteError
from ..sdk.session import AgentSession
from ..subjects import Subjects

__all__ = ["Claim", "LegacyAgents", "LegacyResponder"]

log = logging.getLogger("hivebus.universal")

Claim = Callable[[str, str], bool]
"""``claim(task_id, agent_id)``: True when the facade is delegating ``task_id`` right now."""

HEARTBEATS_IN_FLIGHT = 256

_FOREIGN = "a legacy agent takes only tasks delegated through its own orchestrator"


class LegacyResponder:
    """Decides a legacy agent's offers; its ``session`` speaks the protocol."""

    def __init__(self, registration: RegisterRequest, claim: Claim) -> None:
        self.registration = registration
        self.held: set[str] = set()
        """Tasks accepted and not yet completed through the facade."""
        self.session: AgentSession | None = None
        self._claim = claim

    @property
    def agent_id(self) -> str:
        return self.registration.agent_id

    @property
    def accepting(self) -> bool:
        return self.session is not None and self.session.registered

    def decide(self, offer: Offer) -> OfferReply:
        task_id = offer.task_id
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

    def forgotten(self) -> None:
        # The core declared the agent offline (this process stalled for three heartbeats) and
        # gave its tasks to others: what it held is no longer its own.
        log.warning(
            "core forgot a legacy agent",
            extra={"agent_id": self.agent_id, "dropped_tasks": sorted(self.held)},
        )
        self.held.clear()


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
        responder.session = AgentSession(
            self._nc,
            self._subjects,
            registration,
            responder.decide,
            request_timeout_s=self._timeout_s,
            on_forgotten=responder.forgotten,
        )
        self.responders[agent_id] = responder
        try:
            await responder.session.open()
        except BaseException:
            self.responders.pop(agent_id, None)
            raise
        self.heartbeat_interval_s = responder.session.heartbeat_interval_s

    async def deregister(self, agent_id: str) -> None:
        responder = self.responders.pop(agent_id, None)
        if responder is not None and responder.session is not None:
            await responder.session.close()

    async def close(self) -> None:
        """Deregister every legacy agent (so none lingers until it is declared offline)."""
        await asyncio.gather(*(self.deregister(a) for a in list(self.responders)))

    # --- liveness ---------------------------------------------------------------------

    async def heartbeat_forever(self) -> None:
        """One loop for every legacy agent of the facade, a bounded number in flight."""
        limit = asyncio.Semaphore(HEARTBEATS_IN_FLIGHT)
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            beating = [r for r in self.responders.values() if r.accepting]
            await asyncio.gather(*(self._beat(r, limit) for r in beating))

    async def _beat(self, responder: LegacyResponder, limit: asyncio.Semaphore) -> None:
        assert responder.session is not None
        async with limit:
            await responder.session.beat(len(responder.held))
