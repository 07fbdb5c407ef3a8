"""The automation plugin, installed as the distribution ``hivebus-automation`` and found through
its ``hivebus`` entry point, against a real core on a real nats-server: circuit breakers that
quarantine a failing agent and readmit it after one trial task, recovery tiers, and sleep and
wake. Replicas on JetStream and real processes are in ``test_automation_replicas.py``.

The plugin evaluates on a timer, so checks wait for what it publishes (``eventually``) and
count evaluations through its status, never wall-clock time.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from typing import Any

import pytest
from conftest import eventually
from contract_wire import Heard, RawAgent, Wire
from hivebus import Core, HiveClient, Offer, TaskStatus
from hivebus_automation import AutomationPlugin
from nats.aio.client import Client
from processes import run

FAST = 0.05
"""Seconds between evaluations in these tests."""


def automation(**plugin_config: Any) -> dict[str, Any]:
    return {
        "plugins": ["automation"],
        "plugin_config": {"automation": {"interval_s": FAST, **plugin_config}},
    }


def plugin_of(core: Core) -> AutomationPlugin:
    plugin = core.plugins.pm.get_plugin("automation")
    assert isinstance(plugin, AutomationPlugin)
    return plugin


async def evaluations_after(core: Core, count: int) -> None:
    """Wait until the plugin has evaluated ``count`` more times."""
    plugin = plugin_of(core)
    seen: list[object] = []

    def moved() -> bool:
        if not seen or seen[-1] != plugin.evaluated_at:
            seen.append(plugin.evaluated_at)
        return len(seen) > count

    await eventually(moved, timeout=10)


def transitions(heard: Heard, agent_id: str) -> list[tuple[str, str]]:
    return [
        (b["from"], b["to"])
        for b in heard.bodies("events.plugin.automation.breaker", agent_id=agent_id)
    ]


def test_the_plugin_is_an_installed_entry_point_naming_its_class():
    [ep] = [ep for ep in entry_points(group="hivebus") if ep.name == "automation"]
    assert ep.dist is not None
    assert ep.dist.name == "hivebus-automation"
    assert ep.load() is AutomationPlugin


# --- circuit breakers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [automation(breaker={"failures": 2, "cooldown_s": 0.5, "cooldown_factor": 2})],
)
async def test_a_failing_agent_is_quarantined_then_readmitted_after_one_trial_task(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    heard = await Heard.on(nats_client, "events.plugin.automation.>")
    failing = {"now": True}
    gate = asyncio.Event()

    async def flaky(task: Offer) -> str:
        if task.payload == "hold":
            await gate.wait()
        if failing["now"]:
            raise RuntimeError("disk on fire")
        return "ok"

    await make_agent("flaky", ["x"], handler=flaky, max_tasks=3)
    for n in range(2):
        done = await hive.delegate("job", ["x"], task_id=f"f{n}", wait=True, wait_timeout=10)
        assert done.status is TaskStatus.FAILED

    # Two failures in a row open the breaker: the agent is quarantined, and says why.
    await eventually(lambda: transitions(heard, "flaky") == [("closed", "open")])
    [opened] = heard.bodies("events.plugin.automation.breaker")
    assert opened["event"] == "plugin.automation.breaker"
    assert opened["reason"].startswith("2 failed attempts in a row (last: ")
    assert "disk on fire" in opened["reason"]
    [agent] = await hive.agents()
    assert agent.quarantined_by == "automation"
    assert agent.quarantine_reason is not None
    assert agent.quarantine_reason.startswith("circuit breaker open: 2 failed attempts")
    breaker = (await hive.status())["extensions"]["automation"]["breakers"]["flaky"]
    assert (breaker["state"], breaker["failures"], breaker["opens"]) == ("open", 2, 1)

    # While open it is offered nothing; after the cooldown it is half-open and takes exactly
    # one trial task, however many wait and however many slots it has.
    for n in range(3):
        await hive.delegate("job", ["x"], task_id=f"h{n}", payload="hold")
    assert (await hive.status())["tasks"]["queued"] == 3
    await eventually(lambda: ("open", "half_open") in transitions(heard, "flaky"), timeout=10)

    async def one_assigned() -> list[str]:
        tasks = [await hive.get(f"h{n}") for n in range(3)]
        return [t.task_id for t in tasks if t.status is TaskStatus.ASSIGNED]

    await eventually(one_assigned)
    [trial] = await one_assigned()
    await evaluations_after(hivebus_core, 5)
    assert await one_assigned() == [trial]
    [agent] = await hive.agents()
    assert agent.quarantine_reason == f"circuit breaker half-open: trial task {trial} running"
    assert not agent.on_trial
    listed = await asyncio.to_thread(run, "agents", "--nats", hivebus_core.config.nats_url)
    assert f"quarantined by automation: circuit breaker half-open: trial task {trial}" in (
        listed.stdout
    )

    # The trial fails: open again, for twice the cooldown.
    gate.set()
    await eventually(lambda: ("half_open", "open") in transitions(heard, "flaky"))
    reopened = heard.bodies("events.plugin.automation.breaker", to="open")[-1]
    assert reopened["reason"].startswith("trial failure")
    breaker = (await hive.status())["extensions"]["automation"]["breakers"]["flaky"]
    assert breaker["opens"] == 2
    assert breaker["retry_at"] - breaker["since"] == pytest.approx(1.0)

    # The next trial succeeds: closed, released, and the waiting work runs.
    failing["now"] = False
    await eventually(lambda: ("half_open", "closed") in transitions(heard, "flaky"), timeout=10)
    assert transitions(heard, "flaky") == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]

    async def released() -> bool:
        [agent] = await hive.agents()
        return agent.quarantined_by is None and not agent.on_trial

    await eventually(released)

    async def rest_done() -> bool:
        tasks = [await hive.get(f"h{n}") for n in range(3)]
        return sum(t.status is TaskStatus.COMPLETED for t in tasks) == 2

    await eventually(rest_done, timeout=10)
    assert "flaky" not in (await hive.status())["extensions"]["automation"]["breakers"]


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        {
            **automation(breaker={"refusals": 3, "timeouts": 2, "cooldown_s": 600}),
            "offer_timeout_s": 0.3,
            "heartbeat_interval_s": 5.0,
        }
    ],
)
async def test_refusals_and_offer_timeouts_open_the_breaker_but_busy_does_not(
    hivebus_core: Core, hive: HiveClient, nats_client: Client
):
    heard = await Heard.on(nats_client, "events.plugin.automation.>")
    wire = Wire(nats_client)
    busy = RawAgent(wire, "busy", ["b"], answer={"accept": False, "reason": "busy"})
    broken = RawAgent(wire, "broken", ["r"], answer={"accept": False, "reason": "broken"})
    silent = RawAgent(wire, "silent", ["s"])
    silent.gate = asyncio.Event()  # never answers
    for agent in (busy, broken, silent):
        await agent.start()
    for n in range(4):
        await hive.delegate("job", ["b"], task_id=f"b{n}")
        await hive.delegate("job", ["r"], task_id=f"r{n}")
    for n in range(2):
        await hive.delegate("job", ["s"], task_id=f"s{n}")

    await eventually(lambda: transitions(heard, "broken") == [("closed", "open")], timeout=10)
    await eventually(lambda: transitions(heard, "silent") == [("closed", "open")], timeout=10)
    by_id = {a.agent_id: a for a in await hive.agents()}
    assert by_id["broken"].quarantine_reason == (
        "circuit breaker open: 3 offers refused in a row (last: broken)"
    )
    assert by_id["silent"].quarantine_reason == (
        "circuit breaker open: 2 offers unanswered in a row (last: no answer within 0.3s)"
    )
    assert busy.offered.is_set()  # offered and refused, more than enough times...
    await evaluations_after(hivebus_core, 3)
    assert transitions(heard, "busy") == []  # ...but "busy" says nothing about its health
    assert by_id["busy"].quarantined_by is None
    silent.gate.set()
    for agent in (busy, broken, silent):
        await agent.stop()


# --- recovery tiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        automation(
            breaker={"enabled": False},
            recovery={"enabled": True, "backoff_s": 0.05, "max_attempts": 3},
        )
    ],
)
async def test_failures_are_retried_rested_or_declared_dead_by_their_error(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    alerts = await Heard.on(nats_client, "events.alert.>")
    events = await Heard.on(nats_client, "events.task.>")

    async def fails_with_its_payload(task: Offer) -> str:
        raise RuntimeError(str(task.payload))

    a1 = await make_agent("a1", ["x"], handler=fails_with_its_payload)
    await make_agent("a2", ["x"])

    # automatic: a flaky network is retried, and the retry goes elsewhere.
    await hive.delegate("job", ["x"], task_id="auto", payload="flaky network", prefer_agents=["a1"])

    async def completed(task_id: str) -> bool:
        return (await hive.get(task_id)).status is TaskStatus.COMPLETED

    await eventually(lambda: completed("auto"), timeout=10)
    auto = await hive.get("auto")
    assert [a.agent_id for a in auto.history] == ["a1", "a2"]
    [requeued] = events.bodies("events.task.requeued", task_id="auto")
    assert requeued["reason"] == (
        "retried by automation: automatic recovery: RuntimeError: flaky network"
    )

    # manual: permission denied is dead at once, with one critical alert.
    await hive.delegate(
        "job", ["x"], task_id="perm", payload="permission denied", require_agent="a1"
    )
    await eventually(lambda: alerts.bodies(fingerprint="automation:manual:perm"), timeout=10)
    dead = await hive.get("perm")
    assert dead.status is TaskStatus.DEAD
    [alert] = alerts.bodies(fingerprint="automation:manual:perm")
    assert (alert["severity"], alert["status"], alert["source"]) == (
        "critical",
        "firing",
        "automation",
    )
    assert alert["details"]["error"] == "RuntimeError: permission denied"
    await evaluations_after(hivebus_core, 3)
    assert len(alerts.bodies(fingerprint="automation:manual:perm")) == 1
    # assisted: out of memory puts the agent to sleep first, then the task is retried.
    await hive.delegate("job", ["x"], task_id="oom", payload="out of memory", prefer_agents=["a1"])
    await eventually(lambda: completed("oom"), timeout=10)
    await eventually(lambda: a1.sleeping)
    [rested] = [a for a in await hive.agents() if a.agent_id == "a1"]
    assert rested.sleeping

    report = (await hive.status())["extensions"]["automation"]["recovery"]
    assert report["by_tier"] == {"automatic": 1, "assisted": 1, "manual": 1}


@pytest.mark.parametrize(
    "hivebus_settings",
    [automation(breaker={"enabled": False}, recovery={"enabled": True, "backoff_s": 0.05})],
)
async def test_a_task_with_its_own_retry_policy_is_left_to_the_core(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    events = await Heard.on(nats_client, "events.task.>")

    async def fails_with_its_payload(task: Offer) -> str:
        raise RuntimeError(str(task.payload))

    await make_agent("a1", ["x"], handler=fails_with_its_payload)
    retry = {"max_attempts": 2, "backoff_s": 0.05}
    await hive.delegate("job", ["x"], task_id="own", payload="flaky network", retry=retry)

    async def dead(task_id: str) -> bool:
        return (await hive.get(task_id)).status is TaskStatus.DEAD

    await eventually(lambda: dead("own"), timeout=10)
    await evaluations_after(hivebus_core, 3)
    assert (await hive.get("own")).status is TaskStatus.DEAD  # not retried by the plugin
    assert events.bodies("events.task.requeued", task_id="own") == []

    # A manual failure stops the core's retries at once: dead after one attempt of five.
    slow_retries = {"max_attempts": 5, "backoff_s": 0.5}
    await hive.delegate("job", ["x"], task_id="perm", payload="forbidden", retry=slow_retries)
    await eventually(lambda: dead("perm"), timeout=10)
    perm = await hive.get("perm")
    assert perm.attempts == 1
    [buried] = events.bodies("events.task.dead", task_id="perm")
    assert (
        buried["reason"] == "declared dead by automation: manual recovery: RuntimeError: forbidden"
    )


# --- sleep and wake --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        automation(
            sleep={"enabled": True, "idle_after_s": 0.3, "sleep_s": 30, "context_usage_above": None}
        )
    ],
)
async def test_an_idle_agent_sleeps_and_is_woken_by_work_that_needs_it(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    events = await Heard.on(nats_client, "events.agent.>")
    sleepy = await make_agent("sleepy", ["gpu"])

    await eventually(lambda: sleepy.sleeping, timeout=10)  # the control message arrived
    [view] = await hive.agents()
    assert view.sleeping
    [slept] = events.bodies("events.agent.sleeping", agent_id="sleepy")
    assert (slept["by"], slept["reason"][:8]) == ("automation", "idle for")
    assert (await hive.status())["agents"]["sleeping"] == 1
    listed = await asyncio.to_thread(run, "agents", "--nats", hivebus_core.config.nats_url)
    assert "sleeping" in listed.stdout

    # Work that needs it, and no awake agent can take it: woken, and the task runs.
    done = await hive.delegate("render", ["gpu"], wait=True, wait_timeout=10)
    assert done.status is TaskStatus.COMPLETED
    assert done.agent_id == "sleepy"
    assert events.bodies("events.agent.woken", agent_id="sleepy")
    assert events.bodies("events.agent.woken")[0]["reason"].startswith("queued task")


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        automation(
            sleep={
                "enabled": True,
                "idle_after_s": 0.1,
                "sleep_s": 0.2,
                "sleep_factor": 2,
                "max_sleep_s": 0.4,
                "wake_for_work": False,
            }
        )
    ],
)
async def test_sleep_time_grows_with_sleeps_in_a_row_up_to_the_cap(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    events = await Heard.on(nats_client, "events.agent.>")
    await make_agent("napper", ["x"])
    lengths: list[float] = []

    def record() -> bool:
        report = plugin_of(hivebus_core).hivebus_status()
        entry = report["sleeping"].get("napper")  # type: ignore[union-attr]
        if entry and (not lengths or entry["sleeps"] > len(lengths)):
            lengths.append(round(entry["wake_at"] - entry["since"], 3))
        return len(lengths) >= 3

    await eventually(record, timeout=10)
    assert lengths == [0.2, 0.4, 0.4]
    woken = events.bodies("events.agent.woken", agent_id="napper")
    assert woken
    assert woken[0]["reason"] == "sleep time over"


@pytest.mark.parametrize(
    "hivebus_settings",
    [
        automation(
            sleep={
                "enabled": True,
                "idle_after_s": None,
                "context_usage_above": 0.8,
                "wake_for_work": False,
            }
        )
    ],
)
async def test_an_agent_whose_context_window_runs_full_is_put_to_sleep_and_offered_nothing(
    hivebus_core: Core, hive: HiveClient, make_agent: Any, nats_client: Client
):
    wire = Wire(nats_client)
    full = RawAgent(wire, "full", ["x"])  # registered first: offered first while awake
    await full.start()
    await wire.ok("agent.heartbeat", {"agent_id": "full", "context_window_usage": 0.85})
    roomy = await make_agent("roomy", ["x"])
    roomy.context_window_usage = 0.2  # the SDK sends it with every heartbeat

    async def full_sleeps() -> bool:
        views = {a.agent_id: a for a in await hive.agents()}
        return views["full"].sleeping and views["roomy"].context_window_usage == 0.2

    await eventually(full_sleeps, timeout=10)
    assert not roomy.sleeping
    for _ in range(3):
        done = await hive.delegate("job", ["x"], wait=True, wait_timeout=10)
        assert done.agent_id == "roomy"
    assert not full.offered.is_set()  # a sleeping agent is offered nothing at all
    await full.stop()


@pytest.mark.parametrize("hivebus_settings", [{**automation(), "heartbeat_interval_s": 0.2}])
async def test_a_sleeping_agent_stays_asleep_when_it_comes_back_after_going_offline(
    hivebus_core: Core, hive: HiveClient, nats_client: Client
):
    events = await Heard.on(nats_client, "events.agent.>")
    wire = Wire(nats_client)
    agent = RawAgent(wire, "r1", ["x"])  # sends no heartbeats: it goes offline
    await agent.start()
    context = plugin_of(hivebus_core).context
    assert context is not None
    view = await context.sleep("r1", "resting")
    assert view.sleeping
    await eventually(lambda: events.bodies("events.agent.offline", agent_id="r1"), timeout=10)
    await agent.start()  # registers again, as an agent back from a network split does
    [view] = await hive.agents()
    assert view.state.value == "active"
    assert view.sleeping  # the record decides, as for a quarantine
    await context.wake("r1")
    [view] = await hive.agents()
    assert not view.sleeping
    assert [
        b["event"] for b in events.bodies() if b["event"] in ("agent.sleeping", "agent.woken")
    ] == [
        "agent.sleeping",
        "agent.woken",
    ]
    await agent.stop()


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hivebus_settings", [automation(breaker={"failures": 0}, recovery={"manual": ["("]})]
)
async def test_bad_settings_mark_the_plugin_unhealthy_with_the_reason(hive: HiveClient):
    [plugin] = await hive.plugins()
    assert plugin.name == "automation"
    assert plugin.health.value == "unhealthy"
    assert plugin.last_error is not None
    assert "breaker.failures" in plugin.last_error
    assert "recovery.manual" in plugin.last_error
