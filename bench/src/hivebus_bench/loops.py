"""The event loop a bench process runs on: asyncio (the floor's and the load's own), or uvloop."""

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
    """The installed uvloop's version (a dependency of hivebus where it builds), if any."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    module = importlib.import_module("uvloop")
    return str(getattr(module, "__version__", "unknown"))


def run(main: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    """``main`` on ``loop``, started as the core starts its own (``hivebus.event_loop``)."""
    if loop not in LOOPS:
        raise ValueError(f"unknown event loop {loop!r}; choose from {', '.join(LOOPS)}")
    return event_loop.run(main, loop)
