"""Secure mode under attack: every impersonation that worked on an open bus, tried again.

Real processes: a nats-server running the configuration ``hivebus auth`` generates, a core
with its own credentials, and one connection per principal, each with its credentials file.
Every attempt is refused (by the server or by the core), changes nothing, and is audited with
the principal the server authenticated and a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from conftest import eventually
from hivebus import Agent, HiveClient
from hivebus.auth import AuthDir
from hivebus.connection import connect_options
from hivebus_hookspecs.models import Offer, TaskStatus
from secure_bus import WAIT_S, SecureBus, make_auth_dir, secure_bus


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SecureBus]:
    async with secure_bus(make_auth_dir(tmp_path / "auth"), tmp_path / "nats") as secure:
        yield secure


class Held:
    """Agent ``coder-b`` holding task ``t-b`` until released; what reached it is recorded."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.offers: list[str] = []
        self.cancelled: list[str] = []

    async def handle(self, task: Offer) -> Any:
        self.offers.append(task.task_id)
        try:
            await self.release.wait()
        except asyncio.CancelledError:  # a cancel notice reached the agent
            self.cancelled.append(task.task_id)
            raise
        return "done by b"


@pytest.fixture
async def held(bus: SecureBus) -> AsyncIterator[Held]:
    state = Held()
    agent = Agent("coder-b", ["python", "b-only"], state.handle, config=bus.config("coder-b"))
    await agent.start()
    alice = await bus.caller("alice")
    reply = await alice.wire.ok(
        "task.delegate", {"task_id": "t-b", "required_capabilities": ["b-only"]}
    )
    assert (reply["status"], reply["agent_id"]) == ("assigned", "coder-b")
    yield state
    state.release.set()
    await agent.stop(grace_s=1.0)


def task_of(bus: SecureBus, task_id: str) -> tuple[TaskStatus, str | None]:
    assert bus.core is not None
    view = bus.core.orchestrator.get_task(task_id)
    return view.status, view.agent_id


def registered(bus: SecureBus) -> set[str]:
    assert bus.core is not None
    return {a.agent_id for a in bus.core.orchestrator.agents() if a.state.value != "offline"}


# --- who may connect -------------------------------------------------------------------------


async def test_no_credential_at_all_is_refused_by_the_server_and_audited(bus: SecureBus):
    with pytest.raises(nats.errors.Error):
        await nats.connect(bus.server.url, allow_reconnect=False, connect_timeout=2)
    record = await bus.audited(operation="server-connect", decision="unauthenticated")
    assert record["principal"] is None
    assert "refused the connection" in record["reason"]


async def test_a_revoked_credential_is_refused_by_the_core_then_by_the_server(bus: SecureBus):
    a = await bus.caller("coder-a")
    kept = connect_options(bus.config("coder-a"), "kept")  # the holder keeps its copy
    kept.pop("allow_reconnect")
    bus.directory.revoke("coder-a")  # the book changes first: the core stops trusting it
    await a.wire.fail("agent.register", {"agent_id": "coder-a"}, code="unauthenticated")
    assert "coder-a" not in registered(bus)
    record = await bus.audited(principal="coder-a", decision="unauthenticated")
    assert "revoked" in record["reason"]

    assert bus.directory.reload_server()  # then the server drops it
    await eventually(lambda: a.nc.is_closed)
    with pytest.raises(nats.errors.Error):
        await nats.connect(**kept, allow_reconnect=False)
    record = await bus.audited(principal="coder-a", operation="server-connect")
    assert record["decision"] == "unauthenticated"


# --- an agent acts only as itself ------------------------------------------------------------


async def test_agent_a_cannot_register_as_b(bus: SecureBus):
    a = await bus.caller("coder-a")
    message = await a.wire.fail(
        "agent.register", {"agent_id": "coder-b", "capabilities": ["python"]}, code="forbidden"
    )
    assert "coder-a" in message
    assert "coder-b" not in registered(bus)
    record = await bus.audited(principal="coder-a", operation="agent-register")
    assert record["decision"] == "forbidden"
    assert record["agent_id"] == "coder-b"
    assert record["kind"] == "agent"
    assert record["account"] == "HIVE"
    assert "only as agent coder-a" in record["reason"]


