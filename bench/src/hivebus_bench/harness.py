"""What every scenario measures through: the plan, the processes, the recorder, one ``measure``.

One way to measure keeps the scenarios honest alike: any failed request fails its scenario
(with the core's log when the core is the one measured), CPU per call is taken the same way for
the floor's processes and for the core, and raw samples are summarised before they reach the
report (they would swamp it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from .plan import Plan
from .processes import BenchError, Child, CoreProcess, Fleet, Process, bench_env
from .profiling import Profiling
from .recorder import Recorder
from .stats import summarize

__all__ = ["Harness", "latency", "mib", "payload_cycles"]


def latency(run: dict[str, Any], key: str = "latencies_ms") -> dict[str, Any]:
    """A run's summary without its raw samples (they would swamp the report)."""
    out = summarize(run[key])
    out["per_s"] = run["per_s"]
    out["failures"] = run["failures"]
    if "cpu_us_per_call" in run:
        out["cpu_us_per_call"] = run["cpu_us_per_call"]
    if run["errors"]:
        out["errors"] = run["errors"]
    return out


def mib(kib: int | None) -> float | None:
    return round(kib / 1024, 2) if kib is not None else None


def payload_cycles(plan: Plan) -> dict[str, Any]:
    """The delegator's command for cycles whose tasks carry ``plan.payload_kib`` of JSON: the
    bench's other tasks carry a few bytes, real agents' tasks (a prompt, its context) do not."""
    return {
        "cmd": "delegate",
        "count": plan.payload_cycles,
        "inflight": plan.inflight,
        "warmup": plan.warmup // 4,
        "payload_kib": plan.payload_kib,
    }


class Harness:
    """One run's plan, processes and recorder, the server's URL, and the core being measured."""

    def __init__(
        self, plan: Plan, fleet: Fleet, recorder: Recorder, profiling: Profiling | None = None
    ) -> None:
        self.plan = plan
        self.fleet = fleet
        self.rec = recorder
        self.figures = recorder.figures
        self.profiling = profiling
        self.url = ""
        self.core: CoreProcess | None = None

    async def measure(
        self, child: Child, command: dict[str, Any], cpu_of: Process | None = None
    ) -> dict[str, Any]:
        """Run one command; any failed request fails the scenario, with the core's log.

        With ``cpu_of``, also the CPU that process spent per call (warm-up calls included),
        a figure that, unlike latency, hardly depends on how the two cores are shared.
        """
        before = cpu_of.cpu_seconds() if cpu_of is not None else None
        run = await child.ask(command)
        after = cpu_of.cpu_seconds() if cpu_of is not None else None
        calls = run["count"] + command.get("warmup", 0)
        if before is not None and after is not None and calls:
            run["cpu_us_per_call"] = round((after - before) / calls * 1e6, 1)
        if run.get("failures"):
            message = (
                f"{child.name}: {run['failures']} {command['cmd']} requests failed, "
                f"e.g. {run['errors'][:2]}"
            )
            if self.core is not None and child.name.startswith(("agents", "delegator")):
                raise self.core.failure(message)
            raise BenchError(message)
        return run

    def core_env(
        self,
        plugins: list[str] | None,
        log_level: str | None = None,
        state: str | None = None,
        event_loop: str | None = None,
    ) -> dict[str, str]:
        p = self.plan
        settings = {
            # Room for the large population and every task of the concurrent phase.
            "HIVEBUS_MAX_AGENTS": str(p.agents + p.registration_sequential + 1_000),
            "HIVEBUS_MAX_CONCURRENT_TASKS": str(p.agents * 2 + 10_000),
            # The bench's agents are raw responders that never heartbeat.
            "HIVEBUS_HEARTBEAT_INTERVAL_S": "3600",
            # Shipped plugins that write or listen somewhere: keep them inside the run.
            "HIVEBUS_PLUGIN_CONFIG": orjson.dumps(
                {
                    "audit": {"directory": str(self.fleet.workdir / "audit")},
                    "performance": {"port": 0},
                }
            ).decode(),
        }
        self.figures.setdefault("core_settings", dict(settings))
        if plugins == []:
            settings["HIVEBUS_PLUGIN_AUTOLOAD"] = "false"
        elif plugins is not None:
            settings["HIVEBUS_PLUGINS"] = ",".join(plugins)
        if log_level is not None:
            settings["HIVEBUS_LOG_LEVEL"] = log_level
        if state is not None:
            settings["HIVEBUS_STATE"] = state
        if event_loop is not None:
            settings["HIVEBUS_EVENT_LOOP"] = event_loop
        return bench_env(**settings)

    async def start_core(
        self,
        name: str,
        plugins: list[str] | None,
        log_level: str | None = None,
        *,
        url: str | None = None,
        state: str | None = None,
        event_loop: str | None = None,
    ) -> CoreProcess:
        env = self.core_env(plugins, log_level, state, event_loop)
        main = self.profiling.core_argv(name) if self.profiling is not None else None
        self.core = await self.fleet.core(name, url or self.url, env, main=main)
        return self.core

    @contextlib.asynccontextmanager
    async def profiled(self, core: CoreProcess, label: str) -> AsyncIterator[None]:
        """The block under the profiler with ``--profile`` (files named ``label``), else as is."""
        if self.profiling is None:
            yield
            return
        async with self.profiling.around(self.fleet, core, label):
            yield
