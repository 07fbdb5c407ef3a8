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
from secure_bus import make_auth_dir, secure_cluster, until_jetstream_ready

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
        await until_jetstream_ready(",".join(s.url for s in servers), directory.core_creds)
        yield directory, servers
    finally:
        for server in servers:
            server.stop()


class SecureRun:
    """Core processes (``hivebus up --auth``) on the secure cluster, agents and a loader."""

    def __init__(self, directory: Any, servers: list[EmbeddedServer], workdir: Path) -> None:
        self.directory = directory
        self.url = ",".join(s.url for s in servers)
        self.workdir = workdir
        self.cores: list[Proc] = []
        self.recorders = {name: Recorder() for name in WORKERS}
        self.agents = [Agent(n, ["x"], self.recorders[n], config=self.config(n)) for n in WORKERS]

    def config(self, name: str) -> HivebusConfig:
        base = {**TEST_DEFAULTS, "nats_url": self.url}
        return HivebusConfig.load(**base, creds_file=self.directory.creds_path(name))

    async def start_core(self) -> None:
        env = {
            "HIVEBUS_STATE": "jetstream",
            "HIVEBUS_KV_REPLICAS": "3",
            "HIVEBUS_HEARTBEAT_INTERVAL_S": "0.5",
            "HIVEBUS_PRINCIPAL_RATE_LIMITS": '{"client": 0}',
        }
        core = spawn(
            "up", "--auth", str(self.directory.root), "--nats", self.url,
            "-p", "no:audit", "-p", "no:performance", cwd=self.workdir, **env,
        )  # fmt: skip
        await core.until("serving on", timeout=60)
        self.cores.append(core)

    async def run(self, ids: list[str], fault: Any) -> None:
        """Delegate half, cause ``fault``, delegate the rest; each completes exactly once."""
        await self.served_on_every_node()
        for agent in self.agents:
            await agent.start()
        async with HiveClient(config=self.config("loader")) as hive:
            half = len(ids) // 2
            await asyncio.gather(*(hive.delegate("t", ["x"], task_id=t) for t in ids[:half]))
            await fault()
            # While the cluster fails over a request may time out: delegating again is
            # idempotent (the task id is the delegator's).
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                try:
                    await asyncio.gather(
                        *(hive.delegate("t", ["x"], task_id=t) for t in ids[half:])
                    )
                    break
                except (TimeoutError, ConnectionError):
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.5)

            async def all_final() -> bool:
                return all([(await hive.get(t)).status.is_final for t in ids])

            await eventually(all_final, timeout=60)
            statuses = Counter([(await hive.get(t)).status for t in ids])
            assert statuses == {TaskStatus.COMPLETED: len(ids)}
            ran = Counter(t for r in self.recorders.values() for t in r.ran)
            assert set(ran) == set(ids)
            assert max(ran.values()) == 1
            # The bus still enforces the rules.
            refused = await hive.nc.request(  # type: ignore[union-attr]
                "agent.register", b'{"agent_id": "w0"}', timeout=5
            )
            assert b'"forbidden"' in refused.data

    async def served_on_every_node(self) -> None:
        """The core's subscriptions reach the other nodes over the routes a moment after it
        says it serves: wait until each node knows a responder."""
        for url in self.url.split(","):
            base = {**TEST_DEFAULTS, "nats_url": url}
            config = HivebusConfig.load(**base, creds_file=self.directory.creds_path("loader"))
            async with HiveClient(config=config) as hive:

                async def answered(hive: HiveClient = hive) -> bool:
                    try:
                        await hive.status()
                    except (ConnectionError, TimeoutError):
                        return False
                    return True

                await eventually(answered, timeout=30)

    async def stop(self) -> None:
        for agent in self.agents:
            await agent.stop(grace_s=1)
        for core in self.cores:
            core.stop()


async def test_kill_9_of_a_secure_core_loses_no_task_and_keeps_the_rules(cluster, tmp_path):
    directory, servers = cluster
    run = SecureRun(directory, servers, tmp_path)

    async def kill_one_replica() -> None:
        run.cores[0].popen.send_signal(signal.SIGKILL)
        run.cores[0].popen.wait()

    try:
        await run.start_core()
        await run.start_core()
        await run.run([f"secure-{i}" for i in range(40)], kill_one_replica)
    finally:
        await run.stop()


async def test_losing_a_nats_node_of_a_secure_cluster_loses_no_task(cluster, tmp_path):
    directory, servers = cluster
    run = SecureRun(directory, servers, tmp_path)

    async def lose_a_node() -> None:
        servers[0].kill()

    try:
        await run.start_core()
        await run.run([f"node-{i}" for i in range(40)], lose_a_node)
    finally:
        await run.stop()
