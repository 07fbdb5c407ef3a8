"""Knock on a NATS URL before connecting: what listens there, said in words, in milliseconds.

A NATS server greets every new connection with ``INFO {...}``. Reading that greeting tells a
refused port, an unknown host and a listener that is not NATS apart at once, where nats-py
would retry each of them until its connect timeout and then report a bare ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import enum
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Answer", "Knock", "knock", "knock_url"]

DEFAULT_PORT = 4222


class Answer(enum.Enum):
    NATS = "nats"
    """A NATS server greeted us."""
    OTHER = "other"
    """Something listens, and it is not NATS."""
    NOBODY = "nobody"
    """Refused, unknown host, unreachable: certainly no NATS there."""
    SILENT = "silent"
    """Accepted but said nothing in time (a TLS-first server does that): let nats-py try."""


@dataclass(frozen=True)
class Knock:
    answer: Answer
    reason: str


async def knock(host: str, port: int, timeout_s: float = 1.0) -> Knock:
    """Connect to ``host:port``, read the first line, hang up."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return Knock(Answer.NOBODY, "connection refused")
    except socket.gaierror:
        return Knock(Answer.NOBODY, f"unknown host {host!r}")
    except TimeoutError:
        return Knock(Answer.SILENT, f"no answer within {timeout_s:g}s")
    except OSError as exc:
        return Knock(Answer.NOBODY, (exc.strerror or str(exc)).lower())
    try:
        return await _listen(reader, writer, timeout_s)
    except OSError as exc:
        return Knock(Answer.NOBODY, (exc.strerror or str(exc)).lower())
    finally:
        writer.close()
        try:
            async with asyncio.timeout(timeout_s):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            pass


async def _listen(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_s: float
) -> Knock:
    try:
        async with asyncio.timeout(timeout_s / 2):
            first = await reader.read(80)
    except TimeoutError:
        # Silent: an HTTP server waits for a request, a TLS-first NATS server for a handshake.
        # Speak first; only a non-NATS answer is certain (a TLS server just hangs up).
        writer.write(b"PING\r\n")
        try:
            async with asyncio.timeout(timeout_s / 2):
                first = await reader.read(80)
        except TimeoutError:
            return Knock(Answer.SILENT, f"no greeting within {timeout_s:g}s")
        if not first or first.upper().startswith((b"INFO", b"PONG", b"-ERR")):
            return Knock(Answer.SILENT, "no greeting, but maybe a TLS-first NATS server")
        return Knock(Answer.OTHER, _not_nats(first))
    if first.upper().startswith(b"INFO"):
        return Knock(Answer.NATS, "a NATS server")
    if not first:
        return Knock(Answer.OTHER, "the connection was closed without a NATS greeting")
    return Knock(Answer.OTHER, _not_nats(first))


def _not_nats(first: bytes) -> str:
    said = first.split(b"\r", 1)[0].split(b"\n", 1)[0].decode("latin-1")
    return f"something that is not a NATS server listens there (it said {said!r})"


async def knock_url(url: str, timeout_s: float = 1.0) -> Knock:
    """``knock`` for a ``nats://``/``tls://`` URL; websocket URLs are not knocked (``SILENT``)."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.scheme.lower() in ("ws", "wss") or not parts.hostname:
        return Knock(Answer.SILENT, "not knocked")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        return Knock(Answer.NOBODY, "the port is not a number")
    return await knock(parts.hostname, port, timeout_s)
