"""Nothing a client sends can silence the core: each request here once took it off the bus,
overfilled a limit or slipped through as valid. Both state modes where state is involved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import eventually
from contract_wire import ERROR_HEADER, WAIT_S, RawAgent, Wire
from hivebus import Core, HiveClient
from hivebus.adapters.jetstream import BucketNames
from hivebus.config import HivebusConfig
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus_hookspecs.models import MAX_JSON_DEPTH, DelegateReply, TaskStatus
from nats.aio.client import Client
from nats.aio.msg import Msg
from processes import run, spawn

MIB = 1024 * 1024


@pytest.fixture(params=["memory", "jetstream"])
def state(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hivebus_settings(state: str) -> dict[str, Any]:
    return {"state": state, "offer_timeout_s": 1.0, "heartbeat_interval_s": 0.5}


async def test_an_error_naming_25_000_unknown_fields_stays_small_and_the_core_serves(wire: Wire):
    body = orjson.dumps({str(i): 0 for i in range(25_500)})
    assert 200_000 < len(body) < 300_000
    for subject in ("agent.register", "task.delegate", "task.complete", "orchestrator.status"):
        message = await wire.fail(subject, raw=body, code="invalid_request")
        assert len(message) < 1024
        assert message.endswith("more problems"), message
    await wire.still_serving()
    ping = await wire.nc.request("$SRV.PING.hivebus", b"", timeout=WAIT_S)
    assert json.loads(ping.data)["name"] == "hivebus"


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [
        ("orchestrator.tasks", {"limit": True}, "limit"),
        ("agent.register", {"agent_id": "a", "max_tasks": "5"}, "max_tasks"),
        ("task.delegate", {"queue": 1}, "queue"),
        ("task.complete", {"task_id": "t", "agent_id": "a", "success": 0}, "success"),
        ("task.delegate", {"execution_timeout_s": True}, "execution_timeout_s"),
        ("agent.heartbeat", {"agent_id": "a", "active_tasks": 1.5}, "active_tasks"),
    ],
)
async def test_no_value_is_coerced_across_json_types(wire: Wire, subject, body, field):
    message = await wire.fail(subject, body, code="invalid_request")
    assert message.startswith(f"{field}:"), message


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"payload": NaN}', "NaN"),
        (b'{"payload": [Infinity]}', "Infinity"),
        (b'{"payload": -Infinity}', "-Infinity"),
        (b'{"task_type": "a", "task_type": "b"}', "duplicate key 'task_type'"),
        (b'{"payload": {"x": 1, "x": 2}}', "duplicate key 'x'"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"payload": 18446744073709551616}', "does not fit in 64 bits"),
        (b'{"payload": [-9223372036854775809]}', "does not fit in 64 bits"),
    ],
)
async def test_json_outside_rfc_8259_is_invalid_json(wire: Wire, raw: bytes, says: str):
    message = await wire.fail("task.delegate", raw=raw, code="invalid_json")
    assert says in message
    await wire.still_serving()


async def test_nesting_is_limited_to_the_documented_depth(wire: Wire):
    def nested(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth - 1):  # the body itself is one level
            value = [value]
        return value

    await wire.ok("task.delegate", {"task_id": "deep-ok", "payload": nested(MAX_JSON_DEPTH)})
    message = await wire.fail(
        "task.delegate", {"payload": nested(MAX_JSON_DEPTH + 1)}, code="invalid_json"
    )
    assert f"deeper than {MAX_JSON_DEPTH}" in message
    raw = b'{"payload":' + b"[" * 5000 + b"]" * 5000 + b"}"
    await wire.fail("task.delegate", raw=raw, code="invalid_json")
    await wire.still_serving()


def _body_of(size: int, fields: dict[str, Any], filler: str) -> dict[str, Any]:
    """``fields`` plus the string ``filler`` padded so that the JSON body is ``size`` bytes."""
    empty = len(json.dumps({**fields, filler: ""}).encode())
    return {**fields, filler: "x" * (size - empty)}


async def test_a_result_too_large_to_store_is_refused_before_anything_changes(wire: Wire):
    """The issue's numbers: a delegation of 524,280 bytes and a completion of 524,007, each
    under max_payload_bytes; stored together (JetStream) they overfilled a NATS message, the
    server closed the core's connection, and the SDK's retry killed the restarted core."""
    agent = RawAgent(wire, "big-1", ["big"])
    await agent.start()
    delegation = _body_of(
        524_280, {"task_id": "big-task", "required_capabilities": ["big"]}, "payload"
    )
    await wire.ok("task.delegate", delegation)
    await agent.next_offer()
    completion = _body_of(524_007, {"task_id": "big-task", "agent_id": "big-1"}, "result")
    for _ in range(2):  # the retry of the same completion is refused the same way
        message = await wire.fail("task.complete", completion, code="payload_too_large")
        assert "record would be" in message
    task = (await wire.ok("task.get", {"task_id": "big-task"}))["task"]
    assert task["status"] == "assigned"
    done = await agent.complete("big-task", success=False, error="e" * 8192)
    assert done["task"]["status"] == "failed"
    await wire.still_serving()


async def test_a_task_too_large_to_store_with_its_outcome_is_refused_unstored(
    nats_server, state: str
) -> None:
    """A core reading bodies up to 2 MiB on a server carrying 1 MiB: a task must still leave
    room in its record for a failure report, or an accepted task could never be finished."""
    config = HivebusConfig.load(
        nats_url=nats_server.url, state=state, plugin_autoload=False, max_payload_bytes=2 * MIB
    )
    async with Core(config), await connect(config, "test") as nc:
        wire = Wire(nc)
        message = await wire.fail(
            "task.delegate",
            {"task_id": "too-big", "payload": "x" * 1_020_000},
            code="payload_too_large",
        )
        assert "record would be" in message
        await wire.fail("task.get", {"task_id": "too-big"}, code="unknown_task")
        await wire.ok("task.delegate", {"task_id": "fits", "payload": "x" * 1_000_000})


async def test_the_sdk_reports_a_result_too_large_as_a_failure(hive: HiveClient, make_agent):
    async def huge(task: Any) -> str:
        return "r" * 600_000

    await make_agent("huge-1", ["huge"], handler=huge)
    done = await hive.delegate(
        "t", ["huge"], payload="p" * 500_000, wait=True, wait_timeout=WAIT_S * 2
    )
    assert not isinstance(done, DelegateReply)
    assert done.status is TaskStatus.FAILED
    assert done.error is not None
    assert "payload_too_large" in done.error


async def test_listings_page_so_that_every_reply_fits(nats_server, state: str) -> None:
    config = HivebusConfig.load(
        nats_url=nats_server.url,
        state=state,
        plugin_autoload=False,
        max_metadata_bytes=450_000,
        heartbeat_interval_s=30.0,
    )
    async with Core(config), HiveClient(config=config) as hive:
        assert hive.nc is not None
        wire = Wire(hive.nc)
        for i in range(3):
            await wire.ok(
                "agent.register",
                {"agent_id": f"fat-{i}", "metadata": {"blob": "m" * 400_000}},
            )
        first = await wire.ok("orchestrator.agents")
        assert [a["agent_id"] for a in first["agents"]] == ["fat-0", "fat-1"]
        second = await wire.ok("orchestrator.agents", {"cursor": first["next_cursor"]})
        assert [a["agent_id"] for a in second["agents"]] == ["fat-2"]
        assert second["next_cursor"] is None
        assert [a.agent_id for a in await hive.agents()] == ["fat-0", "fat-1", "fat-2"]
        for i in range(40):
            caps = [f"{i:03d}-{c:03d}-" + "c" * 120 for c in range(256)]
            await wire.ok("agent.register", {"agent_id": f"wide-{i:02d}", "capabilities": caps})
        status = await wire.ok("orchestrator.status")
        assert len(status["capabilities_index"]) == 100
        assert status["capabilities_total"] == 40 * 256
        small = await wire.ok("orchestrator.agents", {"limit": 5, "cursor": "fat-2"})
        assert [a["agent_id"] for a in small["agents"]] == [f"wide-{i:02d}" for i in range(5)]
        assert small["next_cursor"] == "wide-04"
        await wire.fail("orchestrator.tasks", {"cursor": "nonsense"}, code="invalid_request")


async def test_limits_hold_against_a_burst_of_concurrent_requests(nats_server, state: str) -> None:
    config = HivebusConfig.load(
        nats_url=nats_server.url,
        state=state,
        plugin_autoload=False,
        max_agents=20,
        max_concurrent_tasks=30,
        heartbeat_interval_s=30.0,
    )
    async with Core(config), HiveClient(config=config) as hive:
        assert hive.nc is not None
        wire = Wire(hive.nc)
        registrations = await asyncio.gather(
            *(wire.request("agent.register", {"agent_id": f"a{i}"}) for i in range(60))
        )
        codes = [r.body.get("error", {}).get("code", "ok") for r in registrations]
        assert codes.count("ok") == 20
        assert set(codes) == {"ok", "max_agents_reached"}
        status = await wire.ok("orchestrator.status")
        assert status["agents"]["active"] == 20

        delegations = await asyncio.gather(
            *(
                wire.request("task.delegate", {"required_capabilities": ["nobody"]})
                for _ in range(90)
            )
        )
        codes = [r.body.get("error", {}).get("code", "ok") for r in delegations]
        assert codes.count("ok") == 30
        assert set(codes) == {"ok", "over_capacity"}
        status = await wire.ok("orchestrator.status")
        assert status["tasks"]["queued"] == 30


async def test_the_bytes_of_live_tasks_are_budgeted(nats_server, state: str) -> None:
    config = HivebusConfig.load(
        nats_url=nats_server.url,
        state=state,
        plugin_autoload=False,
        max_live_task_bytes=1_000_000,
    )
    async with Core(config), HiveClient(config=config) as hive:
        assert hive.nc is not None
        wire = Wire(hive.nc)
        replies = [
            await wire.request("task.delegate", {"task_id": f"b{i}", "payload": "x" * 300_000})
            for i in range(4)
        ]
        assert [r.body["ok"] for r in replies] == [True, True, True, False]
        assert replies[3].body["error"]["code"] == "over_capacity"
        assert "max_live_task_bytes" in replies[3].body["error"]["message"]
        await wire.ok("task.cancel", {"task_id": "b0"})  # a finished task frees its bytes
        await wire.ok("task.delegate", {"task_id": "b4", "payload": "x" * 300_000})


async def test_metadata_and_slots_are_capped(wire: Wire):
    message = await wire.fail(
        "agent.register", {"agent_id": "greedy", "max_tasks": 10_000}, code="invalid_request"
    )
    assert "max_tasks_per_agent=100" in message
    message = await wire.fail(
        "agent.register",
        {"agent_id": "fat", "metadata": {"blob": "m" * 20_000}},
        code="payload_too_large",
    )
    assert "max_metadata_bytes" in message
    await wire.fail("task.delegate", {"metadata": {"blob": "m" * 20_000}}, code="payload_too_large")
    await wire.fail("orchestrator.agents", {"limit": 0}, code="invalid_request")


async def test_offline_agents_are_forgotten_after_the_retention(nats_server, state: str) -> None:
    config = HivebusConfig.load(
        nats_url=nats_server.url,
        state=state,
        plugin_autoload=False,
        heartbeat_interval_s=0.2,
        offline_after_missed=2,
        agent_retention_s=0.0,
    )
    async with Core(config) as core, HiveClient(config=config) as hive:
        assert hive.nc is not None
        wire = Wire(hive.nc)
        await wire.ok("agent.register", {"agent_id": "silent", "metadata": {"m": "x" * 1000}})
        await eventually(lambda: core.orchestrator.registry.get("silent") is None, timeout=10)
        assert await hive.agents() == []
        # and its id is free again
        await wire.ok("agent.register", {"agent_id": "silent"})


async def test_a_task_without_a_timeout_gets_the_default_one(nats_server) -> None:
    config = HivebusConfig.load(
        nats_url=nats_server.url,
        state="memory",
        plugin_autoload=False,
        heartbeat_interval_s=0.5,
        default_execution_timeout_s=1.0,
        on_execution_timeout="fail",
    )
    async with Core(config), HiveClient(config=config) as hive:
        assert hive.nc is not None
        wire = Wire(hive.nc)
        hoarder = RawAgent(wire, "hoarder", ["x"], max_tasks=5)
        await hoarder.start()
        await wire.ok("task.delegate", {"task_id": "held", "required_capabilities": ["x"]})

        async def failed() -> bool:
            return (await hive.get("held")).status is TaskStatus.FAILED

        await eventually(failed, timeout=10)
        assert "execution timeout of 1.0s" in ((await hive.get("held")).error or "")
        await hoarder.stop()


class _Picky:
    """An agent that refuses one task type and completes every other offer at once."""

    def __init__(self, wire: Wire, agent_id: str, refuse: str) -> None:
        self.wire = wire
        self.agent_id = agent_id
        self.refuse = refuse
        self.refused: list[str] = []
        self.done: list[str] = []
        self.hold: asyncio.Event = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        nc = self.wire.nc
        self._sub = await nc.subscribe(f"agent.{self.agent_id}.assign", cb=self._on_offer)
        await nc.flush()
        await self.wire.ok("agent.register", {"agent_id": self.agent_id, "capabilities": ["w"]})

    async def _on_offer(self, msg: Msg) -> None:
        offer = json.loads(msg.data)
        if offer["task_type"] == self.refuse:
            self.refused.append(offer["task_id"])
            await msg.respond(b'{"accept": false, "reason": "not mine"}')
            return
        await msg.respond(b'{"accept": true}')
        task = asyncio.create_task(self._finish(offer["task_id"]))
        self._tasks.add(task)

    async def _finish(self, task_id: str) -> None:
        if task_id == "first":
            await self.hold.wait()
        await self.wire.ok("task.complete", {"task_id": task_id, "agent_id": self.agent_id})
        self.done.append(task_id)

    async def stop(self) -> None:
        await self._sub.unsubscribe()
        self.hold.set()
        await asyncio.gather(*self._tasks)


@pytest.mark.parametrize("hivebus_settings", [{"refusal_backoff_s": 20.0}])
async def test_a_task_every_agent_refuses_does_not_hold_up_the_queue(wire: Wire):
    picky = _Picky(wire, "picky", refuse="poison")
    await picky.start()
    await wire.ok("task.delegate", {"task_id": "first", "required_capabilities": ["w"]})
    # the agent is busy: everything below waits in line, the poison at the head
    await wire.ok(
        "task.delegate",
        {"task_id": "poison", "task_type": "poison", "required_capabilities": ["w"]},
    )
    for i in range(5):
        await wire.ok("task.delegate", {"task_id": f"next-{i}", "required_capabilities": ["w"]})
    picky.hold.set()  # the agent frees its slot: the poison is offered first, and refused
    await eventually(lambda: len(picky.done) == 6, timeout=10)
    assert picky.refused == ["poison"]  # once: it backs off rather than block the others
    assert picky.done == ["first", *(f"next-{i}" for i in range(5))]
    poison = (await wire.ok("task.get", {"task_id": "poison"}))["task"]
    assert poison["status"] == "queued"
    await picky.stop()


@pytest.mark.parametrize("hivebus_settings", [{"state": "jetstream"}])
async def test_a_stale_delete_is_a_conflict_not_an_internal_error(hivebus_core: Core, wire: Wire):
    from hivebus.domain.ports import Conflict

    await wire.ok("agent.register", {"agent_id": "gone"})
    state = hivebus_core._state
    assert state is not None
    agent = await state.load_agent("gone")
    assert agent is not None
    stale = agent.evolve(revision=agent.revision)
    await hivebus_core.orchestrator.cache.save_agent(agent.evolve(metadata={"moved": "on"}))
    with pytest.raises(Conflict):
        await state.delete_agent(stale)
    await wire.ok("agent.deregister", {"agent_id": "gone"})


@pytest.mark.parametrize("hivebus_settings", [{"state": "jetstream", "max_agents": 1000}])
async def test_deregistering_while_tasks_come_and_go_succeeds(wire: Wire, hivebus_core: Core):
    worker = RawAgent(wire, "busy", ["b"], max_tasks=50)
    await worker.start()
    delegations = [
        asyncio.create_task(wire.request("task.delegate", {"required_capabilities": ["b"]}))
        for _ in range(50)
    ]
    await worker.offered.wait()
    reply = await wire.request("agent.deregister", {"agent_id": "busy"})
    await asyncio.gather(*delegations)
    assert reply.body["ok"] is True, reply.body
    assert hivebus_core.orchestrator.registry.get("busy") is None
    await worker.stop()


async def test_wait_returns_only_a_final_task_whatever_the_events_say(
    hive: HiveClient, make_agent, nats_client: Client
):
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(task: Any) -> str:
        started.set()
        await release.wait()
        return "done"

    await make_agent("slow-1", ["slow"], handler=slow)
    waiting = asyncio.create_task(
        hive.delegate("t", ["slow"], task_id="forged", wait=True, wait_timeout=WAIT_S * 2)
    )
    await started.wait()
    forged = {"event": "task.completed", "timestamp": 0.0, "task_id": "forged"}
    for _ in range(3):
        await nats_client.publish("events.task.completed", orjson.dumps(forged))
        await nats_client.flush()
        await hive.get("forged")  # a round trip: the forged events have been delivered
    assert not waiting.done()
    release.set()
    done = await waiting
    assert done.status is TaskStatus.COMPLETED
    assert done.result == "done"


@pytest.mark.parametrize("hivebus_settings", [{"state": "jetstream"}])
async def test_an_unreadable_record_is_skipped_and_reported_not_fatal(
    hivebus_config: HivebusConfig, nats_client: Client
):
    js = nats_client.jetstream()
    names = BucketNames.for_prefix("")
    async with Core(hivebus_config), HiveClient(config=hivebus_config) as hive:
        await hive.delegate("t", ["nobody"], task_id="kept")
    tasks = await js.key_value(names.tasks)
    await tasks.put("garbage", b"not a record")
    await tasks.put("half", b'{"task_id": "half"}')
    async with Core(hivebus_config), HiveClient(config=hivebus_config) as hive:
        assert (await hive.get("kept")).status is TaskStatus.QUEUED
        status = await hive.status()
        assert status["health_status"] == "degraded"
        assert any("2 unreadable records" in issue for issue in status["health_issues"])
        with pytest.raises(Exception, match="unknown_task"):
            await hive.get("garbage")


@pytest.mark.parametrize("hivebus_settings", [{}])
async def test_error_replies_keep_their_headers_small(wire: Wire):
    reply = await wire.request("agent.register", raw=orjson.dumps({str(i): 0 for i in range(9000)}))
    assert len(reply.headers[ERROR_HEADER]) < 1024


async def test_a_connection_closed_for_good_is_noticed(nats_server, state: str) -> None:
    config = HivebusConfig.load(
        nats_url=nats_server.url,
        state=state,
        plugin_autoload=False,
        max_reconnect_attempts=1,
        reconnect_wait_s=0.1,
    )
    core = Core(config)
    await core.start()
    try:
        nats_server.stop()
        async with asyncio.timeout(20):
            await core.lost.wait()
        health, issues = await core.orchestrator.health()
        assert health.value == "unhealthy"
        assert "disconnected from NATS" in issues
    finally:
        await core.stop()


async def test_no_reply_larger_than_a_nats_message_is_ever_sent(nats_server, state: str) -> None:
    """The reply guard: a status made too large (by a plugin's contribution) is an error."""
    from hivebus_hookspecs import hookimpl

    class Bloat:
        @hookimpl
        def hivebus_status(self, orchestrator: Any) -> dict[str, Any]:
            return {"bloat": "b" * (2 * MIB)}

    from hivebus.plugins import PluginHost

    config = HivebusConfig.load(nats_url=nats_server.url, state=state, plugin_autoload=False)
    host = PluginHost(config)
    host.register(Bloat(), "bloat")
    async with Core(config, plugins=host), await connect(config, "t") as nc:
        wire = Wire(nc)
        await wire.fail("orchestrator.status", code="reply_too_large")
        await wire.ok("orchestrator.agents")


SECRET = "s3cret-Pw-1"


@pytest.fixture
def guarded_server(tmp_path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(
        port=0, data_dir=tmp_path / "guarded", extra_args=("--user", "hive", "--pass", SECRET)
    )
    server.start()
    yield server
    server.stop()


def test_credentials_never_appear_in_output_or_errors(guarded_server: EmbeddedServer, tmp_path):
    good = f"nats://hive:{SECRET}@127.0.0.1:{guarded_server.port}"
    up = spawn("up", "--nats", good, "-p", "no:performance", cwd=tmp_path)
    try:
        up.wait_for("serving on")
        status = run("status", "--nats", good, "--json")
        assert status.returncode == 0, status.stderr
    finally:
        assert up.stop() == 0
    output = "\n".join(up.lines)
    assert "nats://***@127.0.0.1" in output
    assert SECRET not in output
    wrong = f"nats://hive:{SECRET}x@127.0.0.1:{guarded_server.port}"
    refused = run("status", "--nats", wrong)
    assert refused.returncode == 1
    assert SECRET not in refused.stderr + refused.stdout
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "authorization" in lines[0].lower(), lines[0]


def test_up_exits_non_zero_when_nats_is_gone_for_good(tmp_path):
    server = EmbeddedServer(port=0, data_dir=tmp_path / "nats")
    server.start()
    up = spawn(
        "up", "--nats", server.url, "-p", "no:performance", cwd=tmp_path,
        HIVEBUS_MAX_RECONNECT_ATTEMPTS="2", HIVEBUS_RECONNECT_WAIT_S="0.2",
    )  # fmt: skip
    try:
        up.wait_for("serving on")
        server.stop()
        up.wait_for("closed for good", timeout=30)
        assert up.popen.wait(timeout=30) == 3
    finally:
        up.stop()
        server.stop()
