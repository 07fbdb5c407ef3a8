"""Faults in secure mode: core processes killed with SIGKILL on a 3-node secure cluster."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually
from hivebus import Agent, HivebusConfig, HiveClient
from hivebus.auth import Kind, Permission
from hivebus.server import EmbeddedServer
from hivebus.testing import TEST_DEFAULTS
from hivebus_hookspecs.models import Offer, TaskStatus
from processes import Proc, spawn
from secure_bus import make_auth_dir, secure_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

WORKERS = [f"w{i}" for i in range(4)]


class Recorder:
    def __init__(self) -> None:
        self.ran: list[str] = []

    async def __call__(self, task: Offer) -> Any:
        self.ran.append(task.task_id)
        await asyncio.sleep(0.05)
        return task.task_id


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Any, list[EmbeddedServer]]]:
    directory = make_auth_dir(tmp_path / "auth")
    for name in WORKERS:
        directory.add(Kind.AGENT, name)
    directory.add(Kind.CLIENT, "loader", can=[Permission.DELEGATE, Permission.READ])
    servers = secure_cluster(directory, tmp_path / "cluster")
    try:
        yield directory, servers
    finally:
        for server in servers:
            server.stop()


async def test_kill_9_of_a_secure_core_loses_no_task_and_keeps_the_rules(cluster, tmp_path):
    directory, servers = cluster
    url = ",".join(s.url for s in servers)
    cores: list[Proc] = []
    env = {
        "HIVEBUS_STATE": "jetstream",
        "HIVEBUS_KV_REPLICAS": "3",
        "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5",
        "HIVEBUS_CONNECT_TIMEOUT_S": "5",
        "HIVEBUS_RATE_LIMITS": '{"client": 0}',
    }

    async def start_core() -> None:
        core = spawn(
            "up", "--auth", str(directory.root), "--nats", url, "-p", "no:echo-audit",
            "-p", "no:performance", cwd=tmp_path, **env,
        )  # fmt: skip
        await core.until("serving on", timeout=60)
        cores.append(core)

    def config(name: str) -> HivebusConfig:
        base = {**TEST_DEFAULTS, "nats_url": url}
        return HivebusConfig.load(**base, creds_file=directory.creds_path(name))

    recorders = {name: Recorder() for name in WORKERS}
    agents = [Agent(n, ["x"], recorders[n], config=config(n)) for n in WORKERS]
    ids = [f"secure-{i}" for i in range(40)]
    try:
        await start_core()
        await start_core()
        for agent in agents:
            await agent.start()
        async with HiveClient(config=config("loader")) as hive:
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[:20]))
            cores[0].popen.send_signal(signal.SIGKILL)
            cores[0].popen.wait()
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[20:]))

            async def all_final() -> bool:
                return all([(await hive.get(t)).status.is_final for t in ids])

            await eventually(all_final, timeout=60)
            statuses = Counter([(await hive.get(t)).status for t in ids])
            assert statuses == {TaskStatus.COMPLETED: len(ids)}
            ran = Counter(t for r in recorders.values() for t in r.ran)
            assert set(ran) == set(ids)
            assert max(ran.values()) == 1
            # The surviving replica still enforces the rules.
            refused = await hive.nc.request(  # type: ignore[union-attr]
                "agent.register", b'{"agent_id": "w0"}', timeout=5
            )
            assert b'"forbidden"' in refused.data
    finally:
        for agent in agents:
            await agent.stop(grace_s=1)
        for core in cores:
            core.stop()
