"""Large payloads and results by reference, through the context plugin (installed, found by its
entry point) and the SDK, against a real nats-server: a 20 MB payload reaches an agent in
another process and a 5 MB result comes back, byte for byte, with no code change on either
side; a task whose agent is killed still finds its payload on the next agent; the stored
objects are removed after the task ends and its retention period, by two replicas at once
too; where no store can be reached (memory state, a secure bus), small values travel inline
as before and large ones are refused with a clear error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import Agent, Core, HivebusConfig, HiveClient, Offer, ReferenceUnavailable, TaskStatus
from hivebus.cli.failures import FAILURE, explain
from hivebus.connection import connect
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS, echo
from hivebus_context import ContextPlugin
from hivebus_hookspecs.models.references import REFERENCE_KEY, as_reference
from processes import Proc
from pydantic import ValidationError
from secure_bus import make_auth_dir, secure_bus

BUCKET = "hivebus_plugin_context_objects"
MB = 1024 * 1024

# An agent in its own process, written as any user would: no word about references in it.
AGENT = """
import asyncio, base64, hashlib, sys
import orjson
from hivebus import Agent

async def handle(task):
    if sys.argv[2:] == ["hang"]:  # holds the task until killed, having read its payload
        print("working on", len(orjson.dumps(task.payload)), flush=True)
        await asyncio.Event().wait()
    digest = hashlib.sha256(orjson.dumps(task.payload)).hexdigest()
    size = int(task.payload["result_bytes"])
    blob = hashlib.shake_256(digest.encode()).digest(size * 3 // 4)
    return {"payload_sha256": digest, "blob": base64.b64encode(blob).decode()}

async def main():
    async with Agent(f"big-{len(sys.argv)}", ["big"], handle, nats_url=sys.argv[1]):
        print("agent ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


def expected_result(payload: Any) -> dict[str, str]:
    digest = hashlib.sha256(orjson.dumps(payload)).hexdigest()
    size = int(payload["result_bytes"])
    blob = hashlib.shake_256(digest.encode()).digest(size * 3 // 4)
    return {"payload_sha256": digest, "blob": base64.b64encode(blob).decode()}


def core_config(server: EmbeddedServer, state: str = "jetstream", **context: Any) -> HivebusConfig:
    return HivebusConfig.load(
        **{
            **TEST_DEFAULTS,
            "nats_url": server.url,
            "state": state,
            "request_timeout_s": 10.0,
            "plugins": ["context"],
            "plugin_config": {"context": context},
        }
    )


def start_agent(server: EmbeddedServer, *args: str) -> Proc:
    """The agent above in a process of its own; ``hang``: one that never finishes a task."""
    popen = subprocess.Popen(
        [sys.executable, "-c", AGENT, server.url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Proc(popen)


@pytest.fixture
def agent_process(nats_server: EmbeddedServer) -> Iterator[Proc]:
    proc = start_agent(nats_server)
    try:
        yield proc
    finally:
        proc.stop()


async def stored_objects(server: EmbeddedServer) -> list[str]:
    nc = await connect(HivebusConfig.load(nats_url=server.url), "test-objects")
    try:
        store = await nc.jetstream(timeout=5).object_store(BUCKET)
        try:
            return sorted(info.name for info in await store.list() if not info.deleted)
        except Exception:  # an empty store lists nothing by raising
            return []
    finally:
        await nc.close()


@pytest.mark.slow
async def test_a_20_mb_payload_and_a_5_mb_result_round_trip_through_an_agent_process(
    nats_server: EmbeddedServer, agent_process: Proc
):
    config = core_config(nats_server, retention_s=2.0, sweep_interval_s=0.2)
    async with Core(config):
        await eventually(lambda: _exists(nats_server), timeout=10)  # opened by its first timer
        await agent_process.until("agent ready")
        # Barely compressible text: the store really holds megabytes, in many chunks.
        text = base64.b64encode(os.urandom(15 * MB)).decode()
        payload = {"text": text, "result_bytes": 5 * MB}
        assert len(orjson.dumps(payload)) > 20 * MB

        async with HiveClient(config=config) as hive:
            task = await hive.delegate(
                "digest", ["big"], payload=payload, task_id="big-1", wait=True, wait_timeout=120
            )
            assert task.status is TaskStatus.COMPLETED, task.error
            assert task.result == expected_result(payload)  # both ways, byte for byte
            assert len(orjson.dumps(task.result)) > 5 * MB

            # On the wire (and in the core) the task holds only references.
            raw = await task_on_the_wire(hive, task.task_id)
            payload_ref = as_reference(raw["payload"])
            result_ref = as_reference(raw["result"])
            assert payload_ref is not None
            assert result_ref is not None
            assert payload_ref.bucket == BUCKET
            assert payload_ref.name == "task/big-1/payload"
            assert result_ref.name == "task/big-1/result"
            assert payload_ref.size == len(orjson.dumps(payload))
            assert await hive.resolve(raw["payload"]) == payload

            # Two seconds after the task ended, the sweeps remove both objects, and say so.
            await eventually(lambda: _none(stored_objects(nats_server)), timeout=20)

            async def counted() -> bool:
                status = (await hive.status())["extensions"]["context"]
                return bool(status["objects"]["removed"] >= 2)

            await eventually(counted, timeout=5)


async def task_on_the_wire(hive: HiveClient, task_id: str) -> dict[str, Any]:
    """``task.get`` as any client sees it, without the SDK's resolving."""
    assert hive.nc is not None
    msg = await hive.nc.request("task.get", orjson.dumps({"task_id": task_id}), timeout=10)
    task: dict[str, Any] = orjson.loads(msg.data)["task"]
    return task


@pytest.mark.slow
async def test_a_task_requeued_after_its_agent_was_killed_still_finds_its_payload(
    nats_server: EmbeddedServer,
):
    # A short retention and quick sweeps: a payload removed while its task lives would show.
    # (Not 0: the waiting client reads the result back just after the task ends.)
    config = core_config(nats_server, retention_s=2.0, sweep_interval_s=0.05)
    hanging = start_agent(nats_server, "hang")
    worker = None
    try:
        async with Core(config), HiveClient(config=config) as hive:
            await eventually(lambda: _exists(nats_server), timeout=10)
            await hanging.until("agent ready")
            payload = {"text": base64.b64encode(os.urandom(3 * MB)).decode(), "result_bytes": MB}
            waiting = asyncio.create_task(
                hive.delegate("digest", ["big"], payload=payload, task_id="orphaned", wait=True)
            )
            await hanging.until(f"working on {len(orjson.dumps(payload))}")
            hanging.popen.kill()  # SIGKILL: no deregistration, the core finds out by silence
            hanging.popen.wait()
            worker = start_agent(nats_server)  # a second agent takes the requeued task
            await worker.until("agent ready")
            async with asyncio.timeout(60):
                task = await waiting
            assert task.status is TaskStatus.COMPLETED, (task.error, task.history)
            assert task.attempts >= 2
            assert task.result == expected_result(payload)
    finally:
        hanging.stop()
        if worker is not None:
            worker.stop()


async def _none(listing: Any) -> bool:
    return not await listing


async def test_small_values_travel_inline_and_nothing_is_stored(
    nats_server: EmbeddedServer, make_agent: Any
):
    config = core_config(nats_server)
    async with Core(config), HiveClient(config=config) as hive:
        await make_agent("small-1", ["small"])
        payload = {"text": "x" * 1000}
        task = await hive.delegate("echo", ["small"], payload=payload, wait=True, wait_timeout=10)
        assert task.payload == payload
        assert task.result == payload
        assert await stored_objects(nats_server) == []


async def test_a_request_that_does_not_validate_stores_nothing(nats_server: EmbeddedServer):
    config = core_config(nats_server)
    async with Core(config), HiveClient(config=config) as hive:
        await eventually(lambda: _exists(nats_server), timeout=10)
        with pytest.raises(ValidationError):
            await hive.delegate("echo", ["x"], priority="urgent", payload={"text": "v" * MB})
        assert await stored_objects(nats_server) == []


async def test_the_offload_size_is_the_one_in_the_shared_configuration(
    nats_server: EmbeddedServer, make_agent: Any
):
    config = core_config(nats_server, offload_above_bytes=4096)
    async with Core(config), HiveClient(config=config) as hive:
        await eventually(lambda: _exists(nats_server), timeout=10)
        await make_agent("tiny-1", ["tiny"])  # default configuration: 256 KiB
        payload = {"text": "t" * 10_000}
        task = await hive.delegate("echo", ["tiny"], payload=payload, wait=True, wait_timeout=10)
        assert task.result == payload
        raw = await task_on_the_wire(hive, task.task_id)
        assert as_reference(raw["payload"]) is not None  # 10 kB > 4096: sent by reference
        assert raw["result"] == payload  # the agent's own setting: inline
        assert await stored_objects(nats_server) == [f"task/{task.task_id}/payload"]


async def test_the_context_hint_sizes_the_payload_not_its_reference(
    nats_server: EmbeddedServer, make_agent: Any
):
    config = core_config(nats_server, offload_above_bytes=4096, context_hint=True)
    async with Core(config), HiveClient(config=config) as hive:
        await eventually(lambda: _exists(nats_server), timeout=10)
        await make_agent("hint-1", ["hint"])
        payload = {"text": "h" * 10_000}
        task = await hive.delegate("echo", ["hint"], payload=payload, wait=True, wait_timeout=10)
        size = len(orjson.dumps(payload))
        assert task.metadata["context_hint"] == {
            "payload_chars": size,
            "approx_tokens": -(-size // 4),
        }


async def test_objects_stay_while_the_task_runs_and_for_the_retention_period(
    nats_server: EmbeddedServer, make_agent: Any
):
    config = core_config(nats_server, retention_s=3600.0, sweep_interval_s=0.1)
    async with Core(config) as core, HiveClient(config=config) as hive:
        await eventually(lambda: _exists(nats_server), timeout=10)  # opened by its first timer
        await make_agent("mid-1", ["mid"])
        payload = {"text": "y" * MB}
        task = await hive.delegate("echo", ["mid"], payload=payload, wait=True, wait_timeout=30)
        assert task.result == payload
        plugin = core.plugins.pm.get_plugin("context")
        assert isinstance(plugin, ContextPlugin)
        retention = plugin.retention
        assert retention is not None
        swept = retention.removed
        # Several sweeps later both objects are still there: the task ended an instant ago.
        sweeps = retention.sweeps
        await eventually(lambda: retention.sweeps >= sweeps + 3, timeout=5)
        assert retention.stored == 2
        assert await stored_objects(nats_server) == [
            f"task/{task.task_id}/payload",
            f"task/{task.task_id}/result",
        ]
        assert retention.removed == swept
        # An hour later (the plugin's clock) they are removed.
        assert task.finished_at is not None
        ended = task.finished_at
        plugin.clock = lambda: ended + 3601.0
        await eventually(lambda: _none(stored_objects(nats_server)), timeout=10)


async def test_an_object_no_task_claims_is_removed_after_orphan_after_s(
    nats_server: EmbeddedServer,
):
    config = core_config(nats_server, orphan_after_s=3600.0, sweep_interval_s=0.05)
    async with Core(config) as core:
        await eventually(lambda: _exists(nats_server), timeout=10)
        nc = await connect(HivebusConfig.load(nats_url=nats_server.url), "test-orphans")
        try:
            store = await nc.jetstream(timeout=5).object_store(BUCKET)
            await store.put("task/never-delegated/payload", b"lost")
            await store.put("something-else", b"not ours either")
        finally:
            await nc.close()
        plugin = core.plugins.pm.get_plugin("context")
        assert isinstance(plugin, ContextPlugin)
        retention = plugin.retention
        assert retention is not None
        sweeps = retention.sweeps
        await eventually(lambda: retention.sweeps >= sweeps + 3, timeout=5)
        assert len(await stored_objects(nats_server)) == 2  # first seen a moment ago
        seen = plugin.clock()
        plugin.clock = lambda: seen + 3601.0
        await eventually(lambda: _none(stored_objects(nats_server)), timeout=10)


async def test_a_memory_state_core_refuses_a_payload_too_large_for_a_message(
    nats_server: EmbeddedServer,
):
    config = core_config(nats_server, state="memory")
    async with Core(config), HiveClient(config=config) as hive:
        with pytest.raises(ReferenceUnavailable) as err:
            await hive.delegate("echo", ["x"], payload={"text": "z" * (2 * MB)})
        assert "cannot travel in a message" in str(err.value)
        assert "context plugin on a core with JetStream state" in str(err.value)
        # Above offload_above_bytes but small enough for a message: inline, as before.
        reply = await hive.delegate("echo", ["x"], payload={"text": "z" * 300_000})
        task = await hive.get(reply.task_id)
        assert task.payload == {"text": "z" * 300_000}


def test_the_cli_explains_a_value_that_cannot_travel_in_one_line():
    explained = explain(ReferenceUnavailable("task/t1/payload: 2097164 bytes cannot travel"))
    assert explained is not None
    assert explained.line == "by reference: task/t1/payload: 2097164 bytes cannot travel"
    assert explained.exit_code == FAILURE


async def test_a_reference_whose_object_is_gone_fails_the_task_saying_so(
    nats_server: EmbeddedServer, make_agent: Any
):
    config = core_config(nats_server)
    seen: list[Offer] = []

    async def keep(task: Offer) -> Any:
        seen.append(task)
        return "ran"

    async with Core(config), HiveClient(config=config) as hive:
        await make_agent("gone-1", ["gone"], keep)
        await eventually(lambda: _exists(nats_server), timeout=10)
        ref = {
            REFERENCE_KEY: {
                "v": 1,
                "bucket": BUCKET,
                "name": "task/nothing/payload",
                "size": 3,
                "stored": 11,
                "sha256": "0" * 64,
            }
        }
        task = await hive.delegate("echo", ["gone"], payload=ref, wait=True, wait_timeout=10)
        assert task.status is TaskStatus.FAILED
        assert "no longer in" in (task.error or "")
        assert seen == []  # the handler never saw a reference it could not use


async def _exists(server: EmbeddedServer) -> bool:
    nc = await connect(HivebusConfig.load(nats_url=server.url), "test-objects")
    try:
        await nc.jetstream(timeout=5).object_store(BUCKET)
        return True
    except Exception:
        return False
    finally:
        await nc.close()


# --- secure mode -----------------------------------------------------------------------------


async def test_on_a_secure_bus_large_values_are_refused_and_others_travel_inline(tmp_path: Path):
    settings = {"plugins": ["context"], "state": "jetstream", "request_timeout_s": 10.0}
    directory = make_auth_dir(tmp_path / "auth")
    async with (
        secure_bus(directory, tmp_path / "nats", settings) as bus,
        Agent("coder-a", ["python"], echo, config=bus.config("coder-a")),
        HiveClient(config=bus.config("carol")) as hive,
    ):
        # Clients live in an account without JetStream: no store, whatever the plugin does.
        with pytest.raises(ReferenceUnavailable) as err:
            await hive.delegate("echo", ["python"], payload={"text": "s" * (2 * MB)})
        assert "cannot travel in a message" in str(err.value)
        assert "no JetStream" in str(err.value)

        payload = {"text": "s" * 300_000}  # above offload_above_bytes, fits a message
        task = await hive.delegate("echo", ["python"], payload=payload, wait=True, wait_timeout=20)
        assert task.status is TaskStatus.COMPLETED
        assert task.result == payload


# --- replicas --------------------------------------------------------------------------------


async def test_two_replicas_sweeping_one_store_remove_each_object_and_stay_healthy(
    nats_server: EmbeddedServer, make_agent: Any
):
    configs = [
        core_config(nats_server, retention_s=2.0, sweep_interval_s=0.05).model_copy(
            update={"orchestrator_id": f"replica-{n}"}
        )
        for n in range(2)
    ]
    async with Core(configs[0]) as first, Core(configs[1]) as second:
        await eventually(lambda: _exists(nats_server), timeout=10)
        await make_agent("pair-1", ["pair"])
        async with HiveClient(config=configs[0]) as hive:
            for n in range(4):
                payload = {"text": f"{n}" * MB}
                task = await hive.delegate("echo", ["pair"], payload=payload, wait=True)
                assert task.result == payload
            await eventually(lambda: _none(stored_objects(nats_server)), timeout=20)
        for core in (first, second):
            [info] = await core.plugins.describe()
            assert (info.health.value, info.failures, info.last_error) == ("healthy", 0, None)
