"""The runner's line of control to a bench child: one JSON command in, one JSON answer out.

Commands travel on the child's stdin and answers on its stdout, so the bus being measured
carries nothing but measured traffic. A child exits when told ``quit`` or when its stdin
closes, which is also what happens when the runner dies.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = ["READY", "Handler", "serve"]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

READY = {"ready": True}
"""The first line a child prints, once it is connected and subscribed."""


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(message).decode() + "\n")
    sys.stdout.flush()


async def serve(handlers: dict[str, Handler]) -> None:
    """Answer commands ``{"cmd": NAME, ...}`` with ``handlers[NAME]`` until quit or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _say(READY)
    while line := await reader.readline():
        command = orjson.loads(line)
        name = command.get("cmd")
        if name == "quit":
            _say({"ok": True})
            return
        handler = handlers.get(name)
        if handler is None:
            _say({"ok": False, "error": f"unknown command {name!r}"})
            continue
        try:
            _say({"ok": True, **(await handler(command))})
        except Exception as exc:
            _say({"ok": False, "error": repr(exc)})
