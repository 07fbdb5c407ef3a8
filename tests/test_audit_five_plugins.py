"""The five plugins of issue 10 (performance, production, automation, context, audit) as a user
switches them: all of them healthy in a real ``hivebus up``, each legacy ``enable_*_plugin``
flag turning its own plugin off, and a core with all five disabled doing its job as before."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hivebus import HiveClient, get_universal_orchestrator
from hivebus import shutdown_universal_orchestrator as shutdown
from hivebus.server import free_port
from hivebus.universal.config import PLUGIN_FLAGS, OrchestratorConfig
from processes import Proc, run, spawn

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::hivebus.PluginNotInstalledWarning"),
]

FIVE = ["performance", "production", "automation", "context", "audit"]
UPPER = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]


def test_the_legacy_switches_cover_the_five():
    assert set(FIVE) <= set(PLUGIN_FLAGS)
    assert PLUGIN_FLAGS["audit"] == "enable_audit_plugin"


@pytest.fixture
def up(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path, Proc]]:
    """``hivebus up`` with the bundled nats-server; ``request.param``: more environment."""
    port = free_port()
    data = tmp_path / "data"
    env: dict[str, str] = getattr(request, "param", {})
    core = spawn(
        "up", "--port", str(port), "--data-dir", str(data),
        cwd=tmp_path,
        HIVEBUS_PLUGIN_CONFIG__PERFORMANCE__PORT="0",  # not the fixed 9464 of a real host
        **env,
    )  # fmt: skip
    core.wait_for("serving on")
    yield f"nats://127.0.0.1:{port}", data, core
    assert core.stop() == 0


def plugins(url: str) -> dict[str, dict[str, Any]]:
    listed = run("plugins", "--nats", url, "--json")
    assert listed.returncode == 0, listed.stderr
    return {p["name"]: p for p in json.loads(listed.stdout)}


def test_hivebus_up_lists_the_five_and_security_healthy(up: tuple[str, Path, Proc]):
    url, data, _ = up
    found = plugins(url)
    assert set(found) >= {*FIVE, "security"}
    unhealthy = {name: p for name, p in found.items() if p["health"] != "healthy"}
    assert unhealthy == {}
    # The audit plugin writes under the data directory given to `up`, not where `up` runs.
    assert list((data / "plugins" / "audit").glob("lifecycle.*.jsonl"))


@pytest.mark.parametrize("up", [{"HIVEBUS_DISABLE_PLUGINS": ",".join(FIVE)}], indirect=True)
def test_with_the_five_disabled_the_core_behaves_as_before(up: tuple[str, Path, Proc]):
    url, data, _ = up
    assert sorted(plugins(url)) == ["security"]
    agent = spawn("agent", "--nats", url, "--id", "plain-1", "--cap", "text", "--", *UPPER)
    try:
        agent.wait_for("ready")
        done = run("delegate", "--nats", url, "--cap", "text", "--payload", '"hi"', "--wait")
        assert done.returncode == 0, done.stderr
        assert "completed by plain-1" in done.stdout
        assert '"HI"' in done.stdout
        status = json.loads(run("status", "--nats", url, "--json").stdout)
        assert status["health_status"] == "healthy"
        assert status["tasks"]["completed_total"] == 1
        assert status["agents"]["total"] == 1
        assert set(status["plugins"]) == {"security"}
        assert not set(status.get("extensions", {})) & set(FIVE)
        agents = run("agents", "--nats", url, "--json")
        assert [a["agent_id"] for a in json.loads(agents.stdout)] == ["plain-1"]
    finally:
        agent.stop()
    assert not (data / "plugins" / "audit").exists()  # the audit plugin wrote nothing


@pytest.fixture
async def facade_shut_down() -> AsyncIterator[None]:
    yield
    await shutdown()


@pytest.mark.parametrize("name", FIVE)
async def test_each_legacy_switch_turns_its_own_plugin_off(
    name: str, tmp_path: Path, facade_shut_down: None
):
    switches = {flag: flag != PLUGIN_FLAGS[name] for flag in PLUGIN_FLAGS.values()}
    config = OrchestratorConfig(
        max_memory_mb=4096.0,
        data_dir=tmp_path / "data",
        core_settings={"plugin_config": {"performance": {"port": 0}}},
        **switches,
    )
    orchestrator = await get_universal_orchestrator(config)
    async with HiveClient(nats_url=orchestrator.nats_url) as hive:
        loaded = {p.name for p in await hive.plugins()}
    assert loaded == set(PLUGIN_FLAGS) - {name}


async def test_the_audit_switch_turns_the_lifecycle_log_on(tmp_path: Path, facade_shut_down: None):
    from hivebus import AgentRole

    data = tmp_path / "data"
    config = OrchestratorConfig(max_memory_mb=4096.0, data_dir=data, enable_audit_plugin=True)
    orchestrator = await get_universal_orchestrator(config)
    assert await orchestrator.register_agent("coder-1", AgentRole.WORKER, ["python"])
    assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "coder-1"
    assert await orchestrator.complete_task("t-1", "coder-1")
    await shutdown()  # writes what is left
    written = await asyncio.to_thread(log_text, data / "plugins" / "audit")
    assert b'"task.completed"' in written


def log_text(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob("lifecycle.*.jsonl")))
