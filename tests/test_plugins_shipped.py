"""The shipped plugins, installed as distributions and found through the ``hivebus`` entry
points, each against a real core on a real nats-server; and plugin isolation in general.

Plugin notifications (events, completed/failed) are delivered off the request path, so checks
on what a plugin observed poll with ``eventually`` rather than assume ordering.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import urllib.error
import urllib.request
from importlib.metadata import entry_points
from typing import Any

import orjson
import pytest
from conftest import eventually
from hivebus import (
    Agent,
    Core,
    ErrorCode,
    HivebusConfig,
    HiveClient,
    Offer,
    RemoteError,
    TaskPriority,
    TaskStatus,
    hookimpl,
)
from hivebus.plugins import PluginHost
from hivebus.testing import TEST_DEFAULTS
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

SHIPPED = {"performance", "security", "context", "automation", "production"}


async def echo(task: Offer) -> Any:
    return task.payload


async def fail_on_request(task: Offer) -> Any:
    if task.payload == "fail":
        raise RuntimeError("asked to fail")
    return task.payload


async def plugin_health(hive: HiveClient, name: str) -> str:
    return {p.name: p.health.value for p in await hive.plugins()}[name]


# --- discovery and configuration ------------------------------------------------------------


def test_shipped_plugins_are_installed_entry_points():
    found = {ep.name: ep for ep in entry_points(group="hivebus")}
    assert set(found) >= SHIPPED
    for name in SHIPPED:
        ep = found[name]
        assert ep.dist is not None
        assert ep.dist.name == f"hivebus-{name}"
        module = importlib.import_module(f"hivebus_{name}")
        assert ep.load() is getattr(
            module, f"{name.capitalize()}Plugin"
        )  # a class, not one instance


def test_two_hosts_in_one_process_get_their_own_instance_of_each_shipped_plugin():
    every = sorted(SHIPPED | {"audit"})
    first, second = (
        PluginHost(HivebusConfig.load(**{**TEST_DEFAULTS, "plugins": every})) for _ in range(2)
    )
    for host in (first, second):
        host.load_entry_points()
        assert sorted(host.names()) == every
    for name in every:
        one, two = first.pm.get_plugin(name), second.pm.get_plugin(name)
        assert one is not None
        assert type(one) is type(two)
        assert one is not two, name  # two cores never share a plugin's state


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"plugin_autoload": True}, SHIPPED),
        ({"plugin_autoload": True, "disable_plugins": ["security"]}, SHIPPED - {"security"}),
        ({"plugins": ["context", "automation"]}, {"context", "automation"}),
        ({"plugin_autoload": True, "plugins": ["performance"]}, {"performance"}),
        ({"plugin_autoload": False}, set()),
        ({"plugin_autoload": False, "enable_plugins": ["security"]}, {"security"}),
        ({"plugins": ["context"], "disable_plugins": ["context"]}, set()),
    ],
    ids=[
        "autoload",
        "disable-by-name",
        "restrict",
        "restrict-beats-autoload",
        "autoload-off",
        "enable-with-autoload-off",
        "disable-within-restrict",
    ],
)
def test_configuration_selects_which_entry_point_plugins_load(settings, expected):
    host = PluginHost(HivebusConfig.load(**{**TEST_DEFAULTS, **settings}))
    host.load_entry_points()
    assert set(host.names()) & SHIPPED == expected


class TestAllShippedTogether:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {
            "plugin_autoload": True,
            "disable_plugins": ["audit"],
            "plugin_config": {"performance": {"port": 0}},
        }

    async def test_autoloaded_they_serve_a_task_and_all_report_healthy(self, hive, make_agent):
        await make_agent("all-1", ["python"])
        await make_agent("all-2", ["python"])
        task = await hive.delegate("review", ["python"], payload=1, wait=True, wait_timeout=5)
        assert task.status is TaskStatus.COMPLETED
        plugins = {p.name: p for p in await hive.plugins()}
        assert set(plugins) & SHIPPED == SHIPPED
        assert "audit" not in plugins
        for name in SHIPPED:
            assert plugins[name].health.value == "healthy", plugins[name]
            assert plugins[name].version == "0.1.0"
        status = await hive.status()
        assert set(status["extensions"]) >= SHIPPED
        assert status["extensions"]["context"]["selections"] == 1


# --- performance ----------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` from a real HTTP GET, off the event loop."""
    status, text = await asyncio.to_thread(_get, url)
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class TestPerformance:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["performance"], "plugin_config": {"performance": {"port": 0}}}

    async def test_metrics_count_the_lifecycle_over_http(self, hive, make_agent):
        perf = (await hive.status())["extensions"]["performance"]
        assert perf["port"] > 0
        assert perf["error"] is None
        url = perf["url"]
        assert url == f"http://127.0.0.1:{perf['port']}/metrics"

        await make_agent("perf-1", ["python"], fail_on_request)
        done = await hive.delegate("build", ["python"], payload="ok", wait=True, wait_timeout=5)
        failed = await hive.delegate("build", ["python"], payload="fail", wait=True, wait_timeout=5)
        assert (done.status, failed.status) == (TaskStatus.COMPLETED, TaskStatus.FAILED)
        await hive.delegate("build", ["gpu"])  # nobody has it: it waits in the queue

        async def counted() -> bool:
            metrics = await scrape(url)
            return metrics[("hivebus_failures_total", ())] == 1

        await eventually(counted)
        metrics = await scrape(url)
        assert metrics[("hivebus_delegations_total", ())] == 3
        assert metrics[("hivebus_assignments_total", ())] == 2
        assert metrics[("hivebus_completions_total", ())] == 1
        assert metrics[("hivebus_tasks_queued_total", ())] == 1
        assert metrics[("hivebus_requeues_total", ())] == 0
        completed = (("outcome", "completed"), ("task_type", "build"))
        assert metrics[("hivebus_task_duration_seconds_count", completed)] == 1
        failed = (("outcome", "failed"), ("task_type", "build"))
        assert metrics[("hivebus_task_duration_seconds_count", failed)] == 1
        assert metrics[("hivebus_events_observed_total", (("event", "agent.registered"),))] == 1
        assert metrics[("hivebus_agents_registered", ())] == 1
        assert metrics[("hivebus_queue_depth", ())] == 1

        status = await hive.status()
        perf = status["extensions"]["performance"]
        assert perf["totals"]["completions"] == 1
        assert perf["scrapes"] >= 2
        assert status["plugins"]["performance"] == "healthy"

    async def test_only_metrics_is_served(self, hive):
        perf = (await hive.status())["extensions"]["performance"]
        status, _ = await asyncio.to_thread(_get, perf["url"].replace("/metrics", "/other"))
        assert status == 404

    async def test_each_core_gets_a_fresh_registry_and_the_port_closes_at_shutdown(
        self, hivebus_config: HivebusConfig, nats_server
    ):
        urls = []
        for _ in range(2):  # a second core in the same process must not clash with the first
            core = Core(hivebus_config)
            await core.start()
            try:
                async with HiveClient(config=hivebus_config) as hive:
                    perf = (await hive.status())["extensions"]["performance"]
                    metrics = await scrape(perf["url"])
                    assert metrics[("hivebus_delegations_total", ())] == 0
                    urls.append(perf["url"])
            finally:
                await core.stop()
            with pytest.raises(urllib.error.URLError):
                await asyncio.to_thread(urllib.request.urlopen, perf["url"], timeout=5)
        assert len(urls) == 2


