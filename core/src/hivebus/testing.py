"""pytest fixtures for hivebus users and plugin authors: a real nats-server, a running core,
a client and test agents. Installed as a pytest plugin (entry point ``pytest11``), so any
project that depends on hivebus can use them without imports.

Override ``hivebus_settings`` in a test module (or conftest) to configure the core::

    @pytest.fixture
    def hivebus_settings():
        return {"offer_timeout_s": 0.2, "plugins": ["my-plugin"]}
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hivebus_hookspecs.models import Offer
from nats.aio.client import Client

from .config import HivebusConfig
from .connection import connect
from .runtime import Core
from .sdk import Agent, HiveClient
from .server import EmbeddedServer, start_cluster

__all__ = [
    "AgentFactory",
    "hive",
    "hivebus_config",
    "hivebus_core",
    "hivebus_settings",
    "make_agent",
    "nats_client",
    "nats_cluster",
    "nats_server",
    "running_cores",
    "until_jetstream_ready",
]

TEST_DEFAULTS: dict[str, Any] = {
    "heartbeat_interval_s": 0.5,
    "offer_timeout_s": 1.0,
    "request_timeout_s": 5.0,
    "plugin_autoload": False,
    "plugin_timeout_s": 0.5,
    "max_agents": 10_000,
    "state": "memory",
    "shutdown_grace_s": 2.0,
}
"""Fast clocks for tests, and no plugins unless a test asks for them."""

AgentFactory = Callable[..., Awaitable[Agent]]


async def echo(task: Offer) -> Any:
    """The default test agent: the result is the payload."""
    return task.payload


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A real nats-server with JetStream on a free port, stopped after the test."""
    server = EmbeddedServer(port=0, data_dir=tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[list[EmbeddedServer]]:
    """Three nats-servers in one JetStream cluster, ready for R3 buckets."""
    servers = start_cluster(tmp_path / "cluster")
    try:
        url = ",".join(s.url for s in servers)
        await until_jetstream_ready(HivebusConfig.load(nats_url=url))
        yield servers
    finally:
        for server in servers:
            server.stop()


async def until_jetstream_ready(config: HivebusConfig, timeout_s: float = 30.0) -> None:
    """A new cluster answers JetStream requests only once it has elected a meta leader: wait
    for that, connected as ``config`` says (on a secure bus, with the core's credentials:
    JetStream lives in the core's account)."""
    nc = await connect(config, "hivebus-test-cluster")
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        js = nc.jetstream(timeout=2.0)
        while True:
            try:
                await js.add_stream(
                    name="HIVEBUS_READY", subjects=["hivebus.ready"], num_replicas=3
                )
                await js.delete_stream("HIVEBUS_READY")
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


@pytest.fixture
def hivebus_settings() -> dict[str, Any]:
    """Configuration overrides for ``hivebus_config``; override this fixture to change them."""
    return {}


@pytest.fixture
def hivebus_config(
    nats_server: EmbeddedServer, hivebus_settings: dict[str, Any], tmp_path: Path
) -> HivebusConfig:
    """The core's configuration: plugins keep their files in the test's own directory."""
    own = {"nats_url": nats_server.url, "data_dir": tmp_path / "hivebus"}
    return HivebusConfig.load(**{**TEST_DEFAULTS, **own, **hivebus_settings})


@contextlib.asynccontextmanager
async def running_cores(*configs: HivebusConfig) -> AsyncIterator[list[Core]]:
    """A core per configuration, started in order (replicas, when they share a bus), all
    stopped at the end in reverse, those started before a failed start included."""
    cores: list[Core] = []
    try:
        for config in configs:
            core = Core(config)
            await core.start()
            cores.append(core)
        yield cores
    finally:
        for core in reversed(cores):
            await core.stop()


@pytest.fixture
async def hivebus_core(hivebus_config: HivebusConfig) -> AsyncIterator[Core]:
    """A running core on ``nats_server``."""
    core = Core(hivebus_config)
    await core.start()
    yield core
    await core.stop()


@pytest.fixture
async def hive(hivebus_core: Core) -> AsyncIterator[HiveClient]:
    """A connected client for the running core."""
    async with HiveClient(config=hivebus_core.config) as client:
        yield client


@pytest.fixture
async def nats_client(hivebus_config: HivebusConfig) -> AsyncIterator[Client]:
    """A raw NATS connection, for speaking the contract directly."""
    nc = await connect(hivebus_config, "hivebus-test")
    yield nc
    await nc.close()


@pytest.fixture
async def make_agent(hivebus_config: HivebusConfig) -> AsyncIterator[AgentFactory]:
    """``await make_agent("a1", ["python"], handler=...)``: a started agent, stopped after."""
    agents: list[Agent] = []

    async def make(
        agent_id: str,
        capabilities: list[str] | None = None,
        handler: Callable[[Offer], Awaitable[Any]] = echo,
        **options: Any,
    ) -> Agent:
        agent = Agent(agent_id, capabilities or [], handler, config=hivebus_config, **options)
        await agent.start()
        agents.append(agent)
        return agent

    yield make
    # Every agent is stopped, and then whatever went wrong stopping any of them fails the test:
    # a shutdown error is a bug to see, not noise to hide.
    outcomes = await asyncio.gather(
        *(agent.stop(grace_s=1.0) for agent in agents), return_exceptions=True
    )
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise BaseExceptionGroup("stopping the test agents failed", errors)
