"""What the user typed, checked by argparse before anything connects.

Each function is an argparse ``type``: a wrong value becomes one ``usage error`` line and exit
code 2 (see ``HivebusArgumentParser``), never a traceback from deeper down.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

import orjson
from hivebus_hookspecs.models import AGENT_ID_PATTERN, TASK_ID_PATTERN, TaskPriority, TaskStatus

from ..config import check_nats_url

__all__ = [
    "HivebusArgumentParser",
    "agent_id",
    "json_value",
    "nats_url",
    "port",
    "positive_float",
    "positive_int",
    "priority",
    "seconds",
    "task_id",
    "task_status",
]


class HivebusArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def json_value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        _fail(f"not JSON: {text[:60]!r}; quote text as a JSON string, e.g. '\"plain words\"'")


def priority(text: str) -> TaskPriority:
    value: object = int(text) if text.strip().lstrip("-").isdigit() else text
    try:
        return TaskPriority.parse(value)
    except ValueError as exc:
        _fail(f"{text!r}: {exc}")


def task_status(text: str) -> TaskStatus:
    try:
        return TaskStatus(text.strip().lower())
    except ValueError:
        _fail(f"unknown status {text!r}; one of {', '.join(s.value for s in TaskStatus)}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        _fail(f"{text!r} is not a whole number")
    if value < 1:
        _fail(f"{value} is too small; it must be 1 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        _fail(f"{text!r} is not a number of seconds")
    if not value > 0 or value == float("inf"):
        _fail(f"{text} must be a number of seconds above 0")
    return value


def seconds(text: str) -> float:
    """A duration that may be zero (a delay, a backoff)."""
    try:
        value = float(text)
    except ValueError:
        _fail(f"{text!r} is not a number of seconds")
    if value < 0 or value == float("inf"):
        _fail(f"{text!r}: seconds cannot be negative or infinite")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        _fail(f"{text!r} is not a port number")
    if not 0 <= value <= 65535:
        _fail(f"{value} is not a port (0 to 65535)")
    return value


def task_id(text: str) -> str:
    if len(text) > 128 or not re.match(TASK_ID_PATTERN, text):
        _fail(f"{text[:60]!r} is not a task id: letters, digits, '-', '_', dot-separated")
    return text


def agent_id(text: str) -> str:
    if not re.match(AGENT_ID_PATTERN, text):
        _fail(f"{text[:60]!r} is not an agent id: 1 to 128 letters, digits, '-' or '_'")
    return text


def nats_url(text: str) -> str:
    try:
        return check_nats_url(text)
    except ValueError as exc:
        _fail(str(exc))