class TestPerformancePortTaken:
    @pytest.fixture
    def hivebus_settings(self, nats_server) -> dict[str, Any]:
        # The nats-server's own port is certainly taken.
        config = {"port": nats_server.port, "host": "127.0.0.1"}
        return {"plugins": ["performance"], "plugin_config": {"performance": config}}

    async def test_a_taken_port_degrades_the_plugin_not_the_core(self, hive, make_agent):
        await make_agent("perf-2", ["python"])
        task = await hive.delegate("build", ["python"], wait=True, wait_timeout=5)
        assert task.status is TaskStatus.COMPLETED
        perf = (await hive.status())["extensions"]["performance"]
        assert perf["url"] is None
        assert "cannot serve metrics" in perf["error"]
        assert await plugin_health(hive, "performance") == "degraded"


# --- security -------------------------------------------------------------------------------


async def register(nc: Client, config: HivebusConfig, agent_id: str, caps: list[str], **kw: Any):
    """Register through the SDK on a shared connection (so a refusal leaks nothing)."""
    agent = Agent(agent_id, caps, echo, config=config, nc=nc, **kw)
    try:
        await agent.start()
    finally:
        await agent.stop(grace_s=0.1)


class TestSecurity:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        policy = {
            "allowed_roles": ["worker", "specialist"],
            "allowed_agent_ids": ["good-*", "ok-?"],
            "denied_capabilities": ["shell", "net-*"],
            "required_metadata_keys": ["requester"],
            "max_payload_keys": 2,
        }
        return {"plugins": ["security"], "plugin_config": {"security": policy}}

    async def test_agents_outside_the_policy_are_refused(
        self, hive, make_agent, nats_client, hivebus_config
    ):
        await make_agent("good-1", ["python"])
        await make_agent("ok-1", ["python"], role="specialist")
        refused = [
            ("good-2", ["python"], {"role": "coordinator"}, "role 'coordinator' is not allowed"),
            ("evil-1", ["python"], {}, "agent id 'evil-1' matches no allowed pattern"),
            ("ok-10", ["python"], {}, "matches no allowed pattern"),
            ("good-3", ["python", "net-raw"], {}, "denied capabilities: net-raw"),
        ]
        for agent_id, caps, options, reason in refused:
            with pytest.raises(RemoteError) as err:
                await register(nats_client, hivebus_config, agent_id, caps, **options)
            assert err.value.code is ErrorCode.REJECTED_BY_PLUGIN
            assert "rejected by plugin security" in err.value.message
            assert reason in err.value.message
        agents = {a.agent_id for a in await hive.agents()}
        assert agents == {"good-1", "ok-1"}
        status = (await hive.status())["extensions"]["security"]
        assert status["vetoes"] == {"agents": 4, "tasks": 0}

    async def test_tasks_outside_the_policy_are_refused(self, hive, make_agent):
        await make_agent("good-1", ["python"])
        meta = {"requester": "ci"}
        refused = [
            ({"required_capabilities": ["shell"], "metadata": meta}, "denied capabilities: shell"),
            ({"required_capabilities": ["python"]}, "lacks required keys: requester"),
            (
                {
                    "required_capabilities": ["python"],
                    "metadata": meta,
                    "payload": dict.fromkeys("abc"),
                },
                "payload has 3 keys",
            ),
        ]
        for request, reason in refused:
            with pytest.raises(RemoteError) as err:
                await hive.delegate("job", **request)
            assert err.value.code is ErrorCode.REJECTED_BY_PLUGIN
            assert "security" in err.value.message
            assert reason in err.value.message
        allowed = await hive.delegate(
            "job", ["python"], metadata=meta, payload={"a": 1, "b": 2}, wait=True, wait_timeout=5
        )
        assert allowed.status is TaskStatus.COMPLETED
        status = await hive.status()
        assert status["extensions"]["security"]["vetoes"] == {"agents": 0, "tasks": 3}
        assert status["tasks"]["delegations_total"] == 1  # a vetoed task never existed
        assert status["plugins"]["security"] == "healthy"


