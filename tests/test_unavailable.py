"""When the state store fails over (``unavailable``) or the core hits a bug (``internal_error``):
the reply says so, the core keeps serving, and the SDK and the client retry what is safe to
retry. The fault is injected at the domain's edge (the orchestrator's method raises); the
service, the wire and the SDK are real, over a real nats-server.

Also here: the agent SDK registers again when the core answers its heartbeat ``unknown_agent``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from conftest import eventually
from contract_wire import Wire
from hivebus import Core, ErrorCode, HiveClient, Offer, RemoteError, TaskStatus
from hivebus.domain.ports import StateUnavailable


class Flaky:
    """Wraps an orchestrator method: the first ``failures`` calls raise ``error``."""

    def __init__(self, real: Any, failures: int, error: Exception) -> None:
        self.real = real
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.real(*args, **kwargs)


async def test_a_store_failover_is_answered_unavailable_and_the_core_keeps_serving(
    wire: Wire, hivebus_core: Core, monkeypatch: pytest.MonkeyPatch
):
    orch = hivebus_core.orchestrator
    monkeypatch.setattr(orch, "get_task", Flaky(orch.get_task, 1, StateUnavailable("no quorum")))

    message = await wire.fail("task.get", {"task_id": "any"}, code="unavailable")

    assert message == "no quorum"
    await wire.fail("task.get", {"task_id": "any"}, code="unknown_task")  # the store is back


async def test_an_unexpected_error_is_answered_internal_error_without_the_details(
    wire: Wire, hivebus_core: Core, monkeypatch: pytest.MonkeyPatch
):
    orch = hivebus_core.orchestrator
    monkeypatch.setattr(orch, "agents", Flaky(orch.agents, 1, RuntimeError("secret detail")))

    message = await wire.fail("orchestrator.agents", code="internal_error")

    assert message == "internal error; see core log"
    assert (await wire.ok("orchestrator.agents"))["agents"] == []
    await wire.still_serving()


async def test_the_client_retries_unavailable_until_the_store_is_back(
    hive: HiveClient, hivebus_core: Core, monkeypatch: pytest.MonkeyPatch
):
    await hive.delegate("t", ["nobody"], task_id="waiting")
    orch = hivebus_core.orchestrator
    flaky = Flaky(orch.get_task, 3, StateUnavailable("failing over"))
    monkeypatch.setattr(orch, "get_task", flaky)

    task = await hive.get("waiting")

    assert task.status is TaskStatus.QUEUED
    assert flaky.calls == 4


async def test_the_client_gives_up_on_unavailable_after_its_patience(
    hive: HiveClient, hivebus_core: Core, monkeypatch: pytest.MonkeyPatch
):
    orch = hivebus_core.orchestrator
    flaky = Flaky(orch.get_task, 10**6, StateUnavailable("down for good"))
    monkeypatch.setattr(orch, "get_task", flaky)
    hive.retry_unavailable_s = 0.5

    with pytest.raises(RemoteError) as raised:
        await hive.get("anything")

    assert raised.value.code is ErrorCode.UNAVAILABLE
    assert flaky.calls >= 2  # retried before giving up


async def test_an_agent_retries_its_completion_while_the_store_is_unavailable(
    hive: HiveClient, hivebus_core: Core, make_agent: Any, monkeypatch: pytest.MonkeyPatch
):
    orch = hivebus_core.orchestrator
    flaky = Flaky(orch.complete, 2, StateUnavailable("failing over"))
    monkeypatch.setattr(orch, "complete", flaky)

    async def work(task: Offer) -> Any:
        return "delivered"

    await make_agent("patient", ["x"], work)
    done = await hive.delegate("t", ["x"], wait=True, wait_timeout=10)

    assert (done.status, done.result) == (TaskStatus.COMPLETED, "delivered")
    assert flaky.calls == 3


async def test_an_agent_the_core_forgot_registers_again_on_its_next_heartbeat(
    hive: HiveClient, make_agent: Any, nats_client: Any
):
    registered: list[str] = []

    async def record(msg: Any) -> None:
        registered.append(orjson.loads(msg.data)["agent_id"])

    await nats_client.subscribe("events.agent.registered", cb=record)
    await nats_client.flush()
    await make_agent("resilient", ["x"])
    await eventually(lambda: registered == ["resilient"])
    # The core forgets it (as a core without durable state does when it restarts).
    body = orjson.dumps({"agent_id": "resilient"})
    forgot = orjson.loads((await nats_client.request("agent.deregister", body, timeout=5)).data)
    assert forgot["ok"] is True
    assert await hive.agents() == []

    # Its next heartbeat is answered unknown_agent, and it registers again.
    await eventually(lambda: registered == ["resilient", "resilient"], timeout=10)
    [agent] = await hive.agents()
    assert (agent.agent_id, agent.state) == ("resilient", "active")
    done = await hive.delegate("t", ["x"], payload="back", wait=True, wait_timeout=10)
    assert (done.status, done.agent_id, done.result) == (TaskStatus.COMPLETED, "resilient", "back")
