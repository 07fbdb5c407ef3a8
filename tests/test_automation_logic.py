"""The automation plugin's decisions, without a bus: the breaker's states, cooldowns and sleeps
that grow to a cap, how errors are classified, and which sleepers queued work wakes. Every
clock is explicit. The behaviour on a real bus is in ``test_automation.py``."""

from __future__ import annotations

from typing import Any

import pytest
from hivebus_automation import BreakerSettings, RecoverySettings, SleepSettings
from hivebus_automation.breakers import State, cooldown, due, observe, with_trial
from hivebus_automation.recovery import Classifier, Tier
from hivebus_automation.sleeping import asleep, awake, length, needing_wake
from hivebus_hookspecs import AgentRole, AgentState, AgentView, TaskView

T0 = 1_800_000_000.0
BREAKER = BreakerSettings(failures=2, refusals=3, timeouts=1, cooldown_s=10, max_cooldown_s=25)


def test_a_breaker_opens_at_a_threshold_and_a_success_in_between_resets_the_count():
    record, change = observe(None, "a1", "failure", T0, BREAKER, "boom")
    assert (record["failures"], change) == (1, None)
    record, change = observe(record, "a1", "success", T0, BREAKER)
    assert (record["failures"], change) == (0, None)
    record, _ = observe(record, "a1", "failure", T0, BREAKER, "boom")
    record, change = observe(record, "a1", "failure", T0 + 1, BREAKER, "boom again")
    assert change is not None
    assert (change.from_state, change.to_state) == (State.CLOSED, State.OPEN)
    assert change.reason == "2 failed attempts in a row (last: boom again)"
    assert (record["retry_at"], record["opens"]) == (T0 + 11, 1)
    # Open: what it still finishes changes nothing.
    assert observe(record, "a1", "success", T0 + 2, BREAKER) == (record, None)


def test_an_accepted_offer_resets_refusals_but_not_failures():
    record, _ = observe(None, "a1", "refusal", T0, BREAKER, "no")
    record, _ = observe(record, "a1", "failure", T0, BREAKER, "boom")
    record, _ = observe(record, "a1", "assigned", T0, BREAKER)
    assert (record["refusals"], record["failures"]) == (0, 1)
    _, change = observe(record, "a1", "timeout", T0, BREAKER, "no answer")
    assert change is not None
    assert change.reason == "1 offers unanswered in a row (last: no answer)"


def test_half_open_takes_one_trial_and_reopens_for_longer_up_to_the_cap():
    record, _ = observe(None, "a1", "timeout", T0, BREAKER)
    assert due(record, "a1", T0 + 9)[1] is None  # still cooling down
    record, change = due(record, "a1", T0 + 10)
    assert change is not None
    assert change.to_state is State.HALF_OPEN
    record, first = with_trial(record, "a1", "t1")
    _, second = with_trial(record, "a1", "t2")
    assert (first, second, record["trial_task"]) == (True, False, "t1")
    record, change = observe(record, "a1", "failure", T0 + 11, BREAKER, "still broken")
    assert change is not None
    assert (change.from_state, change.to_state) == (State.HALF_OPEN, State.OPEN)
    assert record["retry_at"] == T0 + 11 + 20  # twice the cooldown
    assert [cooldown(BREAKER, n) for n in (1, 2, 3, 4)] == [10, 20, 25, 25]
    record, _ = due(record, "a1", T0 + 31)
    record, change = observe(record, "a1", "success", T0 + 32, BREAKER)
    assert change is not None
    assert change.to_state is State.CLOSED
    assert (record["opens"], record["failures"], record["trial_task"]) == (0, 0, None)


@pytest.mark.parametrize(
    ("error", "tier"),
    [
        ("RuntimeError: Permission denied for /data", Tier.MANUAL),
        ("MemoryError: out of memory; also a fatal one", Tier.MANUAL),  # the worse one wins
        ("CUDA OOM", Tier.ASSISTED),
        ("the context window is full", Tier.ASSISTED),
        ("connection reset by peer", Tier.AUTOMATIC),
        (None, Tier.AUTOMATIC),
    ],
)
def test_errors_are_classified_by_the_configured_patterns(error: str | None, tier: Tier):
    assert Classifier.of(RecoverySettings()).tier(error) is tier


def test_an_unmatched_error_takes_the_default_tier():
    settings = RecoverySettings(manual=[], assisted=["gpu"], default_tier="manual")
    assert Classifier.of(settings).tier("anything") is Tier.MANUAL
    assert Classifier.of(settings).tier("GPU fell off") is Tier.ASSISTED


def test_sleeps_in_a_row_grow_to_the_cap_and_work_in_between_starts_again():
    settings = SleepSettings(sleep_s=10, sleep_factor=3, max_sleep_s=50)
    assert [length(settings, n) for n in (1, 2, 3)] == [10, 30, 50]
    record, won = asleep(None, "a1", T0, settings, "idle", last_busy=None)
    assert (won, record["sleeps"], record["wake_at"]) == (True, 1, T0 + 10)
    assert asleep(record, "a1", T0 + 1, settings, "idle", None)[1] is False  # asleep already
    woke, won = awake(record, T0 + 10, "sleep time over")
    assert won
    again, _ = asleep(woke, "a1", T0 + 20, settings, "idle", last_busy=T0 + 5)
    assert again["sleeps"] == 2  # nothing to do since it woke: a longer sleep
    worked, _ = asleep(woke, "a1", T0 + 20, settings, "idle", last_busy=T0 + 15)
    assert worked["sleeps"] == 1  # it worked after waking: a new run


def agent(agent_id: str, caps: list[str], active: int = 0, **kw: Any) -> AgentView:
    return AgentView(
        agent_id=agent_id,
        role=AgentRole.WORKER,
        capabilities=caps,
        max_tasks=1,
        active_tasks=active,
        state=AgentState.ACTIVE,
        registered_at=T0,
        last_seen=T0,
        **kw,
    )


def task(task_id: str, caps: list[str], **kw: Any) -> TaskView:
    return TaskView(
        task_id=task_id,
        task_type="job",
        status="queued",
        agent_id=None,
        required_capabilities=caps,
        priority=5,
        attempts=0,
        created_at=T0,
        **kw,
    )


def test_queued_work_wakes_one_sleeper_per_task_no_awake_agent_can_take():
    agents = [
        agent("gpu-awake", ["gpu"], active=1),  # busy: no free slot
        agent("gpu-1", ["gpu"], sleeping=True),
        agent("gpu-2", ["gpu"], sleeping=True),
        agent("gpu-3", ["gpu"], sleeping=True),
        agent("cpu-awake", ["cpu"]),
        agent("cpu-1", ["cpu"], sleeping=True),
        agent("gpu-q", ["gpu"], sleeping=True, quarantined_by="automation"),
    ]
    queued = [
        task("g1", ["gpu"]),
        task("g2", ["gpu"]),
        task("c1", ["cpu"]),  # an awake agent has room: nobody is woken for it
        task("r1", ["gpu"], require_agent="gpu-3"),
    ]
    assert needing_wake(queued, agents) == [("gpu-1", "g1"), ("gpu-2", "g2"), ("gpu-3", "r1")]