class TestSecurityDefaults:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["security"]}

    async def test_default_policy_allows_everything(self, hive, make_agent):
        await make_agent("anyone", ["shell"], role="coordinator")
        task = await hive.delegate("x", ["shell"], payload=dict.fromkeys("abcdefgh"), wait=True)
        assert task.status is TaskStatus.COMPLETED
        assert (await hive.status())["extensions"]["security"]["vetoes"] == {
            "agents": 0,
            "tasks": 0,
        }


class TestSecurityMisconfigured:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        typo = {"allowed_role": ["worker"]}
        return {"plugins": ["security"], "plugin_config": {"security": typo}}

    async def test_invalid_settings_fail_closed(self, hive, nats_client, hivebus_config):
        with pytest.raises(RemoteError) as err:
            await register(nats_client, hivebus_config, "w-1", ["python"])
        assert err.value.code is ErrorCode.REJECTED_BY_PLUGIN
        assert "invalid settings" in err.value.message
        assert await plugin_health(hive, "security") == "unhealthy"


# --- context --------------------------------------------------------------------------------


async def report_usage(nc: Client, agent_id: str, usage: float) -> None:
    """A heartbeat carrying context window usage, as an agent in any language sends it."""
    body = {"agent_id": agent_id, "context_window_usage": usage}
    reply = orjson.loads((await nc.request("agent.heartbeat", orjson.dumps(body), timeout=5)).data)
    assert reply["ok"] is True


