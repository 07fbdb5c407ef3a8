"""Ctrl-C and SIGTERM as an event, so long-running commands stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["first_of", "stop_requested"]


def stop_requested() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it before announcing readiness."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set (a stop request, or what ends the command itself)."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
