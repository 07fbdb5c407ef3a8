"""How much a run measures: the populations, the samples, and the cores tried after the main one.

``--quick`` shrinks the samples, never the shape: every scenario runs, so a quick run proves
what a full run would measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from hivebus.plugins import ENTRY_POINT_GROUP

from . import loops

__all__ = [
    "ALL",
    "INFLIGHT",
    "PAYLOAD_KIB",
    "SMALL_POPULATION",
    "BenchOptions",
    "Plan",
    "plugin_names",
    "variants",
]

INFLIGHT = 256
SMALL_POPULATION = 100
PAYLOAD_KIB = 32
"""The payload of the cycles that carry one: a prompt with its context, as agents are handed."""

ALL = None
"""Load every installed plugin (the default configuration)."""


def plugin_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def variants(quick: bool) -> list[tuple[str, list[str], str | None, str | None]]:
    """Cores run after the main one: (name, the only plugins loaded, log level or default,
    event loop or default).

    The full run also tries each plugin alone, which prices them one by one. Where uvloop is
    installed the core runs on it by default, and a core without plugins on asyncio prices
    the loop (the core's own choice, ``hivebus up --loop``).
    """
    found: list[tuple[str, list[str], str | None, str | None]] = [
        ("no_plugins", [], None, None),
        ("no_plugins_log_warning", [], "WARNING", None),
    ]
    if loops.uvloop_version() is not None:
        found.append(("no_plugins_asyncio", [], None, "asyncio"))
    if not quick:
        found += [(f"only_{name}", [name], None, None) for name in plugin_names()]
    return found


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False
    agents: int | None = None
    """The large population (default 10,000, or 1,000 with ``quick``)."""
    profile: Path | None = None
    """Profile the cores' delegation phases into this folder (``profiling``)."""
    profiler: str = "auto"


@dataclass(frozen=True)
class Plan:
    """How many of everything; ``--quick`` shrinks the samples, never the shape."""

    quick: bool
    agents: int
    floor_sequential: int
    floor_concurrent: int
    registration_sequential: int
    delegation_sequential: int
    delegation_concurrent: int
    cycles: int
    payload_cycles: int
    """Cycles whose tasks carry ``payload_kib`` of JSON (the others carry a few bytes)."""
    warmup: int
    startup_runs: int
    small_agents: int = SMALL_POPULATION
    inflight: int = INFLIGHT
    payload_kib: int = PAYLOAD_KIB

    @classmethod
    def for_options(cls, options: BenchOptions) -> Plan:
        agents = options.agents or (1_000 if options.quick else 10_000)
        if agents < SMALL_POPULATION + INFLIGHT:
            raise ValueError(f"--agents must be at least {SMALL_POPULATION + INFLIGHT}")
        if options.quick:
            return cls(
                quick=True,
                agents=agents,
                floor_sequential=300,
                floor_concurrent=2_000,
                registration_sequential=300,
                delegation_sequential=300,
                delegation_concurrent=min(700, agents - SMALL_POPULATION),
                cycles=1_000,
                payload_cycles=200,
                warmup=30,
                startup_runs=1,
            )
        return cls(
            quick=False,
            agents=agents,
            floor_sequential=2_000,
            floor_concurrent=10_000,
            registration_sequential=1_000,
            delegation_sequential=2_000,
            delegation_concurrent=min(5_000, agents - SMALL_POPULATION),
            cycles=5_000,
            payload_cycles=1_000,
            warmup=100,
            startup_runs=3,
        )
