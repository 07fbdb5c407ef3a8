"""A secure bus for tests: an auth directory, a nats-server with its configuration, a core.

Every principal connects with its own credentials file; ``Caller`` keeps the errors the server
sends it (permission violations arrive asynchronously, the connection stays up).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from contract_wire import Wire
from hivebus import HivebusConfig, testing
from hivebus.auth import AuthDir, Kind, Permission
from hivebus.connection import connect_options
from hivebus.runtime import Core
from hivebus.server import EmbeddedServer, start_cluster
from hivebus.testing import TEST_DEFAULTS
from nats.aio.client import Client

WAIT_S = 5.0

PRINCIPALS: list[tuple[Kind, str, dict[str, Any]]] = [
    (Kind.AGENT, "coder-a", {"capabilities": ["python"]}),
    (Kind.AGENT, "coder-b", {"capabilities": ["python", "b-only"]}),
    (Kind.AGENT, "tester", {"capabilities": ["test"], "role": "specialist"}),
    (Kind.CLIENT, "alice", {"can": [Permission.DELEGATE]}),
    (Kind.CLIENT, "carol", {"can": [Permission.DELEGATE, Permission.READ, Permission.CANCEL]}),
    (Kind.CLIENT, "eve", {}),
    (Kind.MONITOR, "mon", {}),
    (Kind.ADMIN, "root", {}),
]


def make_auth_dir(root: Path, *, tls: bool = False) -> AuthDir:
    directory = AuthDir(root)
    directory.init(tls=tls)
    for kind, name, grants in PRINCIPALS:
        directory.add(kind, name, **grants)
    return directory


def secure_server(directory: AuthDir, data_dir: Path) -> EmbeddedServer:
    args = ("-c", str(directory.server_conf), "-P", str(directory.pid_file))
    return EmbeddedServer(port=0, data_dir=data_dir, extra_args=args)


@dataclass
class Caller:
    """One principal's connection, with the asynchronous errors the server sent it."""

    name: str
    nc: Client
    wire: Wire
    errors: list[str] = field(default_factory=list)

    async def refused(self, needle: str) -> str:
        """Wait for the server's permissions violation naming ``needle`` (nats-py lowercases
        the server's message)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                for error in self.errors:
                    if "permissions violation" in error and needle.lower() in error:
                        return error
                await asyncio.sleep(0.02)


class SecureBus:
    def __init__(self, directory: AuthDir, server: EmbeddedServer, settings: dict[str, Any]):
        self.directory = directory
        self.server = server
        self.settings = settings
        self.core: Core | None = None
        self._callers: list[Caller] = []

    def config(self, name: str | None = None, **overrides: Any) -> HivebusConfig:
        creds = self.directory.creds_path(name) if name else None
        base = {**TEST_DEFAULTS, **self.settings, "nats_url": self.server.url}
        return HivebusConfig.load(**base, creds_file=creds, **overrides)

    def core_config(self) -> HivebusConfig:
        return self.config(
            auth_dir=self.directory.root,
            nats_server_log=self.server.log_path,
        ).model_copy(update={"creds_file": self.directory.core_creds})

    async def start_core(self) -> Core:
        self.core = Core(self.core_config())
        await self.core.start()
        return self.core

    async def stop_core(self) -> None:
        if self.core is not None:
            await self.core.stop()
            self.core = None

    async def caller(self, name: str) -> Caller:
        errors: list[str] = []

        async def error_cb(exc: Exception) -> None:
            errors.append(str(exc))

        options = connect_options(self.config(name), f"test-{name}")
        options["allow_reconnect"] = False
        nc = await nats.connect(**options, error_cb=error_cb)
        caller = Caller(name, nc, Wire(nc), errors)
        self._callers.append(caller)
        return caller

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        monitor = await self._monitor()
        reply = await monitor.wire.ok("orchestrator.audit", {"limit": 1000})
        return [
            record
            for record in reply["records"]
            if all(record.get(k) == v for k, v in filters.items())
        ]

    async def audited(self, **filters: Any) -> dict[str, Any]:
        """The newest audit record with these fields (waits for it); it names a reason."""
        async with asyncio.timeout(WAIT_S):
            while True:
                found = await self.audit(**filters)
                if found:
                    return found[0]
                await asyncio.sleep(0.05)

    async def _monitor(self) -> Caller:
        for caller in self._callers:
            if caller.name == "mon":
                return caller
        return await self.caller("mon")

    async def close(self) -> None:
        for caller in self._callers:
            if not caller.nc.is_closed:
                await caller.nc.close()
        await self.stop_core()


@contextlib.asynccontextmanager
async def secure_bus(
    directory: AuthDir, data_dir: Path, settings: dict[str, Any] | None = None
) -> AsyncIterator[SecureBus]:
    """A nats-server on the directory's configuration and a core with its own credentials,
    both stopped on the way out."""
    server = secure_server(directory, data_dir)
    server.start()
    bus = SecureBus(directory, server, settings or {})
    try:
        await bus.start_core()
        yield bus
    finally:
        await bus.close()
        server.stop()


def secure_cluster(directory: AuthDir, root: Path, size: int = 3) -> list[EmbeddedServer]:
    """``size`` nats-servers routed into one JetStream cluster, each with the secure config."""
    return start_cluster(root, size, "secure", ("-c", str(directory.server_conf)))


async def until_jetstream_ready(url: str, core_creds: Path, timeout_s: float = 60.0) -> None:
    """Wait for the secure cluster's meta leader with the core's credentials (JetStream lives
    in the core's account)."""
    config = HivebusConfig.load(nats_url=url, creds_file=core_creds)
    await testing.until_jetstream_ready(config, timeout_s)
