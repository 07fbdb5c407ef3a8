"""JetStream writes counted by the server: every stream's last sequence, before and after a phase.

Each message a stream stores (a key-value put, a compare-and-set, a delete marker) takes the
next sequence number, and a stream's ``last_seq`` never goes back, even when history 1 drops
the older revisions. So the difference over a phase, divided by the calls of that phase, is what
each call costs in writes, read from the server rather than from the core's own account of
itself; per stream, so a write that moves from one bucket to another shows.
"""

from __future__ import annotations

from typing import Any

import nats
from nats.aio.client import Client

__all__ = ["StreamWrites", "writes_per_call"]

TIMEOUT_S = 10.0


class StreamWrites:
    """A connection of the runner's own, used only between phases (it measures nothing)."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=TIMEOUT_S)

    @classmethod
    async def connect(cls, url: str) -> StreamWrites:
        return cls(await nats.connect(url, name="hivebus-bench-stream-writes"))

    async def sequences(self) -> dict[str, int]:
        """Each stream's last sequence: how many messages it has ever stored."""
        return {
            info.config.name or "?": info.state.last_seq
            for info in await self._js.streams_info()
            if info.state is not None
        }

    async def close(self) -> None:
        await self._nc.close()


def writes_per_call(before: dict[str, int], after: dict[str, int], calls: int) -> dict[str, Any]:
    """Writes over a phase of ``calls`` calls: in all, per call, and per stream per call.

    Every stream is listed, those not written to as well, so that several runs' reports
    have the same shape and combine stream by stream.
    """
    by_stream = {name: after[name] - before.get(name, 0) for name in sorted(after)}
    total = sum(by_stream.values())
    return {
        "calls": calls,
        "writes": total,
        "per_call": round(total / calls, 3) if calls else None,
        "by_stream": {name: round(n / calls, 3) for name, n in by_stream.items()} if calls else {},
    }
