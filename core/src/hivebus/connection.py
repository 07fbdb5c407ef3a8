"""How hivebus connects to NATS: the production options in one place for core, SDK and CLI."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
from nats.aio.client import Client

from .auth.credentials import read_credentials
from .config import DEFAULT_NATS_URL, HivebusConfig

__all__ = ["connect", "connect_options", "redact"]

log = logging.getLogger("hivebus.connection")

Callback = Callable[[], Awaitable[None]]

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of any URL in it masked: ``nats://***@host:4222``."""
    return _USERINFO.sub("***@", text)


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect_options(config: HivebusConfig, name: str) -> dict[str, Any]:
    servers = [url.strip() for url in (config.nats_url or DEFAULT_NATS_URL).split(",")]
    options: dict[str, Any] = {
        "servers": servers,
        "name": name,
        "connect_timeout": config.connect_timeout_s,
        "reconnect_time_wait": config.reconnect_wait_s,
        "max_reconnect_attempts": config.max_reconnect_attempts,
        "allow_reconnect": True,
    }
    if config.user is not None:
        options["user"] = config.user
    if config.password is not None:
        options["password"] = config.password.get_secret_value()
    if config.token is not None:
        options["token"] = config.token.get_secret_value()
    ca_file = config.tls_ca_file
    if config.creds_file is not None:
        creds = read_credentials(config.creds_file)
        if creds is None:  # a NATS JWT .creds file
            options["user_credentials"] = str(config.creds_file)
        else:
            options["nkeys_seed_str"] = creds.seed
            options["inbox_prefix"] = creds.inbox_prefix
            ca_file = ca_file or creds.ca_file
    if config.nkeys_seed is not None:
        options["nkeys_seed"] = str(config.nkeys_seed)
    if ca_file or config.tls_cert_file:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if config.tls_cert_file:
            key = str(config.tls_key_file) if config.tls_key_file else None
            context.load_cert_chain(str(config.tls_cert_file), key)
        options["tls"] = context
    return options


async def connect(
    config: HivebusConfig,
    name: str,
    *,
    on_reconnect: Callback | None = None,
    on_disconnect: Callback | None = None,
    on_closed: Callback | None = None,
    reconnect: bool = True,
) -> Client:
    """Connect with the configured options; connection events are logged, never raised.

    ``on_closed`` is called when the connection is closed for good (also by our own close:
    the caller tells the two apart). Closed without our asking (the server refused something
    and hung up, reconnects ran out), a process that keeps running is alive but deaf.
    """
    last_error: list[str] = []

    async def error_cb(exc: Exception) -> None:
        message = redact(str(exc) or type(exc).__name__)
        # The server's refusal says more than the reset that follows it: keep the refusal.
        if not (last_error and "uthorization" in last_error[0]):
            last_error[:] = [message]
        # While connecting the first time, a failure is reported once, by the exception.
        level = logging.DEBUG if client is None else logging.WARNING
        if "permissions violation" in message:
            # Secure mode: a subscription this principal may not make (the client's wait
            # tries the events and falls back to reading the task). The connection stays.
            level = logging.INFO
        log.log(level, "nats error", extra={"error": message})

    async def closed_cb() -> None:
        if on_closed is not None:
            await on_closed()

    async def disconnected_cb() -> None:
        if client is not None and (client.is_closed or client.is_draining):
            return  # our own close, not news
        log.warning("nats disconnected", extra={"client": name})
        if on_disconnect is not None:
            await on_disconnect()

    async def reconnected_cb() -> None:
        log.info("nats reconnected", extra={"client": name})
        if on_reconnect is not None:
            await on_reconnect()

    client: Client | None = None
    options = connect_options(config, name)
    if not reconnect:
        options["allow_reconnect"] = False
    # nats-py retries the first connection forever when reconnects are unlimited: bound it,
    # so a wrong URL is a clear error rather than a hang.
    first_attempt_s = max(config.connect_timeout_s * 3, 5.0)
    try:
        async with asyncio.timeout(first_attempt_s):
            client = await nats.connect(
                **options,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
                closed_cb=closed_cb,
            )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        where = ", ".join(_public_url(url) for url in options["servers"])
        reason = last_error[0] if last_error else redact(str(exc) or type(exc).__name__)
        raise ConnectionError(f"cannot connect to NATS at {where}: {reason}") from None
    return client
