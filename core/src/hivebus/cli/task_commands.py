"""``hivebus task WHAT ID`` and ``hivebus cancel ID``: one task, by id.

Each sub-command is one decorated function from a client and a task id to the task's view;
printing, options and errors are shared: another one is one more function like ``retry``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from hivebus_hookspecs.models import TaskStatus, TaskView

from . import arguments
from .options import json_option, nats_options
from .tables import clock

if TYPE_CHECKING:  # the SDK loads only when a client command runs, never for `hivebus up`
    from ..sdk import HiveClient

__all__ = ["TASK_COMMANDS", "TaskCommand", "add_task_commands", "show_task", "task_command"]

TaskAction = Callable[["HiveClient", str], Awaitable[TaskView]]

DEST = "task_command"
"""The parsed arguments' attribute holding the chosen ``TaskCommand``."""


@dataclass(frozen=True, slots=True)
class TaskCommand:
    name: str
    help: str
    act: TaskAction
    top_level: bool
    """Also ``hivebus NAME ID``, not only ``hivebus task NAME ID``."""

    async def run(self, hive: HiveClient, args: argparse.Namespace) -> int:
        show_task(await self.act(hive, args.task_id), as_json=args.json)
        return 0


TASK_COMMANDS: dict[str, TaskCommand] = {}


def task_command(
    name: str, help: str, *, top_level: bool = False
) -> Callable[[TaskAction], TaskAction]:
    """Register ``hivebus task NAME ID`` (and ``hivebus NAME ID`` with ``top_level``)."""

    def register(act: TaskAction) -> TaskAction:
        TASK_COMMANDS[name] = TaskCommand(name, help, act, top_level)
        return act

    return register


@task_command("get", "show one task: status, agent, attempts, result or error")
async def get(hive: HiveClient, task_id: str) -> TaskView:
    return await hive.get(task_id)


@task_command("cancel", "cancel a task that has not finished", top_level=True)
async def cancel(hive: HiveClient, task_id: str) -> TaskView:
    return await hive.cancel(task_id)


@task_command("retry", "queue a dead, failed, expired or cancelled task again")
async def retry(hive: HiveClient, task_id: str) -> TaskView:
    return await hive.retry(task_id)


def _add(add_parser: Callable[..., argparse.ArgumentParser], command: TaskCommand) -> None:
    sub = add_parser(command.name, help=command.help, description=command.help)
    sub.add_argument("task_id", metavar="ID", type=arguments.task_id, help="the task's id")
    nats_options(sub)
    json_option(sub)
    sub.set_defaults(**{DEST: command})


def add_task_commands(commands: Any) -> None:
    """``hivebus task ...`` and the top-level ones, on the ``hivebus`` sub-parsers."""
    task = commands.add_parser("task", help="one task by id: " + ", ".join(TASK_COMMANDS))
    whats = task.add_subparsers(dest="task_what", required=True, metavar="WHAT")
    for command in TASK_COMMANDS.values():
        _add(whats.add_parser, command)
        if command.top_level:
            _add(commands.add_parser, command)


def show_task(task: TaskView, *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(task.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
        return
    agent = f" by {task.agent_id}" if task.agent_id else ""
    print(f"task {task.task_id} {task.status.value}{agent}")
    print(
        f"  type {task.task_type}, priority {task.priority.name.lower()}, "
        f"attempts {task.attempts}, needs {', '.join(task.required_capabilities) or '-'}"
    )
    print(
        f"  created {clock(task.created_at)}, assigned {clock(task.assigned_at)}, "
        f"finished {clock(task.finished_at)}"
    )
    waits = _waits(task)
    if waits:
        print(f"  {waits}")
    for attempt in task.history:
        error = f": {attempt.error}" if attempt.error else ""
        print(
            f"  attempt {attempt.attempt} by {attempt.agent_id or '-'} "
            f"{attempt.outcome.value} at {clock(attempt.finished_at)}{error}"
        )
    if task.error:
        print(f"  error: {task.error}")
    elif task.status is TaskStatus.COMPLETED:
        print(f"  result: {orjson.dumps(task.result).decode()}")


def _waits(task: TaskView) -> str:
    """What a waiting task waits for, in words (empty when it waits for nothing)."""
    if task.status is TaskStatus.SCHEDULED:
        return f"scheduled for {clock(task.not_before)}"
    if task.status is TaskStatus.RETRYING:
        return f"next attempt at {clock(task.next_attempt_at)}"
    if task.status is TaskStatus.BLOCKED:
        return f"waits for {', '.join(task.depends_on)}"
    return ""
