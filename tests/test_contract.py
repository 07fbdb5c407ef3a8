"""The wire contract, spoken over a real nats-server with raw NATS and JSON.

Each test is an example of what an agent, a delegator or an operator in any language sends and
gets back: success replies, events on ``events.>``, micro discovery and the subject prefix.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from contract_wire import FAST, REQUEST_SUBJECTS, WAIT_S, EventLog, RawAgent, Wire
from hivebus import Core
from hivebus_hookspecs import hookimpl
from nats.aio.client import Client
from nats.aio.msg import Msg


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    return dict(FAST)


@pytest.fixture
async def events(wire: Wire) -> AsyncIterator[EventLog]:
    log = await EventLog.follow(wire.nc, wire.prefix)
    yield log
    await log.close()


@pytest.fixture
async def coder(wire: Wire) -> AsyncIterator[RawAgent]:
    """A registered agent with the ``python`` capability that accepts every offer."""
    agent = RawAgent(wire, "coder-1", ["python"], role="specialist")
    await agent.start()
    yield agent
    await agent.stop()


# --- agents ----------------------------------------------------------------------------------


async def test_register_answers_the_fixed_assign_subject_and_heartbeat_interval(wire: Wire):
    reply = await wire.ok(
        "agent.register",
        {
            "agent_id": "coder-1",
            "role": "specialist",
            "capabilities": ["python", "review"],
            "max_tasks": 2,
            "metadata": {"model": "small"},
        },
    )
    assert reply == {
        "ok": True,
        "agent_id": "coder-1",
        "assign_subject": "agent.coder-1.assign",
        "heartbeat_interval_s": FAST["heartbeat_interval_s"],
    }
    [agent] = (await wire.ok("orchestrator.agents"))["agents"]
    assert agent["agent_id"] == "coder-1"
    assert agent["role"] == "specialist"
    assert agent["capabilities"] == ["python", "review"]
    assert agent["max_tasks"] == 2
    assert agent["metadata"] == {"model": "small"}
    assert agent["state"] == "active"
    assert agent["active_tasks"] == 0


async def test_register_strips_and_deduplicates_capabilities(wire: Wire):
    await wire.ok(
        "agent.register", {"agent_id": "a-1", "capabilities": [" python ", "python", "go"]}
    )
    [agent] = (await wire.ok("orchestrator.agents"))["agents"]
    assert agent["capabilities"] == ["python", "go"]
    assert (await wire.ok("orchestrator.status"))["capabilities_index"] == {"python": 1, "go": 1}


async def test_register_needs_only_an_agent_id(wire: Wire):
    reply = await wire.ok("agent.register", {"agent_id": "minimal"})
    assert reply["assign_subject"] == "agent.minimal.assign"
    [agent] = (await wire.ok("orchestrator.agents"))["agents"]
    assert (agent["role"], agent["capabilities"], agent["max_tasks"]) == ("worker", [], 1)


async def test_heartbeat_as_a_request_is_answered_ok(wire: Wire, coder: RawAgent):
    reply = await wire.ok(
        "agent.heartbeat", {"agent_id": "coder-1", "active_tasks": 0, "context_window_usage": 0.25}
    )
    assert reply == {"ok": True}


async def test_heartbeat_as_a_plain_publish_is_taken_without_a_reply(wire: Wire, coder: RawAgent):
    beat = {"agent_id": "coder-1", "context_window_usage": 0.42}
    await wire.nc.publish(wire.subject("agent.heartbeat"), json.dumps(beat).encode())
    # Bad heartbeats published without a reply subject have nobody to answer: they are dropped.
    await wire.nc.publish(wire.subject("agent.heartbeat"), b"{not json")
    await wire.nc.publish(wire.subject("agent.heartbeat"), b'{"agent_id": "nobody"}')

    async with asyncio.timeout(WAIT_S):
        while True:
            [agent] = (await wire.ok("orchestrator.agents"))["agents"]
            if agent["context_window_usage"] == 0.42:
                break
            await asyncio.sleep(0.02)
    await wire.still_serving()


async def test_deregister_gives_back_the_agents_tasks(
    wire: Wire, coder: RawAgent, events: EventLog
):
    held = await wire.ok("task.delegate", {"required_capabilities": ["python"]})
    assert held["status"] == "assigned"

    reply = await wire.ok("agent.deregister", {"agent_id": "coder-1"})

    assert reply == {"ok": True, "requeued": [held["task_id"]]}
    assert (await wire.ok("orchestrator.agents"))["agents"] == []
    task = (await wire.ok("task.get", {"task_id": held["task_id"]}))["task"]
    assert (task["status"], task["agent_id"]) == ("queued", None)
    await events.wait_for("task.requeued", task_id=held["task_id"])


async def test_deregister_an_idle_agent_requeues_nothing(wire: Wire, coder: RawAgent):
    assert await wire.ok("agent.deregister", {"agent_id": "coder-1"}) == {
        "ok": True,
        "requeued": [],
    }


# --- tasks -----------------------------------------------------------------------------------


async def test_delegate_to_a_capable_agent_answers_assigned(wire: Wire, coder: RawAgent):
    reply = await wire.ok(
        "task.delegate",
        {
            "task_id": "review-42",
            "task_type": "review",
            "required_capabilities": ["python"],
            "priority": "high",
            "payload": {"files": ["a.py"]},
            "metadata": {"pr": 42},
        },
    )
    assert reply == {
        "ok": True,
        "task_id": "review-42",
        "status": "assigned",
        "agent_id": "coder-1",
    }
    # "assigned" means the agent already said yes: the offer it accepted carried the whole task.
    offer = await coder.next_offer()
    assert offer == {
        "task_id": "review-42",
        "task_type": "review",
        "required_capabilities": ["python"],
        "priority": "high",
        "payload": {"files": ["a.py"]},
        "metadata": {"pr": 42},
        "attempt": 1,
        "depends_on": [],
    }


async def test_delegate_without_a_capable_agent_answers_queued(wire: Wire, coder: RawAgent):
    reply = await wire.ok("task.delegate", {"task_id": "t-1", "required_capabilities": ["rust"]})
    assert reply == {"ok": True, "task_id": "t-1", "status": "queued", "agent_id": None}


async def test_delegate_generates_a_task_id_when_none_is_given(wire: Wire):
    first = await wire.ok("task.delegate", {"task_type": "build"})
    second = await wire.ok("task.delegate", {"task_type": "build"})
    assert re.fullmatch("[0-9a-f]{32}", first["task_id"])
    assert re.fullmatch("[0-9a-f]{32}", second["task_id"])
    assert first["task_id"] != second["task_id"]
    task = (await wire.ok("task.get", {"task_id": first["task_id"]}))["task"]
    assert task["task_type"] == "build"


@pytest.mark.parametrize(
    "subject",
    ["orchestrator.status", "orchestrator.agents", "orchestrator.tasks", "orchestrator.plugins"],
)
async def test_an_empty_body_is_the_empty_object(wire: Wire, subject: str):
    reply = await wire.request(subject, raw=b"")
    assert reply.body["ok"] is True


async def test_delegate_with_an_empty_body_uses_every_default(wire: Wire):
    reply = await wire.ok("task.delegate", {})
    task = (await wire.ok("task.get", {"task_id": reply["task_id"]}))["task"]
    assert task["task_type"] == "task"
    assert task["priority"] == "medium"
    assert task["required_capabilities"] == []
    assert task["status"] == "queued"


@pytest.mark.parametrize(
    ("sent", "named"),
    [
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("critical", "critical"),
        (1, "low"),
        (5, "medium"),
        (8, "high"),
        (10, "critical"),
        (" HIGH ", "high"),
        ("Low", "low"),
    ],
)
async def test_priority_accepts_names_and_the_legacy_integers(wire: Wire, sent: Any, named: str):
    reply = await wire.ok(
        "task.delegate", {"required_capabilities": ["nobody-has-this"], "priority": sent}
    )
    task = (await wire.ok("task.get", {"task_id": reply["task_id"]}))["task"]
    assert task["priority"] == named


async def test_complete_then_get_shows_the_finished_task(wire: Wire, coder: RawAgent):
    await wire.ok(
        "task.delegate",
        {"task_id": "t-7", "task_type": "lint", "required_capabilities": ["python"]},
    )
    await coder.next_offer()

    reply = await coder.complete("t-7", result={"warnings": 0})
    assert reply["ok"] is True
    assert reply["task"]["status"] == "completed"

    task = (await wire.ok("task.get", {"task_id": "t-7"}))["task"]
    assert task["task_id"] == "t-7"
    assert task["task_type"] == "lint"
    assert task["status"] == "completed"
    assert task["agent_id"] == "coder-1"
    assert task["priority"] == "medium"
    assert task["attempts"] == 1
    assert task["success"] is True
    assert task["result"] == {"warnings": 0}
    assert task["error"] is None
    assert task["created_at"] <= task["assigned_at"] <= task["finished_at"]


async def test_a_failed_completion_is_recorded_with_its_error(wire: Wire, coder: RawAgent):
    await wire.ok("task.delegate", {"task_id": "t-8", "required_capabilities": ["python"]})
    await coder.next_offer()

    await coder.complete("t-8", success=False, error="tests failed")

    task = (await wire.ok("task.get", {"task_id": "t-8"}))["task"]
    assert (task["status"], task["success"], task["error"]) == ("failed", False, "tests failed")
    status = await wire.ok("orchestrator.status")
    assert status["tasks"]["error_total"] == 1


async def test_get_a_queued_task(wire: Wire):
    await wire.ok("task.delegate", {"task_id": "waiting", "priority": "low"})
    task = (await wire.ok("task.get", {"task_id": "waiting"}))["task"]
    assert task["status"] == "queued"
    assert task["agent_id"] is None
    assert task["attempts"] == 0
    assert task["success"] is None
    assert task["result"] is None
    assert task["assigned_at"] is None
    assert task["finished_at"] is None
    assert isinstance(task["created_at"], float)


async def test_cancel_a_queued_task(wire: Wire):
    await wire.ok("task.delegate", {"task_id": "t-9"})
    reply = await wire.ok("task.cancel", {"task_id": "t-9"})
    assert reply["task"]["status"] == "cancelled"
    assert reply["task"]["finished_at"] is not None
    # Cancelling again is a harmless retry.
    again = await wire.ok("task.cancel", {"task_id": "t-9"})
    assert again["task"]["status"] == "cancelled"
    assert (await wire.ok("orchestrator.status"))["tasks"]["queued"] == 0


async def test_cancel_an_assigned_task_frees_the_agents_slot(wire: Wire, coder: RawAgent):
    await wire.ok("task.delegate", {"task_id": "first", "required_capabilities": ["python"]})
    await coder.next_offer()
    waiting = await wire.ok(
        "task.delegate", {"task_id": "next", "required_capabilities": ["python"]}
    )
    assert waiting["status"] == "queued"

    cancelled = await wire.ok("task.cancel", {"task_id": "first"})

    assert cancelled["task"]["status"] == "cancelled"
    # The agent is told to stop, and its freed slot is offered the waiting task right away.
    assert await coder.next_cancel_notice() == {"task_id": "first", "reason": "cancelled"}
    assert (await coder.next_offer())["task_id"] == "next"
    # Should it finish the cancelled task anyway, the completion is refused.
    await wire.fail(
        "task.complete", {"task_id": "first", "agent_id": "coder-1"}, code="invalid_state"
    )


# --- orchestrator ----------------------------------------------------------------------------


STATUS_TYPES: dict[str, Any] = {
    "string": str,
    "number": int | float,
    "integer": int,
    "list of strings": list,
    "object": dict,
}


def _documented_status_keys() -> dict[str, str]:
    """Dotted key -> type, from the reply table of ``orchestrator.status`` in subjects.md."""
    text = (Path(__file__).resolve().parents[1] / "subjects.md").read_text()
    section = text.split("### orchestrator.status", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\|\s*`([a-z_.]+)`\s*\|\s*([^|]+?)\s*\|", section, re.MULTILINE)
    return dict(rows)


async def test_status_reports_every_documented_key(wire: Wire, coder: RawAgent):
    await wire.ok("task.delegate", {"required_capabilities": ["python"]})
    await wire.ok("task.delegate", {"required_capabilities": ["python"]})

    status = await wire.ok("orchestrator.status")

    documented = _documented_status_keys()
    assert len(documented) >= 20, "the orchestrator.status table was not found in subjects.md"
    optional = {"extensions"}  # present only when a plugin contributes
    for key, kind in documented.items():
        if key in optional:
            continue
        value: Any = status
        for part in key.split("."):
            assert isinstance(value, dict), key
            assert part in value, f"orchestrator.status lacks the documented key {key}"
            value = value[part]
        assert isinstance(value, STATUS_TYPES[kind]), (key, kind, value)
        assert not isinstance(value, bool), key
    sections = {key.split(".")[0] for key in documented}
    nested = {key for key in documented if "." in key}
    undocumented = [k for k in status if k not in sections and k != "ok"]
    undocumented += [
        f"{k}.{sub}"
        for k, v in status.items()
        if any(d.startswith(f"{k}.") for d in nested)
        for sub in v
        if f"{k}.{sub}" not in documented
    ]
    assert undocumented == []
    assert status["ok"] is True
    assert status["mode"] in {"production", "development", "testing", "sandbox"}
    assert status["uptime_seconds"] >= 0
    assert status["health_status"] in {"healthy", "degraded", "unhealthy", "critical"}
    agents = status["agents"]
    assert (agents["total"], agents["active"], agents["busy"], agents["offline"]) == (1, 1, 1, 0)
    assert agents["by_role"] == {"specialist": 1}
    tasks = status["tasks"]
    assert (tasks["active"], tasks["queued"]) == (1, 1)
    assert (tasks["completed_total"], tasks["error_total"]) == (0, 0)
    assert tasks["delegations_total"] == 2
    performance = status["performance"]
    assert (performance["error_rate_percent"], performance["average_task_duration_ms"]) == (0, 0)
    assert performance["delegations_per_second"] > 0
    assert performance["memory_mb"] > 0  # Linux, where the suite runs
    assert status["capabilities_index"] == {"python": 1}
    assert status["plugins"] == {}
    assert isinstance(status["timestamp"], float)


async def test_status_counts_completions(wire: Wire, coder: RawAgent):
    await wire.ok("task.delegate", {"task_id": "done", "required_capabilities": ["python"]})
    await coder.next_offer()
    await coder.complete("done", result=1)

    status = await wire.ok("orchestrator.status")
    assert status["tasks"]["completed_total"] == 1
    assert status["tasks"]["active"] == 0
    assert status["agents"]["busy"] == 0
    assert status["performance"]["error_rate_percent"] == 0


async def test_agents_lists_every_registered_agent(wire: Wire):
    await RawAgent(wire, "a-1", ["python"]).start()
    await RawAgent(wire, "a-2", ["go"], role="monitor").start()

    agents = (await wire.ok("orchestrator.agents"))["agents"]

    assert {a["agent_id"]: a["role"] for a in agents} == {"a-1": "worker", "a-2": "monitor"}
    for agent in agents:
        assert {
            "agent_id",
            "role",
            "capabilities",
            "max_tasks",
            "active_tasks",
            "state",
            "metadata",
            "registered_at",
            "last_seen",
        } <= set(agent)


async def test_tasks_lists_newest_first_and_filters_by_status(wire: Wire, coder: RawAgent):
    await wire.ok("task.delegate", {"task_id": "old", "required_capabilities": ["rust"]})
    await wire.ok("task.delegate", {"task_id": "new", "required_capabilities": ["rust"]})
    await wire.ok("task.delegate", {"task_id": "busy", "required_capabilities": ["python"]})

    every = (await wire.ok("orchestrator.tasks"))["tasks"]
    assert [t["task_id"] for t in every] == ["busy", "new", "old"]

    queued = (await wire.ok("orchestrator.tasks", {"status": "queued"}))["tasks"]
    assert [t["task_id"] for t in queued] == ["new", "old"]

    one = (await wire.ok("orchestrator.tasks", {"limit": 1}))["tasks"]
    assert [t["task_id"] for t in one] == ["busy"]


class AssignedCounter:
    """A tiny plugin: it shows up in ``orchestrator.plugins`` with its hooks."""

    @hookimpl
    def hivebus_task_assigned(self, task: Any, agent: Any) -> None:
        pass


async def test_plugins_lists_name_version_hooks_and_health(wire: Wire, hivebus_core: Core):
    assert (await wire.ok("orchestrator.plugins")) == {"ok": True, "plugins": []}

    hivebus_core.plugins.register(AssignedCounter(), "assigned-counter", "1.2.3")

    [plugin] = (await wire.ok("orchestrator.plugins"))["plugins"]
    assert plugin["name"] == "assigned-counter"
    assert plugin["version"] == "1.2.3"
    assert plugin["hooks"] == ["hivebus_task_assigned"]
    assert plugin["health"] == "healthy"
    assert (await wire.ok("orchestrator.status"))["plugins"] == {"assigned-counter": "healthy"}


# --- events ----------------------------------------------------------------------------------


async def test_events_show_the_whole_life_of_tasks_and_agents(wire: Wire, events: EventLog):
    agent = RawAgent(wire, "worker-1", ["python"])
    await agent.start()
    await events.wait_for("agent.registered", agent_id="worker-1")

    # assigned, then completed
    await wire.ok("task.delegate", {"task_id": "ok-task", "required_capabilities": ["python"]})
    await agent.next_offer()
    await agent.complete("ok-task", result=1)
    # queued (nobody can do it), then cancelled
    await wire.ok("task.delegate", {"task_id": "nobody", "required_capabilities": ["cobol"]})
    await wire.ok("task.cancel", {"task_id": "nobody"})
    # assigned, then failed
    await wire.ok("task.delegate", {"task_id": "bad-task", "required_capabilities": ["python"]})
    await agent.next_offer()
    await agent.complete("bad-task", success=False, error="boom")
    # assigned, then given back when the agent leaves
    await wire.ok("task.delegate", {"task_id": "left", "required_capabilities": ["python"]})
    await agent.next_offer()
    await wire.ok("agent.deregister", {"agent_id": "worker-1"})

    registered = events.events[0]
    assert registered["role"] == "worker"
    assert registered["capabilities"] == ["python"]
    assert registered["max_tasks"] == 1
    assigned = await events.wait_for("task.assigned", task_id="ok-task")
    assert (assigned["agent_id"], assigned["attempt"]) == ("worker-1", 1)
    await events.wait_for("task.completed", task_id="ok-task", agent_id="worker-1")
    queued = await events.wait_for("task.queued", task_id="nobody")
    assert queued["priority"] == "medium"
    await events.wait_for("task.cancelled", task_id="nobody")
    failed = await events.wait_for("task.failed", task_id="bad-task", agent_id="worker-1")
    assert failed["error"] == "boom"
    await events.wait_for("agent.deregistered", agent_id="worker-1", requeued=["left"])
    await events.wait_for("task.requeued", task_id="left")

    assert events.names() == [
        "agent.registered",
        "task.assigned",
        "task.completed",
        "task.queued",
        "task.cancelled",
        "task.assigned",
        "task.failed",
        "task.assigned",
        "task.requeued",
        "agent.deregistered",
    ]
    for subject, event in zip(events.subjects, events.events, strict=True):
        assert subject == f"events.{event['event']}"
        assert isinstance(event["timestamp"], float)
        # Both ids are always present (null when not involved); at least one names something.
        assert "task_id" in event
        assert "agent_id" in event
        assert event["task_id"] or event["agent_id"]


class TestLiveness:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {**FAST, "heartbeat_interval_s": 0.5}

    async def test_a_silent_agent_is_announced_offline_and_its_task_requeued(
        self, wire: Wire, events: EventLog
    ):
        silent = RawAgent(wire, "silent-1", ["python"])
        await silent.start()  # and never heartbeats
        await wire.ok("task.delegate", {"task_id": "orphan", "required_capabilities": ["python"]})

        offline = await events.wait_for("agent.offline", agent_id="silent-1")

        assert offline["requeued"] == ["orphan"]
        await events.wait_for("task.requeued", task_id="orphan")
        await silent.stop()
        # Offline agents are not offered work; a heartbeat from one is refused so it re-registers.
        await wire.fail("agent.heartbeat", {"agent_id": "silent-1"}, code="unknown_agent")
        reply = await silent.start()
        assert reply["agent_id"] == "silent-1"


# --- NATS micro discovery --------------------------------------------------------------------

ENDPOINTS = set(REQUEST_SUBJECTS)


async def _discover(nc: Client, verb: str) -> dict[str, Any]:
    msg = await nc.request(f"$SRV.{verb}.hivebus", b"", timeout=WAIT_S)
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def test_micro_ping_finds_the_core(wire: Wire, hivebus_core: Core):
    ping = await _discover(wire.nc, "PING")
    assert ping["name"] == "hivebus"
    assert ping["type"] == "io.nats.micro.v1.ping_response"
    assert ping["version"]


async def test_micro_info_lists_every_endpoint(wire: Wire, hivebus_core: Core):
    info = await _discover(wire.nc, "INFO")
    assert info["name"] == "hivebus"
    assert info["description"] == "hivebus agent orchestrator"
    assert info["metadata"]["orchestrator_id"] == hivebus_core.config.orchestrator_id
    assert {endpoint["subject"] for endpoint in info["endpoints"]} == ENDPOINTS
    # Endpoint names are the subjects with dashes, as `nats micro info hivebus` shows them.
    for endpoint in info["endpoints"]:
        assert endpoint["name"] == endpoint["subject"].replace(".", "-")
    groups = {endpoint["subject"]: endpoint["queue_group"] for endpoint in info["endpoints"]}
    # Replicas share every subject through one queue group, except heartbeats: every replica
    # judges liveness, so each hears every heartbeat through a group of its own.
    assert groups.pop("agent.heartbeat") == hivebus_core.config.orchestrator_id
    assert set(groups.values()) == {"hivebus"}


async def test_micro_stats_count_requests(wire: Wire):
    await wire.still_serving()
    stats = await _discover(wire.nc, "STATS")
    assert stats["name"] == "hivebus"
    by_subject = {endpoint["subject"]: endpoint for endpoint in stats["endpoints"]}
    assert set(by_subject) == ENDPOINTS
    assert by_subject["orchestrator.status"]["num_requests"] == 1


# --- prefix ----------------------------------------------------------------------------------


class TestPrefix:
    """A configured prefix moves every subject (requests, offers, events) under it."""

    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {**FAST, "prefix": "team1"}

    async def test_every_subject_lives_under_the_prefix(self, wire: Wire, events: EventLog):
        assert wire.subject("agent.register") == "team1.agent.register"
        agent = RawAgent(wire, "p-1", ["python"])
        reply = await agent.start()
        assert reply["assign_subject"] == "team1.agent.p-1.assign"

        await wire.ok("task.delegate", {"task_id": "pt", "required_capabilities": ["python"]})
        assert (await agent.next_offer())["task_id"] == "pt"  # offered on team1.agent.p-1.assign
        await agent.complete("pt", result=None)
        assert (await wire.ok("task.get", {"task_id": "pt"}))["task"]["status"] == "completed"
        for name in ("orchestrator.status", "orchestrator.agents", "orchestrator.plugins"):
            await wire.ok(name)

        await events.wait_for("task.completed", task_id="pt")
        assert events.subjects[:3] == [
            "team1.events.agent.registered",
            "team1.events.task.assigned",
            "team1.events.task.completed",
        ]

    async def test_the_unprefixed_subjects_are_not_served(self, wire: Wire):
        with pytest.raises(nats.errors.NoRespondersError):
            await wire.nc.request("orchestrator.status", b"{}", timeout=WAIT_S)

    async def test_micro_info_lists_the_prefixed_endpoints(self, wire: Wire):
        info = await _discover(wire.nc, "INFO")
        assert {endpoint["subject"] for endpoint in info["endpoints"]} == {
            f"team1.{subject}" for subject in ENDPOINTS
        }


# --- an agent in another language -------------------------------------------------------------


async def test_an_agent_speaking_only_nats_and_json_does_a_task(
    nats_client: Client, hivebus_core: Core
):
    """What a Go, Rust or shell agent does: no hivebus code, only subjects and JSON."""
    nc = nats_client
    offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_offer(msg: Msg) -> None:
        offer = json.loads(msg.data)
        await msg.respond(json.dumps({"accept": True}).encode())
        await offers.put(offer)

    async def request(subject: str, body: dict[str, Any]) -> dict[str, Any]:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=WAIT_S)
        return json.loads(msg.data)  # type: ignore[no-any-return]

    # 1. Subscribe to the fixed assign subject, then register.
    await nc.subscribe("agent.polyglot-1.assign", cb=on_offer)
    registered = await request(
        "agent.register", {"agent_id": "polyglot-1", "capabilities": ["shell"]}
    )
    assert registered["ok"] is True
    assert registered["assign_subject"] == "agent.polyglot-1.assign"

    # 2. Someone delegates; the agent accepts the offer before the delegator hears "assigned".
    delegated = await request(
        "task.delegate",
        {"task_type": "echo", "required_capabilities": ["shell"], "payload": "hi"},
    )
    assert delegated["status"] == "assigned"
    assert delegated["agent_id"] == "polyglot-1"
    async with asyncio.timeout(WAIT_S):
        offer = await offers.get()
    assert offer["task_id"] == delegated["task_id"]
    assert offer["payload"] == "hi"

    # 3. Heartbeat (fire and forget) and report the result.
    await nc.publish("agent.heartbeat", json.dumps({"agent_id": "polyglot-1"}).encode())
    done = await request(
        "task.complete",
        {"task_id": offer["task_id"], "agent_id": "polyglot-1", "result": offer["payload"] * 2},
    )
    assert done["ok"] is True

    task = (await request("task.get", {"task_id": offer["task_id"]}))["task"]
    assert (task["status"], task["result"]) == ("completed", "hihi")
    assert (await request("agent.deregister", {"agent_id": "polyglot-1"}))["ok"] is True


async def test_an_agent_that_declines_leaves_the_task_queued(
    nats_client: Client, hivebus_core: Core
):
    nc = nats_client
    offered = asyncio.Event()

    async def decline(msg: Msg) -> None:
        offered.set()
        await msg.respond(json.dumps({"accept": False, "reason": "busy"}).encode())

    await nc.subscribe("agent.picky-1.assign", cb=decline)
    await nc.request(
        "agent.register",
        json.dumps({"agent_id": "picky-1", "capabilities": ["shell"]}).encode(),
        timeout=WAIT_S,
    )

    msg = await nc.request(
        "task.delegate", json.dumps({"required_capabilities": ["shell"]}).encode(), timeout=WAIT_S
    )
    reply = json.loads(msg.data)

    assert offered.is_set()
    assert reply == {"ok": True, "task_id": reply["task_id"], "status": "queued", "agent_id": None}