class TestContext:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["context"]}

    async def test_the_task_goes_to_the_agent_with_the_most_free_context(
        self, hive, make_agent, nats_client
    ):
        await make_agent("llm-a", ["llm"])  # first in the default order: idle longest
        await make_agent("llm-b", ["llm"])
        await report_usage(nats_client, "llm-a", 0.8)
        await report_usage(nats_client, "llm-b", 0.2)
        task = await hive.delegate("summarise", ["llm"], wait=True, wait_timeout=5)
        assert task.agent_id == "llm-b"

        # Every candidate above max_context_usage (0.9): still the lowest of them.
        await report_usage(nats_client, "llm-a", 0.97)
        await report_usage(nats_client, "llm-b", 0.93)
        task = await hive.delegate("summarise", ["llm"], wait=True, wait_timeout=5)
        assert task.agent_id == "llm-b"

        usage = {a.agent_id: a.context_window_usage for a in await hive.agents()}
        assert usage == {"llm-a": 0.97, "llm-b": 0.93}
        status = (await hive.status())["extensions"]["context"]
        assert status["selections"] == 2
        assert status["reordered"] == 2
        assert status["saturated"] == 1
        assert status["hints_added"] == 0

    async def test_an_agent_that_never_reported_counts_as_empty(
        self, hive, make_agent, nats_client
    ):
        await make_agent("llm-a", ["llm"])
        await make_agent("llm-b", ["llm"])
        await report_usage(nats_client, "llm-a", 0.1)
        task = await hive.delegate("summarise", ["llm"], wait=True, wait_timeout=5)
        assert task.agent_id == "llm-b"
        task = await hive.delegate("summarise", ["llm"], metadata={"x": 1}, wait=True)
        assert "context_hint" not in task.metadata


