"""Who sent a request, as the NATS server says: the ``Nats-Request-Info`` header.

The server adds the header to a request crossing from ``HIVE`` into ``CORE`` through a service
import with ``share: true`` and overwrites any header of that name the sender wrote (measured:
docs/security.md). Only ``acc`` and ``user`` are trusted: ``name`` is the connection name the
client chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

__all__ = ["REQUEST_INFO_HEADER", "Identity", "identity_from_headers"]

REQUEST_INFO_HEADER = "Nats-Request-Info"


@dataclass(frozen=True, slots=True)
class Identity:
    account: str
    user: str
    """The authenticated user: the public nkey in the layout ``hivebus auth`` makes."""


def identity_from_headers(headers: Mapping[str, str] | None) -> Identity | None:
    """The stamped identity; ``None`` when there is none (a request from inside ``CORE``, or
    a server configured without ``share: true``)."""
    if not headers:
        return None
    raw = headers.get(REQUEST_INFO_HEADER)
    if not raw or len(raw) > 8192:
        return None
    try:
        info = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(info, dict):
        return None
    account, user = info.get("acc"), info.get("user")
    if not isinstance(account, str) or not isinstance(user, str) or not account or not user:
        return None
    return Identity(account=account, user=user)
