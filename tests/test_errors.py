"""Bad requests over the wire: every error code, its exact reply and headers, and a core that
keeps serving afterwards. Also the retries a client may safely repeat.

Every error reply is ``{"ok": false, "error": {"code": ..., "message": ...}}`` with the NATS micro
headers ``Nats-Service-Error`` (the message) and ``Nats-Service-Error-Code`` (a numeric code);
``Wire.fail`` checks all of that on each call below.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from contract_wire import ERROR_STATUS, FAST, REQUEST_SUBJECTS, WAIT_S, EventLog, RawAgent, Wire
from hivebus import Core
from hivebus_hookspecs import ErrorCode, Rejected, hookimpl


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    return dict(FAST)


@pytest.fixture
async def coder(wire: Wire) -> AsyncIterator[RawAgent]:
    """A registered agent with the ``python`` capability that accepts every offer."""
    agent = RawAgent(wire, "coder-1", ["python"])
    await agent.start()
    yield agent
    await agent.stop()


@pytest.fixture
async def assigned(wire: Wire, coder: RawAgent) -> str:
    """A task assigned to ``coder-1`` and not yet completed."""
    reply = await wire.ok("task.delegate", {"task_id": "t-1", "required_capabilities": ["python"]})
    assert reply["status"] == "assigned"
    await coder.next_offer()
    return "t-1"


def test_every_error_code_has_a_documented_status():
    assert set(ERROR_STATUS) == {code.value for code in ErrorCode}


# --- every subject answers bad input ---------------------------------------------------------

SUBJECTS = REQUEST_SUBJECTS

BAD_BODIES = [
    pytest.param(b'{"agent_id": "a1", ', "invalid_json", "JSON", id="malformed"),
    pytest.param(b"\xff\xfe not even text", "invalid_json", "JSON", id="binary"),
    pytest.param(b'[{"agent_id": "a1"}]', "invalid_request", "JSON object", id="array"),
    pytest.param(b'"agent_id"', "invalid_request", "JSON object", id="string"),
    pytest.param(b"null", "invalid_request", "JSON object", id="null"),
    pytest.param(b'{"bogus_field": 1}', "invalid_request", "bogus_field", id="unknown-field"),
]


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize(("body", "code", "mentions"), BAD_BODIES)
async def test_every_subject_answers_bad_input(
    wire: Wire, subject: str, body: bytes, code: str, mentions: str
):
    message = await wire.fail(subject, raw=body, code=code)
    assert mentions in message
    await wire.still_serving()


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        ("agent.register", "agent_id"),
        ("agent.heartbeat", "agent_id"),
        ("agent.deregister", "agent_id"),
        ("task.complete", "task_id"),
        ("task.get", "task_id"),
        ("task.cancel", "task_id"),
        ("task.progress", "task_id"),
    ],
)
async def test_a_missing_required_field_is_named(wire: Wire, subject: str, field: str):
    # An empty body is the empty object, so it is missing whatever the subject requires.
    message = await wire.fail(subject, raw=b"", code="invalid_request")
    assert f"{field}: Field required" in message


async def test_the_message_names_every_bad_field(wire: Wire):
    message = await wire.fail(
        "task.complete", {"task_id": "t 1", "success": "maybe"}, code="invalid_request"
    )
    assert "task_id" in message
    assert "agent_id" in message
    assert "success" in message


# --- invalid_request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent_id",
    [
        pytest.param("a.b", id="dot"),
        pytest.param("a b", id="space"),
        pytest.param("a*", id="star"),
        pytest.param("a>", id="gt"),
        pytest.param("", id="empty"),
        pytest.param("x" * 129, id="129-chars"),
        pytest.param(7, id="number"),
    ],
)
async def test_agent_ids_must_be_subject_safe(wire: Wire, agent_id: Any):
    message = await wire.fail("agent.register", {"agent_id": agent_id}, code="invalid_request")
    assert "agent_id" in message
    await wire.ok("agent.register", {"agent_id": "x" * 128})  # the longest allowed


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [
        ("agent.register", {"agent_id": "a", "capabilities": "python"}, "capabilities"),
        ("agent.register", {"agent_id": "a", "role": "boss"}, "role"),
        ("agent.register", {"agent_id": "a", "max_tasks": 0}, "max_tasks"),
        ("agent.register", {"agent_id": "a", "metadata": ["x"]}, "metadata"),
        ("agent.heartbeat", {"agent_id": "a", "context_window_usage": 1.5}, "context_window_usage"),
        ("agent.heartbeat", {"agent_id": "a", "active_tasks": -1}, "active_tasks"),
        ("task.delegate", {"priority": 3}, "priority"),
        ("task.delegate", {"priority": "urgent"}, "priority"),
        ("task.delegate", {"priority": "5"}, "priority"),
        ("task.delegate", {"priority": True}, "priority"),
        ("task.delegate", {"required_capabilities": [1]}, "required_capabilities"),
        ("task.delegate", {"task_id": "has space"}, "task_id"),
        ("task.delegate", {"task_type": ""}, "task_type"),
        ("task.delegate", {"queue": []}, "queue"),
        ("task.complete", {"task_id": "t", "agent_id": "a", "error": 5}, "error"),
        ("task.get", {"task_id": 5}, "task_id"),
        ("orchestrator.tasks", {"status": "sleeping"}, "status"),
        ("orchestrator.tasks", {"limit": 0}, "limit"),
    ],
)
async def test_a_wrong_type_or_value_is_named(
    wire: Wire, subject: str, body: dict[str, Any], field: str
):
    message = await wire.fail(subject, body, code="invalid_request")
    assert message.startswith(f"{field}")
    await wire.still_serving()


# --- payload_too_large -----------------------------------------------------------------------


class TestPayloadLimit:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {**FAST, "max_payload_bytes": 2048}

    @pytest.mark.parametrize("subject", ["task.delegate", "agent.register", "task.complete"])
    async def test_a_body_over_the_limit_is_refused(self, wire: Wire, subject: str):
        big = json.dumps({"payload": "x" * 4096}).encode()
        message = await wire.fail(subject, raw=big, code="payload_too_large")
        assert "2048" in message
        await wire.ok("task.delegate", {"payload": "x" * 1024})

    async def test_the_limit_is_checked_before_parsing(self, wire: Wire):
        await wire.fail("task.delegate", raw=b"{" * 4096, code="payload_too_large")


# --- unknown_agent / unknown_task ------------------------------------------------------------


@pytest.mark.parametrize("subject", ["agent.heartbeat", "agent.deregister"])
async def test_an_unregistered_agent_is_unknown(wire: Wire, subject: str):
    message = await wire.fail(subject, {"agent_id": "ghost"}, code="unknown_agent")
    assert "ghost" in message
    await wire.ok("agent.register", {"agent_id": "ghost"})
    await wire.ok(subject, {"agent_id": "ghost"})


async def test_deregistering_twice_is_unknown_agent(wire: Wire, coder: RawAgent):
    await wire.ok("agent.deregister", {"agent_id": "coder-1"})
    await wire.fail("agent.deregister", {"agent_id": "coder-1"}, code="unknown_agent")
    await wire.still_serving()


@pytest.mark.parametrize("subject", ["task.get", "task.cancel"])
async def test_a_task_nobody_delegated_is_unknown(wire: Wire, subject: str):
    message = await wire.fail(subject, {"task_id": "nope"}, code="unknown_task")
    assert "nope" in message
    await wire.ok("task.delegate", {"task_id": "nope"})
    await wire.ok(subject, {"task_id": "nope"})


async def test_completing_an_unknown_task(wire: Wire, coder: RawAgent):
    await wire.fail(
        "task.complete", {"task_id": "nope", "agent_id": "coder-1"}, code="unknown_task"
    )
    await wire.still_serving()


# --- agent_exists / max_agents_reached -------------------------------------------------------


async def test_a_live_agent_id_cannot_be_registered_twice(wire: Wire, coder: RawAgent):
    message = await wire.fail("agent.register", {"agent_id": "coder-1"}, code="agent_exists")
    assert "coder-1" in message
    # The first registration is untouched; once it leaves, the id is free again.
    await wire.ok("agent.heartbeat", {"agent_id": "coder-1"})
    await wire.ok("agent.deregister", {"agent_id": "coder-1"})
    await wire.ok("agent.register", {"agent_id": "coder-1"})


class TestMaxAgents:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {**FAST, "max_agents": 1}

    async def test_registrations_beyond_max_agents_are_refused(self, wire: Wire):
        await wire.ok("agent.register", {"agent_id": "first"})
        message = await wire.fail(
            "agent.register", {"agent_id": "second"}, code="max_agents_reached"
        )
        assert "max_agents=1" in message
        await wire.ok("agent.deregister", {"agent_id": "first"})
        await wire.ok("agent.register", {"agent_id": "second"})


# --- not_task_owner / invalid_state ----------------------------------------------------------


async def test_only_the_assigned_agent_may_complete(wire: Wire, assigned: str):
    await wire.ok("agent.register", {"agent_id": "intruder"})
    message = await wire.fail(
        "task.complete", {"task_id": assigned, "agent_id": "intruder"}, code="not_task_owner"
    )
    assert assigned in message
    assert "intruder" in message
    assert (await wire.ok("task.get", {"task_id": assigned}))["task"]["status"] == "assigned"
    await wire.ok("task.complete", {"task_id": assigned, "agent_id": "coder-1"})


async def test_an_acceptance_after_the_offer_timeout_does_not_make_an_owner(wire: Wire):
    slow = RawAgent(wire, "slow-1", ["python"])
    slow.gate = asyncio.Event()  # holds its "yes" until after the core stopped waiting
    await slow.start()
    fast = RawAgent(wire, "fast-1", ["python"])
    await fast.start()

    # slow-1 is idle longest, so it is asked first; its silence hands the task to fast-1.
    reply = await wire.ok("task.delegate", {"task_id": "t-9", "required_capabilities": ["python"]})
    assert (reply["status"], reply["agent_id"]) == ("assigned", "fast-1")
    slow.gate.set()
    await slow.next_offer()  # its late acceptance has now been sent

    await wire.fail(
        "task.complete", {"task_id": "t-9", "agent_id": "slow-1"}, code="not_task_owner"
    )
    await fast.complete("t-9", result="mine")


async def test_a_queued_task_has_no_owner_to_complete_it(wire: Wire, coder: RawAgent):
    await wire.ok("task.delegate", {"task_id": "waiting", "required_capabilities": ["rust"]})
    await wire.fail(
        "task.complete", {"task_id": "waiting", "agent_id": "coder-1"}, code="not_task_owner"
    )
    await wire.still_serving()


async def test_a_completed_task_cannot_change_its_outcome(wire: Wire, assigned: str):
    await wire.ok("task.complete", {"task_id": assigned, "agent_id": "coder-1", "result": 1})

    message = await wire.fail(
        "task.complete",
        {"task_id": assigned, "agent_id": "coder-1", "success": False, "error": "late"},
        code="invalid_state",
    )

    assert "completed" in message
    task = (await wire.ok("task.get", {"task_id": assigned}))["task"]
    assert (task["status"], task["result"]) == ("completed", 1)


async def test_a_completed_task_cannot_be_cancelled(wire: Wire, assigned: str):
    await wire.ok("task.complete", {"task_id": assigned, "agent_id": "coder-1"})
    message = await wire.fail("task.cancel", {"task_id": assigned}, code="invalid_state")
    assert "completed" in message
    await wire.still_serving()


async def test_a_cancelled_task_cannot_be_completed(wire: Wire, assigned: str):
    await wire.ok("task.cancel", {"task_id": assigned})
    message = await wire.fail(
        "task.complete", {"task_id": assigned, "agent_id": "coder-1"}, code="invalid_state"
    )
    assert "cancelled" in message
    await wire.still_serving()


# --- no_agent_available / over_capacity ------------------------------------------------------


async def test_queue_false_without_a_capable_agent(wire: Wire, coder: RawAgent):
    body = {"task_id": "now-or-never", "required_capabilities": ["rust"], "queue": False}
    message = await wire.fail("task.delegate", body, code="no_agent_available")
    assert "rust" in message
    # Nothing was left behind: the same id can be delegated again, and queued this time.
    await wire.fail("task.get", {"task_id": "now-or-never"}, code="unknown_task")
    reply = await wire.ok("task.delegate", {**body, "queue": True})
    assert reply["status"] == "queued"


async def test_queue_false_when_every_capable_agent_declines(wire: Wire):
    picky = RawAgent(wire, "picky", ["python"], answer={"accept": False, "reason": "busy"})
    await picky.start()
    await wire.fail(
        "task.delegate",
        {"required_capabilities": ["python"], "queue": False},
        code="no_agent_available",
    )
    await picky.next_offer()  # it was asked, and said no
    assert (await wire.ok("orchestrator.status"))["tasks"]["queued"] == 0


class TestMaxConcurrentTasks:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {**FAST, "max_concurrent_tasks": 2}

    async def test_tasks_beyond_the_limit_are_refused_until_one_finishes(self, wire: Wire):
        await wire.ok("task.delegate", {"task_id": "one"})
        await wire.ok("task.delegate", {"task_id": "two"})

        message = await wire.fail("task.delegate", {"task_id": "three"}, code="over_capacity")

        assert "max_concurrent_tasks=2" in message
        await wire.fail("task.get", {"task_id": "three"}, code="unknown_task")
        # A repeat of a known task is not a new task, so the limit does not apply to it.
        assert (await wire.ok("task.delegate", {"task_id": "one"}))["status"] == "queued"
        await wire.ok("task.cancel", {"task_id": "one"})
        await wire.ok("task.delegate", {"task_id": "three"})


# --- rejected_by_plugin ----------------------------------------------------------------------


class Vetoer:
    """A policy plugin: no task of type ``forbidden``, no agent called ``mallory``."""

    @hookimpl
    def hivebus_task_delegate(self, task: Any) -> None:
        if task.task_type == "forbidden":
            raise Rejected("nope")

    @hookimpl
    async def hivebus_agent_register(self, agent: Any) -> bool:
        return agent.agent_id != "mallory"


async def test_a_plugin_veto_refuses_the_task_and_names_the_plugin(
    wire: Wire, hivebus_core: Core, coder: RawAgent
):
    hivebus_core.plugins.register(Vetoer(), "vetoer")

    message = await wire.fail(
        "task.delegate",
        {"task_id": "bad", "task_type": "forbidden", "required_capabilities": ["python"]},
        code="rejected_by_plugin",
    )

    assert "vetoer" in message
    assert "nope" in message
    await wire.fail("task.get", {"task_id": "bad"}, code="unknown_task")
    assert coder.offers.empty()
    # A veto is the plugin doing its job, not a failure of the plugin.
    [plugin] = (await wire.ok("orchestrator.plugins"))["plugins"]
    assert (plugin["name"], plugin["health"], plugin["failures"]) == ("vetoer", "healthy", 0)
    ok = await wire.ok("task.delegate", {"task_type": "fine", "required_capabilities": ["python"]})
    assert ok["status"] == "assigned"


async def test_a_plugin_veto_refuses_the_agent(wire: Wire, hivebus_core: Core):
    hivebus_core.plugins.register(Vetoer(), "vetoer")
    message = await wire.fail("agent.register", {"agent_id": "mallory"}, code="rejected_by_plugin")
    assert "vetoer" in message
    assert (await wire.ok("orchestrator.agents"))["agents"] == []
    await wire.ok("agent.register", {"agent_id": "alice"})


# --- internal_error --------------------------------------------------------------------------


class UnencodableStatus:
    @hookimpl
    def hivebus_status(self) -> Any:
        return {"not", "json"}  # a set: no JSON encoder takes it


async def test_a_reply_that_cannot_be_built_is_still_answered(wire: Wire, hivebus_core: Core):
    hivebus_core.plugins.register(UnencodableStatus(), "unencodable")

    status = await wire.ok("orchestrator.status")

    # The host isolates the contribution: the request succeeds without it, and the plugin that
    # produced it is marked degraded, with the reason.
    assert "unencodable" not in status.get("extensions", {})
    [plugin] = [p for p in (await wire.ok("orchestrator.plugins"))["plugins"]]
    assert (plugin["name"], plugin["health"], plugin["failures"]) == ("unencodable", "degraded", 1)
    assert plugin["last_error"].startswith("hivebus_status: ")
    assert (await wire.ok("orchestrator.status"))["plugins"] == {"unencodable": "degraded"}
    hivebus_core.plugins.unregister("unencodable")
    await wire.still_serving()


# --- retries are safe ------------------------------------------------------------------------


async def test_delegating_the_same_task_id_twice_creates_one_task(wire: Wire, coder: RawAgent):
    events = await EventLog.follow(wire.nc)
    body = {"task_id": "once", "required_capabilities": ["python"], "payload": 1}
    first = await wire.ok("task.delegate", body)
    tasks_before = len((await wire.ok("orchestrator.tasks"))["tasks"])

    second = await wire.ok("task.delegate", {**body, "payload": 2})

    assert second == first
    assert first == {"ok": True, "task_id": "once", "status": "assigned", "agent_id": "coder-1"}
    assert len((await wire.ok("orchestrator.tasks"))["tasks"]) == tasks_before == 1
    assert (await coder.next_offer())["payload"] == 1
    assert coder.offers.empty()
    await events.wait_for("task.assigned", task_id="once")
    await wire.still_serving()
    assert events.names().count("task.assigned") == 1
    await events.close()


async def test_a_repeated_delegation_answers_the_current_state(wire: Wire, assigned: str):
    await wire.ok("task.complete", {"task_id": assigned, "agent_id": "coder-1"})
    again = await wire.ok("task.delegate", {"task_id": assigned})
    assert again == {"ok": True, "task_id": assigned, "status": "completed", "agent_id": "coder-1"}
    assert len((await wire.ok("orchestrator.tasks"))["tasks"]) == 1


class TestSlowAcceptance:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {**FAST, "offer_timeout_s": 5.0}  # the agent below answers when released

    async def test_a_duplicate_delegation_during_the_offer_waits_for_the_same_answer(
        self, wire: Wire, coder: RawAgent
    ):
        coder.gate = asyncio.Event()  # the agent is slow to say yes
        body = {"task_id": "raced", "required_capabilities": ["python"]}
        first = asyncio.ensure_future(wire.ok("task.delegate", body))
        async with asyncio.timeout(WAIT_S):
            await coder.offered.wait()  # the offer is in flight
        second = asyncio.ensure_future(wire.ok("task.delegate", body))
        await wire.still_serving()  # a round trip: the duplicate has reached the core too
        coder.gate.set()

        assert await first == await second
        assert (await first)["status"] == "assigned"
        await coder.next_offer()
        assert coder.offers.empty()
        assert len((await wire.ok("orchestrator.tasks"))["tasks"]) == 1


async def test_completing_twice_with_the_same_outcome_counts_once(wire: Wire, assigned: str):
    done = {"task_id": assigned, "agent_id": "coder-1", "result": "done"}

    first = await wire.ok("task.complete", done)
    again = await wire.ok("task.complete", done)

    assert first["task"] == again["task"]
    assert first["task"]["status"] == "completed"
    assert (await wire.ok("orchestrator.status"))["tasks"]["completed_total"] == 1


async def test_a_failure_reported_twice_counts_once(wire: Wire, assigned: str):
    failed = {"task_id": assigned, "agent_id": "coder-1", "success": False, "error": "boom"}
    await wire.ok("task.complete", failed)
    await wire.ok("task.complete", failed)
    assert (await wire.ok("orchestrator.status"))["tasks"]["error_total"] == 1
