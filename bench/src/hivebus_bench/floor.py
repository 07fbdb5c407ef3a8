"""The floor: what bare nats-py costs on this machine right now, in separate processes.

``responder`` answers ``bench.echo`` with the request body; ``relay`` answers ``bench.relay``
by asking the responder first (client -> relay -> responder: the shape of a delegation, which is
delegator -> core -> agent), spawning a task per request as the core's service does;
``relay-inline`` awaits inline in the subscription callback, which nats-py runs one after
another; ``client`` times requests, and on a server with JetStream also compare-and-set writes
to a key-value bucket (``kv``), the durable state's unit of cost. Run as
``python -m hivebus_bench.floor ROLE URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from . import loadgen, loops
from .channel import serve

__all__ = ["ECHO", "KV_BUCKET", "PROBE", "RELAY", "RELAY_INLINE", "main"]

ECHO = "bench.echo"
RELAY = "bench.relay"
RELAY_INLINE = "bench.relay-inline"
KV_BUCKET = "hivebus_bench_floor"
"""A bucket configured as the core's state buckets are by default (file storage, history 1)."""
TIMEOUT_S = 10.0

# About the size of a registration or a delegation body.
BODY = b'{"task_type":"bench","required_capabilities":["bench"],"priority":"medium"}'

PROBE = """
import asyncio, sys
import nats, orjson, pluggy, pydantic

async def main():
    nc = await nats.connect(sys.argv[1])
    await nc.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await nc.close()

asyncio.run(main())
"""
"""The start-up and memory floor: Python importing this stack's libraries and connecting."""


async def _responder(nc: Client) -> None:
    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO, cb=echo)


async def _relay(nc: Client, inline: bool) -> None:
    tasks: set[asyncio.Task[None]] = set()

    async def forward(msg: Msg) -> None:
        reply = await nc.request(ECHO, msg.data, timeout=TIMEOUT_S)
        await msg.respond(reply.data)

    async def spawn(msg: Msg) -> None:
        task = asyncio.create_task(forward(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await nc.subscribe(RELAY_INLINE if inline else RELAY, cb=forward if inline else spawn)


async def _run(role: str, url: str) -> None:
    nc = await nats.connect(url, name=f"hivebus-bench-{role}")
    try:
        if role == "responder":
            await _responder(nc)
        elif role in ("relay", "relay-inline"):
            await _relay(nc, inline=role == "relay-inline")
        await nc.flush()

        async def call(_: int, subject: str) -> bool:
            await nc.request(subject, BODY, timeout=TIMEOUT_S)
            return True

        async def sequential(cmd: dict[str, Any]) -> dict[str, Any]:
            subject = cmd["subject"]
            await loadgen.sequential(lambda i: call(i, subject), cmd.get("warmup", 0))
            run = await loadgen.sequential(lambda i: call(i, subject), cmd["count"])
            return run.as_dict()

        async def concurrent(cmd: dict[str, Any]) -> dict[str, Any]:
            subject, inflight = cmd["subject"], cmd["inflight"]
            await loadgen.concurrent(lambda i: call(i, subject), cmd.get("warmup", 0), inflight)
            run = await loadgen.concurrent(lambda i: call(i, subject), cmd["count"], inflight)
            return run.as_dict()

        bucket: KeyValue | None = None
        keys = itertools.count()

        async def kv(cmd: dict[str, Any]) -> dict[str, Any]:
            """Compare-and-set writes (each creates a new key: the same request as an
            update with the expected revision), one at a time or ``inflight`` at a time."""
            nonlocal bucket
            if bucket is None:
                bucket = await nc.jetstream(timeout=TIMEOUT_S).create_key_value(
                    KeyValueConfig(bucket=KV_BUCKET, history=1, storage=StorageType.FILE)
                )
            store = bucket

            async def write(_: int) -> bool:
                await store.create(f"k{next(keys)}", BODY)
                return True

            inflight = cmd.get("inflight", 1)
            for count in (cmd.get("warmup", 0), cmd["count"]):
                if inflight <= 1:
                    run = await loadgen.sequential(write, count)
                else:
                    run = await loadgen.concurrent(write, count, inflight)
            return run.as_dict()

        await serve({"sequential": sequential, "concurrent": concurrent, "kv": kv})
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hivebus_bench.floor")
    parser.add_argument("role", choices=["responder", "relay", "relay-inline", "client"])
    parser.add_argument("url")
    parser.add_argument("--loop", choices=loops.LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    loops.run(_run(args.role, args.url), args.loop)


if __name__ == "__main__":
    main()
