"""The shortest end-to-end story: an agent registers, a task is delegated, done."""

from __future__ import annotations

from hivebus import HiveClient, TaskStatus


async def test_delegate_to_an_agent_and_wait_for_the_result(hive: HiveClient, make_agent):
    await make_agent("coder-1", ["python"])
    task = await hive.delegate("review", ["python"], payload={"n": 1}, wait=True, wait_timeout=5)
    assert task.status is TaskStatus.COMPLETED
    assert task.agent_id == "coder-1"
    assert task.result == {"n": 1}
