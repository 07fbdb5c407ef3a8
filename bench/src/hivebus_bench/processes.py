"""The bench's child processes: started, spoken to, measured, and always stopped.

A ``Fleet`` owns every process a run starts; ``close()`` stops them all (politely, then by
force), and the runner calls it however the run ends. On Linux each Python child is also asked
to die with the runner (``PR_SET_PDEATHSIG``), so even a killed runner leaves no workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .channel import READY

__all__ = [
    "BenchError",
    "Child",
    "CoreProcess",
    "Fleet",
    "Process",
    "bench_env",
    "cpu_seconds",
    "memory_kib",
]

_CORE_MAIN = "import sys; from hivebus.cli import main; sys.exit(main())  # hivebus_bench core"
"""Exactly what the ``hivebus`` console script runs (the comment marks it in ``ps``)."""

_EVENT_LOOP = re.compile(rb"event loop: (\w+)")
"""In the core's serving line, e.g. ``(plugins: ...; event loop: uvloop)``."""

_PR_SET_PDEATHSIG = 1

ANSWER_LIMIT = 64 * 1024 * 1024
"""An answer carries every latency sample of a phase on one line: allow tens of thousands."""


class BenchError(RuntimeError):
    """A bench process failed; the message carries the tail of its log."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _preexec() -> Callable[[], None] | None:
    return _die_with_parent if sys.platform.startswith("linux") else None


def bench_env(**overrides: str) -> dict[str, str]:
    """The environment for children: none of the caller's ``HIVEBUS_*`` leaks into a run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEBUS_")}
    env.update(overrides)
    return env


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of ``pid`` in KiB, from ``/proc/<pid>/status``."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass  # not Linux, or the process is gone: report nothing rather than guess
    return found


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time ``pid`` has used, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # Fields after the command name (which may contain spaces) start at "state".
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Process:
    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory_kib(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def failure(self, what: str) -> BenchError:
        code = self.process.returncode
        exited = f" (exited with {code})" if code is not None else ""
        return BenchError(f"{self.name}: {what}{exited}; its log ends:\n{self.tail()}")

    def tail(self) -> str:
        """The end of this process's log."""
        return _tail(self.log)

    async def _line(self, timeout: float) -> bytes:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise self.failure(f"no answer within {timeout}s") from None
        if not line:
            await asyncio.wait_for(self.process.wait(), 5)
            raise self.failure("closed its output")
        return line

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM-like stop: close stdin, signal, wait, then kill."""
        process = self.process
        if process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class Child(Process):
    """A bench child speaking the ``channel`` protocol."""

    async def ready(self, timeout: float) -> None:
        line = await self._line(timeout)
        if orjson.loads(line) != READY:
            raise self.failure(f"said {line!r} instead of ready")

    async def ask(self, command: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        await self.process.stdin.drain()
        answer: dict[str, Any] = orjson.loads(await self._line(timeout))
        if not answer.get("ok"):
            raise self.failure(f"{command.get('cmd')} failed: {answer.get('error')}")
        return answer

    async def stop(self, timeout: float = 5.0) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.write(b'{"cmd": "quit"}\n')
                await self.process.stdin.drain()
                await asyncio.wait_for(self.process.wait(), timeout)
        await super().stop(timeout)


class CoreProcess(Process):
    """``hivebus up --nats URL`` in its own process; ``started_ms`` is spawn to serving."""

    started_ms: float = float("nan")
    event_loop: str | None = None
    """The loop the core says it serves on (uvloop when installed, unless told otherwise)."""


class Fleet:
    """Every process of one run, and the directory their logs and files go to."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._live: list[Process] = []
        self._count = 0

    def _log(self, name: str) -> tuple[Path, BinaryIO]:
        """A log file per process: stderr goes to a file, never to a pipe nobody reads."""
        self._count += 1
        path = self.workdir / f"{self._count:02d}-{name}.log"
        return path, open(path, "wb")

    async def _spawn(
        self, name: str, argv: list[str], env: Mapping[str, str] | None, *, talks: bool = True
    ) -> tuple[asyncio.subprocess.Process, Path]:
        """Start ``argv``; a process that ``talks`` answers on its stdout, any other
        writes its stdout to its log as well."""
        log, log_file = self._log(name)
        with log_file:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE if talks else log_file,
                stderr=log_file,
                env=dict(env) if env is not None else bench_env(),
                cwd=self.workdir,
                preexec_fn=_preexec(),
                limit=ANSWER_LIMIT,
            )
        return process, log

    async def child(
        self,
        name: str,
        module: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Child:
        """Start ``python -m module args...`` and wait until it says it is ready."""
        process, log = await self._spawn(name, [sys.executable, "-m", module, *args], env)
        child = Child(name, process, log)
        self._live.append(child)
        await child.ready(timeout)
        return child

    async def core(
        self,
        name: str,
        url: str,
        env: Mapping[str, str],
        timeout: float = 60.0,
        *,
        main: list[str] | None = None,
    ) -> CoreProcess:
        """Start the core and return once it prints that it is serving (plugins loaded).

        ``main`` replaces what runs ``hivebus`` (a profiler's wrapper); its arguments follow.
        """
        started = time.perf_counter()
        argv = main if main is not None else [sys.executable, "-c", _CORE_MAIN]
        process, log = await self._spawn(name, [*argv, "up", "--nats", url], env)
        core = CoreProcess(name, process, log)
        self._live.append(core)
        while b" serving on " not in (line := await core._line(timeout)):
            pass
        core.started_ms = (time.perf_counter() - started) * 1000
        loop = _EVENT_LOOP.search(line)
        core.event_loop = loop.group(1).decode() if loop else None
        return core

    async def probe(self, name: str, argv: list[str], timeout: float = 30.0) -> Process:
        """Start a process that prints one line when ready; return it still running."""
        process, log = await self._spawn(name, argv, None)
        probe = Process(name, process, log)
        self._live.append(probe)
        await probe._line(timeout)
        return probe

    async def tool(self, name: str, argv: list[str]) -> Process:
        """Start a program that says nothing to the bench (a profiler), output to its log."""
        process, log = await self._spawn(name, argv, None, talks=False)
        tool = Process(name, process, log)
        self._live.append(tool)
        return tool

    async def stop(self, process: Process, timeout: float = 5.0) -> None:
        try:
            await process.stop(timeout)
        finally:
            if process in self._live:
                self._live.remove(process)

    async def close(self) -> None:
        """Stop everything still running, children first-started last."""
        while self._live:
            with contextlib.suppress(Exception):
                await self.stop(self._live[-1])
