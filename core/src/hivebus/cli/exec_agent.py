"""``hivebus agent -- COMMAND``: any program becomes an agent, one process per task.

The payload goes to the command as JSON on stdin; its stdout is the result (parsed as JSON
when it is JSON, else the text); a non-zero exit is a failure carrying the end of stderr. A
line ``HIVEBUS_PROGRESS 0.4 linking`` on stderr reports progress (``task.progress``), which
keeps the task alive: any language can report by printing.
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
from ..sdk import Agent, report_progress
from .failures import UsageError
from .shutdown import first_of, stop_requested

__all__ = ["CommandFailed", "progress_line", "run_agent"]


class CommandFailed(Exception):
    pass


PROGRESS_MARK = "HIVEBUS_PROGRESS"
"""A stderr line ``HIVEBUS_PROGRESS 0.4 linking`` reports progress (``-`` for no fraction)."""
STDERR_TAIL = 2000


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
            # All three at once, as communicate() does: a command that writes a lot before it
            # reads its stdin must not wait on us while we wait on it.
            _, out, err = await asyncio.gather(
                _feed(process, orjson.dumps(task.payload)),
                _read(process.stdout),
                _watch_stderr(process.stderr),
            )
            await process.wait()
        except BaseException:  # cancelled, or the report was refused: the work is not wanted
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
        if process.returncode != 0:
            tail = err.strip()[-STDERR_TAIL:]
            raise CommandFailed(f"exit status {process.returncode}: {tail}")
        text = out.decode(errors="replace").strip()
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text

    return handle


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    """Write the payload to stdin and close it (a command may ignore it and exit early)."""
    if process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(data)
        await process.stdin.drain()
    process.stdin.close()


async def _read(stream: asyncio.StreamReader | None) -> bytes:
    return b"" if stream is None else await stream.read()


async def _watch_stderr(stderr: asyncio.StreamReader | None) -> str:
    """Report ``HIVEBUS_PROGRESS`` lines as they come; return the tail of everything else."""
    tail = ""
    if stderr is None:
        return tail
    while True:
        try:
            raw = await stderr.readline()
        except ValueError:  # a line longer than the reader's limit (64 KiB): dropped
            tail = (tail + "[a line too long to keep]\n")[-STDERR_TAIL:]
            continue
        if not raw:
            return tail
        line = raw.decode(errors="replace")
        if line.startswith(PROGRESS_MARK + " ") or line.rstrip() == PROGRESS_MARK:
            await report_progress(*progress_line(line[len(PROGRESS_MARK) :].strip()))
        else:
            tail = (tail + line)[-STDERR_TAIL:]


def progress_line(text: str) -> tuple[float | None, str | None]:
    """``0.4 linking`` -> (0.4, "linking"); ``- waiting`` or ``waiting`` -> (None, ...)."""
    first, _, rest = text.partition(" ")
    try:
        fraction: float | None = float(first)
    except ValueError:
        fraction, rest = None, text if first != "-" else rest
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        fraction, rest = None, text
    return fraction, rest.strip()[:1024] or None


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
