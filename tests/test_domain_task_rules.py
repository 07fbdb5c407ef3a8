"""The task rules on fake ports and a fake clock, where time is exact: a rate window, a
backoff, a concurrency place given back, tenants in turn, a dependency met."""

from __future__ import annotations

from fake_ports import World
from hivebus_hookspecs.models import CompleteRequest, TaskStatus


def _statuses(w: World, ids: list[str]) -> list[TaskStatus]:
    return [w.task(t).status for t in ids]


async def _finish(w: World, task_id: str, success: bool = True) -> None:
    agent_id = w.task(task_id).agent_id
    assert agent_id is not None
    await w.orch.complete(CompleteRequest(task_id=task_id, agent_id=agent_id, success=success))
    await w.settle()


async def test_a_rate_window_lets_no_more_offers_through_than_its_count():
    w = World(rate_limits={"deploy": "2/s"})
    try:
        await w.register("a", ["x"], max_tasks=10)
        w.beating.add("a")
        ids = [f"d{i}" for i in range(5)]
        for task_id in ids:
            await w.delegate(task_id, ["x"], task_type="deploy")
        assert _statuses(w, ids).count(TaskStatus.ASSIGNED) == 2
        await w.tick_after(0.9)  # still inside the first second
        assert _statuses(w, ids).count(TaskStatus.ASSIGNED) == 2
        await w.tick_after(0.2)
        assert _statuses(w, ids).count(TaskStatus.ASSIGNED) == 4
        await w.tick_after(1.0)
        assert _statuses(w, ids).count(TaskStatus.ASSIGNED) == 5
        # other types are not held back
        assert await w.delegate("other", ["x"]) is TaskStatus.ASSIGNED
    finally:
        await w.orch.stop()


async def test_a_failed_attempt_waits_out_its_backoff_then_runs_again():
    w = World()
    try:
        await w.register("a", ["x"], max_tasks=2)
        w.beating.add("a")
        policy = {"max_attempts": 3, "backoff_s": 4.0, "backoff_factor": 3.0}
        await w.delegate("t", ["x"], retry=policy)
        await _finish(w, "t", success=False)
        task = w.task("t")
        assert task.status is TaskStatus.RETRYING
        assert task.not_before == w.clock.now + 4.0
        await w.tick_after(3.9)
        assert w.task("t").status is TaskStatus.RETRYING
        await w.tick_after(0.2)
        assert (w.task("t").status, w.task("t").attempts) == (TaskStatus.ASSIGNED, 2)
        await _finish(w, "t", success=False)
        assert w.task("t").not_before == w.clock.now + 12.0  # 4 s x 3
        await w.tick_after(12.1)
        await _finish(w, "t", success=False)
        assert (w.task("t").status, w.task("t").attempts) == (TaskStatus.DEAD, 3)
        assert [e["task_id"] for e in w.events.named("task.dead")] == ["t"]
    finally:
        await w.orch.stop()


async def test_a_concurrency_place_is_given_back_when_its_task_ends():
    w = World()
    try:
        await w.register("a", ["x"], max_tasks=5)
        w.beating.add("a")
        keyed = {"key": "repo:acme", "limit": 1}
        assert await w.delegate("first", ["x"], concurrency=keyed) is TaskStatus.ASSIGNED
        assert await w.delegate("second", ["x"], concurrency=keyed) is TaskStatus.QUEUED
        assert await w.delegate("free", ["x"]) is TaskStatus.ASSIGNED
        await _finish(w, "first")
        assert w.task("second").status is TaskStatus.ASSIGNED
    finally:
        await w.orch.stop()


async def test_tenants_take_turns_within_a_priority_and_weights_count():
    w = World(tenant_weights={"heavy": 2.0})
    try:
        await w.register("solo", ["x"])
        w.beating.add("solo")
        await w.delegate("blocker", ["x"])
        for i in range(6):
            await w.delegate(f"h{i}", ["x"], tenant="heavy")
        for i in range(3):
            await w.delegate(f"l{i}", ["x"], tenant="light")
        await w.delegate("urgent", ["x"], priority="high")
        served = []
        running = "blocker"
        for _ in range(10):
            await _finish(w, running)
            [running] = [
                t for t, r in w.orch.cache.tasks.items() if r.status is TaskStatus.ASSIGNED
            ]
            served.append(running)
        assert served[0] == "urgent"  # priority first
        # then in turn, two of the heavy tenant (weight 2) for one of the light one
        assert [s[0] for s in served[1:10]] == ["h", "l", "h", "h", "l", "h", "h", "l", "h"]
    finally:
        await w.orch.stop()


async def test_a_blocked_task_is_queued_the_moment_its_dependency_completes():
    w = World()
    try:
        await w.register("a", ["x"], max_tasks=2)
        w.beating.add("a")
        await w.delegate("first", ["x"])
        assert await w.delegate("then", ["x"], depends_on=["first"]) is TaskStatus.BLOCKED
        await _finish(w, "first")
        assert w.task("then").status is TaskStatus.ASSIGNED
        [offer] = [o for agent, o in w.offers.offers if o.task_id == "then"]
        assert offer.depends_on == ["first"]
    finally:
        await w.orch.stop()
