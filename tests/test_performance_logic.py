"""The performance plugin's judgements as plain functions: which figures breach which limits,
what the windows keep, how labels stay bounded, and when advice is given. The same code runs in
the plugin's timer; tests against a real core are in test_performance_alerts/_metrics.py."""

from __future__ import annotations

import pytest
from hivebus_hookspecs import (
    AgentRole,
    AgentState,
    AgentView,
    HookTime,
    TaskStatus,
    TaskView,
    capacity_of,
)
from hivebus_performance.metrics import DEFAULT_BUCKETS, OTHER, Metrics, TaskTypes
from hivebus_performance.recommendations import (
    HookShare,
    OfferLog,
    declines,
    dominant_hooks,
    shortages,
)
from hivebus_performance.resources import ResourceSample
from hivebus_performance.settings import PerformanceSettings
from hivebus_performance.thresholds import Figures, judge
from hivebus_performance.window import Window
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

QUIET = ResourceSample(
    cpu_percent=1.0,
    memory_bytes=100 * 1024 * 1024,
    memory_percent=2.0,
    disk_used_percent=40.0,
    disk_free_bytes=10**9,
)


def figures(**changes: object) -> Figures:
    base: dict[str, object] = {
        "resources": QUIET,
        "finished": 0,
        "failed": 0,
        "delegations": 0,
        "delegation_p95_ms": None,
    }
    return Figures(**{**base, **changes})  # type: ignore[arg-type]


def breached(settings: PerformanceSettings, seen: Figures) -> dict[str, bool]:
    return {check.fingerprint: check.breached for check in judge(settings, seen, "core-1")}


def test_quiet_figures_breach_nothing_and_every_limit_is_judged():
    checks = breached(PerformanceSettings(), figures())
    assert checks == {
        "performance:cpu:core-1": False,
        "performance:memory_percent:core-1": False,
        "performance:memory_mb:core-1": False,
        "performance:disk:core-1": False,
        "performance:error_rate": False,
        "performance:delegation_p95": False,
    }


@pytest.mark.parametrize(
    ("limit", "sample", "fingerprint"),
    [
        ({"max_cpu_percent": 50}, {"cpu_percent": 75.0}, "performance:cpu:core-1"),
        ({"max_memory_percent": 10}, {"memory_percent": 12.0}, "performance:memory_percent:core-1"),
        ({"max_memory_mb": 64}, {"memory_bytes": 65 * 1024 * 1024}, "performance:memory_mb:core-1"),
        ({"max_disk_percent": 30}, {"disk_used_percent": 40.0}, "performance:disk:core-1"),
    ],
)
def test_a_resource_above_its_limit_is_a_breach_named_for_the_replica(
    limit: dict[str, float], sample: dict[str, object], fingerprint: str
):
    settings = PerformanceSettings(**limit)  # type: ignore[arg-type]
    resources = _with(QUIET, sample)
    [check] = [c for c in judge(settings, figures(resources=resources), "core-1") if c.breached]
    assert check.fingerprint == fingerprint
    assert check.details["orchestrator_id"] == "core-1"
    assert check.details["limit"] == next(iter(limit.values()))


