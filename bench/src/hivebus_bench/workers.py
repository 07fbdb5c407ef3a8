"""The measured side of hivebus: many agents in one process, and a delegator.

``agents`` registers lightweight agents over raw NATS and accepts every offer through one
wildcard subscription on ``agent.*.assign`` (thousands of agents cost one subscription);
``delegator`` delegates tasks and completes them on the assigned agent's behalf, so an agent
is free again when the next delegation needs it. Both time their own requests. Run as
``python -m hivebus_bench.workers ROLE URL``; the runner drives them through ``channel``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import nats
import orjson
from hivebus.subjects import Subjects
from nats.aio.client import Client
from nats.aio.msg import Msg

from . import loadgen, loops
from .channel import serve

__all__ = ["CAPABILITY", "agent_id", "main", "payload_of"]

CAPABILITY = "bench"
TIMEOUT_S = 10.0
ACCEPT = b'{"accept":true}'

subjects = Subjects()


def agent_id(i: int) -> str:
    return f"bench-agent-{i}"


class Refused(Exception):
    """The core answered with an error (its code and message are the exception's text)."""


def _ok(msg: Msg) -> dict[str, Any]:
    reply: dict[str, Any] = orjson.loads(msg.data)
    if reply.get("ok") is not True:
        error = reply.get("error") or {}
        raise Refused(f"{error.get('code')}: {error.get('message')}")
    return reply


async def _run_lanes(call: loadgen.Call, count: int, inflight: int) -> loadgen.Run:
    if inflight <= 1:
        return await loadgen.sequential(call, count)
    return await loadgen.concurrent(call, count, inflight)


class Agents:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.offers = 0

    async def start(self) -> None:
        await self.nc.subscribe(subjects.assign("*"), cb=self._accept)

    async def _accept(self, msg: Msg) -> None:
        self.offers += 1
        await msg.respond(ACCEPT)

    async def register(self, cmd: dict[str, Any]) -> dict[str, Any]:
        capabilities = cmd.get("capabilities", [CAPABILITY])
        max_tasks = cmd.get("max_tasks", 1)

        first = cmd.get("first", 0)

        async def call(i: int) -> bool:
            body = {
                "agent_id": agent_id(first + i),
                "capabilities": capabilities,
                "max_tasks": max_tasks,
            }
            _ok(await self.nc.request(subjects.register, orjson.dumps(body), timeout=TIMEOUT_S))
            return True

        run = await _run_lanes(call, cmd["count"], cmd.get("inflight", 1))
        return run.as_dict()

    async def deregister(self, cmd: dict[str, Any]) -> dict[str, Any]:
        first = cmd.get("first", 0)

        async def call(i: int) -> bool:
            body = orjson.dumps({"agent_id": agent_id(first + i)})
            _ok(await self.nc.request(subjects.deregister, body, timeout=TIMEOUT_S))
            return True

        run = await _run_lanes(call, cmd["count"], cmd.get("inflight", 1))
        return run.as_dict()

    async def heartbeat(self, cmd: dict[str, Any]) -> dict[str, Any]:
        first = cmd.get("first", 0)

        async def call(i: int) -> bool:
            body = orjson.dumps({"agent_id": agent_id(first + i)})
            _ok(await self.nc.request(subjects.heartbeat, body, timeout=TIMEOUT_S))
            return True

        run = await _run_lanes(call, cmd["count"], cmd.get("inflight", 1))
        return run.as_dict()

    async def stats(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return {"offers": self.offers}


def payload_of(kib: int) -> Any:
    """About ``kib`` KiB of JSON shaped like a conversation an agent is handed (many small
    objects, as a prompt with its context is), or the bench's usual tiny payload."""
    if not kib:
        return {"bench": True}
    turns = kib * 1024 // 100
    return {"turns": [{"role": "user", "turn": i, "text": "x" * 60} for i in range(turns)]}


class Delegator:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.pending: list[tuple[str, str]] = []

    async def _complete(self, task_id: str, agent: str) -> None:
        body = orjson.dumps({"task_id": task_id, "agent_id": agent, "result": None})
        _ok(await self.nc.request(subjects.complete, body, timeout=TIMEOUT_S))

    async def delegate(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Delegate ``count`` tasks, ``inflight`` at a time; with ``complete`` each is
        completed right after (a cycle), else kept for ``complete_pending``. Each carries
        ``payload_of(payload_kib)``."""
        complete = bool(cmd.get("complete", True))
        body = orjson.dumps(
            {
                "task_type": "bench",
                "required_capabilities": cmd.get("capabilities", [CAPABILITY]),
                "payload": payload_of(int(cmd.get("payload_kib", 0))),
            }
        )
        delegate_ms: list[float] = []

        async def call(i: int) -> bool:
            started = time.perf_counter()
            reply = _ok(await self.nc.request(subjects.delegate, body, timeout=TIMEOUT_S))
            elapsed = time.perf_counter() - started
            if reply["status"] != "assigned":
                # Nobody was free: take it back so no agent is left holding it later.
                cancel = orjson.dumps({"task_id": reply["task_id"]})
                await self.nc.request(subjects.cancel, cancel, timeout=TIMEOUT_S)
                raise Refused(f"task was {reply['status']}, not assigned")
            delegate_ms.append(elapsed * 1000)
            if complete:
                await self._complete(reply["task_id"], reply["agent_id"])
            else:
                self.pending.append((reply["task_id"], reply["agent_id"]))
            return True

        warmup = cmd.get("warmup", 0)
        if warmup:
            await _run_lanes(call, warmup, cmd.get("inflight", 1))
            delegate_ms.clear()
        run = await _run_lanes(call, cmd["count"], cmd.get("inflight", 1))
        return {**run.as_dict(), "delegate_ms": [round(v, 4) for v in delegate_ms]}

    async def complete_pending(self, cmd: dict[str, Any]) -> dict[str, Any]:
        pending, self.pending = self.pending, []

        async def call(i: int) -> bool:
            await self._complete(*pending[i])
            return True

        run = await _run_lanes(call, len(pending), cmd.get("inflight", 1))
        return run.as_dict()


async def _run(role: str, url: str) -> None:
    nc = await nats.connect(url, name=f"hivebus-bench-{role}")
    try:
        if role == "agents":
            agents = Agents(nc)
            await agents.start()
            await nc.flush()
            await serve(
                {
                    "register": agents.register,
                    "deregister": agents.deregister,
                    "heartbeat": agents.heartbeat,
                    "stats": agents.stats,
                }
            )
        else:
            delegator = Delegator(nc)
            await serve(
                {"delegate": delegator.delegate, "complete_pending": delegator.complete_pending}
            )
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hivebus_bench.workers")
    parser.add_argument("role", choices=["agents", "delegator"])
    parser.add_argument("url")
    parser.add_argument("--loop", choices=loops.LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    loops.run(_run(args.role, args.url), args.loop)


if __name__ == "__main__":
    main()
