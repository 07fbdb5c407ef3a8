"""Faults for real: processes killed with SIGKILL, the NATS server restarted."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from conftest import eventually
from hivebus import HiveClient, Offer, TaskStatus
from hivebus.server import EmbeddedServer
from processes import spawn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture(params=["memory", "jetstream"])
def hivebus_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"state": request.param}


async def _status(hive: HiveClient, task_id: str) -> TaskStatus:
    return (await hive.get(task_id)).status


async def test_a_killed_agent_goes_offline_and_its_task_moves_on(hive, make_agent, hivebus_core):
    url = hivebus_core.config.nats_url
    # Its own process group, so the kill takes the command it is running too (as a crashed
    # container's would): the test leaves no `sleep 600` behind.
    doomed = spawn(
        "agent", "--nats", url, "--id", "doomed", "--cap", "x", "--", *SLEEPER, new_session=True
    )
    try:
        await doomed.until("ready")
        reply = await hive.delegate("t", ["x"], task_id="orphan")
        assert reply.agent_id == "doomed"
        attempts: list[int] = []

        async def survivor(task: Offer) -> Any:
            attempts.append(task.attempt)
            return "rescued"

        await make_agent("survivor", ["x"], survivor)
    finally:
        doomed.kill_group()  # SIGKILL: no deregistration, no goodbye

    async def offline() -> bool:
        return any(a.agent_id == "doomed" and a.state == "offline" for a in await hive.agents())

    await eventually(offline, timeout=10)
    await eventually(lambda: _is(hive, "orphan", TaskStatus.COMPLETED), timeout=10)
    task = await hive.get("orphan")
    assert task.agent_id == "survivor"
    assert task.result == "rescued"
    assert attempts == [2]
    status = await hive.status()
    assert status["agents"]["offline"] == 1


async def _is(hive: HiveClient, task_id: str, status: TaskStatus) -> bool:
    return await _status(hive, task_id) is status


async def test_core_and_agents_survive_a_nats_server_restart(
    nats_server: EmbeddedServer, hive, make_agent
):
    await make_agent("steady", ["x"])
    before = await hive.delegate("t", ["x"], wait=True, wait_timeout=5)
    assert before.status is TaskStatus.COMPLETED
    nats_server.kill()
    nats_server.start()

    async def works_again() -> bool:
        try:
            done = await hive.delegate("t", ["x"], wait=True, wait_timeout=2)
        except Exception:
            return False
        return done.status is TaskStatus.COMPLETED and done.agent_id == "steady"

    await eventually(works_again, timeout=30)
