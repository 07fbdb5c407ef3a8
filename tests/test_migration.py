"""The legacy Python API, end to end: legacy code that only changed its imports runs on hivebus.

Every test drives the process-wide orchestrator (an embedded nats-server and the core, in this
process) and shuts it down afterwards, so tests stay independent.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hivebus.universal
import pytest
from conftest import eventually
from hivebus import (
    Agent,
    AgentOrchestrator,
    AgentRole,
    ConfigMigrationWarning,
    HealthStatus,
    HivebusConfig,
    HiveClient,
    OrchestratorConfig,
    OrchestratorMode,
    OrchestratorPlugin,
    PluginMetadata,
    PluginNotInstalledWarning,
    PluginType,
    TaskPriority,
    TaskStatus,
    UniversalOrchestrator,
    get_orchestrator,
    get_universal_orchestrator,
    hookimpl,
    migrate_config,
    shutdown_universal_orchestrator,
)
from hivebus.server import port_open
from hivebus_hookspecs.models import AgentView
from pydantic import ValidationError

pytestmark = pytest.mark.filterwarnings("ignore::hivebus.PluginNotInstalledWarning")

MIGRATION_MD = Path(__file__).resolve().parents[1] / "docs" / "migration.md"
CAPABILITIES = ["python", "testing", "review", "docs"]


@pytest.fixture(autouse=True)
async def _process_wide_orchestrator_is_shut_down() -> AsyncIterator[None]:
    yield
    await shutdown_universal_orchestrator()


def legacy_config(**overrides: Any) -> OrchestratorConfig:
    """Legacy defaults, but a memory ceiling that fits a pytest process and no fixed ports."""
    settings: dict[str, Any] = {
        "max_memory_mb": 4096.0,
        "core_settings": {"plugin_config": {"performance": {"port": 0}}},
        **overrides,
    }
    return OrchestratorConfig(**settings)


class Recorder(OrchestratorPlugin):
    """A legacy class plugin that writes down what it sees."""

    def __init__(self, name: str = "recorder", dependencies: list[str] | None = None) -> None:
        super().__init__(
            PluginMetadata(name, "1.0.0", PluginType.WORKFLOW, "records", dependencies or [])
        )
        self.context: dict[str, Any] | None = None
        self.pre: list[dict[str, Any]] = []
        self.post: list[tuple[dict[str, Any], Any]] = []
        self.cleaned = False

    async def initialize(self, orchestrator_context: dict[str, Any]) -> bool:
        self.context = orchestrator_context
        return True

    async def pre_task_execution(self, task_context: dict[str, Any]) -> dict[str, Any]:
        self.pre.append(task_context)
        return {"observed_by": self.name}

    async def post_task_execution(self, task_context: dict[str, Any], result: Any) -> None:
        self.post.append((task_context, result))

    async def cleanup(self) -> None:
        self.cleaned = True

    async def health_check(self) -> dict[str, Any]:
        return {"status": "healthy", "tasks_seen": len(self.pre)}


async def test_the_migration_walk():
    # configure: the legacy config, validated
    config = legacy_config(mode=OrchestratorMode.TESTING, max_agents=10, max_concurrent_tasks=50)
    orchestrator = await get_universal_orchestrator(config)
    assert orchestrator.config is config

    # register
    assert await orchestrator.register_agent(
        "coder-1", AgentRole.SPECIALIST, ["python", "review"], {"team": "core"}
    )
    assert await orchestrator.register_agent("tester-1", AgentRole.WORKER, ["testing"])

    # a custom class plugin
    recorder = Recorder()
    assert await orchestrator.plugin_manager.register_plugin(recorder)
    assert recorder.context is not None
    assert recorder.context["orchestrator"] is orchestrator
    assert recorder.context["config"] is config

    # delegate: the agent id, or None when no capable agent is free
    assigned = await orchestrator.delegate_task(
        "review-1", "code_review", ["python"], TaskPriority.HIGH, {"pr": 42}
    )
    assert assigned == "coder-1"
    assert await orchestrator.delegate_task("review-2", "code_review", ["python"]) is None

    status = await orchestrator.get_system_status()
    assert status["mode"] == "testing"
    assert status["agents"]["total"] == 2
    assert status["agents"]["busy"] == 1
    assert status["tasks"]["active"] == 1
    assert status["health_status"] in {h.value for h in HealthStatus}
    assert {"average_task_duration_ms", "error_rate_percent"} <= status["performance"].keys()

    # complete: the plugin saw the task before and after
    assert await orchestrator.complete_task("review-1", "coder-1", {"verdict": "lgtm"})
    await eventually(lambda: recorder.post)
    [before] = recorder.pre
    assert before["task_id"] == "review-1"
    assert before["agent_id"] == "coder-1"
    assert before["priority"] is TaskPriority.HIGH
    assert before["metadata"] == {"pr": 42}
    [(after, result)] = recorder.post
    assert result == {"verdict": "lgtm"}
    assert after["status"] is TaskStatus.COMPLETED
    assert after["observed_by"] == "recorder"  # what pre_task_execution returned

    # the slot is free again, and the refused task left nothing behind: its id is reusable
    assert await orchestrator.delegate_task("review-2", "code_review", ["python"]) == "coder-1"
    assert await orchestrator.complete_task("review-2", "coder-1", {"error": "red"}, success=False)
    await eventually(lambda: len(recorder.post) == 2)
    assert recorder.post[1][0]["error"] == "red"

    status = await orchestrator.get_system_status()
    assert status["agents"]["busy"] == 0
    assert status["tasks"]["completed_total"] == 1
    assert status["tasks"]["error_total"] == 1
    assert status["performance"]["error_rate_percent"] == 50.0
    assert status["health_status"] == "degraded"
    assert any("error rate" in issue for issue in status["health_issues"])

    # plugins by type: the class plugin, and the shipped ones that are installed
    by_type = {t: orchestrator.plugin_manager.get_plugins(t) for t in PluginType}
    assert by_type[PluginType.WORKFLOW] == [recorder]
    assert orchestrator.plugin_manager.get_plugin("recorder") is recorder
    for plugins in by_type.values():
        for plugin in plugins:
            report = await plugin.health_check()
            assert report["status"] in {h.value for h in HealthStatus}

    await shutdown_universal_orchestrator()
    assert recorder.cleaned
    assert not orchestrator.running


async def test_disabling_plugins_is_a_rollback():
    orchestrator = await get_universal_orchestrator(legacy_config())
    assert await orchestrator.register_agent("coder-1", AgentRole.WORKER, ["python"])
    recorder, barrier = Recorder("recorder"), Recorder("barrier")
    assert await orchestrator.plugin_manager.register_plugin(recorder)
    assert await orchestrator.plugin_manager.register_plugin(barrier)

    # at run time: detach a class plugin; it is cleaned up and sees nothing more
    assert await orchestrator.plugin_manager.unregister_plugin("recorder")
    assert recorder.cleaned
    assert orchestrator.plugin_manager.get_plugin("recorder") is None
    assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "coder-1"
    assert await orchestrator.complete_task("t-1", "coder-1")
    await eventually(lambda: barrier.post)  # notifications are delivered in order
    assert recorder.pre == []
    assert recorder.post == []
    await shutdown_universal_orchestrator()

    # at start: every enable_*_plugin flag off, and the orchestrator still does its job
    switched_off = {flag: False for flag in OrchestratorConfig.model_fields if "_plugin" in flag}
    orchestrator = await get_universal_orchestrator(legacy_config(**switched_off))
    async with HiveClient(nats_url=orchestrator.nats_url) as hive:
        assert [p.name for p in await hive.plugins()] == []
    for plugin_type in PluginType:
        assert orchestrator.plugin_manager.get_plugins(plugin_type) == []
    assert await orchestrator.register_agent("coder-1", AgentRole.WORKER, ["python"])
    assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "coder-1"
    assert await orchestrator.complete_task("t-1", "coder-1")


async def test_the_legacy_load_test_shape():
    orchestrator = await get_universal_orchestrator(legacy_config(max_agents=100))
    roles = list(AgentRole)
    slots: dict[str, int] = {}
    for i in range(60):
        agent_id = f"agent-{i:02d}"
        slots[agent_id] = 2 if i % 10 == 0 else 1
        capabilities = [CAPABILITIES[i % 4], "general"]
        metadata = {"max_tasks": slots[agent_id], "index": i}
        assert await orchestrator.register_agent(
            agent_id, roles[i % len(roles)], capabilities, metadata
        )

    priorities = list(TaskPriority)
    results = await asyncio.gather(
        *(
            orchestrator.delegate_task(
                f"load-{n}", "load", [CAPABILITIES[n % 4]], priorities[n % 4], {"n": n}
            )
            for n in range(100)
        )
    )

    assert len(results) == 100
    assert all(result is None or result in slots for result in results)
    held = Counter(result for result in results if result is not None)
    # 25 tasks per capability against 15 agents (18 slots for two of them): every slot is
    # filled, and only the tasks beyond the slots are refused.
    assert held == slots
    assert results.count(None) == 100 - sum(slots.values())
    status = await orchestrator.get_system_status()
    assert status["agents"]["total"] == 60
    assert status["agents"]["busy"] == 60
    assert status["tasks"]["active"] == sum(slots.values())

    async def complete_all(assigned: dict[int, str | None]) -> None:
        done = await asyncio.gather(
            *(
                orchestrator.complete_task(f"load-{n}", agent_id, {"n": n})
                for n, agent_id in assigned.items()
                if agent_id is not None
            )
        )
        assert all(done)

    await complete_all(dict(enumerate(results)))
    # The refused tasks left nothing behind: delegated again, every one finds a free agent.
    refused = [n for n, result in enumerate(results) if result is None]
    again = await asyncio.gather(
        *(
            orchestrator.delegate_task(
                f"load-{n}", "load", [CAPABILITIES[n % 4]], priorities[n % 4], {"n": n}
            )
            for n in refused
        )
    )
    assert None not in again
    await complete_all(dict(zip(refused, again, strict=True)))
    status = await orchestrator.get_system_status()
    assert status["tasks"]["active"] == 0
    assert status["agents"]["busy"] == 0
    assert status["tasks"]["completed_total"] == 100

    url = urlparse(orchestrator.nats_url)
    await shutdown_universal_orchestrator()
    assert not orchestrator.running
    assert not port_open(str(url.hostname), int(url.port or 0))
    leftovers = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("hivebus")]
    assert leftovers == []


async def test_nats_clients_see_the_legacy_agents_and_tasks():
    orchestrator = await get_universal_orchestrator(legacy_config())
    assert await orchestrator.register_agent("legacy-1", AgentRole.MONITOR, ["python"])
    async with HiveClient(nats_url=orchestrator.nats_url) as hive:
        agents = {agent.agent_id: agent for agent in await hive.agents()}
        assert agents["legacy-1"].role is AgentRole.MONITOR
        assert agents["legacy-1"].capabilities == ["python"]

        assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "legacy-1"
        task = await hive.get("t-1")
        assert (task.status, task.agent_id) == (TaskStatus.ASSIGNED, "legacy-1")
        assert await orchestrator.complete_task("t-1", "legacy-1", {"built": True})
        task = await hive.get("t-1")
        assert (task.status, task.result) == (TaskStatus.COMPLETED, {"built": True})

        # A NATS client's own task is not taken by a legacy agent: nobody would ever do it.
        receipt = await hive.delegate("build", ["python"])
        assert receipt.status is TaskStatus.QUEUED
        await hive.cancel(receipt.task_id)

        # A real agent on the same bus is a candidate for the facade's tasks.
        async def build(offer: Any) -> dict[str, str]:
            return {"built_by": "sdk-1"}

        async with Agent("sdk-1", ["rust"], build, nats_url=orchestrator.nats_url):
            assert await orchestrator.delegate_task("t-2", "build", ["rust"]) == "sdk-1"

            async def done() -> bool:
                return (await hive.get("t-2")).status is TaskStatus.COMPLETED

            await eventually(done)

        seen_by_client = await hive.status()
        seen_by_legacy = await orchestrator.get_system_status()
        assert seen_by_client["orchestrator_id"] == seen_by_legacy["orchestrator_id"]
        assert seen_by_client["tasks"]["completed_total"] == 2


class NoRogues:
    """A hook plugin that vetoes agents whose id starts with ``rogue``."""

    @hookimpl
    def hivebus_agent_register(self, agent: AgentView) -> bool:
        return not agent.agent_id.startswith("rogue")


async def test_refusals_are_false_or_none_never_exceptions():
    orchestrator = await get_universal_orchestrator(legacy_config(max_agents=2))
    assert orchestrator.core is not None
    orchestrator.core.plugins.register(NoRogues(), "no-rogues")

    assert await orchestrator.register_agent("a-1", AgentRole.WORKER, ["python"])
    assert not await orchestrator.register_agent("a-1", AgentRole.WORKER, ["python"])  # exists
    assert not await orchestrator.register_agent("not valid!", AgentRole.WORKER, [])  # id
    assert not await orchestrator.register_agent("a-x", "juggler", [])  # role
    assert not await orchestrator.register_agent("rogue-1", AgentRole.WORKER, [])  # veto
    assert await orchestrator.register_agent("a-2", "WORKER", ["python"])  # names in any case
    assert not await orchestrator.register_agent("a-3", AgentRole.WORKER, [])  # max_agents

    assert await orchestrator.delegate_task("t-1", "build", ["cobol"]) is None  # nobody capable
    assert await orchestrator.delegate_task("bad id", "build", ["python"]) is None  # invalid id
    assert await orchestrator.delegate_task("t-2", "build", ["python"], priority=99) is None

    assert not await orchestrator.complete_task("t-404", "a-1")  # unknown task
    assigned = await orchestrator.delegate_task("t-3", "build", ["python"], priority=8)
    assert assigned in {"a-1", "a-2"}
    other = "a-2" if assigned == "a-1" else "a-1"
    assert not await orchestrator.complete_task("t-3", other)  # not its task
    assert await orchestrator.complete_task("t-3", assigned)
    assert await orchestrator.complete_task("t-3", assigned)  # a retried completion

    await orchestrator.shutdown()
    with pytest.raises(RuntimeError, match="not running"):
        await orchestrator.register_agent("a-9", AgentRole.WORKER, [])


async def test_thresholds_turn_health_degraded_and_say_which():
    tight = legacy_config(
        max_agent_registration_ms=0.001,
        max_task_delegation_ms=0.001,
        max_system_initialization_ms=0.001,
        max_memory_percent=0.001,
        max_cpu_percent=0.001,
        health_check_interval=0.05,
    )
    orchestrator = await get_universal_orchestrator(tight)
    assert await orchestrator.register_agent("a-1", AgentRole.WORKER, ["python"])
    assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "a-1"
    names = [
        "max_agent_registration_ms",
        "max_task_delegation_ms",
        "max_system_initialization_ms",
        "max_memory_percent",
        "max_cpu_percent",
    ]

    async def all_named() -> bool:
        issues = " ".join((await orchestrator.get_system_status())["health_issues"])
        return all(name in issues for name in names)

    await eventually(all_named)
    status = await orchestrator.get_system_status()
    assert status["health_status"] == "degraded"
    assert status["performance"]["task_delegation_p95_ms"] > 0
    async with HiveClient(nats_url=orchestrator.nats_url) as hive:
        seen_on_the_bus = " ".join((await hive.status())["health_issues"])
    assert all(name in seen_on_the_bus for name in names)  # the core itself runs the checks
    await shutdown_universal_orchestrator()

    # Thresholds no machine reaches, however loaded: none may be reported. (The legacy
    # defaults, 100 ms to register and 2 s to start, are wall-clock limits a test must not set.)
    roomy = legacy_config(
        max_memory_mb=1_000_000.0,
        max_cpu_percent=100.0,
        max_memory_percent=100.0,
        max_agent_registration_ms=1e9,
        max_task_delegation_ms=1e9,
        max_system_initialization_ms=1e9,
    )
    orchestrator = await get_universal_orchestrator(roomy)
    assert await orchestrator.register_agent("a-1", AgentRole.WORKER, ["python"])
    status = await orchestrator.get_system_status()
    assert not [issue for issue in status["health_issues"] if re.search(r"max_|MiB", issue)]


def test_migrate_config_maps_the_old_keys_and_reports_the_rest():
    old = {
        "mode": "DEVELOPMENT",
        "max_agents": 25,
        "max_tasks": 300,
        "max_memory_mb": 256,
        "enable_security_plugin": False,
        "log_level": "debug",
        "redis_url": "redis://localhost",
        "legacy_cache_size": 10,
    }
    with pytest.warns(ConfigMigrationWarning, match="legacy_cache_size, redis_url"):
        config = migrate_config(old)
    assert config.mode is OrchestratorMode.DEVELOPMENT
    assert (config.max_agents, config.max_concurrent_tasks) == (25, 300)
    assert config.max_memory_mb == 256
    assert config.plugin_switches()["security"] is False
    core = config.core_config(nats_url="nats://127.0.0.1:4222")
    assert isinstance(core, HivebusConfig)
    assert (core.max_agents, core.max_concurrent_tasks, core.log_level) == (25, 300, "DEBUG")
    assert "security" in core.disable_plugins
    assert "performance" in core.enable_plugins

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to report: no warning at all
        assert migrate_config({"max_agents": 3}).max_agents == 3

    with pytest.raises(ValidationError):
        migrate_config({"max_agents": 0})


def test_the_config_is_validated_with_the_legacy_defaults():
    config = OrchestratorConfig()
    assert config.mode is OrchestratorMode.PRODUCTION
    assert (config.max_agents, config.max_concurrent_tasks) == (100, 1000)
    assert (config.health_check_interval, config.cleanup_interval) == (30, 300)
    assert config.auto_scaling_enabled is True
    assert (config.max_agent_registration_ms, config.max_task_delegation_ms) == (100.0, 500.0)
    assert (config.max_system_initialization_ms, config.max_memory_mb) == (2000.0, 50.0)
    assert (config.max_cpu_percent, config.max_memory_percent) == (80.0, 80.0)
    assert config.max_error_rate_percent == 5.0
    assert config.plugin_switches() == {
        "performance": True,
        "security": True,
        "context": True,
        "automation": True,
        "production": False,
        "audit": False,
    }
    with pytest.raises(ValidationError, match="max_cpu_percent"):
        OrchestratorConfig(max_cpu_percent=150)
    with pytest.raises(ValidationError, match="max_agentz"):
        OrchestratorConfig(max_agentz=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="set them on OrchestratorConfig"):
        OrchestratorConfig(core_settings={"max_agents": 3})
    with pytest.raises(ValidationError, match="invalid core settings"):
        OrchestratorConfig(core_settings={"plugin_timeout_s": -1})
    with pytest.raises(ValidationError):
        config.max_agents = -5  # assignments are validated too


async def test_enable_production_plugin_loads_the_production_plugin():
    orchestrator = await get_universal_orchestrator(legacy_config(enable_production_plugin=True))
    async with HiveClient(nats_url=orchestrator.nats_url) as hive:
        plugins = {p.name: p.health.value for p in await hive.plugins()}
        assert plugins["production"] == "healthy"
        assert "production" in (await hive.status())["extensions"]


async def test_an_enabled_plugin_that_is_not_installed_is_a_warning(
    monkeypatch: pytest.MonkeyPatch,
):
    # All five legacy plugins ship with hivebus: hide one to play a machine without it.
    import hivebus.plugins.loading

    installed = hivebus.plugins.loading.entry_points

    def without_production(**kw: Any) -> Any:
        return [ep for ep in installed(**kw) if ep.name != "production"]

    monkeypatch.setattr(hivebus.plugins.loading, "entry_points", without_production)
    with pytest.warns(PluginNotInstalledWarning, match="enable_production_plugin"):
        orchestrator = await get_universal_orchestrator(
            legacy_config(enable_production_plugin=True)
        )
    assert await orchestrator.register_agent("a-1", AgentRole.WORKER, ["python"])
    assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "a-1"


async def test_one_orchestrator_per_process():
    assert get_orchestrator is get_universal_orchestrator
    assert AgentOrchestrator is UniversalOrchestrator
    first = await get_universal_orchestrator(legacy_config())
    first_id = (await first.get_system_status())["orchestrator_id"]
    assert await get_orchestrator() is first
    with pytest.warns(RuntimeWarning, match="ignored the config"):
        assert await get_universal_orchestrator(legacy_config(max_agents=7)) is first
    await shutdown_universal_orchestrator()
    await shutdown_universal_orchestrator()  # idempotent
    second = await get_universal_orchestrator(legacy_config(max_agents=7))
    assert second is not first
    assert (await second.get_system_status())["orchestrator_id"] != first_id


async def test_class_plugins_registered_before_start_and_refused_ones():
    class Declines(Recorder):
        async def initialize(self, orchestrator_context: dict[str, Any]) -> bool:
            return False

    class Breaks(Recorder):
        async def initialize(self, orchestrator_context: dict[str, Any]) -> bool:
            raise RuntimeError("no database")

    class Sick(Recorder):
        def health_check(self) -> dict[str, Any]:  # sync methods work too
            return {"status": HealthStatus.DEGRADED}

    orchestrator = UniversalOrchestrator(legacy_config())
    early, declines = Recorder("early"), Declines("declines")
    assert await orchestrator.plugin_manager.register_plugin(early)
    assert await orchestrator.plugin_manager.register_plugin(declines)
    async with orchestrator:
        assert orchestrator.core is not None
        assert early.context is not None
        assert early.context["core"] is orchestrator.core.orchestrator
        assert orchestrator.plugin_manager.get_plugin("early") is early
        assert orchestrator.plugin_manager.get_plugin("declines") is None

        manager = orchestrator.plugin_manager
        assert not await manager.register_plugin(Declines("declines"))
        assert not await manager.register_plugin(Breaks("breaks"))
        assert not await manager.register_plugin(Recorder("early"))  # the name is taken
        assert not await manager.register_plugin(Recorder("needy", dependencies=["missing"]))
        assert await manager.register_plugin(Recorder("dependent", dependencies=["early"]))
        disabled = Recorder("disabled")
        disabled.metadata.enabled = False
        assert not await manager.register_plugin(disabled)
        assert await manager.register_plugin(Sick("sick"))

        status = await orchestrator.get_system_status()
        assert status["plugins"]["sick"] == "degraded"
        assert "plugin sick is degraded" in status["health_issues"]
        assert status["plugins"]["early"] == "healthy"
    assert early.cleaned
    assert not declines.cleaned


async def test_run_core_false_uses_a_core_already_serving(hive: HiveClient):
    config = legacy_config(
        nats_url=hive.config.nats_url, run_core=False, max_task_delegation_ms=0.001
    )
    orchestrator = await get_universal_orchestrator(config)
    assert orchestrator.core is None
    assert await orchestrator.register_agent("a-1", AgentRole.WORKER, ["python"])
    assert [agent.agent_id for agent in await hive.agents()] == ["a-1"]
    assert await orchestrator.delegate_task("t-1", "build", ["python"]) == "a-1"
    assert await orchestrator.complete_task("t-1", "a-1", "done")
    status = await orchestrator.get_system_status()
    assert status["orchestrator_id"] == (await hive.status())["orchestrator_id"]
    assert any("max_task_delegation_ms" in issue for issue in status["health_issues"])
    with pytest.raises(RuntimeError, match="entry-point plugin"):
        await orchestrator.plugin_manager.register_plugin(Recorder())
    await shutdown_universal_orchestrator()
    assert await hive.agents() == []  # deregistered on shutdown


def test_the_migration_guide_covers_every_name_and_field():
    guide = MIGRATION_MD.read_text()
    missing = [name for name in hivebus.universal.__all__ if f"`{name}" not in guide]
    missing += [f for f in OrchestratorConfig.model_fields if f"`{f}`" not in guide]
    assert missing == [], f"docs/migration.md does not mention {missing}"