def _with(sample: ResourceSample, changes: dict[str, object]) -> ResourceSample:
    fields = {name: getattr(sample, name) for name in ResourceSample.__slots__}
    return ResourceSample(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_error_rate_needs_min_tasks_before_it_is_evidence():
    settings = PerformanceSettings(max_error_rate_percent=10, min_tasks=5)
    few = breached(settings, figures(finished=4, failed=4))
    assert few["performance:error_rate"] is False
    enough = judge(settings, figures(finished=5, failed=1), "core-1")
    [rate] = [c for c in enough if c.fingerprint == "performance:error_rate"]
    assert rate.breached
    assert rate.details == {
        "value": 20.0, "limit": 10.0, "failed": 1, "finished": 5, "window_s": 300.0
    }  # fmt: skip
    assert "20.0%" in rate.summary


def test_the_delegation_p95_above_its_limit_is_a_breach():
    settings = PerformanceSettings(max_task_delegation_ms=100, min_tasks=3)
    slow = figures(delegations=3, delegation_p95_ms=150.0)
    assert breached(settings, slow)["performance:delegation_p95"] is True
    fast = figures(delegations=3, delegation_p95_ms=50.0)
    assert breached(settings, fast)["performance:delegation_p95"] is False


def test_a_limit_set_to_null_is_not_judged_and_a_missing_figure_neither():
    settings = PerformanceSettings(max_cpu_percent=None)
    unknown = _with(QUIET, {"memory_bytes": None, "memory_percent": None})
    checks = breached(settings, figures(resources=unknown))
    assert "performance:cpu:core-1" not in checks
    assert "performance:memory_mb:core-1" not in checks
    assert "performance:disk:core-1" in checks


def test_settings_refuse_unknown_keys_and_impossible_limits():
    with pytest.raises(ValidationError, match="max_cpu_percent"):
        PerformanceSettings(max_cpu_percent=150)
    with pytest.raises(ValidationError, match="max_cpus"):
        PerformanceSettings.model_validate({"max_cpus": 1})


def test_a_window_forgets_what_is_older_than_its_span():
    window = Window(seconds=10)
    window.add(1.0, at=100.0)
    window.add(2.0, at=105.0)
    window.add(3.0, at=109.0)
    assert window.values(now=112.0) == [2.0, 3.0]
    assert Window.quantile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert Window.quantile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert Window.quantile([], 0.95) is None


def test_task_types_keep_their_name_up_to_the_limit_then_are_other():
    types = TaskTypes(limit=2)
    assert [types.label(t) for t in ("a", "b", "c", "a", "d", "b")] == [
        "a", "b", OTHER, "a", OTHER, "b"
    ]  # fmt: skip


def test_duration_series_stay_bounded_past_max_task_types():
    registry = CollectorRegistry()
    metrics = Metrics(registry, DEFAULT_BUCKETS, max_task_types=2)
    for task_type in ("a", "b", "c", "d", "a", "e"):
        for outcome in ("completed", "failed"):
            metrics.finished(finished_task(task_type), outcome)
    counts = {
        (s.labels["task_type"], s.labels["outcome"]): s.value
        for family in registry.collect()
        if family.name == "hivebus_task_duration_seconds"
        for s in family.samples
        if s.name.endswith("_count")
    }
    assert counts == {
        ("a", "completed"): 2, ("a", "failed"): 2,
        ("b", "completed"): 1, ("b", "failed"): 1,
        (OTHER, "completed"): 3, (OTHER, "failed"): 3,
    }  # fmt: skip


def finished_task(task_type: str) -> TaskView:
    return TaskView(
        task_id=f"t-{task_type}",
        task_type=task_type,
        status=TaskStatus.COMPLETED,
        agent_id="a1",
        required_capabilities=[],
        priority="medium",
        attempts=1,
        created_at=0.0,
        assigned_at=1.0,
        finished_at=2.0,
    )


def agent(agent_id: str, caps: list[str], active: int, max_tasks: int = 1) -> AgentView:
    return AgentView(
        agent_id=agent_id,
        role=AgentRole.WORKER,
        capabilities=caps,
        max_tasks=max_tasks,
        active_tasks=active,
        state=AgentState.ACTIVE,
        registered_at=0.0,
        last_seen=0.0,
    )


def test_capacity_advice_only_when_every_agent_with_the_capability_is_busy():
    agents = [agent("r1", ["render"], 1), agent("r2", ["render"], 2, max_tasks=2)]
    agents.append(agent("p1", ["py"], 0))
    agents.append(agent("p2", ["py"], 1))
    found = shortages(capacity_of(agents), {"render": 3, "py": 5, "gpu": 1, "*": 4})
    assert [(r["capability"], r["evidence"]) for r in found] == [
        ("render", {"waiting": 3, "agents": 2, "busy": 2, "slots": 3}),
        ("gpu", {"waiting": 1, "agents": 0, "busy": 0, "slots": 0}),
    ]


def test_decline_advice_needs_enough_offers_and_a_majority_declined():
    log = OfferLog(window_s=60)
    for outcome in ("refused", "timeout", "refused", "accepted"):
        log.add("grumpy", outcome)
    for outcome in ("refused", "accepted", "accepted", "accepted"):
        log.add("fine", outcome)
    log.add("new", "refused")
    [advice] = declines(log, min_offers=4)
    assert advice["agent_id"] == "grumpy"
    assert advice["evidence"] == {
        "offers": 4, "accepted": 1, "refused": 2, "timeout": 1, "window_s": 60
    }  # fmt: skip


def test_a_plugin_whose_request_hooks_take_most_of_request_time_is_named():
    share = HookShare(window_s=60)
    share.add([], placement_s=0.0, now=1000.0)
    share.add(
        [
            HookTime("slow", "hivebus_task_delegate", 10, 0.9),
            HookTime("slow", "hivebus_status", 10, 5.0),  # not on a request's path
            HookTime("quick", "hivebus_task_delegate", 10, 0.01),
        ],
        placement_s=0.09,
        now=1010.0,
    )
    [advice] = dominant_hooks(share, min_calls=5)
    assert advice["plugin"] == "slow"
    assert advice["evidence"]["share"] == 0.9
    assert advice["evidence"]["mean_ms"] == 90.0
    assert dominant_hooks(share, min_calls=11) == []  # too few calls to say
