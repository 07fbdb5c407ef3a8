"""The domain's data structures on their own: no NATS needed to reason about them."""

from __future__ import annotations

from hivebus.domain.queue import PendingQueue
from hivebus.domain.registry import AgentRecord, AgentRegistry
from hivebus.domain.tasks import VALUE_WEIGHT, TaskRecord, json_values
from hivebus_hookspecs.models import AgentRole, AgentState, TaskPriority, TaskStatus


def agent(agent_id: str, caps: set[str], max_tasks: int = 1) -> AgentRecord:
    return AgentRecord(
        agent_id=agent_id,
        role=AgentRole.WORKER,
        capabilities=tuple(sorted(caps)),
        max_tasks=max_tasks,
        metadata={},
        registered_at=0.0,
    )


def task(task_id: str, caps: set[str], priority: TaskPriority, seq: int) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        task_type="t",
        required_list=sorted(caps),
        priority=priority,
        payload=None,
        metadata={},
        created_at=0.0,
        seq=seq,
    )


def test_candidates_need_every_capability_and_a_free_slot():
    registry = AgentRegistry()
    registry.add(agent("py", {"python"}))
    registry.add(agent("py-go", {"python", "go"}))
    registry.add(agent("py-go-full", {"python", "go"}))
    registry.hold("py-go-full", "t1")
    assert [a.agent_id for a in registry.candidates(frozenset({"python", "go"}), 5)] == ["py-go"]


def test_candidates_prefer_the_least_loaded_fraction():
    registry = AgentRegistry()
    registry.add(agent("half", {"x"}, max_tasks=2))
    registry.add(agent("third", {"x"}, max_tasks=3))
    registry.hold("half", "h")
    registry.hold("third", "t")
    assert [a.agent_id for a in registry.candidates(frozenset({"x"}), 5)] == ["third", "half"]


class CountingRecords(dict[str, AgentRecord]):
    """The registry's record table, counting every record the search looks at."""

    looked_at = 0

    def __getitem__(self, agent_id: str) -> AgentRecord:
        self.looked_at += 1
        return super().__getitem__(agent_id)


def counting_registry() -> tuple[AgentRegistry, CountingRecords]:
    registry = AgentRegistry()
    records = CountingRecords()
    registry._agents = records  # a spy on the one table every lookup goes through
    return registry, records


def test_the_rarest_capability_bounds_the_search_at_ten_thousand_agents():
    registry, records = counting_registry()
    for i in range(10_000):
        registry.add(agent(f"a{i}", {"common"}))
    registry.add(agent("special", {"common", "rare"}))

    picked = registry.candidates(frozenset({"common", "rare"}), 3)

    assert [a.agent_id for a in picked] == ["special"]
    assert records.looked_at == 1  # only the holders of "rare", not the 10,001 of "common"
    assert registry.capability_counts() == {"common": 10_001, "rare": 1}


def test_a_search_stops_once_it_has_enough_idle_agents():
    registry, records = counting_registry()
    for i in range(10_000):
        registry.add(agent(f"a{i}", {"common"}))

    picked = registry.candidates(frozenset({"common"}), 3)

    assert [a.agent_id for a in picked] == ["a0", "a1", "a2"]
    assert records.looked_at == 3


def test_offline_agents_leave_the_index():
    registry = AgentRegistry()
    registry.add(agent("gone", {"x"}).evolve(state=AgentState.OFFLINE))
    assert registry.candidates(frozenset({"x"}), 5) == []
    assert registry.capability_counts() == {}


def test_the_queue_serves_priority_then_age_within_what_an_agent_can_do():
    queue = PendingQueue()
    queue.push(task("go-low", {"go"}, TaskPriority.LOW, 1))
    queue.push(task("py-med", {"python"}, TaskPriority.MEDIUM, 2))
    queue.push(task("py-crit", {"python"}, TaskPriority.CRITICAL, 3))
    queue.push(task("py-med-2", {"python"}, TaskPriority.MEDIUM, 4))
    python_agent = frozenset({"python"})
    served = [queue.pop_for(python_agent) for _ in range(3)]
    assert [t.task_id for t in served if t] == ["py-crit", "py-med", "py-med-2"]
    assert queue.pop_for(python_agent) is None
    assert len(queue) == 1


def test_a_discarded_task_is_never_served():
    queue = PendingQueue()
    queue.push(task("a", set(), TaskPriority.HIGH, 1))
    queue.push(task("b", set(), TaskPriority.LOW, 2))
    queue.discard("a")
    first = queue.pop_for(frozenset())
    assert first is not None
    assert first.task_id == "b"
    assert queue.pop_for(frozenset()) is None


def test_priority_names_and_legacy_integers_both_parse():
    assert TaskPriority.parse("critical") is TaskPriority.CRITICAL
    assert TaskPriority.parse("High") is TaskPriority.HIGH
    assert TaskPriority.parse(5) is TaskPriority.MEDIUM


def test_a_records_weight_is_that_of_its_content_through_every_transition():
    # The weight is what the memory budgets count: the JSON size (kept across transitions
    # that change only a few bytes of numbers) plus a share per JSON value, which must be
    # what a record built afresh from the same content counts.
    def values_weight(record: TaskRecord) -> int:
        return record.weight - record.size

    def afresh(record: TaskRecord) -> int:
        return values_weight(TaskRecord.from_dict(record.to_dict(), record.revision))

    queued = task("t", {"x"}, TaskPriority.MEDIUM, 1).evolve(
        payload={"turns": [{"role": "user", "text": "hi"}] * 50}
    )
    assert queued.weight == len(queued.encoded()) + VALUE_WEIGHT * (
        json_values(queued.payload) + json_values({}) + json_values(None)
    )
    offered = queued.evolve(status=TaskStatus.OFFERED, agent_id="a", offered_at=1.0)
    amended = offered.evolve(payload=[1, 2, 3], metadata={"hint": {"tokens": 9}})
    completed = amended.evolve(
        status=TaskStatus.COMPLETED, success=True, result={"lines": ["ok"] * 40}, finished_at=2.0
    )
    for record in (queued, offered, amended, completed):
        assert values_weight(record) == afresh(record)
    assert completed.weight < queued.weight  # the small payload counts, not the large one
