"""What a process imports is what it keeps in memory: an agent or a core stays small.

Each check runs a fresh interpreter (a real import, nothing cached by the test session) and
reads its ``sys.modules``; the core ones start a real core against a real nats-server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hivebus import EmbeddedServer

AGENT = """
import json, sys
from hivebus import Agent, HiveClient, TaskPriority
print(json.dumps(sorted(sys.modules)))
"""

UP = """
import json, sys
from hivebus.cli import build_parser
from hivebus.cli import commands, up
build_parser()
print(json.dumps(sorted(sys.modules)))
"""

CORE = """
import asyncio, json, sys
from hivebus import Core, HivebusConfig

async def main() -> None:
    config = HivebusConfig(
        nats_url=sys.argv[1],
        state="memory",
        plugins=json.loads(sys.argv[2]),
        plugin_config={"performance": {"port": 0}},
    )
    async with Core(config):
        pass

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


def modules(script: str, *args: str, cwd: Path | None = None) -> set[str]:
    """``sys.modules`` of a fresh interpreter once ``script`` ran (its files land in ``cwd``)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def under(found: set[str], *packages: str) -> set[str]:
    return {m for m in found if any(m == p or m.startswith(p + ".") for p in packages)}


def test_an_agent_imports_neither_the_core_nor_the_cli_nor_the_legacy_facade():
    found = modules(AGENT)
    assert "hivebus.sdk.agent" in found
    assert not under(
        found,
        "hivebus.runtime",
        "hivebus.domain",
        "hivebus.adapters",
        "hivebus.plugins",
        "hivebus.context",
        "hivebus.auth.guard",
        "hivebus.cli",
        "hivebus.server",
        "hivebus.universal",
    )


def test_the_up_command_loads_neither_the_sdk_nor_the_legacy_facade():
    found = modules(UP)
    assert "hivebus.runtime" in found
    assert not under(found, "hivebus.sdk", "hivebus.universal")


@pytest.mark.parametrize("plugins", [[], ["security", "audit"]])
def test_a_core_without_the_performance_plugin_never_imports_prometheus_client(
    nats_server: EmbeddedServer, plugins: list[str], tmp_path: Path
):
    found = modules(CORE, nats_server.url, json.dumps(plugins), cwd=tmp_path)
    assert "hivebus.runtime" in found
    assert not under(found, "prometheus_client", "hivebus_performance")


def test_the_performance_plugin_brings_prometheus_client_when_it_loads(
    nats_server: EmbeddedServer,
):
    """The check above sees what a core imports: with the plugin, the library is there."""
    found = modules(CORE, nats_server.url, json.dumps(["performance"]))
    assert "prometheus_client" in found


def test_a_core_never_imports_the_legacy_facade(nats_server: EmbeddedServer, tmp_path: Path):
    found = modules(CORE, nats_server.url, json.dumps(None), cwd=tmp_path)
    assert "hivebus_performance" in found  # every installed plugin loaded
    assert not under(found, "hivebus.universal")
