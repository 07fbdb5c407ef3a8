"""The ``hivebus`` command: run the core, inspect the bus, delegate, run a generic agent."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint

from .. import event_loop
from . import arguments
from .arguments import HivebusArgumentParser
from .auth import add_auth_commands
from .extensions import add_commands, load_commands
from .failures import USAGE, explain
from .options import json_option, nats_options
from .task_commands import add_task_commands
from .task_options import add_task_options

__all__ = ["main"]


def build_parser(
    command_entry_points: Iterable[EntryPoint] | None = None,
) -> argparse.ArgumentParser:
    """The whole command line; ``command_entry_points`` stands in for the installed ones."""
    parser = HivebusArgumentParser(
        prog="hivebus", description="An agent orchestrator that lives on NATS."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the core (with an embedded nats-server if needed)")
    nats_options(up)
    up.add_argument(
        "--port",
        type=arguments.port,
        default=None,
        help="port of the embedded nats-server; if a NATS server already listens there, "
        "join it as a replica (default 4222)",
    )
    up.add_argument(
        "--data-dir", default=None, help="embedded nats-server's JetStream data (./.hivebus)"
    )
    up.add_argument(
        "-p",
        dest="plugin_flags",
        action="append",
        default=[],
        metavar="NAME",
        help="load plugin NAME, or -p no:NAME to disable it (repeatable)",
    )
    up.add_argument(
        "--log-level",
        default=None,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="log level (default INFO)",
    )
    up.add_argument(
        "--auth", metavar="DIR", default=None, help="run a secure bus from this auth directory"
    )
    up.add_argument(
        "--loop",
        choices=event_loop.CHOICES,
        default=None,
        help=f"event loop: uvloop when installed (auto, the default), or asyncio "
        f"(${event_loop.ENV} too)",
    )

    for name, text in [
        ("status", "health, agents, tasks and performance of the core"),
        ("agents", "registered agents"),
        ("plugins", "loaded plugins and their health"),
    ]:
        sub = commands.add_parser(name, help=text)
        nats_options(sub)
        json_option(sub)

    tasks = commands.add_parser("tasks", help="live and recent tasks")
    nats_options(tasks)
    json_option(tasks)
    tasks.add_argument(
        "--status", type=arguments.task_status, default=None, help="only tasks in this status"
    )
    tasks.add_argument(
        "--limit", type=arguments.positive_int, default=50, help="at most this many (50)"
    )

    tap = commands.add_parser("tap", help="follow live messages (default: all events)")
    nats_options(tap)
    json_option(tap)
    tap.add_argument("subject", nargs="?", default="events.>", help="subject to follow")
    tap.add_argument(
        "--count", type=arguments.positive_int, default=None, help="exit after N messages"
    )

    delegate = commands.add_parser("delegate", help="delegate a task")
    nats_options(delegate)
    json_option(delegate)
    delegate.add_argument("--type", dest="task_type", default="task", help="task type (task)")
    delegate.add_argument(
        "--cap", action="append", default=[], help="required capability (repeatable)"
    )
    delegate.add_argument(
        "--priority",
        type=arguments.priority,
        default="medium",
        help="low, medium, high or critical (or 1, 5, 8, 10); default medium",
    )
    delegate.add_argument(
        "--payload",
        type=arguments.json_value,
        default=None,
        help="the task's payload as JSON, e.g. '{\"n\": 1}' or '\"some text\"'",
    )
    delegate.add_argument(
        "--id", dest="task_id", type=arguments.task_id, default=None, help="task id (idempotent)"
    )
    delegate.add_argument(
        "--no-queue", action="store_true", help="fail if no agent takes it now, never queue"
    )
    delegate.add_argument("--wait", action="store_true", help="wait for the result")
    delegate.add_argument(
        "--timeout",
        type=arguments.positive_float,
        default=None,
        help="with --wait, give up waiting after this many seconds (the task goes on)",
    )
    add_task_options(delegate)

    agent = commands.add_parser(
        "agent", help="run a generic agent: COMMAND runs per task, payload on stdin"
    )
    nats_options(agent)
    agent.add_argument(
        "--id", dest="agent_id", type=arguments.agent_id, required=True, help="agent id"
    )
    agent.add_argument("--cap", action="append", default=[], help="capability (repeatable)")
    agent.add_argument("--role", default="worker", help="agent role (worker)")
    agent.add_argument(
        "--max-tasks",
        type=arguments.positive_int,
        default=1,
        help="tasks run at once, one process each (1)",
    )
    agent.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS", help="the command to run"
    )

    add_task_commands(commands)

    plugin = commands.add_parser("plugin", help="work on plugins: `plugin new NAME`")
    plugin_commands = plugin.add_subparsers(dest="plugin_command", required=True, metavar="WHAT")
    new = plugin_commands.add_parser("new", help="write a plugin distribution to start from")
    new.add_argument("name", help="the plugin's name, e.g. sla-watch")
    new.add_argument("--dir", default=".", help="where to write hivebus-NAME/ (default: here)")
    new.add_argument(
        "--hivebus-source",
        default=None,
        metavar="PATH",
        help="a hivebus checkout to depend on (default: the one this hivebus runs from)",
    )

    add_auth_commands(commands, nats_options, json_option)

    # Commands other distributions add (hivebus-bench adds `bench`): see extensions.py.
    add_commands(commands.add_parser, load_commands(set(commands.choices), command_entry_points))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import commands  # imported late: `hivebus --help` stays instant

    try:
        loop = event_loop.chosen(getattr(args, "loop", None)) if args.command == "up" else "asyncio"
    except ValueError as exc:  # a flag or HIVEBUS_EVENT_LOOP naming no loop we can run
        print(f"hivebus: {exc}", file=sys.stderr)
        return USAGE
    args.event_loop = loop
    try:
        return event_loop.run(commands.run(args), loop)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        explained = explain(exc, getattr(args, "config", None))
        if explained is None:
            raise  # a bug in hivebus: its traceback is what a report needs
        print(f"hivebus: {explained.line}", file=sys.stderr)
        return explained.exit_code
