"""One request/reply call in the contract's terms, shared by the SDK, the client and the CLI."""

from __future__ import annotations

from typing import Any

import nats.errors
import orjson
from hivebus_hookspecs.models import ErrorCode
from nats.aio.client import Client
from pydantic import BaseModel

from ..codec import encode
from ..errors import RemoteError

__all__ = ["call"]


async def call(
    nc: Client, subject: str, body: BaseModel | dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Send ``body``, return the success reply; raise ``RemoteError`` on an error reply.

    No responders and timeouts raise ``ConnectionError`` / ``TimeoutError`` with the subject.
    """
    try:
        msg = await nc.request(subject, encode(body), timeout=timeout)
    except nats.errors.NoRespondersError:
        raise ConnectionError(f"no hivebus core answers on {subject!r}; is it running?") from None
    except nats.errors.TimeoutError:
        raise TimeoutError(f"no reply on {subject!r} within {timeout}s") from None
    reply = orjson.loads(msg.data)
    if not isinstance(reply, dict):
        raise RemoteError(ErrorCode.INTERNAL_ERROR, f"unexpected reply on {subject!r}")
    if reply.get("ok") is not True:
        error = reply.get("error") or {}
        try:
            code = ErrorCode(str(error.get("code")))
        except ValueError:
            code = ErrorCode.INTERNAL_ERROR
        raise RemoteError(code, str(error.get("message", "unknown error")))
    return reply