async def test_a_forged_request_info_header_is_overwritten_by_the_server(bus: SecureBus):
    """The body claims B and so does a hand-written header: the server's stamp says A."""
    a = await bus.caller("coder-a")
    b_key = bus.directory.book().get("coder-b").public_key  # type: ignore[union-attr]
    forged = json.dumps({"acc": "HIVE", "user": b_key, "name": "coder-b"})
    msg = await a.nc.request(
        "agent.register",
        json.dumps({"agent_id": "coder-b"}).encode(),
        timeout=WAIT_S,
        headers={"Nats-Request-Info": forged},
    )
    assert json.loads(msg.data)["error"]["code"] == "forbidden"
    assert "coder-b" not in registered(bus)
    await bus.audited(principal="coder-a", operation="agent-register", decision="forbidden")


async def test_agent_a_cannot_heartbeat_or_deregister_b(bus: SecureBus, held: Held):
    a = await bus.caller("coder-a")
    await a.wire.fail("agent.heartbeat", {"agent_id": "coder-b"}, code="forbidden")
    await a.wire.fail("agent.deregister", {"agent_id": "coder-b"}, code="forbidden")
    assert "coder-b" in registered(bus)
    assert task_of(bus, "t-b") == (TaskStatus.ASSIGNED, "coder-b")
    await bus.audited(principal="coder-a", operation="agent-heartbeat", decision="forbidden")
    await bus.audited(principal="coder-a", operation="agent-deregister", decision="forbidden")


async def test_agent_a_cannot_complete_bs_task_whatever_it_writes(bus: SecureBus, held: Held):
    a = await bus.caller("coder-a")
    as_b = {"task_id": "t-b", "agent_id": "coder-b", "success": True, "result": "forged"}
    await a.wire.fail("task.complete", as_b, code="forbidden")
    as_a = {**as_b, "agent_id": "coder-a"}
    await a.wire.fail("task.complete", as_a, code="not_task_owner")
    # A task that does not exist is answered the same: nothing is learnt of others' tasks.
    nothing = {**as_a, "task_id": "no-such-task"}
    await a.wire.fail("task.complete", nothing, code="not_task_owner")
    assert task_of(bus, "t-b") == (TaskStatus.ASSIGNED, "coder-b")
    record = await bus.audited(principal="coder-a", operation="task-complete", agent_id="coder-b")
    assert record["task_id"] == "t-b"
    await bus.audited(principal="coder-a", operation="task-complete", agent_id="coder-a")


async def test_a_finished_task_of_b_is_still_not_task_owner_for_a(bus: SecureBus, held: Held):
    held.release.set()
    await eventually(lambda: task_of(bus, "t-b")[0] is TaskStatus.COMPLETED)
    a = await bus.caller("coder-a")
    report = {"task_id": "t-b", "agent_id": "coder-a", "success": False, "error": "x"}
    await a.wire.fail("task.complete", report, code="not_task_owner")
    assert task_of(bus, "t-b") == (TaskStatus.COMPLETED, "coder-b")


# --- what the server keeps from everyone but the core ----------------------------------------


async def test_agent_a_cannot_subscribe_to_bs_offers(bus: SecureBus, held: Held):
    a = await bus.caller("coder-a")
    stolen: list[bytes] = []

    async def steal(msg: Any) -> None:
        stolen.append(msg.data)

    await a.nc.subscribe("agent.coder-b.assign", cb=steal)
    await a.refused("agent.coder-b.assign")
    alice = await bus.caller("alice")
    await alice.wire.ok("task.delegate", {"task_id": "t-b2", "required_capabilities": ["b-only"]})
    await asyncio.sleep(0.2)
    assert stolen == []
    record = await bus.audited(principal="coder-a", operation="server-subscribe")
    assert "agent.coder-b.assign" in record["reason"]


async def test_nobody_but_the_core_sends_offers_cancel_notices_or_events(
    bus: SecureBus, held: Held
):
    a = await bus.caller("coder-a")
    monitor = await bus.caller("mon")
    seen: list[str] = []

    async def watch(msg: Any) -> None:
        seen.append(msg.subject)

    await monitor.nc.subscribe("events.task.completed", cb=watch)
    await monitor.nc.flush()
    await a.nc.publish("agent.coder-b.assign", b'{"task_id": "fake"}')
    await a.refused("agent.coder-b.assign")
    await a.nc.publish("agent.coder-b.cancel", b'{"task_id": "t-b", "reason": "forged"}')
    await a.refused("agent.coder-b.cancel")
    event = {"event": "task.completed", "timestamp": 1.0, "task_id": "t-b"}
    await a.nc.publish("events.task.completed", json.dumps(event).encode())
    await a.refused("events.task.completed")
    await asyncio.sleep(0.2)
    assert held.offers == ["t-b"]
    assert held.cancelled == []
    assert seen == []
    assert task_of(bus, "t-b") == (TaskStatus.ASSIGNED, "coder-b")
    record = await bus.audited(principal="coder-a", operation="server-publish")
    assert "events.task.completed" in record["reason"]


