"""What listens at a NATS URL, told apart before connecting (hivebus/knock.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hivebus.knock import Answer, knock, knock_url
from hivebus.server import EmbeddedServer, free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers only once spoken to, like an HTTP server."""
    await reader.readline()
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await writer.drain()
    writer.close()


async def _mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and says nothing, as a TLS-first server waiting for a handshake."""
    await reader.read()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@pytest.fixture
async def web() -> AsyncIterator[int]:
    async for port in _serve(_web):
        yield port


@pytest.fixture
async def mute() -> AsyncIterator[int]:
    async for port in _serve(_mute):
        yield port


@pytest.fixture
async def hang_up() -> AsyncIterator[int]:
    async for port in _serve(_hang_up):
        yield port


async def test_a_nats_server_greets(nats_server: EmbeddedServer):
    assert (await knock_url(nats_server.url)).answer is Answer.NATS
    bare = nats_server.url.removeprefix("nats://")
    assert (await knock_url(bare)).answer is Answer.NATS


async def test_nobody_listening_is_refused():
    found = await knock("127.0.0.1", free_port())
    assert (found.answer, found.reason) == (Answer.NOBODY, "connection refused")


async def test_a_web_server_is_not_nats(web: int):
    found = await knock("127.0.0.1", web, timeout_s=0.4)
    assert found.answer is Answer.OTHER
    assert "it said 'HTTP/1.1 400 Bad Request'" in found.reason


async def test_a_listener_that_hangs_up_is_not_nats(hang_up: int):
    found = await knock("127.0.0.1", hang_up)
    assert found.answer is Answer.OTHER
    assert "closed without a NATS greeting" in found.reason


async def test_a_silent_listener_is_left_to_the_nats_client(mute: int):
    """It could be a TLS-first NATS server: never refused on a guess."""
    assert (await knock("127.0.0.1", mute, timeout_s=0.4)).answer is Answer.SILENT


async def test_websocket_urls_and_bad_ports():
    assert (await knock_url("ws://127.0.0.1:1")).answer is Answer.SILENT
    assert (await knock_url("nats://127.0.0.1:notaport")).answer is Answer.NOBODY
