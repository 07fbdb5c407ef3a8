"""The offer port on NATS: request/reply on the agent's fixed assign subject."""

from __future__ import annotations

import logging

import nats.errors
import orjson
from hivebus_hookspecs.models import Offer, OfferReply
from nats.aio.client import Client
from pydantic import ValidationError

from ..codec import encode
from ..domain.ports import OfferOutcome, OfferResult
from ..subjects import Subjects

__all__ = ["NatsOffers"]

log = logging.getLogger("hivebus.offers")


class NatsOffers:
    def __init__(self, nc: Client, subjects: Subjects, timeout_s: float) -> None:
        self._nc = nc
        self._subjects = subjects
        self._timeout_s = timeout_s

    async def offer(self, agent_id: str, offer: Offer) -> OfferOutcome:
        try:
            msg = await self._nc.request(
                self._subjects.assign(agent_id), encode(offer), timeout=self._timeout_s
            )
        except nats.errors.NoRespondersError:
            return OfferOutcome(OfferResult.NO_RESPONDERS, "nobody listens on the assign subject")
        except nats.errors.TimeoutError:
            return OfferOutcome(OfferResult.TIMEOUT, f"no answer within {self._timeout_s}s")
        except nats.errors.Error as exc:
            return OfferOutcome(OfferResult.REFUSED, f"offer failed: {exc!r}")
        try:
            reply = OfferReply.model_validate_json(msg.data)
        except ValidationError:
            return OfferOutcome(OfferResult.INVALID, "the agent's answer is not {accept: bool}")
        if reply.accept:
            return OfferOutcome(OfferResult.ACCEPTED)
        return OfferOutcome(OfferResult.REFUSED, reply.reason)

    async def withdraw(self, agent_id: str, task_id: str) -> None:
        body = orjson.dumps({"task_id": task_id, "reason": "cancelled"})
        try:
            await self._nc.publish(self._subjects.withdraw(agent_id), body)
        except nats.errors.Error as exc:
            log.warning("cancel notice not sent", extra={"agent_id": agent_id, "error": repr(exc)})
