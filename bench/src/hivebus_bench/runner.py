"""The scenarios, in order, against one nats-server; every process is stopped at the end.

1. the floor (echo and two-hop relay, bare nats-py), measured at the start and again at the end;
2. start-up: the embedded nats-server, and the core process from spawn to serving;
3. registration latency, one at a time (the core's memory with the first 100 agents);
4. bulk registration up to ``agents`` with 256 in flight, and the core's memory per agent;
5. delegation at ``agents``: one at a time, 256 in flight, and delegate+complete cycles;
6. scale: back down to 100 agents, the same sequential delegations again;
7. variants of the core, one after another: no plugins, then also logging at WARNING; each
   with the small-population delegations and delegate+complete cycles, so what plugins and
   per-task log lines cost shows by difference;
8. JetStream: a second nats-server, with JetStream, and a core keeping its state in key-value
   buckets there (``state=jetstream``, what ``hivebus up`` runs): its floor (one
   compare-and-set write), start-up, registration, and delegation at ``agents``, each beside
   the in-memory figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
from hivebus.config import HivebusConfig
from hivebus.plugins import ENTRY_POINT_GROUP
from hivebus.server import EmbeddedServer

from . import floor, loops
from .processes import BenchError, Child, CoreProcess, Fleet, Process, bench_env
from .stats import median, median_tree, summarize

__all__ = ["BenchOptions", "Plan", "Recorder", "run_bench"]

INFLIGHT = 256
SMALL_POPULATION = 100
JETSTREAM_WRITES_PER_DELEGATION = 3
"""Reserve the agent's slot, store the task offered, store it assigned (docs/operations.md)."""
VARIANT_CONCURRENT = 2_000
"""Delegations with 256 in flight per variant core (each needs an agent of its own)."""

ALL = None
"""Load every installed plugin (the default configuration)."""


