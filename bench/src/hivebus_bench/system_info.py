"""What the figures were measured on: the machine, its load, and the versions that ran.

Figures from two machines (or one machine under two loads) differ more than any change to the
core does; the report carries what is needed to tell them apart.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from hivebus.server import find_nats_server

from . import loops

__all__ = ["load_average", "system_info"]


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def system_info(load_start: tuple[float, float, float] | None) -> dict[str, Any]:
    try:
        server = subprocess.run(
            [str(find_nats_server()), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        server = None
    mem = _first_line("/proc/meminfo", "MemTotal")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _first_line("/proc/cpuinfo", "model name"),
        "memory_total": mem,
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "event_loop": "asyncio",
        "uvloop": loops.uvloop_version(),
        "hivebus": _version("hivebus"),
        "nats_py": _version("nats-py"),
        "nats_server": server,
    }


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None
