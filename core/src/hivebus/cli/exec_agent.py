"""``hivebus agent -- COMMAND``: any program becomes an agent, one process per task.

The payload goes to the command as JSON on stdin; its stdout is the result (parsed as JSON
when it is JSON, else the text); a non-zero exit is a failure carrying the end of stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import orjson
from hivebus_hookspecs.models import Offer

from ..config import HivebusConfig
from ..logs import configure_logging
from ..sdk import Agent
from .failures import UsageError
from .shutdown import first_of, stop_requested

__all__ = ["CommandFailed", "run_agent"]


class CommandFailed(Exception):
    pass


def command_handler(argv: list[str]) -> Any:
    async def handle(task: Offer) -> Any:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=None,
        )
        try:
            out, err = await process.communicate(orjson.dumps(task.payload))
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
        if process.returncode != 0:
            tail = err.decode(errors="replace").strip()[-2000:]
            raise CommandFailed(f"exit status {process.returncode}: {tail}")
        text = out.decode(errors="replace").strip()
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text

    return handle


async def run_agent(args: argparse.Namespace, config: HivebusConfig) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("agent: give the command after --, e.g. -- python work.py")
    configure_logging(config.log_level, config.log_format)
    agent = Agent(
        args.agent_id,
        args.cap,
        command_handler(argv),
        role=args.role,
        max_tasks=args.max_tasks,
        metadata={"command": " ".join(argv)},
        config=config,
    )
    stop = stop_requested()
    async with agent:
        print(
            f"hivebus: agent {agent.agent_id} ready for {', '.join(args.cap) or 'any task'}; "
            "Ctrl-C to stop",
            flush=True,
        )
        await first_of(stop, agent.drained)
        if agent.drained.is_set():
            print(f"hivebus: agent {agent.agent_id} drained and left the bus", flush=True)
    return 0