async def test_a_rogue_responder_cannot_join_the_cores_queue_group(bus: SecureBus):
    eve = await bus.caller("eve")
    answered: list[bytes] = []

    async def fake(msg: Any) -> None:
        answered.append(msg.data)
        await msg.respond(b'{"ok": true, "task_id": "fake", "status": "assigned"}')

    await eve.nc.subscribe("task.delegate", queue="hivebus", cb=fake)
    await eve.refused("task.delegate")
    carol = await bus.caller("carol")
    for i in range(20):
        reply = await carol.wire.ok("task.delegate", {"task_id": f"q-{i}"})
        assert (reply["task_id"], reply["status"]) == (f"q-{i}", "queued")
    assert answered == []
    await bus.audited(principal="eve", operation="server-subscribe")


async def test_no_principal_touches_jetstream_or_the_state_buckets(bus: SecureBus):
    a = await bus.caller("coder-a")
    await a.nc.publish("$KV.hivebus_tasks.t-1", b'{"status": "completed"}')
    await a.refused("$KV.hivebus_tasks.t-1")
    await a.nc.publish("$JS.API.STREAM.LIST", b"")
    await a.refused("$JS.API.STREAM.LIST")
    # An admin may publish anywhere in its own account, which has no JetStream at all: the
    # core's buckets live in the core's account.
    root = await bus.caller("root")
    reply = await root.nc.request("$JS.API.INFO", b"", timeout=WAIT_S)
    assert "JetStream not enabled for account" in reply.data.decode()
    await bus.audited(principal="coder-a", operation="server-publish")


async def test_only_monitors_and_admins_read_everything(bus: SecureBus, held: Held):
    a = await bus.caller("coder-a")
    await a.nc.subscribe("events.>")
    await a.refused("events.>")
    alice = await bus.caller("alice")  # delegate only: no read
    await alice.nc.subscribe(">")
    await alice.refused(">")
    await alice.nc.subscribe("events.task.>")
    await alice.refused("events.task.>")
    monitor = await bus.caller("mon")
    await monitor.nc.subscribe(">")
    await monitor.nc.flush()
    await asyncio.sleep(0.1)
    assert not monitor.errors


# --- what the core lets each principal ask ---------------------------------------------------


async def test_a_client_without_cancel_cannot_cancel_anothers_task(bus: SecureBus):
    carol = await bus.caller("carol")
    await carol.wire.ok("task.delegate", {"task_id": "c-1", "required_capabilities": ["none"]})
    alice = await bus.caller("alice")
    await alice.wire.fail("task.cancel", {"task_id": "c-1"}, code="forbidden")
    eve = await bus.caller("eve")
    await eve.wire.fail("task.cancel", {"task_id": "c-1"}, code="forbidden")
    assert task_of(bus, "c-1")[0] is TaskStatus.QUEUED
    record = await bus.audited(principal="alice", operation="task-cancel")
    assert "cancel" in record["reason"]
    # Its own task, a delegator may cancel without the permission.
    await alice.wire.ok("task.delegate", {"task_id": "a-1", "required_capabilities": ["none"]})
    await alice.wire.ok("task.cancel", {"task_id": "a-1"})
    assert task_of(bus, "a-1")[0] is TaskStatus.CANCELLED
    allowed = await bus.audited(principal="alice", operation="task-cancel", decision="allowed")
    assert allowed["outcome"] == "ok"


async def test_a_non_owner_learns_nothing_of_a_task(bus: SecureBus, held: Held):
    eve = await bus.caller("eve")
    existing = await eve.wire.fail("task.get", {"task_id": "t-b"}, code="forbidden")
    missing = await eve.wire.fail("task.get", {"task_id": "nope"}, code="forbidden")
    assert existing.replace("t-b", "X") == missing.replace("nope", "X")
    a = await bus.caller("coder-a")
    await a.wire.fail("task.get", {"task_id": "t-b"}, code="forbidden")
    await eve.wire.fail("orchestrator.tasks", {}, code="forbidden")
    await eve.wire.fail("orchestrator.agents", {}, code="forbidden")
    # The delegator, the assignee and a reader may read it.
    for name in ("alice", "coder-b", "carol", "mon", "root"):
        caller = await bus.caller(name)
        reply = await caller.wire.ok("task.get", {"task_id": "t-b"})
        assert reply["task"]["metadata"]["delegated_by"] == "alice"