class TestContextHint:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugins": ["context"], "plugin_config": {"context": {"context_hint": True}}}

    async def test_a_setting_adds_a_size_hint_to_each_task(self, hive, make_agent):
        offers: list[Offer] = []

        async def keep(task: Offer) -> Any:
            offers.append(task)
            return None

        await make_agent("llm-a", ["llm"], keep)
        payload = {"text": "x" * 400}
        task = await hive.delegate("summarise", ["llm"], payload=payload, wait=True)
        chars = len(json.dumps(payload, separators=(",", ":")))
        hint = {"payload_chars": chars, "approx_tokens": -(-chars // 4)}
        assert task.metadata["context_hint"] == hint
        assert offers[0].metadata["context_hint"] == hint  # the agent sees it with the offer
        own = {"context_hint": {"approx_tokens": 5}}
        task = await hive.delegate("summarise", ["llm"], metadata=own, wait=True)
        assert task.metadata == own  # a delegator's own hint is kept


# --- automation -----------------------------------------------------------------------------


class TestAutomation:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        settings = {"failure_threshold": 2, "priority_boost_types": ["hotfix"]}
        return {"plugins": ["automation"], "plugin_config": {"automation": settings}}

    async def test_a_failure_streak_degrades_health_until_a_success(self, hive, make_agent):
        await make_agent("flaky-1", ["python"], fail_on_request)
        for _ in range(2):
            task = await hive.delegate("build", ["python"], payload="fail", wait=True)
            assert task.status is TaskStatus.FAILED

        async def degraded() -> bool:
            return await plugin_health(hive, "automation") == "degraded"

        await eventually(degraded)
        status = await hive.status()
        auto = status["extensions"]["automation"]
        assert auto["failing_agents"] == {"flaky-1": 2}
        assert auto["failing_task_types"] == {"build": 2}
        assert "plugin automation is degraded" in status["health_issues"]

        task = await hive.delegate("build", ["python"], payload="ok", wait=True)
        assert task.status is TaskStatus.COMPLETED

        async def healthy() -> bool:
            return await plugin_health(hive, "automation") == "healthy"

        await eventually(healthy)
        auto = (await hive.status())["extensions"]["automation"]
        assert auto["failing_agents"] == {}
        assert auto["failing_task_types"] == {}
        assert auto["failures_seen"] == 2

    async def test_listed_task_types_are_raised_to_high_priority(self, hive):
        hotfix = await hive.delegate("hotfix", ["nobody"], priority="low")
        chore = await hive.delegate("chore", ["nobody"], priority="low")
        urgent = await hive.delegate("hotfix", ["nobody"], priority="critical")
        assert (await hive.get(hotfix.task_id)).priority is TaskPriority.HIGH
        assert (await hive.get(chore.task_id)).priority is TaskPriority.LOW
        assert (await hive.get(urgent.task_id)).priority is TaskPriority.CRITICAL  # never lowered
        assert (await hive.status())["extensions"]["automation"]["priority_boosts"] == 1


# --- isolation: a plugin that raises everywhere, one that hangs -----------------------------


class Exploding:
    """Raises in every hook."""

    @hookimpl
    def hivebus_startup(self):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_shutdown(self):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_agent_register(self, agent):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_agent_registered(self, agent):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_agent_removed(self, agent, reason):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_task_delegate(self, task):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_select_agent(self, task, candidates):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_task_assigned(self, task, agent):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_task_completed(self, task):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_task_failed(self, task):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_event(self, event):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_status(self):
        raise RuntimeError("boom")

    @hookimpl
    def hivebus_health(self):
        raise RuntimeError("boom")


async def forever() -> None:
    await asyncio.Event().wait()


class Hanging:
    """Async hooks that never return: the host's timeout must end each of them."""

    @hookimpl
    async def hivebus_agent_register(self, agent):
        await forever()

    @hookimpl
    async def hivebus_task_delegate(self, task):
        await forever()

    @hookimpl
    async def hivebus_select_agent(self, task, candidates):
        await forever()

    @hookimpl
    async def hivebus_event(self, event):
        await forever()

    @hookimpl
    async def hivebus_status(self):
        await forever()

    @hookimpl
    async def hivebus_health(self):
        await forever()


class TestIsolation:
    @pytest.fixture
    def hivebus_settings(self) -> dict[str, Any]:
        return {"plugin_timeout_s": 0.2, "plugins": ["security"]}

    async def test_raising_and_hanging_plugins_never_break_requests(
        self, hivebus_core: Core, hive, make_agent
    ):
        hivebus_core.plugins.register(Exploding(), "exploding")
        hivebus_core.plugins.register(Hanging(), "hanging")

        await make_agent("iso-1", ["python"])
        await make_agent("iso-2", ["python"])  # two candidates: the select hook runs too
        task = await hive.delegate("build", ["python"], payload=7, wait=True, wait_timeout=5)
        assert task.status is TaskStatus.COMPLETED
        assert task.result == 7
        status = await hive.status()
        assert status["plugins"]["exploding"] == "degraded"
        assert status["plugins"]["hanging"] == "degraded"
        assert status["plugins"]["security"] == "healthy"  # an entry-point plugin beside them
        assert set(status["extensions"]) == {"security"}

        plugins = {p.name: p for p in await hive.plugins()}
        assert plugins["exploding"].health.value == "degraded"
        assert plugins["exploding"].failures >= 5
        assert "RuntimeError('boom')" in (plugins["exploding"].last_error or "")
        assert plugins["hanging"].health.value == "degraded"
        assert plugins["hanging"].failures >= 4
        assert "timed out" in (plugins["hanging"].last_error or "")
        assert plugins["security"].failures == 0

        # ... and the core keeps serving.
        again = await hive.delegate("build", ["python"], payload=8, wait=True, wait_timeout=5)
        assert again.status is TaskStatus.COMPLETED
        assert again.result == 8
