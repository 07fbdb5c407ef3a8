"""The client-side commands: each one connects, asks, prints, exits."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from hivebus_hookspecs.models import AgentState, AgentView, DelegateReply, TaskStatus, TaskView

from ..config import HivebusConfig
from ..connection import connect
from .extensions import DEST, Command
from .failures import CommandFailed
from .shutdown import stop_requested
from .tables import clock, event_line, table
from .task_commands import DEST as TASK_DEST
from .task_commands import TaskCommand
from .task_options import task_options

if TYPE_CHECKING:
    from ..sdk import HiveClient, TaskUpdate

__all__ = ["run"]


def _config(args: argparse.Namespace, **flags: Any) -> HivebusConfig:
    return HivebusConfig.load(args.config, nats_url=args.nats, creds_file=args.creds, **flags)


def _print_json(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


async def run(args: argparse.Namespace) -> int:
    extension: Command | None = getattr(args, DEST, None)
    if extension is not None:
        result = extension.run(args)
        return await result if inspect.isawaitable(result) else result
    if args.command == "up":
        from .up import up

        return await up(args)
    if args.command == "tap":
        return await tap(args)
    if args.command == "plugin":
        from .plugin_new import run_plugin_command

        return run_plugin_command(args)
    if args.command == "agent":
        from .exec_agent import run_agent

        return await run_agent(args, _config(args))
    task_command: TaskCommand | None = getattr(args, TASK_DEST, None)
    # Imported here: `hivebus up`, which comes through this module, never loads the SDK.
    from ..sdk import HiveClient

    async with HiveClient(config=_config(args)) as hive:
        if task_command is not None:
            return await task_command.run(hive, args)
        handler = {
            "status": status,
            "agents": agents,
            "tasks": tasks,
            "plugins": plugins,
            "delegate": delegate,
        }[args.command]
        return await handler(hive, args)


async def status(hive: HiveClient, args: argparse.Namespace) -> int:
    s = await hive.status()
    if args.json:
        _print_json(s)
        return 0
    a, t, p = s["agents"], s["tasks"], s["performance"]
    print(f"hivebus {s['orchestrator_id']}  mode={s['mode']}  up {s['uptime_seconds']:.0f}s")
    print(f"health: {s['health_status']}")
    for issue in s["health_issues"]:
        print(f"  - {issue}")
    print(
        table(
            ["agents", "active", "busy", "offline", "quarantined", "sleeping", "by role"],
            [
                [
                    a["total"],
                    a["active"],
                    a["busy"],
                    a["offline"],
                    a.get("quarantined", 0),
                    a.get("sleeping", 0),
                    _pairs(a["by_role"]),
                ]
            ],
        )
    )
    print(
        table(
            ["tasks active", "queued", "waiting", "completed", "failed"],
            [
                [
                    t["active"],
                    t["queued"],
                    _pairs({k: n for k, n in t.get("waiting", {}).items() if n}) or 0,
                    t["completed_total"],
                    t["error_total"],
                ]
            ],
        )
    )
    print(
        table(
            ["avg duration ms", "error rate %", "delegations/s", "memory MiB"],
            [
                [
                    p["average_task_duration_ms"],
                    p["error_rate_percent"],
                    p["delegations_per_second"],
                    p.get("memory_mb"),
                ]
            ],
        )
    )
    state = s.get("state") or {}
    buckets = ", ".join(
        f"{name} {b['current']}/{b['replicas']}" + ("" if b["leader"] else " NO LEADER")
        for name, b in (state.get("buckets") or {}).items()
    )
    print(f"state: {state.get('kind', '-')}" + (f" ({buckets})" if buckets else ""))
    print(f"capabilities: {_pairs(s['capabilities_index']) or '-'}")
    print(f"plugins: {_pairs(s['plugins']) or '-'}")
    return 0


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in mapping.items())


async def agents(hive: HiveClient, args: argparse.Namespace) -> int:
    found = await hive.agents()
    if args.json:
        _print_json([a.model_dump(mode="json") for a in found])
        return 0
    rows = [
        [
            a.agent_id,
            a.role.value,
            _agent_state(a),
            f"{a.active_tasks}/{a.max_tasks}",
            ",".join(a.capabilities),
            clock(a.last_seen),
        ]
        for a in found
    ]
    print(table(["agent", "role", "state", "load", "capabilities", "last seen"], rows))
    return 0


def _agent_state(agent: AgentView) -> str:
    """The state, and why the agent is out of rotation: who took it out, and their reason."""
    notes = []
    if agent.quarantined_by:
        trial = "on trial, " if agent.on_trial else ""
        why = f": {agent.quarantine_reason}" if agent.quarantine_reason else ""
        notes.append(f"{trial}quarantined by {agent.quarantined_by}{why}")
    if agent.sleeping:
        notes.append("sleeping")
    return agent.state.value + (f" ({'; '.join(notes)})" if notes else "")


async def tasks(hive: HiveClient, args: argparse.Namespace) -> int:
    found = await hive.tasks(args.status, args.limit)
    if args.json:
        _print_json([t.model_dump(mode="json") for t in found])
        return 0
    rows = [
        [
            t.task_id,
            t.task_type,
            t.status.value,
            t.priority.name.lower(),
            t.agent_id,
            t.attempts,
            clock(t.created_at),
        ]
        for t in found
    ]
    print(table(["task", "type", "status", "priority", "agent", "attempts", "created"], rows))
    return 0


async def plugins(hive: HiveClient, args: argparse.Namespace) -> int:
    found = await hive.plugins()
    if args.json:
        _print_json([p.model_dump(mode="json") for p in found])
        return 0
    rows = [[p.name, p.version, p.health.value, p.failures, ", ".join(p.hooks)] for p in found]
    print(table(["plugin", "version", "health", "failures", "hooks"], rows))
    for p in found:  # why a plugin is not healthy: a port taken, a setting refused ...
        if p.health.value != "healthy" and p.last_error:
            print(f"{p.name} is {p.health.value}: {p.last_error}")
    return 0


async def delegate(hive: HiveClient, args: argparse.Namespace) -> int:
    task_id = args.task_id or uuid.uuid4().hex  # known here, so a timeout can name the task
    unoffered = [] if args.no_queue else await _unoffered(hive, args.cap)
    if unoffered:
        print(
            f"hivebus: warning: no live agent offers {', '.join(unoffered)}; "
            f"the task waits in the queue until one registers",
            file=sys.stderr,
        )
    if args.wait:
        finished = await _delegate_and_wait(hive, args, task_id)
        if finished is None:
            return 130  # Ctrl-C: as a shell reports SIGINT
        answer: DelegateReply | TaskView = finished
    else:
        answer = await _delegate(hive, args, task_id, wait=False)
    if args.json:
        _print_json(answer.model_dump(mode="json"))
    elif isinstance(answer, TaskView):
        print(f"task {answer.task_id} {answer.status.value} by {answer.agent_id}")
        if answer.error:
            print(f"error: {answer.error}")
        else:
            _print_json(answer.result)
    else:
        where = f" to {answer.agent_id}" if answer.agent_id else ""
        print(f"task {answer.task_id} {answer.status.value}{where}")
    if isinstance(answer, TaskView) and answer.status is not TaskStatus.COMPLETED:
        return 1
    return 0


def show_progress(update: TaskUpdate) -> None:
    """A progress line on stderr while ``delegate --wait`` waits (stdout keeps the answer)."""
    done = "" if update.progress is None else f" {update.progress:.0%}"
    said = f" {update.message}" if update.message else ""
    print(f"{clock(time.time())} progress{done}{said}", file=sys.stderr, flush=True)


async def _delegate(
    hive: HiveClient, args: argparse.Namespace, task_id: str, *, wait: bool
) -> DelegateReply | TaskView:
    return await hive.delegate(
        args.task_type,
        args.cap,
        priority=args.priority,
        payload=args.payload,
        task_id=task_id,
        queue=not args.no_queue,
        wait=wait,
        wait_timeout=args.timeout,
        on_progress=show_progress if wait else None,
        **task_options(args),
    )


async def _delegate_and_wait(
    hive: HiveClient, args: argparse.Namespace, task_id: str
) -> TaskView | None:
    """Wait for the result; a timeout or Ctrl-C (``None``) says where the task is."""
    stop = stop_requested()
    waiting = asyncio.create_task(_delegate(hive, args, task_id, wait=True))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([waiting, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not waiting.done():
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        where = await _whereabouts(hive, task_id)
        print(f"hivebus: stopped waiting; {where}", file=sys.stderr)
        return None
    try:
        answer = waiting.result()
    except TimeoutError as exc:
        if args.timeout is None or str(exc):
            raise  # a request that got no reply (it says which), not the wait running out
        where = await _whereabouts(hive, task_id)
        raise CommandFailed(f"timed out after {args.timeout:g}s waiting; {where}") from None
    assert isinstance(answer, TaskView)
    return answer


async def _whereabouts(hive: HiveClient, task_id: str) -> str:
    """``task T is assigned to A and goes on (...)``, read back from the core."""
    try:
        task = await hive.get(task_id)
    except Exception:
        return f"task {task_id} may have been delegated: hivebus task get {task_id}"
    if task.status.is_final:
        return f"task {task_id} is {task.status.value}: hivebus task get {task_id}"
    state = task.status.value + (f" to {task.agent_id}" if task.agent_id else "")
    return (
        f"task {task_id} is {state} and goes on "
        f"(hivebus task get {task_id} to see it, hivebus cancel {task_id} to stop it)"
    )


async def _unoffered(hive: HiveClient, capabilities: list[str]) -> list[str]:
    """The required capabilities no live agent offers (an empty list: someone could take it)."""
    if not capabilities:
        return []
    live = [a for a in await hive.agents() if a.state is not AgentState.OFFLINE]
    offered = {cap for agent in live for cap in agent.capabilities}
    return [cap for cap in capabilities if cap not in offered]


async def tap(args: argparse.Namespace) -> int:
    config = _config(args)
    nc = await connect(config, "hivebus-tap")
    prefix = f"{config.prefix}." if config.prefix else ""
    subject = prefix + args.subject
    done = stop_requested()
    seen = 0

    async def show(msg: Any) -> None:
        nonlocal seen
        try:
            body = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            body = msg.data.decode(errors="replace")
        if args.json:
            print(orjson.dumps({"subject": msg.subject, "data": body}).decode(), flush=True)
        else:
            print(event_line(msg.subject.removeprefix(prefix), body), flush=True)
        seen += 1
        if args.count is not None and seen >= args.count:
            done.set()

    await nc.subscribe(subject, cb=show)
    await nc.flush()
    where = nc.connected_url.geturl() if nc.connected_url else config.nats_url
    print(f"# tapping {subject} on {where}", file=sys.stderr, flush=True)
    await done.wait()
    await nc.drain()
    return 0
