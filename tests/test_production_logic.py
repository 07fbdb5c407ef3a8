"""The production plugin's decisions, without a bus: windows, burn rates, baselines, scaling
hysteresis and cooldown, the health score, and the claims that keep one signal per cooldown
across replicas. Every clock is explicit."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hivebus.context.alerts import CoreAlertBook
from hivebus.context.storage import MemoryKeyValue
from hivebus_hookspecs import (
    AgentRole,
    AgentState,
    AgentView,
    CapacityGroup,
    TaskView,
    bucket_key,
    capacity_of,
)
from hivebus_production import (
    AnomalySettings,
    Baseline,
    Objective,
    Outcomes,
    ProductionSettings,
    Samples,
    Scaler,
    ScalingSettings,
    ServiceLevel,
    burn_rate,
    percentile,
    pressures,
)
from hivebus_production.claims import ScaleClaims
from hivebus_production.health import Component, score
from hivebus_production.scaling import Pressure
from hivebus_production.tracking import TaskTypes

T0 = 1_800_000_000.0


# --- windows and service levels --------------------------------------------------------------


def test_percentiles_are_nearest_rank_values():
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_samples_keep_a_fixed_number_and_filter_by_time():
    samples = Samples(3)
    for n in range(5):
        samples.add(T0 + n, float(n))
    assert len(samples) == 3
    assert samples.since(T0) == [2.0, 3.0, 4.0]
    assert samples.since(T0 + 4) == [4.0]


def test_outcomes_count_per_window_in_bounded_buckets():
    outcomes = Outcomes(bucket_s=60, span_s=3600)
    for minute in range(120):  # two hours, one success a minute, a failure every 10th minute
        outcomes.add(T0 + minute * 60, ok=minute % 10 != 0)
    now = T0 + 119 * 60
    ok, failed = outcomes.counts(now, 3600)
    assert ok + failed == 60
    assert failed == 6
    assert outcomes.counts(now, 300) == (5, 0)
    # Silence longer than the span empties the window instead of counting stale buckets.
    assert outcomes.counts(now + 7200, 3600) == (0, 0)
    outcomes.add(now - 7200, ok=False)  # too old to count anywhere
    assert outcomes.counts(now + 7200, 3600) == (0, 0)


def test_burn_rate_is_the_failure_ratio_over_the_budget():
    assert burn_rate(98, 2, 0.99) == pytest.approx(2.0)
    assert burn_rate(0, 0, 0.99) == 0.0
    assert burn_rate(0, 10, 0.9) == pytest.approx(10.0)


def settings(**overrides: Any) -> ProductionSettings:
    return ProductionSettings.model_validate(overrides)


def test_a_latency_target_is_judged_on_enough_recent_samples():
    s = settings(min_samples=3, latency_window_s=60)
    level = ServiceLevel(s)
    objective = Objective(completion_p95_s=1.0, assignment_p99_s=0.5)
    level.finished(T0, True, 5.0)
    level.finished(T0 + 1, True, 5.0)
    assert level.breaches(T0 + 2, objective) == []  # two samples: no verdict yet
    level.finished(T0 + 2, True, 5.0)
    [breach] = level.breaches(T0 + 2, objective)
    assert breach.kind == "completion_p95"
    assert breach.details == {"value_s": 5.0, "target_s": 1.0, "samples": 3}
    for n in range(3):
        level.assigned(T0 + 3 + n, 0.9)
    kinds = {b.kind for b in level.breaches(T0 + 5, objective)}
    assert kinds == {"completion_p95", "assignment_p99"}
    # Past the latency window the slow samples no longer count: the breach is over.
    assert level.breaches(T0 + 200, objective) == []


def test_the_error_budget_alerts_only_while_both_windows_burn():
    s = settings(short_window_s=300, long_window_s=3600, burn_rate_threshold=14.4)
    level = ServiceLevel(s)
    objective = Objective(success_target=0.99)
    for n in range(1000):  # an hour of successes
        level.finished(T0 + n * 3.3, True, 0.1)
    now = T0 + 3400
    for n in range(20):  # a burst: the short window burns, the long one barely
        level.finished(now + n, False, None)
    now += 20
    assert level.burn(now, 300, objective) > 14.4
    assert level.burn(now, 3600, objective) < 14.4
    assert level.breaches(now, objective) == []
    for n in range(200):  # it goes on: now the long window burns too
        level.finished(now + n, False, None)
    now += 200
    [breach] = level.breaches(now, objective)
    assert (breach.kind, breach.severity) == ("error_budget", "critical")
    assert breach.details["burn_rate_short"] == pytest.approx(100.0)
    figures = level.figures(now, objective)
    assert figures["success_ratio"] is not None
    assert float(figures["success_ratio"]) < 0.9  # type: ignore[arg-type]
    # The failures stop: the short window is clean after five minutes and the alert resolves,
    # although the long window still remembers them.
    later = now + 400
    level.finished(later, True, 0.1)
    assert level.burn(later, 3600, objective) > 14.4
    assert level.breaches(later, objective) == []


@pytest.mark.parametrize(
    ("table", "model"),
    [
        ("production", ProductionSettings),
        ("production.objective", Objective),
        ("production.anomaly", AnomalySettings),
        ("production.scaling", ScalingSettings),
    ],
)
def test_every_setting_is_in_the_plugin_readme(table: str, model: type[Any]):
    readme = (Path(__file__).parents[1] / "plugins" / "production" / "README.md").read_text()
    block = readme.split(f"[plugin_config.{table}]", 1)[1].split("\n[", 1)[0]
    missing = [
        name
        for name in model.model_fields
        if name not in block and f"[plugin_config.{table}.{name}" not in readme  # a sub-table
    ]
    assert missing == [], f"[plugin_config.{table}] in the README lacks {missing}"


def test_settings_check_their_windows_and_bands():
    with pytest.raises(ValueError, match="long_window_s"):
        settings(short_window_s=600, long_window_s=60)
    with pytest.raises(ValueError, match="down_utilisation"):
        settings(scaling={"up_utilisation": 0.5, "down_utilisation": 0.6})
    with pytest.raises(ValueError, match="extra"):
        settings(objectiv={})
    s = settings(objective={"completion_p95_s": 2}, task_types={"etl": {"completion_p95_s": 60}})
    assert s.objective_for("etl").completion_p95_s == 60
    assert s.objective_for("other").completion_p95_s == 2
    assert s.stale_after_s == 3 * s.interval_s


# --- the adaptive baseline -------------------------------------------------------------------


def learned(mean: float, spread: float, n: int = 40, **kw: float) -> Baseline:
    rng = random.Random(7)
    baseline = Baseline(slow_alpha=0.02, fast_alpha=0.3, **kw)
    for _ in range(n):
        baseline.observe(mean + rng.uniform(-spread, spread))
    return baseline


def test_a_baseline_is_learned_and_a_lasting_slowdown_stands_out():
    baseline = learned(0.05, 0.005, z=4.0, min_delta=0.05)
    assert not baseline.anomalous(warmup=30)
    assert baseline.mean == pytest.approx(0.05, abs=0.005)
    baseline.observe(0.5)
    baseline.observe(0.5)
    assert baseline.anomalous(warmup=30)
    evidence = baseline.evidence()
    assert evidence["samples"] == 42
    assert float(evidence["z_score"] or 0) > 4  # type: ignore[arg-type]


def test_the_baseline_adapts_so_a_lasting_change_becomes_normal():
    baseline = learned(0.05, 0.005, z=4.0, min_delta=0.05)
    samples = 0
    while baseline.anomalous(warmup=30) or samples == 0:
        baseline.observe(0.5)
        samples += 1
        assert samples < 200, "the baseline never followed the new level"
    assert baseline.mean > 0.1


def test_noise_within_the_baseline_and_an_untrained_baseline_are_not_anomalies():
    baseline = learned(1.0, 0.3, z=4.0, min_delta=0.05)
    for value in (1.3, 0.7, 1.25):
        baseline.observe(value)
        assert not baseline.anomalous(warmup=30)
    young = learned(0.05, 0.0, n=5, z=4.0, min_delta=0.05)
    young.observe(5.0)
    assert not young.anomalous(warmup=30)


def test_a_failure_rate_above_its_baseline_is_an_anomaly_and_recovers():
    failures = Baseline(slow_alpha=0.02, fast_alpha=0.3, z=4.0, min_delta=0.3)
    for _ in range(40):
        failures.observe(0.0)
    failures.observe(1.0)
    assert not failures.anomalous(warmup=30)  # one failure is not a change of rate
    failures.observe(1.0)
    assert failures.anomalous(warmup=30)
    for _ in range(5):
        failures.observe(0.0)
    assert not failures.anomalous(warmup=30)


# --- scaling ---------------------------------------------------------------------------------


def agent(agent_id: str, caps: list[str], active: int, slots: int = 1, **kw: Any) -> AgentView:
    return AgentView(
        agent_id=agent_id,
        role=AgentRole.WORKER,
        capabilities=caps,
        max_tasks=slots,
        active_tasks=active,
        state=kw.pop("state", AgentState.ACTIVE),
        registered_at=T0,
        last_seen=T0,
        **kw,
    )


def queued(task_id: str, caps: list[str], created_at: float) -> TaskView:
    return TaskView(
        task_id=task_id,
        task_type="job",
        status="queued",
        agent_id=None,
        required_capabilities=caps,
        priority=5,
        attempts=0,
        created_at=created_at,
    )


def test_pressure_groups_waiting_work_by_capability_set():
    tasks = [queued(f"t{n}", ["gpu", "py"], T0 - n) for n in range(4)] + [queued("x", [], T0)]
    agents = [
        agent("a", ["py", "gpu"], 2, slots=2),
        agent("b", ["py"], 0),
        agent("q", ["py", "gpu"], 0, quarantined_by="automation"),
        agent("off", ["py", "gpu"], 0, state=AgentState.OFFLINE),
    ]
    found = {p.capabilities: p for p in pressures(tasks, capacity_of(agents), T0)}
    assert set(found) == {("gpu", "py"), (), ("py",)}
    gpu = found[("gpu", "py")]
    assert (gpu.queued, gpu.oldest_wait_s, gpu.agents, gpu.busy_slots, gpu.slots) == (4, 3, 1, 2, 2)
    assert gpu.utilisation == 1.0
    assert found[()].agents == 2  # any agent can take a task that requires nothing
    assert found[("py",)].queued == 0


def test_pressure_over_many_distinct_sets_counts_every_agent_that_covers_each():
    """Agents grouped by exact set and found by their rarest capability give what pairing
    every set with every agent gives (the rule, written out below), on random populations."""
    rng = random.Random(11)
    names = [f"c{n}" for n in range(12)]

    def caps() -> list[str]:
        return rng.sample(names, rng.randint(0, 4))

    agents = [
        agent(f"a{n}", caps(), rng.randint(0, 3), slots=3, quarantined_by=rng.choice([None, "x"]))
        for n in range(300)
    ]
    tasks = [queued(f"t{n}", caps(), T0 - rng.random() * 60) for n in range(200)]

    serving = [a for a in agents if a.state is AgentState.ACTIVE and not a.quarantined_by]
    found = {q.capabilities: q for q in pressures(tasks, capacity_of(agents), T0)}
    assert len(found) > 100
    for key, figure in found.items():
        able = [a for a in serving if set(key) <= set(a.capabilities)]
        waits = [T0 - t.created_at for t in tasks if tuple(sorted(t.required_capabilities)) == key]
        assert (figure.agents, figure.busy_slots, figure.slots, figure.queued) == (
            len(able),
            sum(min(a.active_tasks, a.max_tasks) for a in able),
            sum(a.max_tasks for a in able),
            len(waits),
        ), key


def p(queued: int, agents: int, busy: int, wait: float = 0.0) -> Pressure:
    return Pressure(("gpu",), queued, wait, agents, busy, agents)


def test_scale_up_after_the_condition_holds_then_cooldown():
    scaler = Scaler(ScalingSettings(up_queue_depth=5, sustain=3, cooldown_s=60, max_step=4))
    assert scaler.decide([p(8, 2, 2)], T0) == []
    assert scaler.decide([p(8, 2, 2)], T0 + 5) == []
    [signal] = scaler.decide([p(8, 2, 2)], T0 + 10)
    assert (signal.direction, signal.capabilities, signal.agents) == ("up", ("gpu",), 4)
    assert "8 tasks waiting" in signal.reason
    scaler.signalled(("gpu",), T0 + 10)
    for t in range(4):
        assert scaler.decide([p(8, 2, 2)], T0 + 15 + t * 5) == []  # cooling down
    assert scaler.decide([p(8, 2, 2)], T0 + 75) != []  # past the cooldown, still backed up


def test_a_condition_that_lapses_starts_its_count_again():
    scaler = Scaler(ScalingSettings(up_queue_depth=5, sustain=2, cooldown_s=0))
    assert scaler.decide([p(8, 2, 2)], T0) == []
    assert scaler.decide([p(1, 2, 1)], T0 + 5) == []  # inside the band: nothing, count reset
    assert scaler.decide([p(8, 2, 2)], T0 + 10) == []
    assert len(scaler.decide([p(8, 2, 2)], T0 + 15)) == 1


def test_wait_time_utilisation_and_missing_agents_call_for_more():
    scaler = Scaler(ScalingSettings(up_queue_depth=100, up_wait_s=10, sustain=1))
    [by_wait] = scaler.decide([p(1, 4, 2, wait=30)], T0)
    assert "oldest waited 30.0s" in by_wait.reason
    scaler = Scaler(ScalingSettings(up_queue_depth=100, up_utilisation=0.9, sustain=1))
    [by_use] = scaler.decide([p(1, 4, 4)], T0)
    assert "utilisation 100%" in by_use.reason
    [nobody] = Scaler(ScalingSettings(sustain=1)).decide([p(2, 0, 0)], T0)
    assert (nobody.agents, nobody.reason) == (2, "no agent can take this work")
    assert Scaler(ScalingSettings(sustain=1)).decide([p(1, 4, 3)], T0) == []  # in the band


def test_idle_agents_are_given_back_down_to_the_minimum():
    s = ScalingSettings(sustain=2, down_utilisation=0.3, up_utilisation=0.9, min_agents=1)
    scaler = Scaler(s)
    assert scaler.decide([p(0, 10, 1)], T0) == []
    [down] = scaler.decide([p(0, 10, 1)], T0 + 5)
    # One busy slot at the middle of the band (60%) needs 2 agents: give back 8, capped at 5.
    assert (down.direction, down.agents) == ("down", 5)
    assert Scaler(ScalingSettings(sustain=1)).decide([p(0, 1, 0)], T0) == []  # the minimum
    assert Scaler(ScalingSettings(sustain=1)).decide([p(0, 4, 2)], T0) == []  # busy enough


# --- health score and bounded memory ---------------------------------------------------------


def test_the_health_score_is_explained_by_its_components():
    value, parts = score(
        [
            Component("service_levels", 0.5, "latency objectives missed: etl"),
            Component("error_budget", 1.0, "fine"),
            Component("anomalies", 1.0, "none"),
            Component("capacity", 0.0, "capability sets short: gpu"),
        ]
    )
    assert value == round(100 * (40 * 0.5 + 30 + 15) / 100)
    assert parts["capacity"] == {"score": 0.0, "weight": 15, "why": "capability sets short: gpu"}


def test_task_types_are_capped_least_recently_seen_first():
    types = TaskTypes(settings(max_task_types=2))
    types.get("a")
    types.get("b")
    types.get("a")
    types.get("c")
    assert [name for name, _ in types.items()] == ["a", "c"]
    assert (len(types), types.forgotten) == (2, 1)


# --- claims: one signal per cooldown, across replicas ----------------------------------------
# (One alert per cause is the context's alert book: tests/test_plugin_alert_book.py.)


def test_bucket_keys_are_valid_and_distinct():
    assert bucket_key("scale", "gpu cuda").startswith("scale.gpu_cuda.")
    assert bucket_key("scale", "a/b") != bucket_key("scale", "a_b")
    # what JetStream (and nats-py) accept as a key, whatever the name holds
    assert re.fullmatch(r"[-/_=.a-zA-Z0-9]+", bucket_key("alert", "café: latency p95"))


async def test_scale_claims_let_one_replica_signal_per_cooldown():
    kv = MemoryKeyValue()
    one, two = ScaleClaims(kv, "r1", 60), ScaleClaims(kv, "r2", 60)  # type: ignore[arg-type]
    assert await one.claim(("gpu",), "up", T0) == (True, T0)
    assert await two.claim(("gpu",), "up", T0 + 1) == (False, T0)
    assert await two.claim(("cpu",), "up", T0 + 1) == (True, T0 + 1)
    assert await two.claim(("gpu",), "down", T0 + 61) == (True, T0 + 61)


# --- the plugin's evaluation, driven by hand ----------------------------------------------------


class HandContext:
    """A plugin context good enough for ``ProductionPlugin``: in memory, nothing on a wire,
    with the core's own alert book on this context's clock."""

    name = "production"

    def __init__(self, config: dict[str, Any], kv: MemoryKeyValue | None = None) -> None:
        self.kv = kv or MemoryKeyValue()
        self.config = config
        self.clock = [T0]
        self.alerts: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []
        self.queued: list[TaskView] = []
        self.pool: list[AgentView] = []

    def settings(self, model: type[Any]) -> Any:
        return model.model_validate(self.config)

    async def serve(self, endpoint: str, handler: Any) -> str:
        return f"plugin.production.{endpoint}"

    def every(self, interval_s: float, callback: Any, *, name: str = "timer") -> None:
        pass  # the test calls evaluate itself

    def alert(self, severity: str, summary: str, **kw: Any) -> None:
        self.alerts.append({"severity": severity, "summary": summary, **kw})

    def alert_book(self, *, stale_after_s: float = 60.0, cooldown_s: float = 0.0) -> Any:
        return CoreAlertBook(
            self.kv,
            self,
            "r1",
            stale_after_s=stale_after_s,
            cooldown_s=cooldown_s,
            clock=lambda: self.clock[0],
        )

    def scale(self, direction: str, capabilities: list[str], agents: int, **kw: Any) -> None:
        self.signals.append(
            {"direction": direction, "capabilities": capabilities, "agents": agents, **kw}
        )

    def tasks(self, status: Any = None, limit: int = 100) -> list[TaskView]:
        return self.queued[:limit]

    def agents(self) -> list[AgentView]:
        return list(self.pool)

    def capacity(self) -> list[CapacityGroup]:
        return capacity_of(self.pool)


class Replica:
    orchestrator_id = "r1"


def finished(task_type: str, at: float, ok: bool, took: float = 0.1) -> TaskView:
    return TaskView(
        task_id=f"{task_type}-{at}",
        task_type=task_type,
        status="completed" if ok else "failed",
        agent_id="a1",
        required_capabilities=[],
        priority=5,
        attempts=1,
        created_at=at - took - 0.01,
        assigned_at=at - took,
        finished_at=at,
    )


async def started(
    config: dict[str, Any], kv: MemoryKeyValue | None = None
) -> tuple[Any, HandContext, list[float]]:
    from hivebus_production import ProductionPlugin

    ctx = HandContext(config, kv)
    plugin = ProductionPlugin()
    plugin.clock = lambda: ctx.clock[0]
    await plugin.hivebus_startup(Replica(), ctx)  # type: ignore[arg-type]
    return plugin, ctx, ctx.clock


async def test_a_burning_error_budget_is_a_critical_alert_until_the_failures_stop():
    config = {
        "short_window_s": 60,
        "long_window_s": 600,
        "burn_rate_threshold": 2,
        "objective": {"success_target": 0.9},
    }
    plugin, ctx, clock = await started(config)
    for n in range(10):
        plugin.hivebus_task_failed(finished("etl", T0 + n, ok=False))
    clock[0] = T0 + 10
    await plugin.evaluate()
    [alert] = ctx.alerts
    assert (alert["severity"], alert["fingerprint"]) == (
        "critical",
        "production:slo:etl:error_budget",
    )
    assert alert["details"]["burn_rate_short"] == pytest.approx(10.0)
    report = plugin.hivebus_status()
    assert report["components"]["error_budget"]["score"] == 0.0
    assert report["health_score"] == 70
    assert report["task_types"]["etl"]["success_ratio"] == 0.0
    # Successes after the short window: the budget stops burning there, the alert resolves.
    for n in range(10):
        plugin.hivebus_task_completed(finished("etl", T0 + 80 + n, ok=True))
    clock[0] = T0 + 90
    await plugin.evaluate()
    assert [a.get("resolved", False) for a in ctx.alerts] == [False, True]
    assert plugin.hivebus_status()["alerts_firing"] == []


async def test_a_failure_rate_above_its_learned_baseline_is_an_anomaly_with_evidence():
    plugin, ctx, clock = await started({"anomaly": {"warmup": 10}})
    for n in range(20):
        plugin.hivebus_task_completed(finished("etl", T0 + n, ok=True))
    clock[0] = T0 + 20
    await plugin.evaluate()
    assert ctx.alerts == []
    for n in range(3):
        plugin.hivebus_task_failed(finished("etl", T0 + 21 + n, ok=False))
    clock[0] = T0 + 25
    await plugin.evaluate()
    [alert] = ctx.alerts
    assert alert["fingerprint"] == "production:anomaly:etl:failure_rate"
    assert alert["details"]["series"] == "failure_rate"
    assert alert["details"]["baseline_mean"] < 0.1 < 0.5 < alert["details"]["recent"]
    assert plugin.hivebus_status()["task_types"]["etl"]["anomalous"] is True


async def test_a_forgotten_task_type_takes_its_alerts_with_it():
    config = {"max_task_types": 1, "min_samples": 1, "objective": {"completion_p95_s": 1}}
    plugin, ctx, clock = await started(config)
    plugin.hivebus_task_completed(finished("slow", T0, ok=True, took=5))
    clock[0] = T0 + 1
    await plugin.evaluate()
    assert [a["fingerprint"] for a in ctx.alerts] == ["production:slo:slow:completion_p95"]
    plugin.hivebus_task_completed(finished("fast", T0 + 2, ok=True))
    clock[0] = T0 + 3
    await plugin.evaluate()
    assert ctx.alerts[-1]["resolved"] is True
    assert plugin.hivebus_status()["task_types_forgotten"] == 1


async def test_the_plugin_signals_through_its_context_once_per_cooldown():
    config = {"scaling": {"sustain": 1, "up_queue_depth": 2, "cooldown_s": 30}}
    plugin, ctx, clock = await started(config)
    ctx.queued = [queued(f"t{n}", ["gpu"], T0 - 5) for n in range(4)]
    ctx.pool = [agent("g1", ["gpu"], 1)]
    for tick in range(5):
        clock[0] = T0 + tick
        await plugin.evaluate()
    [signal] = ctx.signals
    assert signal["direction"] == "up"
    assert (signal["capabilities"], signal["agents"]) == (["gpu"], 4)
    assert signal["details"]["queued"] == 4
    clock[0] = T0 + 31
    await plugin.evaluate()
    assert len(ctx.signals) == 2


async def test_a_restarted_replica_resolves_what_an_earlier_run_left_firing():
    config = {"min_samples": 1, "objective": {"completion_p95_s": 1}, "alert_stale_s": 5}
    before, ctx, clock = await started(config)
    before.hivebus_task_completed(finished("slow", T0, ok=True, took=5))
    clock[0] = T0 + 1
    await before.evaluate()
    assert len(ctx.alerts) == 1
    after, fresh, fresh_clock = await started(config, ctx.kv)  # the same bucket, as on JetStream
    fresh_clock[0] = T0 + 10
    await after.evaluate()
    [resolved] = fresh.alerts
    assert (resolved["fingerprint"], resolved["resolved"]) == (
        "production:slo:slow:completion_p95",
        True,
    )