async def test_delegating_needs_delegate_and_the_delegator_is_the_core_s_to_write(
    bus: SecureBus,
):
    eve = await bus.caller("eve")
    await eve.wire.fail("task.delegate", {"task_id": "e-1"}, code="forbidden")
    a = await bus.caller("coder-a")
    await a.wire.fail("task.delegate", {"task_id": "e-2"}, code="forbidden")
    alice = await bus.caller("alice")
    forged = {"task_id": "e-3", "metadata": {"delegated_by": "carol"}}
    await alice.wire.fail("task.delegate", forged, code="forbidden")
    assert bus.core is not None
    assert bus.core.orchestrator.live_count == 0
    await bus.audited(principal="eve", operation="task-delegate", decision="forbidden")


async def test_an_agent_registers_only_with_what_it_was_granted(bus: SecureBus):
    tester = await bus.caller("tester")
    extra = {"agent_id": "tester", "capabilities": ["test", "deploy"], "role": "specialist"}
    await tester.wire.fail("agent.register", extra, code="forbidden")
    other_role = {"agent_id": "tester", "capabilities": ["test"], "role": "coordinator"}
    await tester.wire.fail("agent.register", other_role, code="forbidden")
    assert "tester" not in registered(bus)
    granted = {"agent_id": "tester", "capabilities": ["test"], "role": "specialist"}
    await tester.wire.ok("agent.register", granted)
    assert "tester" in registered(bus)
    await tester.wire.ok("agent.deregister", {"agent_id": "tester"})


async def test_a_flood_past_the_rate_limit_is_refused_and_audited(bus: SecureBus):
    await bus.stop_core()
    bus.settings = {"principal_rate_limits": {"client": 2.0}, "principal_burst_s": 1.0}
    await bus.start_core()
    eve = await bus.caller("eve")
    codes = []
    for _ in range(10):
        reply = await eve.wire.request("orchestrator.status")
        codes.append("ok" if reply.body["ok"] else reply.body["error"]["code"])
    assert codes[:2] == ["ok", "ok"]
    assert "rate_limited" in codes
    record = await bus.audited(principal="eve", decision="rate_limited")
    assert "requests/s" in record["reason"]
    # A record stands for many refusals (one a second per principal), not one each.
    flood = await bus.audit(principal="eve", decision="rate_limited")
    assert len(flood) < codes.count("rate_limited")
    # Limits are per principal: another client is served meanwhile.
    carol = await bus.caller("carol")
    await carol.wire.ok("orchestrator.status")


# --- honest principals work with their credentials alone ------------------------------------


async def test_honest_agents_and_clients_work_with_their_credentials(bus: SecureBus):
    async def shout(task: Offer) -> Any:
        return str(task.payload).upper()

    async with Agent("coder-a", ["python"], shout, creds=bus.directory.creds_path("coder-a"),
                     config=bus.config()):  # fmt: skip
        for name in ("carol", "alice"):  # carol follows events; alice, without read, polls
            async with HiveClient(config=bus.config(name)) as hive:
                done = await hive.delegate(
                    "shout", ["python"], payload=f"hi {name}", wait=True, wait_timeout=10
                )
                assert (done.status, done.result) == (TaskStatus.COMPLETED, f"HI {name.upper()}")
    records = await bus.audit(decision="allowed")
    operations = {(r["principal"], r["operation"]) for r in records}
    assert {("coder-a", "agent-register"), ("carol", "task-delegate")} <= operations
    assert ("coder-a", "task-complete") in operations
    assert ("coder-a", "agent-deregister") in operations


async def test_the_audit_is_for_monitors_and_admins(bus: SecureBus):
    carol = await bus.caller("carol")
    await carol.wire.fail("orchestrator.audit", {}, code="forbidden")
    root = await bus.caller("root")
    reply = await root.wire.ok("orchestrator.audit", {"principal": "carol", "denied": True})
    assert [r["operation"] for r in reply["records"]] == ["orchestrator-audit"]


