"""Which event loop the core runs on: uvloop when it is installed, asyncio otherwise.

The core spends most of its CPU in the event loop and in nats-py's protocol handling, where
uvloop (libuv, in C) is measurably cheaper than asyncio's pure-Python loop; see
benchmarks/README.md for the figures both ways. It is a dependency wherever it builds (CPython
on Linux and macOS); elsewhere the core runs on asyncio and behaves the same.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["CHOICES", "ENV", "EventLoopUnavailable", "chosen", "run"]

T = TypeVar("T")

CHOICES = ("auto", "asyncio", "uvloop")
ENV = "HIVEBUS_EVENT_LOOP"


class EventLoopUnavailable(ValueError):
    """uvloop was asked for by name but is not installed."""


def chosen(requested: str | None = None) -> str:
    """The loop to run: the request (a flag), else ``HIVEBUS_EVENT_LOOP``, else ``auto``,
    which means uvloop if it can be imported."""
    choice = (requested or os.environ.get(ENV) or "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"event loop {choice!r}: choose from {', '.join(CHOICES)}")
    installed = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not installed:
        raise EventLoopUnavailable(
            "event loop 'uvloop' is not installed here (it builds for CPython on Linux and "
            "macOS): pip install uvloop, or use asyncio"
        )
    if choice == "auto":
        return "uvloop" if installed else "asyncio"
    return choice


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """``asyncio.run(main)`` on ``loop`` (a value ``chosen`` returned)."""
    if loop == "uvloop":
        # Imported by name: uvloop is absent where it does not build (and has no type stubs).
        uvloop = importlib.import_module("uvloop")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
