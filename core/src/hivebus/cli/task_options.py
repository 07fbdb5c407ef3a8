"""``hivebus delegate``'s options for what a task asks beyond "run it" (subjects.md,
task.delegate): a retry policy, a delay, dependencies, a concurrency key, a tenant, agents."""

from __future__ import annotations

import argparse
from typing import Any

from . import arguments

__all__ = ["add_task_options", "task_options"]


def _concurrency(text: str) -> dict[str, Any]:
    key, sep, limit = text.rpartition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=LIMIT, e.g. repo:acme=2")
    return {"key": key, "limit": arguments.positive_int(limit)}


def add_task_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("task rules")
    group.add_argument(
        "--retry",
        dest="max_attempts",
        type=arguments.positive_int,
        metavar="N",
        help="try up to N times in all, waiting --backoff between attempts",
    )
    group.add_argument(
        "--backoff",
        type=arguments.seconds,
        metavar="S",
        help="with --retry: seconds before the second attempt, doubling after (default 1)",
    )
    group.add_argument(
        "--delay",
        type=arguments.seconds,
        metavar="S",
        help="offer the task no sooner than S seconds from now",
    )
    group.add_argument(
        "--depends-on",
        type=arguments.task_id,
        action="append",
        default=[],
        metavar="TASK_ID",
        help="run only once this task has completed (repeatable)",
    )
    group.add_argument(
        "--concurrency",
        type=_concurrency,
        metavar="KEY=LIMIT",
        help="at most LIMIT tasks with KEY run at once across the bus",
    )
    group.add_argument("--tenant", help="tenants' queued tasks are offered in turn")
    group.add_argument(
        "--prefer",
        dest="prefer_agents",
        type=arguments.agent_id,
        action="append",
        default=[],
        metavar="AGENT_ID",
        help="offer to this agent first when it is free (repeatable)",
    )
    group.add_argument(
        "--require",
        dest="require_agent",
        type=arguments.agent_id,
        metavar="AGENT_ID",
        help="offer to this agent only",
    )


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``HiveClient.delegate`` keyword arguments the options ask for."""
    retry = None
    if args.max_attempts is not None or args.backoff is not None:
        retry = {"max_attempts": args.max_attempts or 3}
        if args.backoff is not None:
            retry["backoff_s"] = args.backoff
    return {
        "retry": retry,
        "delay_s": args.delay,
        "depends_on": args.depends_on or None,
        "concurrency": args.concurrency,
        "tenant": args.tenant,
        "prefer_agents": args.prefer_agents or None,
        "require_agent": args.require_agent,
    }
