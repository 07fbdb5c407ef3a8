"""The event loop a bench process runs on: asyncio (what the core uses), or uvloop if installed."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

from hivebus import event_loop

__all__ = ["LOOPS", "run", "uvloop_version"]

T = TypeVar("T")

LOOPS = ("asyncio", "uvloop")


def uvloop_version() -> str | None:
    """The installed uvloop's version; hivebus never depends on it, the bench only reports it."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    module = importlib.import_module("uvloop")
    return str(getattr(module, "__version__", "unknown"))


def run(main: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    """``main`` on ``loop``, started as the core starts its own (``hivebus.event_loop``)."""
    if loop not in LOOPS:
        raise ValueError(f"unknown event loop {loop!r}; choose from {', '.join(LOOPS)}")
    return event_loop.run(main, loop)
