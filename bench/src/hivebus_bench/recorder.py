"""What a run has measured so far: one entry per scenario, and the figures the report reads.

A scenario that raises is recorded as failed with its error, never raised: the report still
carries every scenario that ran before it, and the runner stops building on a failed one.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recorder", "say"]


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Recorder:
    """The legacy ``benchmark_results`` entries and our own ``figures``, filled as we go."""

    results: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def scenario(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Time a scenario; an exception in it is recorded as its error, not raised."""
        say(name)
        details: dict[str, Any] = {}
        entry: dict[str, Any] = {"name": name, "details": details, "errors": []}
        started = time.perf_counter()
        try:
            yield details
        except Exception as exc:
            entry["errors"].append(f"{type(exc).__name__}: {exc}")
            say(f"{name} failed: {exc}")
        finally:
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            entry["success"] = not entry["errors"]
            self.results.append(entry)

    @property
    def failed(self) -> bool:
        return any(not r["success"] for r in self.results)
