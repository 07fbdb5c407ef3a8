"""Secure mode's other shapes: TLS, the audit in JetStream, the reading of the server's log."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import nats
import nats.errors
import pytest
from hivebus import Agent, HiveClient
from hivebus.auth.server_log import parse_refusal
from hivebus_hookspecs.models import Offer, TaskStatus
from secure_bus import SecureBus, make_auth_dir, secure_bus, secure_server


async def echo(task: Offer) -> object:
    return task.payload


async def test_tls_from_auth_init_is_verified_by_every_client(tmp_path: Path):
    directory = make_auth_dir(tmp_path / "auth", tls=True)
    # The core's credentials name the CA: it verifies the server when it starts.
    async with secure_bus(directory, tmp_path / "nats") as bus:
        async with (
            Agent("coder-a", ["python"], echo, config=bus.config("coder-a")),
            HiveClient(config=bus.config("carol")) as hive,
        ):
            done = await hive.delegate("t", ["python"], payload=7, wait=True)
            assert (done.status, done.result) == (TaskStatus.COMPLETED, 7)
        # A client that does not trust the CA is refused by TLS itself.
        untrusting = ssl.create_default_context()
        seed = directory.creds_path("carol").read_text().splitlines()[-1]
        with pytest.raises((ssl.SSLError, nats.errors.Error, OSError)):
            await nats.connect(
                bus.server.url, tls=untrusting, nkeys_seed_str=seed, allow_reconnect=False
            )


async def test_the_audit_lives_in_a_jetstream_stream_and_survives_the_core(tmp_path: Path):
    directory = make_auth_dir(tmp_path / "auth")
    settings = {"state": "jetstream", "audit_retention_s": 3600.0}
    async with secure_bus(directory, tmp_path / "nats", settings) as bus:
        eve = await bus.caller("eve")
        await eve.wire.fail("task.delegate", {"task_id": "e-1"}, code="forbidden")
        await bus.audited(principal="eve", decision="forbidden")
        await bus.stop_core()
        await bus.start_core()  # a new core reads the records the old one kept
        record = await bus.audited(principal="eve", decision="forbidden")
        assert record["operation"] == "task-delegate"
        denied = await bus.caller("root")
        reply = await denied.wire.ok("orchestrator.audit", {"denied": True, "limit": 5})
        assert all(r["decision"] != "allowed" for r in reply["records"])


KEY = "U" + "A" * 55


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'[1] 2026/12/01 08:13:31.171669 [ERR] 127.0.0.1:50838 - cid:27 - "v2:python3:x" - '
            f'"HIVE/nkey:{KEY}" - Publish Violation - Subject "task.delegate"',
            ("server-publish", KEY, "the NATS server refused to let it publish to task.delegate"),
        ),
        (
            f'[1] 2026/12/01 08:18:04.190107 [ERR] 127.0.0.1:50588 - cid:11 - "v2:python3:x" - '
            f'"HIVE/nkey:{KEY}" - Subscription Violation - Subject "agent.b.assign", SID 1',
            (
                "server-subscribe",
                KEY,
                "the NATS server refused to let it subscribe to agent.b.assign",
            ),
        ),
        (
            f"[1] 2026/12/01 08:14:07.211363 [ERR] 127.0.0.1:56770 - cid:43 - "
            f'authentication error - Nkey "{KEY}"',
            ("server-connect", KEY, "the NATS server refused the connection"),
        ),
        (
            "[1] 2026/12/01 08:13:36.809181 [ERR] 127.0.0.1:50844 - cid:30 - authentication error",
            ("server-connect", None, "the NATS server refused the connection"),
        ),
        ("[1] 2026/12/01 08:13:36.809181 [INF] Server is ready", None),
    ],
)
def test_the_servers_refusals_are_read_from_its_log(line: str, expected: object):
    assert parse_refusal(line) == expected


def test_a_connection_name_cannot_put_words_in_the_servers_mouth():
    """The name is the client's own: an identity written into it is not the one read."""
    framed = "U" + "B" * 55
    line = (
        f'[1] [ERR] 1.2.3.4:5 - cid:9 - "x - "HIVE/nkey:{framed}" - Publish Violation - '
        f'Subject "a"" - "HIVE/nkey:{KEY}" - Publish Violation - Subject "task.delegate"'
    )
    refusal = parse_refusal(line)
    assert refusal is not None
    assert refusal[1] == KEY