def test_an_auth_directory_holds_no_secret_but_the_credentials(tmp_path: Path):
    directory = make_auth_dir(tmp_path / "auth")
    conf = directory.server_conf.read_text()
    book = directory.book_path.read_text()
    for path in directory.creds_dir.iterdir():
        seed = next(line for line in path.read_text().splitlines() if line.startswith("SU"))
        assert seed not in conf
        assert seed not in book
        assert path.stat().st_mode & 0o077 == 0
    assert AuthDir(tmp_path / "auth").book().get("coder-a") is not None


async def test_the_cores_own_cancel_notice_still_reaches_the_agent(bus: SecureBus, held: Held):
    """The control for the forged notice above: a real one does stop the work."""
    carol = await bus.caller("carol")
    await carol.wire.ok("task.cancel", {"task_id": "t-b"})
    await eventually(lambda: held.cancelled == ["t-b"])


async def test_a_heartbeat_published_without_a_reply_subject_is_stamped_too(bus: SecureBus):
    """Agents may publish heartbeats (no reply): the server stamps those as well."""
    a = await bus.caller("coder-a")
    await a.wire.ok("agent.register", {"agent_id": "coder-a", "capabilities": ["python"]})
    assert bus.core is not None
    before = bus.core.orchestrator.agent("coder-a")
    assert before is not None
    await asyncio.sleep(0.05)
    await a.nc.publish("agent.heartbeat", json.dumps({"agent_id": "coder-a"}).encode())
    await eventually(
        lambda: (
            bus.core is not None
            and (seen := bus.core.orchestrator.agent("coder-a")) is not None
            and seen.last_seen > before.last_seen
        )
    )
    assert await bus.audit(decision="unauthenticated") == []


async def test_retrying_a_task_needs_cancel_or_being_its_delegator(bus: SecureBus):
    carol = await bus.caller("carol")
    await carol.wire.ok("task.delegate", {"task_id": "r-1", "required_capabilities": ["none"]})
    await carol.wire.ok("task.cancel", {"task_id": "r-1"})
    alice = await bus.caller("alice")
    await alice.wire.fail("task.retry", {"task_id": "r-1"}, code="forbidden")
    assert task_of(bus, "r-1")[0] is TaskStatus.CANCELLED
    await bus.audited(principal="alice", operation="task-retry", decision="forbidden")
    await alice.wire.ok("task.delegate", {"task_id": "r-2", "required_capabilities": ["none"]})
    await alice.wire.ok("task.cancel", {"task_id": "r-2"})
    await alice.wire.ok("task.retry", {"task_id": "r-2"})  # its own
    assert task_of(bus, "r-2")[0] is TaskStatus.QUEUED
    await carol.wire.ok("task.retry", {"task_id": "r-1"})  # carol holds cancel
    await bus.audited(principal="carol", operation="task-retry", decision="allowed")


async def test_a_delegation_reaches_the_domain_as_the_client_wrote_it(bus: SecureBus):
    """The core adds the delegator and changes nothing else (task rules included)."""
    alice = await bus.caller("alice")
    body = {
        "task_id": "w-1",
        "required_capabilities": ["none"],
        "priority": "high",
        "metadata": {"ticket": 7},
        "retry": {"max_attempts": 3},
        "delay_s": 60,
    }
    await alice.wire.ok("task.delegate", body)
    task = (await alice.wire.ok("task.get", {"task_id": "w-1"}))["task"]
    assert task["metadata"] == {"ticket": 7, "delegated_by": "alice"}
    assert task["priority"] == "high"
    assert task["not_before"] is not None


# --- following a task ------------------------------------------------------------------------


async def test_a_reader_follows_a_task_and_nobody_forges_its_updates(bus: SecureBus, held: Held):
    carol = await bus.caller("carol")  # may read
    seen: list[dict[str, Any]] = []

    async def note(msg: Any) -> None:
        seen.append(json.loads(msg.data))

    await carol.nc.subscribe("task.t-b.updates", cb=note)
    await carol.nc.flush()
    alice = await bus.caller("alice")  # delegate only
    forged = {"event": "task.completed", "task_id": "t-b", "timestamp": 0.0, "forged": True}
    await alice.nc.publish("task.t-b.updates", json.dumps(forged).encode())
    await alice.refused("task.t-b.updates")
    eve = await bus.caller("eve")  # may not read
    await eve.nc.subscribe("task.t-b.updates")
    await eve.refused("task.t-b.updates")

    held.release.set()
    await eventually(lambda: any(e["event"] == "task.completed" for e in seen))
    assert not any(e.get("forged") for e in seen)
    assert {e["task_id"] for e in seen} == {"t-b"}
