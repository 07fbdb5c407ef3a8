"""``hivebus bench``: run the scenarios, print the table, write the JSON report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import orjson

from .plan import BenchOptions, Plan
from .profiling import find_py_spy
from .report import build_report
from .runner import run_bench
from .system_info import load_average
from .table import render_table

__all__ = ["bench"]


async def bench(args: argparse.Namespace) -> int:
    """0 when every scenario ran (whatever the figures), 1 when one could not run."""
    load_start = load_average()
    options = BenchOptions(
        quick=args.quick, agents=args.agents, profile=args.profile, profiler=args.profiler
    )
    try:
        Plan.for_options(options)
        if options.profile is None and args.profiler != "auto":
            raise ValueError("--profiler needs --profile DIR")
        if options.profiler == "py-spy" and find_py_spy() is None:
            raise ValueError("py-spy not found: try `uv run --with py-spy hivebus bench ...`")
    except ValueError as exc:
        print(f"hivebus bench: {exc}", file=sys.stderr)
        return 2
    # SIGTERM cancels the run like Ctrl-C does, so every process it started is stopped.
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if this is not None:
            this.cancel()

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        plan, recorder = await run_bench(options)
    except asyncio.CancelledError:
        if not terminated:
            raise
        print("hivebus bench: terminated", file=sys.stderr)
        return 143
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)
    report = build_report(plan, recorder, load_start)
    print(render_table(report), flush=True)
    if args.output:
        _write(Path(args.output), report)
    return 1 if recorder.failed else 0


def _write(path: Path, report: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"report written to {path}", file=sys.stderr)