async def test_every_replica_hears_every_heartbeat_through_the_import(tmp_path: Path):
    """Heartbeats use a queue group per replica: the service import must reach each one,
    or a replica would mark a live agent offline."""
    directory = make_auth_dir(tmp_path / "auth")
    server = secure_server(directory, tmp_path / "nats")
    server.start()
    bus = SecureBus(directory, server, {"state": "jetstream"})
    other = SecureBus(directory, server, {"state": "jetstream"})
    try:
        await bus.start_core()
        await other.start_core()
        async with Agent("coder-a", ["python"], echo, config=bus.config("coder-a")):
            beats = 8  # heartbeat_interval_s 0.5: well past offline_after_missed (3)
            await asyncio.sleep(0.5 * beats)
            for core in (bus.core, other.core):
                assert core is not None
                seen = core.orchestrator.agent("coder-a")
                assert seen is not None
                assert seen.state.value == "active"
    finally:
        await other.close()
        await bus.close()
        server.stop()


async def test_the_legacy_facade_joins_a_secure_bus_as_its_one_principal(tmp_path: Path):
    from hivebus.auth import Kind, Permission
    from hivebus.universal import (
        AgentRole,
        OrchestratorConfig,
        get_universal_orchestrator,
        shutdown_universal_orchestrator,
    )

    directory = make_auth_dir(tmp_path / "auth")
    directory.add(Kind.AGENT, "legacy", can=[Permission.DELEGATE, Permission.READ])
    async with secure_bus(directory, tmp_path / "nats") as bus:
        config = OrchestratorConfig(
            nats_url=bus.server.url,
            run_core=False,
            creds=directory.creds_path("legacy"),
            max_memory_mb=4096.0,
        )
        orchestrator = await get_universal_orchestrator(config)
        assert await orchestrator.register_agent("legacy", AgentRole.WORKER, ["python"])
        assert not await orchestrator.register_agent("coder-a", AgentRole.WORKER, ["python"])
        assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "legacy"
        assert await orchestrator.complete_task("t-1", "legacy", "done")
        await shutdown_universal_orchestrator()
        allowed = await bus.audit(principal="legacy", decision="allowed")
        operations = [r["operation"] for r in reversed(allowed)]
        assert operations == [
            "agent-register", "task-delegate", "task-complete", "agent-deregister"
        ]  # fmt: skip
        await bus.audited(principal="legacy", decision="forbidden", agent_id="coder-a")


async def test_a_prefixed_secure_bus(tmp_path: Path):
    from hivebus.auth import AuthDir, Kind, Permission

    directory = AuthDir(tmp_path / "auth")
    directory.init(prefix="prod.hive")
    directory.add(Kind.AGENT, "coder-a", capabilities=["python"])
    directory.add(Kind.CLIENT, "carol", can=[Permission.DELEGATE, Permission.READ])
    directory.add(Kind.CLIENT, "eve")
    assert '"prod.hive.task.>"' in directory.server_conf.read_text()
    async with secure_bus(directory, tmp_path / "nats", {"prefix": "prod.hive"}) as bus:
        async with (
            Agent("coder-a", ["python"], echo, config=bus.config("coder-a")),
            HiveClient(config=bus.config("carol")) as hive,
        ):
            done = await hive.delegate("t", ["python"], payload="p", wait=True)
            assert (done.status, done.result) == (TaskStatus.COMPLETED, "p")
        eve = await bus.caller("eve")
        eve.wire.prefix = "prod.hive"
        await eve.wire.fail("task.delegate", {}, code="forbidden")