def variants(quick: bool) -> list[tuple[str, list[str], str | None]]:
    """Cores run after the main one: (name, the only plugins loaded, log level or default).

    The full run also tries each plugin alone, which prices them one by one.
    """
    found: list[tuple[str, list[str], str | None]] = [
        ("no_plugins", [], None),
        ("no_plugins_log_warning", [], "WARNING"),
    ]
    if not quick:
        found += [(f"only_{name}", [name], None) for name in plugin_names()]
    return found


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False
    agents: int | None = None
    """The large population (default 10,000, or 1,000 with ``quick``)."""


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
    warmup: int
    startup_runs: int
    small_agents: int = SMALL_POPULATION
    inflight: int = INFLIGHT

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
            warmup=100,
            startup_runs=3,
        )


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Recorder:
    """The legacy ``benchmark_results`` entries and our own ``figures``, filled as we go."""

    results: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def scenario(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Time a scenario; an exception in it is recorded as its error, not raised."""
        say(name)
        details: dict[str, Any] = {}
        entry: dict[str, Any] = {"name": name, "details": details, "errors": []}
        started = time.perf_counter()
        try:
            yield details
        except Exception as exc:
            entry["errors"].append(f"{type(exc).__name__}: {exc}")
            say(f"{name} failed: {exc}")
        finally:
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            entry["success"] = not entry["errors"]
            self.results.append(entry)

    @property
    def failed(self) -> bool:
        return any(not r["success"] for r in self.results)


def _latency(run: dict[str, Any], key: str = "latencies_ms") -> dict[str, Any]:
    """A run's summary without its raw samples (they would swamp the report)."""
    out = summarize(run[key])
    out["per_s"] = run["per_s"]
    out["failures"] = run["failures"]
    if "cpu_us_per_call" in run:
        out["cpu_us_per_call"] = run["cpu_us_per_call"]
    if run["errors"]:
        out["errors"] = run["errors"]
    return out


def _mib(kib: int | None) -> float | None:
    return round(kib / 1024, 2) if kib is not None else None


def plugin_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


class Bench:
    def __init__(self, plan: Plan, fleet: Fleet, recorder: Recorder) -> None:
        self.plan = plan
        self.fleet = fleet
        self.rec = recorder
        self.figures = recorder.figures
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

    # --- floor --------------------------------------------------------------------------

    async def floor_processes(self, loop: str) -> dict[str, Child]:
        """The responder, the relays and the client; they stay up for the whole run."""
        args = ("--loop", loop)
        module = "hivebus_bench.floor"
        return {
            role: await self.fleet.child(f"floor-{role}-{loop}", module, role, self.url, *args)
            for role in ("responder", "relay", "relay-inline", "client")
        }

    async def measure_floor(self, processes: dict[str, Child]) -> dict[str, Any]:
        p = self.plan
        client = processes["client"]
        out: dict[str, Any] = {}
        # The CPU of the process in the core's place: the responder for the echo (as the
        # core answers a registration), the relay for the relay (as it relays a delegation).
        for name, subject, cpu_of in (
            ("echo", floor.ECHO, processes["responder"]),
            ("relay", floor.RELAY, processes["relay"]),
        ):
            seq = await self.measure(
                client,
                {
                    "cmd": "sequential",
                    "subject": subject,
                    "count": p.floor_sequential,
                    "warmup": p.warmup,
                },
                cpu_of,
            )
            conc = await self.measure(
                client,
                {
                    "cmd": "concurrent",
                    "subject": subject,
                    "count": p.floor_concurrent,
                    "inflight": p.inflight,
                    "warmup": p.warmup,
                },
                cpu_of,
            )
            out[name] = {"sequential": _latency(seq), "concurrent": _latency(conc)}
        # The relay that awaits inline in its callback: what the hot-path note warns about.
        inline = await self.measure(
            client,
            {
                "cmd": "concurrent",
                "subject": floor.RELAY_INLINE,
                "count": max(p.floor_concurrent // 5, 500),
                "inflight": p.inflight,
            },
            processes["relay-inline"],
        )
        out["relay_inline"] = {"concurrent": _latency(inline)}
        return out

    async def startup_probe(self) -> dict[str, Any]:
        """Python importing nats-py, pydantic, pluggy and orjson, connected: the floor."""
        times: list[float] = []
        rss: list[int] = []
        for i in range(self.plan.startup_runs):
            started = time.perf_counter()
            probe = await self.fleet.probe(
                f"startup-probe-{i}", [sys.executable, "-c", floor.PROBE, self.url]
            )
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.3)
            rss.append(probe.memory_kib().get("VmRSS", 0))
            await self.fleet.stop(probe)
        return {
            "ready_ms": round(median(times), 1),
            "ready_ms_samples": [round(t, 1) for t in times],
            "rss_mib": _mib(int(median(rss))),
        }

    # --- the core -----------------------------------------------------------------------

    def core_env(
        self, plugins: list[str] | None, log_level: str | None = None, state: str | None = None
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
                    "echo-audit": {"path": str(self.fleet.workdir / "echo-audit.jsonl")},
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
        return bench_env(**settings)

    async def start_core(
        self,
        name: str,
        plugins: list[str] | None,
        log_level: str | None = None,
        *,
        url: str | None = None,
        state: str | None = None,
    ) -> CoreProcess:
        env = self.core_env(plugins, log_level, state)
        self.core = await self.fleet.core(name, url or self.url, env)
        return self.core

    # --- scenarios ----------------------------------------------------------------------

    async def run(self) -> None:
        rec = self.rec
        fig = self.figures
        server = EmbeddedServer(port=0, jetstream=False)
        floor_processes: dict[str, Child] | None = None
        try:
            async with rec.scenario("nats_floor") as details:
                started = time.perf_counter()
                server.start()
                server_ms = (time.perf_counter() - started) * 1000
                self.url = server.url
                fig["startup"] = {"nats_server_ms": round(server_ms, 1)}
                fig["startup"]["nats_server_jetstream_ms"] = self.jetstream_server_start()
                floor_processes = await self.floor_processes("asyncio")
                first = await self.measure_floor(floor_processes)
                fig["floor_rounds"] = [first]
                fig["floor"] = first
                fig["startup_probe"] = await self.startup_probe()
                details.update(first=first, probe=fig["startup_probe"])
                if loops.uvloop_version() is not None:
                    on_uvloop = await self.floor_processes("uvloop")
                    fig["floor_uvloop"] = await self.measure_floor(on_uvloop)
            if floor_processes is None or rec.failed:
                return  # without a floor there is nothing to compare against
            await self.core_scenarios()
            if not rec.failed:
                await self.jetstream_scenarios()
            async with rec.scenario("nats_floor_again") as details:
                last = await self.measure_floor(floor_processes)
                fig["floor_rounds"].append(last)
                fig["floor"] = median_tree(fig["floor_rounds"])
                details.update(last=last, combined=fig["floor"])
        finally:
            await self.fleet.close()
            server.stop()

    def jetstream_server_start(self) -> float | None:
        """``hivebus up`` starts its server with JetStream: time that one too."""
        with tempfile.TemporaryDirectory(prefix="hivebus-bench-js-") as data:
            js = EmbeddedServer(port=0, data_dir=Path(data))
            started = time.perf_counter()
            try:
                js.start()
                return round((time.perf_counter() - started) * 1000, 1)
            finally:
                js.stop()

    async def core_scenarios(self) -> None:
        p = self.plan
        rec = self.rec
        fig = self.figures
        core: CoreProcess | None = None
        agents: Child | None = None
        delegator: Child | None = None
        async with rec.scenario("system_initialization") as details:
            samples: list[float] = []
            for i in range(p.startup_runs):
                if core is not None:
                    await self.fleet.stop(core)
                core = await self.start_core(f"core-{i}", plugins=ALL)
                samples.append(core.started_ms)
            await asyncio.sleep(0.5)
            idle = core.memory_kib() if core is not None else {}
            fig["startup"]["core_to_serving_ms"] = round(median(samples), 1)
            fig["startup"]["core_to_serving_ms_samples"] = [round(s, 1) for s in samples]
            fig["memory"] = {"core_rss_idle_mib": _mib(idle.get("VmRSS"))}
            details.update(fig["startup"], core_rss_idle_mib=fig["memory"]["core_rss_idle_mib"])
        if rec.failed or core is None:
            return  # each scenario builds on the one before

        async with rec.scenario("agent_registration") as details:
            agents = await self.fleet.child("agents", "hivebus_bench.workers", "agents", self.url)
            delegator = await self.fleet.child(
                "delegator", "hivebus_bench.workers", "delegator", self.url
            )
            # One at a time: the first 100 (the legacy default population), then the rest.
            first = await self.measure(
                agents, {"cmd": "register", "first": 0, "count": p.small_agents}, core
            )
            await asyncio.sleep(0.3)
            rss_small = core.memory_kib().get("VmRSS")
            rest = await self.measure(
                agents,
                {
                    "cmd": "register",
                    "first": p.small_agents,
                    "count": p.registration_sequential - p.small_agents,
                },
                core,
            )
            run = {**rest, "latencies_ms": first["latencies_ms"] + rest["latencies_ms"]}
            fig["registration"] = {"sequential": _latency(run)}
            fig["memory"]["core_rss_small_population_mib"] = _mib(rss_small)
            details.update(fig["registration"])
        if rec.failed or agents is None or delegator is None:
            return

        async with rec.scenario("concurrent_agents") as details:
            # Per agent by difference between two populations, both past the first
            # registrations (which also warm up code paths and caches).
            await asyncio.sleep(0.3)
            before = core.memory_kib().get("VmRSS", 0)
            registered = p.registration_sequential
            bulk = p.agents - registered
            run = await self.measure(
                agents,
                {"cmd": "register", "first": registered, "count": bulk, "inflight": p.inflight},
                core,
            )
            await asyncio.sleep(0.5)
            after = core.memory_kib().get("VmRSS", 0)
            fig["registration"]["concurrent"] = _latency(run)
            fig["registration"]["registered"] = registered + run["count"]
            fig["registration"]["requested"] = p.agents
            fig["memory"].update(
                core_rss_before_bulk_mib=_mib(before),
                core_rss_after_bulk_mib=_mib(after),
                agents_added=run["count"],
                per_agent_kib=round((after - before) / run["count"], 3) if run["count"] else None,
            )
            # Every agent heartbeats once: at the default interval, what liveness costs.
            beats = await self.measure(
                agents,
                {"cmd": "heartbeat", "first": 0, "count": p.agents, "inflight": p.inflight},
                core,
            )
            interval = float(HivebusConfig.model_fields["heartbeat_interval_s"].default)
            heartbeats = _latency(beats)
            cpu = heartbeats.get("cpu_us_per_call")
            heartbeats["default_interval_s"] = interval
            if cpu is not None:
                # Percent of one CPU the core spends on heartbeats from the whole population.
                heartbeats["cpu_percent_at_default_interval"] = round(
                    p.agents / interval * cpu / 1e4, 2
                )
            fig["heartbeats"] = heartbeats
            details.update(
                registration=fig["registration"]["concurrent"],
                memory=fig["memory"],
                heartbeats=heartbeats,
            )

        if rec.failed:
            return
        async with rec.scenario("task_delegation") as details:
            seq = await self.measure(
                delegator,
                {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
                core,
            )
            conc = await self.measure(
                delegator,
                {
                    "cmd": "delegate",
                    "count": p.delegation_concurrent,
                    "inflight": p.inflight,
                    "complete": False,
                },
                core,
            )
            done = await self.measure(
                delegator, {"cmd": "complete_pending", "inflight": p.inflight}, core
            )
            cycles = await self.measure(
                delegator,
                {"cmd": "delegate", "count": p.cycles, "inflight": p.inflight, "warmup": p.warmup},
                core,
            )
            fig["delegation"] = {
                "agents": p.agents,
                "sequential": _latency(seq, "delegate_ms"),
                "concurrent": _latency(conc, "delegate_ms"),
                "complete_concurrent": _latency(done),
                "cycles": _latency(cycles),
            }
            fig["memory"]["core_rss_peak_mib"] = _mib(core.memory_kib().get("VmHWM"))
            details.update(fig["delegation"])

        if rec.failed:
            return
        async with rec.scenario("scale") as details:
            # Down to the small population, and the same sequential delegations again.
            await self.measure(
                agents,
                {
                    "cmd": "deregister",
                    "first": p.small_agents,
                    "count": p.agents - p.small_agents,
                    "inflight": p.inflight,
                },
            )
            small = await self.measure(
                delegator,
                {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
                core,
            )
            fig["scale"] = {
                "small_agents": p.small_agents,
                "small": _latency(small, "delegate_ms"),
                "large_agents": p.agents,
                "large": fig["delegation"]["sequential"],
            }
            fig["plugins"] = {"names": plugin_names(), "all": fig["scale"]["small"]}
            fig["variants"] = {}
            details.update(fig["scale"])

        if rec.failed:
            return
        async with rec.scenario("core_variants") as details:
            await self.fleet.stop(core)
            for variant, plugins, log_level in variants(p.quick):
                fig["variants"][variant] = await self.variant(
                    variant, plugins, log_level, agents, delegator
                )
            fig["plugins"]["none"] = fig["variants"]["no_plugins"]["sequential"]
            fig["startup"]["core_no_plugins_to_serving_ms"] = fig["variants"]["no_plugins"][
                "startup_ms"
            ]
            details.update(fig["variants"])

    # --- JetStream ------------------------------------------------------------------------

    async def jetstream_scenarios(self) -> None:
        """The same core with its state in JetStream buckets, on a server of its own.

        Same plugins, logs, population and samples as the in-memory core, so each figure's
        ratio to its in-memory twin is what durability costs. Its own agents and delegator
        (on that server); everything it started is stopped before the floor is measured again.
        """
        p = self.plan
        fig = self.figures
        js: dict[str, Any] = {"writes_per_delegation": JETSTREAM_WRITES_PER_DELEGATION}
        server = EmbeddedServer(port=0, data_dir=self.fleet.workdir / "jetstream")
        started: list[Process] = []
        try:
            async with self.rec.scenario("jetstream_state") as details:
                server.start()
                url = server.url
                client = await self.fleet.child(
                    "floor-client-jetstream", "hivebus_bench.floor", "client", url
                )
                started.append(client)
                kv_seq = await self.measure(
                    client, {"cmd": "kv", "count": p.floor_sequential, "warmup": p.warmup}
                )
                kv_conc = await self.measure(
                    client,
                    {
                        "cmd": "kv",
                        "count": p.floor_concurrent,
                        "inflight": p.inflight,
                        "warmup": p.warmup,
                    },
                )
                js["floor"] = {
                    "kv_write": {"sequential": _latency(kv_seq), "concurrent": _latency(kv_conc)}
                }
                await self.fleet.stop(client)
                started.remove(client)

                core = await self.start_core("core-jetstream", ALL, url=url, state="jetstream")
                started.append(core)
                await asyncio.sleep(0.5)
                js["startup"] = {"core_to_serving_ms": round(core.started_ms, 1)}
                js["memory"] = {"core_rss_idle_mib": _mib(core.memory_kib().get("VmRSS"))}
                workers: list[Child] = []
                for role in ("agents", "delegator"):
                    worker = await self.fleet.child(
                        f"{role}-jetstream", "hivebus_bench.workers", role, url
                    )
                    started.append(worker)
                    workers.append(worker)
                await self.jetstream_figures(js, core, *workers)
                details.update(js)
        finally:
            for process in reversed(started):
                with contextlib.suppress(Exception):
                    await self.fleet.stop(process)
            server.stop()
            self.core = None
            fig["jetstream"] = js

    async def jetstream_figures(
        self, js: dict[str, Any], core: CoreProcess, agents: Child, delegator: Child
    ) -> None:
        """Registration, bulk registration and delegation, as the in-memory core measured."""
        p = self.plan
        seq = await self.measure(
            agents, {"cmd": "register", "first": 0, "count": p.registration_sequential}, core
        )
        js["registration"] = {"sequential": _latency(seq)}
        await asyncio.sleep(0.3)
        before = core.memory_kib().get("VmRSS", 0)
        bulk = await self.measure(
            agents,
            {
                "cmd": "register",
                "first": p.registration_sequential,
                "count": p.agents - p.registration_sequential,
                "inflight": p.inflight,
            },
            core,
        )
        await asyncio.sleep(0.5)
        after = core.memory_kib().get("VmRSS", 0)
        js["registration"]["concurrent"] = _latency(bulk)
        js["registration"]["registered"] = p.registration_sequential + bulk["count"]
        js["memory"].update(
            core_rss_after_bulk_mib=_mib(after),
            per_agent_kib=round((after - before) / bulk["count"], 3) if bulk["count"] else None,
        )
        # Kept as measured: a phase that fails leaves the ones before it in the report.
        delegation: dict[str, Any] = {"agents": p.agents}
        js["delegation"] = delegation
        sequential = await self.measure(
            delegator,
            {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
            core,
        )
        delegation["sequential"] = _latency(sequential, "delegate_ms")
        concurrent = await self.measure(
            delegator,
            {
                "cmd": "delegate",
                "count": p.delegation_concurrent,
                "inflight": p.inflight,
                "complete": False,
            },
            core,
        )
        delegation["concurrent"] = _latency(concurrent, "delegate_ms")
        done = await self.measure(
            delegator, {"cmd": "complete_pending", "inflight": p.inflight}, core
        )
        delegation["complete_concurrent"] = _latency(done)
        cycles = await self.measure(
            delegator,
            {"cmd": "delegate", "count": p.cycles, "inflight": p.inflight, "warmup": p.warmup},
            core,
        )
        delegation["cycles"] = _latency(cycles)
        js["memory"]["core_rss_peak_mib"] = _mib(core.memory_kib().get("VmHWM"))

    async def variant(
        self,
        name: str,
        plugins: list[str],
        log_level: str | None,
        agents: Child,
        delegator: Child,
    ) -> dict[str, Any]:
        """A core with fewer plugins (or quieter logs): what they cost shows by difference.

        It serves the small population for the sequential delegations, then one agent per
        delegation of the 256-in-flight phase (selection does not depend on the population).
        """
        p = self.plan
        core = await self.start_core(f"core-{name}", plugins=plugins, log_level=log_level)
        await asyncio.sleep(0.5)
        rss_idle = core.memory_kib().get("VmRSS")
        in_flight_count = min(p.delegation_concurrent, VARIANT_CONCURRENT)
        population = p.small_agents + max(in_flight_count, 2 * p.inflight)
        registration = await self.measure(
            agents, {"cmd": "register", "first": 0, "count": p.small_agents}, core
        )
        seq = await self.measure(
            delegator,
            {"cmd": "delegate", "count": p.delegation_sequential, "warmup": p.warmup},
            core,
        )
        await self.measure(
            agents,
            {
                "cmd": "register",
                "first": p.small_agents,
                "count": population - p.small_agents,
                "inflight": p.inflight,
            },
        )
        conc = await self.measure(
            delegator,
            {
                "cmd": "delegate",
                "count": in_flight_count,
                "inflight": p.inflight,
                "complete": False,
            },
            core,
        )
        await self.measure(delegator, {"cmd": "complete_pending", "inflight": p.inflight})
        cycles = await self.measure(
            delegator,
            {"cmd": "delegate", "count": p.cycles, "inflight": p.inflight, "warmup": p.warmup},
            core,
        )
        await self.fleet.stop(core)
        return {
            "plugins": plugins,
            "log_level": log_level or "default",
            "startup_ms": round(core.started_ms, 1),
            "rss_idle_mib": _mib(rss_idle),
            "registration": _latency(registration),
            "sequential": _latency(seq, "delegate_ms"),
            "concurrent": _latency(conc, "delegate_ms"),
            "cycles": _latency(cycles),
        }


async def run_bench(options: BenchOptions) -> tuple[Plan, Recorder]:
    """Run every scenario; the recorder holds the results even when some failed."""
    plan = Plan.for_options(options)
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="hivebus-bench-") as workdir:
        fleet = Fleet(Path(workdir))
        await Bench(plan, fleet, recorder).run()
    recorder.figures["plan"] = asdict(plan)
    return plan, recorder
