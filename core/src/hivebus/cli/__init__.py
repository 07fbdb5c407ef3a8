"""The ``hivebus`` command: run the core, inspect the bus, delegate, run a generic agent."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint

from pydantic import ValidationError

from ..errors import RemoteError
from .auth import add_auth_commands
from .extensions import add_commands, load_commands
from .task_options import add_task_options

__all__ = ["main"]


def _nats_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats",
        metavar="URL",
        default=None,
        help="NATS URL (default: $HIVEBUS_NATS_URL or nats://127.0.0.1:4222)",
    )
    parser.add_argument("--config", metavar="FILE", default=None, help="TOML config file")
    parser.add_argument(
        "--creds",
        metavar="FILE",
        default=None,
        help="credentials file for a secure bus (default: $HIVEBUS_CREDS)",
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def build_parser(
    command_entry_points: Iterable[EntryPoint] | None = None,
) -> argparse.ArgumentParser:
    """The whole command line; ``command_entry_points`` stands in for the installed ones."""
    parser = argparse.ArgumentParser(
        prog="hivebus", description="An agent orchestrator that lives on NATS."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the core (with an embedded nats-server if needed)")
    _nats_option(up)
    up.add_argument("--port", type=int, default=None, help="embedded server port (4222)")
    up.add_argument("--data-dir", default=None, help="embedded server data (./.hivebus)")
    up.add_argument(
        "-p",
        dest="plugin_flags",
        action="append",
        default=[],
        metavar="NAME",
        help="load plugin NAME, or -p no:NAME to disable it (repeatable)",
    )
    up.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    up.add_argument(
        "--auth", metavar="DIR", default=None, help="run a secure bus from this auth directory"
    )

    for name, text in [
        ("status", "health, agents, tasks and performance of the core"),
        ("agents", "registered agents"),
        ("plugins", "loaded plugins and their health"),
    ]:
        sub = commands.add_parser(name, help=text)
        _nats_option(sub)
        _json_option(sub)

    tasks = commands.add_parser("tasks", help="live and recent tasks")
    _nats_option(tasks)
    _json_option(tasks)
    tasks.add_argument("--status", default=None, help="only tasks in this status")
    tasks.add_argument("--limit", type=int, default=50)

    tap = commands.add_parser("tap", help="follow live messages (default: all events)")
    _nats_option(tap)
    _json_option(tap)
    tap.add_argument("subject", nargs="?", default="events.>")
    tap.add_argument("--count", type=int, default=None, help="exit after N messages")

    delegate = commands.add_parser("delegate", help="delegate a task")
    _nats_option(delegate)
    _json_option(delegate)
    delegate.add_argument("--type", dest="task_type", default="task")
    delegate.add_argument("--cap", action="append", default=[], help="required capability")
    delegate.add_argument("--priority", default="medium", help="low|medium|high|critical")
    delegate.add_argument("--payload", default=None, help="JSON payload")
    delegate.add_argument("--id", dest="task_id", default=None, help="task id (idempotent)")
    delegate.add_argument("--no-queue", action="store_true", help="fail if nobody can take it")
    delegate.add_argument("--wait", action="store_true", help="wait for the result")
    delegate.add_argument("--timeout", type=float, default=None, help="with --wait, seconds")
    add_task_options(delegate)

    agent = commands.add_parser(
        "agent", help="run a generic agent: COMMAND runs per task, payload on stdin"
    )
    _nats_option(agent)
    agent.add_argument("--id", dest="agent_id", required=True)
    agent.add_argument("--cap", action="append", default=[], help="capability (repeatable)")
    agent.add_argument("--role", default="worker")
    agent.add_argument("--max-tasks", type=int, default=1)
    agent.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")

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

    add_auth_commands(commands, _nats_option, _json_option)

    # Commands other distributions add (hivebus-bench adds `bench`): see extensions.py.
    add_commands(commands.add_parser, load_commands(set(commands.choices), command_entry_points))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import commands  # imported late: `hivebus --help` stays instant

    try:
        return asyncio.run(commands.run(args))
    except KeyboardInterrupt:
        return 130
    except (ConnectionError, TimeoutError, FileNotFoundError) as exc:
        print(f"hivebus: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"hivebus: invalid configuration or arguments:\n{exc}", file=sys.stderr)
        return 2
    except RemoteError as exc:
        print(f"hivebus: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1
