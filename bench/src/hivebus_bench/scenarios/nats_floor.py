"""The floor: what bare nats-py costs on this machine, in this run, beside every core figure.

An echo (one hop, as the core answers a registration) and a two-hop relay (as the core relays
a delegation), sequential and with 256 in flight, plus the relay that awaits inline in its
callback; and the start-up floor: a Python process importing what the core imports.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hivebus.server import EmbeddedServer

from .. import floor
from ..harness import Harness, latency, mib
from ..processes import Child
from ..stats import median

__all__ = ["floor_processes", "jetstream_server_start", "measure_floor", "startup_probe"]


async def floor_processes(h: Harness, loop: str) -> dict[str, Child]:
    """The responder, the relays and the client; they stay up for the whole run."""
    args = ("--loop", loop)
    module = "hivebus_bench.floor"
    return {
        role: await h.fleet.child(f"floor-{role}-{loop}", module, role, h.url, *args)
        for role in ("responder", "relay", "relay-inline", "client")
    }


async def measure_floor(h: Harness, processes: dict[str, Child]) -> dict[str, Any]:
    p = h.plan
    client = processes["client"]
    out: dict[str, Any] = {}
    # The CPU of the process in the core's place: the responder for the echo (as the
    # core answers a registration), the relay for the relay (as it relays a delegation).
    for name, subject, cpu_of in (
        ("echo", floor.ECHO, processes["responder"]),
        ("relay", floor.RELAY, processes["relay"]),
    ):
        seq = await h.measure(
            client,
            {
                "cmd": "sequential",
                "subject": subject,
                "count": p.floor_sequential,
                "warmup": p.warmup,
            },
            cpu_of,
        )
        conc = await h.measure(
            client,
            {
                "cmd": "concurrent",
                "subject": subject,
                "count": p.floor_concurrent,
                "inflight": p.inflight,
                "warmup": p.warmup,
            },
            cpu_of,
        )
        out[name] = {"sequential": latency(seq), "concurrent": latency(conc)}
    # The relay that awaits inline in its callback: what the hot-path note warns about.
    inline = await h.measure(
        client,
        {
            "cmd": "concurrent",
            "subject": floor.RELAY_INLINE,
            "count": max(p.floor_concurrent // 5, 500),
            "inflight": p.inflight,
        },
        processes["relay-inline"],
    )
    out["relay_inline"] = {"concurrent": latency(inline)}
    return out


async def startup_probe(h: Harness) -> dict[str, Any]:
    """Python importing nats-py, pydantic, pluggy and orjson, connected: the floor."""
    times: list[float] = []
    rss: list[int] = []
    for i in range(h.plan.startup_runs):
        started = time.perf_counter()
        probe = await h.fleet.probe(
            f"startup-probe-{i}", [sys.executable, "-c", floor.PROBE, h.url]
        )
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.3)
        rss.append(probe.memory_kib().get("VmRSS", 0))
        await h.fleet.stop(probe)
    return {
        "ready_ms": round(median(times), 1),
        "ready_ms_samples": [round(t, 1) for t in times],
        "rss_mib": mib(int(median(rss))),
    }


def jetstream_server_start() -> float | None:
    """``hivebus up`` starts its server with JetStream: time that one too."""
    with tempfile.TemporaryDirectory(prefix="hivebus-bench-js-") as data:
        js = EmbeddedServer(port=0, data_dir=Path(data))
        started = time.perf_counter()
        try:
            js.start()
            return round((time.perf_counter() - started) * 1000, 1)
        finally:
            js.stop()
