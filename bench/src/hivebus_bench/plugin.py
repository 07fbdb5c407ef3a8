"""Adds ``hivebus bench`` to the ``hivebus`` command (entry-point group ``hivebus.commands``).

Registration only declares the arguments; the harness is imported when the command runs, so
``hivebus --help`` does not pay for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hivebus_hookspecs import RegisterCommand, hookimpl

__all__ = ["hivebus_register_commands"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", metavar="FILE", default=None, help="write the JSON report")
    parser.add_argument(
        "--agents", type=int, default=None, help="the large population (10,000; --quick 1,000)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples: under a minute")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        default=None,
        help="profile the cores' delegation phases into DIR (per core: a py-spy flame graph, "
        "or cProfile's pstats and top functions); the figures then carry its overhead",
    )
    parser.add_argument(
        "--profiler",
        choices=["auto", "py-spy", "cprofile"],
        default="auto",
        help="with --profile: py-spy when found and able to attach (auto), or one of them",
    )


async def run(args: argparse.Namespace) -> int:
    from .command import bench

    return await bench(args)


@hookimpl
def hivebus_register_commands(register: RegisterCommand) -> None:
    register(
        "bench",
        help="measure the core over a real nats-server, beside the bare NATS floor",
        configure=configure,
        run=run,
    )
