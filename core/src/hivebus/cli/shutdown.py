"""Ctrl-C and SIGTERM as an event, so long-running commands stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["stop_requested"]


def stop_requested() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it before announcing readiness."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
