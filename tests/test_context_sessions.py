"""Session contexts on ``plugin.context.get|put|append``, served by the context plugin (installed,
found by its entry point) through real cores on a real nats-server: fragments kept in order,
the oldest unpinned dropped past the budget (and the reply says which), idle sessions expire,
and two replicas on JetStream appending at once lose nothing, across a restart too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Core, HivebusConfig, HiveClient
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from hivebus_context import ContextPlugin
from nats.aio.client import Client
from processes import spawn


async def ask(nc: Client, endpoint: str, **body: Any) -> dict[str, Any]:
    """One request, as a client in any language sends it."""
    msg = await nc.request(f"plugin.context.{endpoint}", orjson.dumps(body), timeout=10)
    reply: dict[str, Any] = orjson.loads(msg.data)
    return reply


def context_settings(**sessions: Any) -> dict[str, Any]:
    return {"plugins": ["context"], "plugin_config": {"context": {"sessions": sessions}}}


def contents(reply: dict[str, Any]) -> list[Any]:
    return [f["content"] for f in reply["session"]["fragments"]]


class TestOneCore:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return context_settings(budget_bytes=1024)

    async def test_fragments_are_kept_in_order_and_read_back(self, hivebus_core, nats_client):
        empty = await ask(nats_client, "get", session_id="s1")
        assert empty["ok"] is True
        assert empty["found"] is False
        assert contents(empty) == []

        first = await ask(nats_client, "append", session_id="s1", content="the user asked X")
        assert first["ok"] is True
        assert first["fragment_ids"] == [1]
        assert first["dropped"] == []
        more = [{"content": {"tool": "search", "hits": 3}}, {"content": "found Y", "pinned": True}]
        second = await ask(nats_client, "append", session_id="s1", fragments=more)
        assert second["fragment_ids"] == [2, 3]
        assert second["session"]["fragments"] == 3
        assert second["session"]["budget_bytes"] == 1024

        got = await ask(nats_client, "get", session_id="s1")
        assert got["found"] is True
        assert contents(got) == ["the user asked X", {"tool": "search", "hits": 3}, "found Y"]
        assert [f["pinned"] for f in got["session"]["fragments"]] == [False, False, True]

        put = await ask(nats_client, "put", session_id="s1", fragments=[{"content": "fresh"}])
        assert put["fragment_ids"] == [4]  # ids never repeat within a session
        assert contents(await ask(nats_client, "get", session_id="s1")) == ["fresh"]

    async def test_past_the_budget_the_oldest_unpinned_fragments_are_dropped(
        self, hivebus_core, nats_client
    ):
        await ask(nats_client, "append", session_id="s2", content="p" * 200, pinned=True)
        for n in range(3):
            reply = await ask(nats_client, "append", session_id="s2", content=f"{n}" * 250)
            assert reply["dropped"] == []
        # 202 + 3 * 252 bytes (JSON strings: with their quotes) fits 1024; one more does not:
        # the oldest unpinned goes, never the pinned one, never the newest.
        reply = await ask(nats_client, "append", session_id="s2", content="3" * 250)
        assert [d["id"] for d in reply["dropped"]] == [2]
        assert reply["dropped"][0]["bytes"] == 252
        assert reply["session"]["compacted"] == {"fragments": 1, "bytes": 252}
        got = await ask(nats_client, "get", session_id="s2")
        assert [f["id"] for f in got["session"]["fragments"]] == [1, 3, 4, 5]
        assert got["session"]["bytes"] <= 1024

    async def test_what_cannot_fit_is_refused_with_the_core_error_contract(
        self, hivebus_core, nats_client
    ):
        too_big = await ask(nats_client, "append", session_id="s3", content="x" * 2000)
        assert too_big["ok"] is False
        assert too_big["error"]["code"] == "payload_too_large"
        pinned = [{"content": "a" * 600, "pinned": True}, {"content": "b" * 600, "pinned": True}]
        over = await ask(nats_client, "put", session_id="s3", fragments=pinned)
        assert over["error"]["code"] == "invalid_request"
        assert "pinned fragments need" in over["error"]["message"]
        bad = await ask(nats_client, "append", session_id="no spaces allowed", content="x")
        assert bad["error"]["code"] == "invalid_request"
        assert "session_id" in bad["error"]["message"]
        nothing = await ask(nats_client, "append", session_id="s3")
        assert nothing["error"]["code"] == "invalid_request"
        both = await ask(nats_client, "append", session_id="s3", content="x", fragments=[])
        assert both["error"]["message"] == "append takes content or fragments, not both"
        assert (await ask(nats_client, "get", session_id="s3"))["found"] is False


class TestIdleExpiry:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return context_settings(idle_expiry_s=3600, sweep_interval_s=0.05)

    async def test_an_idle_session_expires(self, hivebus_core, nats_client):
        await ask(nats_client, "append", session_id="old", content="then")
        await ask(nats_client, "append", session_id="new", content="now")
        plugin = hivebus_core.plugins.pm.get_plugin("context")
        assert isinstance(plugin, ContextPlugin)
        stored = (await ask(nats_client, "get", session_id="new"))["session"]["updated_at"]
        plugin.clock = lambda: stored + 1800.0
        await ask(nats_client, "append", session_id="new", content="later")  # active again
        plugin.clock = lambda: stored + 3601.0  # "old" idle for an hour, "new" for 30 minutes

        async def old_gone() -> bool:
            return (await ask(nats_client, "get", session_id="old"))["found"] is False

        await eventually(old_gone, timeout=5)
        assert contents(await ask(nats_client, "get", session_id="new")) == ["now", "later"]
        assert plugin.sessions is not None
        assert plugin.sessions.expired == 1


# --- replicas --------------------------------------------------------------------------------


def replica_config(server: EmbeddedServer, name: str) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": "jetstream",
            "orchestrator_id": name,
            **context_settings(budget_bytes=64 * 1024),
        }
    )


@pytest.fixture
async def client(nats_server: EmbeddedServer) -> AsyncIterator[Client]:
    nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-sessions")
    yield nc
    await nc.close()


def appended(core: Core) -> int:
    plugin = core.plugins.pm.get_plugin("context")
    assert isinstance(plugin, ContextPlugin)
    assert plugin.sessions is not None
    return plugin.sessions.appended


async def test_two_replicas_appending_at_once_lose_nothing_and_a_restart_keeps_it(
    nats_server: EmbeddedServer, client: Client
):
    cores = [Core(replica_config(nats_server, f"replica-{n}")) for n in range(2)]
    for core in cores:
        await core.start()
    try:
        replies = await asyncio.gather(
            *(ask(client, "append", session_id="shared", content=f"step {n}") for n in range(60))
        )
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:1]
        # The queue group spread the appends over both replicas, which raced on one value.
        assert all(appended(core) > 0 for core in cores)
        assert sum(appended(core) for core in cores) == 60
        ids = sorted(i for r in replies for i in r["fragment_ids"])
        assert ids == list(range(1, 61))
        got = await ask(client, "get", session_id="shared")
        assert sorted(contents(got)) == sorted(f"step {n}" for n in range(60))
    finally:
        for core in cores:
            await core.stop()

    async with Core(replica_config(nats_server, "replica-2")):
        got = await ask(client, "get", session_id="shared")
        assert got["found"] is True
        assert len(contents(got)) == 60
        reply = await ask(client, "append", session_id="shared", content="after the restart")
        assert reply["fragment_ids"] == [61]


def test_the_plugin_is_an_installed_entry_point_naming_its_class():
    [ep] = [ep for ep in entry_points(group="hivebus") if ep.name == "context"]
    assert ep.dist is not None
    assert ep.dist.name == "hivebus-context"
    assert ep.load() is ContextPlugin


@pytest.mark.slow
async def test_a_core_process_serves_sessions_and_lists_the_plugin_healthy(
    nats_server: EmbeddedServer, client: Client, tmp_path: Path
):
    config = tmp_path / "hivebus.toml"
    config.write_text("plugin_autoload = false\n[plugin_config.context.usage]\nwarning = 0.8\n")
    url = nats_server.url
    core = spawn("up", "--nats", url, "--config", str(config), "-p", "context", cwd=tmp_path)
    try:
        await core.until("serving on")
        reply = await ask(client, "append", session_id="proc", content="from a process")
        assert reply["fragment_ids"] == [1]
        assert contents(await ask(client, "get", session_id="proc")) == ["from a process"]
        async with HiveClient(nats_url=nats_server.url) as hive:
            listed = {p.name: p.health.value for p in await hive.plugins()}
        assert listed == {"context": "healthy"}
    finally:
        core.stop()
