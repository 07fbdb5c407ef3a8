"""``hivebus bench --profile DIR``: where the core's time goes on the hot path, per core.

The in-memory core and the JetStream core are profiled over their delegation phases only (one
at a time, 256 in flight, the completions, the cycles), not over start-up, registration and
heartbeats, which would drown the hot path. Two profilers:

- **py-spy** (``uv run --with py-spy hivebus bench --profile DIR``), when its binary is found:
  it samples the running core from outside (``py-spy record --pid``), its folded stacks go to
  ``<core>.folded``, drawn as a flame graph (``<core>.svg``) and summed up as the top functions
  by samples (``<core>.txt``). The core's code is not touched.
- **cProfile**, always available: the core is started through a few lines that arm it on
  ``SIGUSR1`` and dump it on ``SIGUSR2`` (``<core>.pstats``, then ``<core>.txt``: the top
  functions by cumulative and by own time). Until armed it costs nothing; armed, it makes
  every Python call slower, so the figures of a profiled run are not comparable with others.

``auto`` (the default) takes py-spy when it is found and can attach to the core, else cProfile.
The seam is the bench's own: the core runs ``hivebus.cli.main`` as ``hivebus up`` does, and
nothing in the core knows it is profiled.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import pstats
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .flamegraph import read_folded, render_svg, top_functions
from .processes import CoreProcess, Fleet, Process
from .recorder import say

__all__ = ["PROFILED_CORE_MAIN", "PROFILERS", "Profiling", "find_py_spy", "summary"]

PROFILERS = ("auto", "py-spy", "cprofile")

PROFILED_CORE_MAIN = """\
import cProfile, os, signal, sys
out = sys.argv.pop(1)
profiler = cProfile.Profile()
def arm(*_):
    profiler.enable()
def dump(*_):
    profiler.disable()
    profiler.dump_stats(out + ".part")
    os.replace(out + ".part", out)
signal.signal(signal.SIGUSR1, arm)
signal.signal(signal.SIGUSR2, dump)
from hivebus.cli import main
sys.exit(main())  # hivebus_bench core, profiled
"""
"""What the ``hivebus`` console script runs, with cProfile armed and dumped by signals. The
profile's path is the first argument, taken off before ``hivebus`` parses the rest."""

TOP = 40
ATTACH_S = 1.0
"""How long py-spy gets to show it can attach (it exits at once when it cannot)."""
DUMP_TIMEOUT_S = 30.0


def find_py_spy() -> str | None:
    """The py-spy binary: beside this Python (``uv run --with py-spy``) or on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def summary(stats_file: Path, top: int = TOP) -> str:
    """The top ``top`` functions by cumulative time, then by own (total) time."""
    out = io.StringIO()
    for key, title in (("cumulative", "cumulative time"), ("tottime", "own (total) time")):
        out.write(f"=== top {top} functions by {title}\n")
        stats = pstats.Stats(str(stats_file), stream=out)
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


@dataclass
class Profiling:
    """One run's profiles: where they go, which profiler, and what was written."""

    directory: Path
    profiler: str = "auto"
    py_spy: str | None = None
    written: dict[str, list[str]] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)
    """Per core: the profiler that ran (``auto`` may fall back to cProfile)."""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.profiler not in PROFILERS:
            raise ValueError(f"unknown profiler {self.profiler!r}; choose from {PROFILERS}")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.profiler != "cprofile":
            self.py_spy = find_py_spy()
            if self.py_spy is None and self.profiler == "py-spy":
                raise ValueError("py-spy not found: try `uv run --with py-spy hivebus bench ...`")

    def core_argv(self, name: str) -> list[str]:
        """How to start a core so it can be profiled: cProfile armed by ``SIGUSR1``."""
        return [sys.executable, "-c", PROFILED_CORE_MAIN, str(self._stats_path(name))]

    def _stats_path(self, name: str) -> Path:
        return self.directory / f"{name}.pstats"

    def report(self) -> dict[str, Any]:
        return {
            "dir": str(self.directory),
            "profiler": self.profiler,
            "py_spy": self.py_spy,
            "used": self.used,
            "files": self.written,
            "notes": self.notes,
            "scope": "delegation phases: one at a time, 256 in flight, completions, cycles",
        }

    @contextlib.asynccontextmanager
    async def around(self, fleet: Fleet, core: CoreProcess, label: str) -> AsyncIterator[None]:
        """Profile ``core`` while the block runs; its files are named ``label``."""
        spy = await self._attach_py_spy(fleet, core, label) if self.py_spy else None
        if spy is None:
            core.process.send_signal(signal.SIGUSR1)
        self.used[label] = "py-spy" if spy is not None else "cprofile"
        try:
            yield
        finally:
            if spy is not None:
                await self._finish_py_spy(fleet, spy, label)
            else:
                await self._finish_cprofile(core, label)

    async def _attach_py_spy(self, fleet: Fleet, core: CoreProcess, label: str) -> Process | None:
        assert self.py_spy is not None
        folded = self.directory / f"{label}.folded"
        # Per function (its first line), not per line being run: one frame per function.
        argv = [self.py_spy, "record", "--pid", str(core.pid), "--format", "raw", "--function"]
        spy = await fleet.tool(f"py-spy-{label}", [*argv, "--output", str(folded)])
        await asyncio.sleep(ATTACH_S)
        if spy.process.returncode is None:
            return spy
        note = f"{label}: py-spy could not attach ({spy.tail().strip()[-300:]}); cProfile instead"
        say(note)
        self.notes.append(note)
        await fleet.stop(spy)
        return None

    async def _finish_py_spy(self, fleet: Fleet, spy: Process, label: str) -> None:
        # py-spy writes its stacks when interrupted; Process.stop sends SIGINT first.
        await fleet.stop(spy, timeout=DUMP_TIMEOUT_S)
        folded = self.directory / f"{label}.folded"
        if not folded.exists():
            self.notes.append(f"{label}: py-spy wrote no stacks ({spy.tail()[-300:]})")
            return
        stacks = read_folded(folded)
        svg = self.directory / f"{label}.svg"
        svg.write_text(render_svg(stacks, f"hivebus core ({label}): delegation phases, py-spy"))
        text = self.directory / f"{label}.txt"
        text.write_text(top_functions(stacks, TOP))
        self.written[label] = [folded.name, svg.name, text.name]

    async def _finish_cprofile(self, core: CoreProcess, label: str) -> None:
        stats = self._stats_path(core.name)
        with contextlib.suppress(FileNotFoundError):
            stats.unlink()
        core.process.send_signal(signal.SIGUSR2)
        deadline = asyncio.get_running_loop().time() + DUMP_TIMEOUT_S
        while not stats.exists():
            if asyncio.get_running_loop().time() > deadline or core.process.returncode is not None:
                self.notes.append(f"{label}: the core wrote no profile")
                return
            await asyncio.sleep(0.1)
        target = self.directory / f"{label}.pstats"
        os.replace(stats, target)
        text = self.directory / f"{label}.txt"
        text.write_text(summary(target))
        self.written[label] = [target.name, text.name]
