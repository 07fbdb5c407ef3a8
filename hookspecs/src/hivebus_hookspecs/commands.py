"""The types of ``hivebus_register_commands``: how a distribution adds a ``hivebus`` command."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["COMMANDS_GROUP", "ConfigureCommand", "RegisterCommand", "RunCommand"]

COMMANDS_GROUP = "hivebus.commands"
"""The entry-point group the ``hivebus`` command loads its extra commands from."""

ConfigureCommand = Callable[[argparse.ArgumentParser], None]
"""Adds the command's arguments to its own parser (``prog`` is ``hivebus NAME``)."""

RunCommand = Callable[[argparse.Namespace], Awaitable[int] | int]
"""Runs the command with the parsed arguments; returns the exit status (or an awaitable of it)."""


class RegisterCommand(Protocol):
    """The ``register`` callback handed to ``hivebus_register_commands``."""

    def __call__(
        self,
        name: str,
        *,
        help: str,
        run: RunCommand,
        configure: ConfigureCommand | None = None,
    ) -> None:
        """Add ``hivebus NAME``: ``help`` is its line in ``hivebus --help``.

        ``configure`` adds its arguments; ``run`` is called with the parsed arguments (awaited
        on the command's event loop when it returns an awaitable) and returns the exit status.
        """
