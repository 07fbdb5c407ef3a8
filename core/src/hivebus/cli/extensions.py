"""Commands other distributions add to ``hivebus``, through the ``hivebus.commands`` group.

A distribution names a module (or object) in that entry-point group; its
``hivebus_register_commands(register)`` implementation registers commands, each added to the
parser as ``hivebus NAME``. A plugin that fails to load or register, or a name that is already
taken, costs one line on stderr and nothing else: the other commands still work.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import pluggy
from hivebus_hookspecs import COMMANDS_GROUP, PROJECT, hookspecs
from hivebus_hookspecs.commands import ConfigureCommand, RunCommand

__all__ = [
    "COMMANDS_GROUP",
    "DEST",
    "MISSING",
    "Command",
    "add_commands",
    "load_commands",
]

DEST = "hivebus_command"
"""The parsed arguments' attribute that holds the chosen ``Command`` (absent for built-ins)."""

MISSING = {
    "bench": "hivebus bench comes with the hivebus-bench distribution: "
    "uv sync --all-packages, or pip install hivebus-bench",
}
"""Commands that ship in a distribution of their own: what to say when it is not installed."""


@dataclass(frozen=True, slots=True)
class Command:
    """One ``hivebus NAME`` contributed by a distribution."""

    name: str
    help: str
    run: RunCommand
    configure: ConfigureCommand | None = None
    distribution: str = "?"


def _warn(message: str) -> None:
    print(f"hivebus: {message}", file=sys.stderr)


def _distribution(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.value


def load_commands(
    reserved: Collection[str], found: Iterable[EntryPoint] | None = None
) -> list[Command]:
    """The commands the installed ``hivebus.commands`` plugins register, in load order.

    ``reserved`` are the built-in names; ``found`` replaces the installed entry points.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    distributions: dict[str, str] = {}
    # Loaded one by one rather than with pm.load_setuptools_entrypoints, which stops at the
    # first plugin that fails to import: here a broken plugin must not hide the others.
    for ep in entry_points(group=COMMANDS_GROUP) if found is None else found:
        distribution = _distribution(ep)
        try:
            plugin = ep.load()
            name = pm.register(plugin, name=f"{distribution}:{ep.name}")
        except Exception as exc:
            _warn(f"{distribution} adds no command: it failed to load ({exc!r})")
            continue
        if name is not None:
            distributions[name] = distribution

    commands: dict[str, Command] = {}

    def register_for(distribution: str) -> Callable[..., None]:
        def register(
            name: str,
            *,
            help: str,
            run: RunCommand,
            configure: ConfigureCommand | None = None,
        ) -> None:
            if not name or name.startswith("-") or any(c.isspace() for c in name):
                _warn(f"{distribution}'s command {name!r} is refused: not a command name")
            elif name in reserved:
                _warn(f"{distribution}'s command {name!r} is refused: it is a built-in command")
            elif name in commands:
                other = commands[name].distribution
                _warn(f"{distribution}'s command {name!r} is refused: {other} added it first")
            else:
                commands[name] = Command(name, help, run, configure, distribution)

        return register

    # pluggy calls the last registered first; so does this, but each plugin on its own.
    for impl in reversed(pm.hook.hivebus_register_commands.get_hookimpls()):
        distribution = distributions.get(impl.plugin_name, impl.plugin_name)
        arguments = {"register": register_for(distribution)}
        try:
            result = impl.function(*(arguments[arg] for arg in impl.argnames))
        except Exception as exc:
            _warn(f"{distribution} adds no command: hivebus_register_commands raised {exc!r}")
            continue
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            _warn(f"{distribution} adds no command: hivebus_register_commands must not be async")
    return list(commands.values())


AddParser = Callable[..., argparse.ArgumentParser]
"""``add_parser`` of the ``hivebus`` parser's sub-commands."""


def add_commands(add_parser: AddParser, commands: Iterable[Command]) -> None:
    """Add each command as a sub-command, and a hint for each missing one of ``MISSING``."""
    added: set[str] = set()
    for command in commands:
        # Configured on a parser of its own first, so one that raises leaves nothing behind.
        own = argparse.ArgumentParser(prog=f"hivebus {command.name}", add_help=False)
        try:
            if command.configure is not None:
                command.configure(own)
        except Exception as exc:
            _warn(f"{command.distribution}'s command {command.name!r} failed to set up ({exc!r})")
            continue
        sub = add_parser(command.name, help=command.help, description=command.help, parents=[own])
        sub.set_defaults(**{DEST: command})
        added.add(command.name)
    for name, hint in MISSING.items():
        if name not in added:
            _add_hint(add_parser, name, hint)


def _add_hint(add_parser: AddParser, name: str, hint: str) -> None:
    """A sub-command left out of ``--help`` that accepts any arguments and prints ``hint``."""

    def run(args: argparse.Namespace) -> int:
        print(hint, file=sys.stderr)
        return 2

    # No help= keeps it out of the command list; a prefix no argument uses makes every
    # argument (--quick, -h) a plain word, so argparse never errors before the hint is shown.
    sub = add_parser(name, add_help=False, prefix_chars="\0")
    sub.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
    sub.set_defaults(**{DEST: Command(name, hint, run, distribution="hivebus")})
