"""Request loops that time themselves: one at a time, or a fixed number in flight.

Both run in the measuring process (never in the core), on its own event loop. A call returns
True when it counts as a success; a False or an exception is a failure and records no latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "Run", "concurrent", "sequential"]

Call = Callable[[int], Awaitable[bool]]
"""Makes request number ``i``; True when it succeeded."""


@dataclass(slots=True)
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.failures += 1
        if len(self.errors) < 5:  # a few examples, not thousands of copies
            self.errors.append(reason)

    def as_dict(self) -> dict[str, Any]:
        done = len(self.latencies_ms)
        return {
            "latencies_ms": [round(v, 4) for v in self.latencies_ms],
            "elapsed_s": round(self.elapsed_s, 6),
            "count": done,
            "failures": self.failures,
            "errors": self.errors,
            "per_s": round(done / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0,
        }


async def _timed(call: Call, i: int, run: Run) -> None:
    started = time.perf_counter()
    try:
        ok = await call(i)
    except Exception as exc:
        run.fail(repr(exc))
        return
    if ok:
        run.latencies_ms.append((time.perf_counter() - started) * 1000)
    else:
        run.fail(f"request {i} did not succeed")


async def sequential(call: Call, count: int, *, first: int = 0) -> Run:
    """``count`` calls one after another, numbered from ``first``."""
    run = Run()
    started = time.perf_counter()
    for i in range(first, first + count):
        await _timed(call, i, run)
    run.elapsed_s = time.perf_counter() - started
    return run


async def concurrent(call: Call, count: int, inflight: int, *, first: int = 0) -> Run:
    """``count`` calls with ``inflight`` of them outstanding at any moment."""
    run = Run()
    numbers = iter(range(first, first + count))

    async def lane() -> None:
        for i in numbers:  # the shared iterator hands each number to exactly one lane
            await _timed(call, i, run)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(inflight, count))))
    run.elapsed_s = time.perf_counter() - started
    return run
