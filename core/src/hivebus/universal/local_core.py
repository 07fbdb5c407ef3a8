"""What this process runs for the facade: the embedded nats-server and the core, as needed."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..config import HivebusConfig
from ..plugins import PluginHost
from ..runtime import Core
from ..server import EmbeddedServer
from .config import OrchestratorConfig

__all__ = ["LocalCore"]


class LocalCore:
    """With no NATS URL: a nats-server (JetStream, free port) started here; then the core."""

    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self.server: EmbeddedServer | None = None
        self.core: Core | None = None
        self.core_config: HivebusConfig | None = None
        self._temp_dir: Path | None = None

    async def start(self, attach_plugins: Callable[[PluginHost], None]) -> HivebusConfig:
        """Start what is needed; ``attach_plugins`` sees the plugin host before start-up."""
        try:
            return await self._start(attach_plugins)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, attach_plugins: Callable[[PluginHost], None]) -> HivebusConfig:
        core_config = self.config.core_config()
        if core_config.nats_url is None:
            if not self.config.run_core:
                raise ValueError("run_core=False needs nats_url: the NATS where a core serves")
            data_dir = self.config.data_dir
            if data_dir is None:
                data_dir = self._temp_dir = Path(tempfile.mkdtemp(prefix="hivebus-universal-"))
            self.server = EmbeddedServer(port=0, data_dir=data_dir)
            # Legacy programs often exit without shutting down: never leave the child behind.
            atexit.register(self.abandon)
            await self.server.start_async()
            core_config = self.config.core_config(nats_url=self.server.url)
        self.core_config = core_config
        if self.config.run_core:
            host = PluginHost(core_config)
            attach_plugins(host)
            self.core = Core(core_config, host)
            await self.core.start()
        return core_config

    async def stop(self) -> None:
        core, self.core = self.core, None
        if core is not None:
            await core.stop()
        await asyncio.to_thread(self.abandon)

    def abandon(self) -> None:
        """Stop the server process and remove its temporary data, without the event loop."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        temp, self._temp_dir = self._temp_dir, None
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        atexit.unregister(self.abandon)
