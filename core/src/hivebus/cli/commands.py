"""The client-side commands: each one connects, asks, prints, exits."""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from typing import Any

import orjson
from hivebus_hookspecs.models import TaskStatus, TaskView

from ..config import HivebusConfig
from ..connection import connect
from ..sdk import HiveClient, TaskUpdate
from .extensions import DEST, Command
from .shutdown import stop_requested
from .tables import clock, event_line, table
from .task_options import task_options

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
    async with HiveClient(config=_config(args)) as hive:
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
            ["agents", "active", "busy", "offline", "by role"],
            [[a["total"], a["active"], a["busy"], a["offline"], _pairs(a["by_role"])]],
        )
    )
    print(
        table(
            ["tasks active", "queued", "completed", "failed"],
            [[t["active"], t["queued"], t["completed_total"], t["error_total"]]],
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
            a.state.value + (f" (quarantined by {a.quarantined_by})" if a.quarantined_by else ""),
            f"{a.active_tasks}/{a.max_tasks}",
            ",".join(a.capabilities),
            clock(a.last_seen),
        ]
        for a in found
    ]
    print(table(["agent", "role", "state", "load", "capabilities", "last seen"], rows))
    return 0


async def tasks(hive: HiveClient, args: argparse.Namespace) -> int:
    status_filter = TaskStatus(args.status) if args.status else None
    found = await hive.tasks(status_filter, args.limit)
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
    return 0


async def delegate(hive: HiveClient, args: argparse.Namespace) -> int:
    payload = orjson.loads(args.payload) if args.payload is not None else None
    answer = await hive.delegate(
        args.task_type,
        args.cap,
        priority=args.priority,
        payload=payload,
        task_id=args.task_id,
        queue=not args.no_queue,
        wait=args.wait,
        wait_timeout=args.timeout,
        **task_options(args),
        on_progress=show_progress,
    )
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
