"""The plugin host's hygiene: what it refuses at load, the order it calls, what it counts.

Most checks need no server: a ``PluginHost`` loads, refuses and describes plugins on its own.
The ones that need the core (every hook called, a veto's event) run a real core on a real
nats-server, with the plugin registered on its host before it starts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import AsyncIterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from contract_wire import EventLog, Wire
from every_hook_plugin import NAME, EveryHook
from hivebus import Core, HivebusConfig, HiveClient
from hivebus.cli.extensions import load_commands
from hivebus.domain.ports import Later
from hivebus.plugins import PluginHost
from hivebus_hookspecs import Rejected, hookimpl, hookspecs
from hivebus_hookspecs.models import HealthStatus, PluginInfo, TaskStatus
from nats.aio.client import Client

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("hivebus_"))


def host(**settings: Any) -> PluginHost:
    return PluginHost(HivebusConfig.load(plugin_autoload=False, state="memory", **settings))


async def described(plugins: PluginHost) -> dict[str, PluginInfo]:
    return {info.name: info for info in await plugins.describe()}


# --- refused at load: the core keeps running, the plugin is listed unhealthy with why --------


class Misspelled:
    @hookimpl
    def hivebus_task_complete(self, task: Any) -> None:  # hivebus_task_completed
        raise AssertionError("never called")

    @hookimpl
    def hivebus_health(self) -> str:
        return "healthy"


async def test_a_misspelled_hook_refuses_the_plugin_and_names_it():
    plugins = host()
    assert not plugins.register(Misspelled(), "typo")
    assert plugins.register(EveryHook(), NAME)  # the others load as usual
    info = (await described(plugins))["typo"]
    assert info.health is HealthStatus.UNHEALTHY
    assert info.hooks == []  # none of its hooks is called, the correct ones neither
    assert info.last_error is not None
    assert "hivebus_task_complete is not a hivebus hook" in info.last_error
    assert "did you mean hivebus_task_completed?" in info.last_error
    assert plugins.pm.get_plugin("typo") is None
    assert not plugins.wants("hivebus_task_complete")


class OldWrapper:
    @hookimpl(hookwrapper=True)
    def hivebus_health(self) -> Any:
        yield


class NewWrapper:
    @hookimpl(wrapper=True)
    def hivebus_status(self) -> Any:
        return (yield)


@pytest.mark.parametrize(
    ("plugin", "hook"), [(OldWrapper, "hivebus_health"), (NewWrapper, "hivebus_status")]
)
async def test_wrapper_implementations_are_refused_with_a_clear_message(plugin: type, hook: str):
    plugins = host()
    assert not plugins.register(plugin(), "wrapping")
    info = (await described(plugins))["wrapping"]
    assert info.health is HealthStatus.UNHEALTHY
    assert info.last_error is not None
    assert info.last_error.startswith(f"{hook}: wrapper implementations")
    assert "calls each implementation on its own" in info.last_error
    assert not plugins.wants(hook)


def test_a_function_without_hookimpl_is_reported(caplog: pytest.LogCaptureFixture):
    class Forgot:
        def hivebus_health(self) -> str:  # no @hookimpl: pluggy ignores it
            return "healthy"

    with caplog.at_level(logging.WARNING, logger="hivebus.plugins"):
        assert host().register(Forgot(), "forgot")
    [record] = [r for r in caplog.records if "not marked with @hookimpl" in r.getMessage()]
    assert (record.plugin, record.function) == ("forgot", "hivebus_health")  # type: ignore[attr-defined]


# --- one instance per core when the entry point names a class ---------------------------------


class Counting:
    def __init__(self) -> None:
        self.healths = 0

    @hookimpl
    def hivebus_health(self) -> str:
        self.healths += 1
        return "healthy"


COUNTING = Counting()


def test_a_class_gets_a_fresh_instance_per_host_an_instance_or_module_is_kept(monkeypatch):
    module = types.ModuleType("module_plugin")
    module.hivebus_health = hookimpl(lambda: "healthy")  # type: ignore[attr-defined]
    found = [
        EntryPoint("by-class", f"{__name__}:Counting", "hivebus"),
        EntryPoint("by-instance", f"{__name__}:COUNTING", "hivebus"),
    ]
    monkeypatch.setattr("hivebus.plugins.loading.entry_points", lambda group: found)
    first, second = (host(enable_plugins=["by-class", "by-instance"]) for _ in range(2))
    for plugins in (first, second):
        plugins.load_entry_points()
        plugins.register(module, "by-module")
    one, two = first.pm.get_plugin("by-class"), second.pm.get_plugin("by-class")
    assert isinstance(one, Counting)
    assert isinstance(two, Counting)
    assert one is not two  # two cores in one process never share its state
    assert first.pm.get_plugin("by-instance") is second.pm.get_plugin("by-instance") is COUNTING
    assert first.pm.get_plugin("by-module") is second.pm.get_plugin("by-module") is module


# --- requirements and order -------------------------------------------------------------------


def recorder(name: str, calls: list[str], requires: list[str] | None = None, **opts: bool) -> Any:
    class Recorder:
        hivebus_requires = requires or []

        @hookimpl(**opts)
        def hivebus_startup(self) -> None:
            calls.append(f"start {name}")

        @hookimpl(**opts)
        def hivebus_health(self) -> None:
            calls.append(name)

        @hookimpl
        def hivebus_shutdown(self) -> None:
            calls.append(f"stop {name}")

    return Recorder()


async def test_tryfirst_and_trylast_order_the_calls_like_pluggy():
    calls: list[str] = []
    plugins = host()
    plugins.register(recorder("last", calls, trylast=True), "last")
    plugins.register(recorder("first", calls, tryfirst=True), "first")
    plugins.register(recorder("older", calls), "older")
    plugins.register(recorder("newer", calls), "newer")
    await plugins.call_each("hivebus_health")
    # pluggy's order: tryfirst, then the last registered first, then trylast.
    assert calls == ["first", "newer", "older", "last"]
    assert [
        impl.plugin_name for impl in reversed(plugins.pm.hook.hivebus_health.get_hookimpls())
    ] == calls


async def test_a_missing_requirement_refuses_the_plugin_naming_both():
    calls: list[str] = []
    plugins = host()
    plugins.register(recorder("needy", calls, requires=["absent"]), "needy")
    plugins.register(recorder("needs-needy", calls, requires=["needy"]), "needs-needy")
    plugins.register(recorder("fine", calls), "fine")
    await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
    try:
        infos = await described(plugins)
        assert infos["needy"].health is HealthStatus.UNHEALTHY
        assert infos["needy"].last_error == (
            "plugin 'needy' requires plugin 'absent', which is not installed or not enabled"
        )
        # ... and what needs the refused plugin is refused in turn, saying why.
        assert infos["needs-needy"].health is HealthStatus.UNHEALTHY
        assert (infos["needs-needy"].last_error or "").startswith(
            "plugin 'needs-needy' requires plugin 'needy', which was not loaded (plugin 'needy'"
        )
        assert infos["fine"].health is HealthStatus.HEALTHY
        assert [c for c in calls if c.startswith("start")] == ["start fine"]
        # Registered while running, a plugin is checked at once.
        assert not plugins.register(recorder("late", calls, requires=["absent"]), "late")
        assert plugins.register(recorder("late-ok", calls, requires=["fine"]), "late-ok")
    finally:
        await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]


async def test_required_plugins_start_first_and_stop_last():
    calls: list[str] = []
    plugins = host()
    # Registered before what it requires: pluggy alone would start it first.
    plugins.register(recorder("app", calls, requires=["db"]), "app")
    plugins.register(recorder("db", calls, requires=["config"]), "db")
    plugins.register(recorder("config", calls), "config")
    plugins.register(recorder("other", calls), "other")
    await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
    await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]
    starts = [c for c in calls if c.startswith("start")]
    stops = [c for c in calls if c.startswith("stop")]
    assert starts.index("start config") < starts.index("start db") < starts.index("start app")
    assert stops == [c.replace("start", "stop") for c in reversed(starts)]


# --- tracing --------------------------------------------------------------------------------


async def test_trace_plugins_logs_every_hook_call_with_its_duration(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HIVEBUS_TRACE_PLUGINS", "1")
    plugins = host()
    assert plugins.config.trace_plugins
    plugins.register(recorder("traced", []), "traced")
    plugins.register(Misspelled(), "typo")
    with caplog.at_level(logging.INFO, logger="hivebus.plugins"):
        await plugins.call_each("hivebus_health")
    [record] = [r for r in caplog.records if r.getMessage() == "plugin hook called"]
    fields = {k: getattr(record, k) for k in ("plugin", "hook", "outcome")}
    assert fields == {"plugin": "traced", "hook": "hivebus_health", "outcome": "ok"}
    assert record.duration_ms >= 0  # type: ignore[attr-defined]

    monkeypatch.delenv("HIVEBUS_TRACE_PLUGINS")
    caplog.clear()
    quiet = host()
    quiet.register(recorder("quiet", []), "quiet")
    with caplog.at_level(logging.INFO, logger="hivebus.plugins"):
        await quiet.call_each("hivebus_health")
    assert not [r for r in caplog.records if r.getMessage() == "plugin hook called"]


# --- through a real core --------------------------------------------------------------------


def test_the_fixture_plugin_implements_every_hook_with_its_full_signature():
    for hook in HOOKS:
        implementation = getattr(EveryHook, hook, None)
        assert implementation is not None, f"every_hook_plugin.py lacks {hook}: add it"
        spec = inspect.signature(getattr(hookspecs, hook))
        own = inspect.signature(implementation)
        assert list(own.parameters)[1:] == list(spec.parameters), hook
        assert [p.annotation for p in own.parameters.values()][1:] == [
            p.annotation for p in spec.parameters.values()
        ], hook


async def test_a_real_core_calls_every_hook_of_the_fixture_plugin(
    hivebus_config: HivebusConfig, make_agent: Any
):
    plugins = PluginHost(hivebus_config)
    assert plugins.register(EveryHook, NAME)  # a class: the host builds the instance
    plugin = plugins.pm.get_plugin(NAME)
    assert isinstance(plugin, EveryHook)

    async def fails(offer: Any) -> Any:
        raise RuntimeError("on purpose")

    core = Core(hivebus_config, plugins=plugins)
    await core.start()
    try:
        async with HiveClient(config=hivebus_config) as hive:
            agents = [
                await make_agent("every-1", ["python"]),
                await make_agent("every-2", ["python"]),  # two candidates: selection runs
                await make_agent("failing", ["broken"], handler=fails),
            ]
            done = await hive.delegate("build", ["python"], payload=1, wait=True, wait_timeout=5)
            assert done.status is TaskStatus.COMPLETED
            assert done.metadata["seen_by"] == NAME  # the amendment was applied
            failed = await hive.delegate("build", ["broken"], wait=True, wait_timeout=5)
            assert failed.status is TaskStatus.FAILED
            status = await hive.status()
            assert status["extensions"][NAME] == {"agents": 3, "queued": 0}
            assert {p.name for p in await hive.plugins()} == {NAME}
            for agent in agents:
                await agent.stop(grace_s=1.0)
    finally:
        await core.stop()
    load_commands(reserved=(), found=[_OneEntryPoint(plugin)])  # the command line's hook

    assert sorted(hook for hook in HOOKS if not plugin.calls[hook]) == []
    assert plugin.seen["orchestrator_id"] == hivebus_config.orchestrator_id
    assert plugin.seen["removed"] == ("failing", "deregistered")
    assert plugin.seen["candidates"] == 2
    assert plugin.seen["error"] is not None


class _OneEntryPoint:
    """What ``load_commands`` needs of an entry point, for a plugin object already built."""

    name = NAME
    value = "every_hook_plugin:EveryHook"
    dist = None

    def __init__(self, plugin: object) -> None:
        self._plugin = plugin

    def load(self) -> object:
        return self._plugin


# --- vetoes: an event and a count -----------------------------------------------------------


class Vetoer:
    @hookimpl
    def hivebus_task_delegate(self, task: Any) -> bool:
        return task.task_type != "forbidden"

    @hookimpl
    def hivebus_agent_register(self, agent: Any) -> None:
        if agent.agent_id == "mallory":
            raise Rejected("no mallory")


@pytest.fixture
async def core_with_vetoer(hivebus_config: HivebusConfig) -> AsyncIterator[Core]:
    plugins = PluginHost(hivebus_config)
    plugins.register(Vetoer(), "vetoer")
    plugins.register(EveryHook(), NAME)  # sees the veto event through hivebus_event too
    async with Core(hivebus_config, plugins=plugins) as core:
        yield core


async def test_a_veto_is_announced_and_counted(core_with_vetoer: Core, nats_client: Client):
    events = await EventLog.follow(nats_client)
    wire = Wire(nats_client)
    await wire.fail("agent.register", {"agent_id": "mallory"}, code="rejected_by_plugin")
    await wire.fail(
        "task.delegate", {"task_id": "t-1", "task_type": "forbidden"}, code="rejected_by_plugin"
    )
    on_agent = await events.wait_for("plugin.vetoed", agent_id="mallory")
    assert on_agent | {"timestamp": 0} == {
        "event": "plugin.vetoed",
        "timestamp": 0,
        "agent_id": "mallory",
        "task_id": None,
        "plugin": "vetoer",
        "hook": "hivebus_agent_register",
        "reason": "no mallory",
    }
    on_task = await events.wait_for("plugin.vetoed", task_id="t-1")
    assert (on_task["plugin"], on_task["hook"], on_task["reason"]) == (
        "vetoer",
        "hivebus_task_delegate",
        "refused",
    )
    assert "events.plugin.vetoed" in events.subjects
    plugins = {p["name"]: p for p in (await wire.ok("orchestrator.plugins"))["plugins"]}
    assert (plugins["vetoer"]["vetoes"], plugins["vetoer"]["failures"]) == (2, 0)
    assert plugins["vetoer"]["health"] == "healthy"  # a veto is the plugin doing its job
    assert plugins[NAME]["vetoes"] == 0


class FailsToStart:
    @hookimpl
    def hivebus_startup(self) -> None:
        raise RuntimeError("no metrics port")


async def test_a_plugin_whose_start_up_failed_stays_degraded_after_the_failure_ages(
    monkeypatch: pytest.MonkeyPatch,
):
    plugins = host()
    plugins.register(FailsToStart(), "broken")
    plugins.register(recorder("fine", []), "fine")
    await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
    try:
        # Later failures are forgotten after a while; a start that never happened is not.
        monkeypatch.setattr("hivebus.plugins.records.DEGRADED_FOR_S", 0.0)
        infos = await described(plugins)
        assert infos["broken"].health is HealthStatus.DEGRADED
        assert "no metrics port" in (infos["broken"].last_error or "")
        assert infos["fine"].health is HealthStatus.HEALTHY
    finally:
        await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]


# --- calls are looked up once per change of plugins; notifications build views at delivery --


async def test_a_plugin_that_comes_or_goes_after_calls_began_is_called_from_the_next_call():
    calls: list[str] = []
    plugins = host()
    plugins.register(recorder("first", calls), "first")
    await plugins.call_each("hivebus_health")
    assert calls == ["first"]
    assert not plugins.wants("hivebus_task_failed")

    class Failed:
        @hookimpl
        def hivebus_task_failed(self) -> None:
            calls.append("failed")

    plugins.register(recorder("second", calls), "second")
    plugins.register(Failed(), "failed")
    calls.clear()
    await plugins.call_each("hivebus_health")
    assert calls == ["second", "first"]
    assert plugins.wants("hivebus_task_failed")

    plugins.unregister("first")
    plugins.unregister("failed")
    calls.clear()
    await plugins.call_each("hivebus_health")
    assert calls == ["second"]
    assert not plugins.wants("hivebus_task_failed")


class TakesTheTaskOnly:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def hivebus_task_assigned(self, task: Any) -> None:  # a subset of (task, agent)
        self.seen.append(task)


class TakesBoth(TakesTheTaskOnly):
    @hookimpl
    def hivebus_task_assigned(self, task: Any, agent: Any) -> None:
        self.seen.append((task, agent))


async def test_a_notification_builds_what_its_plugins_take_once_at_delivery():
    built: list[str] = []

    def later(name: str) -> Later:
        return Later(lambda: built.append(name) or name)

    plugins = host()
    only_task = TakesTheTaskOnly()
    plugins.register(only_task, "only-task")
    await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
    try:
        plugins.notify("hivebus_task_assigned", task=later("task 1"), agent=later("agent 1"))
        assert built == []  # nothing built on the request path
        await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]
        assert only_task.seen == ["task 1"]
        assert built == ["task 1"]  # no plugin takes the agent: never built

        both = TakesBoth()
        plugins.register(both, "both")
        await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
        plugins.notify("hivebus_task_assigned", task=later("task 2"), agent=later("agent 2"))
    finally:
        await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]
    assert both.seen == [("task 2", "agent 2")]
    assert only_task.seen == ["task 1", "task 2"]
    assert built == ["task 1", "task 2", "agent 2"]  # once each, however many plugins


async def test_notifications_arrive_in_order_and_stopping_delivers_what_waits():
    seen: list[str] = []

    class Events:
        @hookimpl
        def hivebus_event(self, event: Any) -> None:
            seen.append(event)

    class Broken:
        @hookimpl
        def hivebus_event(self, event: Any) -> None:
            raise RuntimeError("on purpose")

    plugins = host()
    plugins.register(Events(), "events")
    plugins.register(Broken(), "broken")  # called first: its failures stop nothing
    await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
    sent = [f"event {i}" for i in range(2_000)]
    for event in sent[:1000]:
        plugins.notify("hivebus_event", event=event)
    await asyncio.sleep(0)  # the worker wakes and takes what waits; more lines up meanwhile
    for event in sent[1000:]:
        plugins.notify("hivebus_event", event=event)
    await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]
    assert seen == sent
    assert plugins.dropped_notifications == 0
    assert (await described(plugins))["broken"].failures == len(sent)


async def test_a_full_line_drops_notifications_and_counts_them(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("hivebus.plugins.notifications.NOTIFY_QUEUE_SIZE", 10)
    seen: list[int] = []

    class Events:
        @hookimpl
        def hivebus_event(self, event: int) -> None:
            seen.append(event)

    plugins = host()
    plugins.register(Events(), "events")
    await plugins.start(types.SimpleNamespace())  # type: ignore[arg-type]
    for event in range(25):  # in one turn of the loop: the worker takes none meanwhile
        plugins.notify("hivebus_event", event=event)
    await plugins.stop(types.SimpleNamespace())  # type: ignore[arg-type]
    assert seen == list(range(10))
    assert plugins.dropped_notifications == 15
