"""What went wrong, as one line for a person: the exception, its message and its exit code.

Exit code 2 is a usage error (the user can fix the command line or the configuration), 1 a
failure (the bus, the core or the task said no). Anything not listed here is a bug in hivebus
and keeps its traceback.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

import nats.errors
from pydantic import ValidationError

from ..errors import RemoteError

__all__ = ["FAILURE", "USAGE", "CommandFailed", "Explained", "UsageError", "explain"]

USAGE = 2
FAILURE = 1


class CommandFailed(Exception):
    """A command's own failure, already worded for a person (exit code 1)."""


class UsageError(Exception):
    """A mistake on the command line found by a command itself (exit code 2)."""


@dataclass(frozen=True)
class Explained:
    line: str
    exit_code: int


def explain(exc: BaseException, config_file: str | None = None) -> Explained | None:
    """The one line and exit code for ``exc``; ``None`` for a bug (let it show its traceback)."""
    if isinstance(exc, CommandFailed):
        return Explained(str(exc), FAILURE)
    if isinstance(exc, UsageError):
        return Explained(str(exc), USAGE)
    if isinstance(exc, ValidationError):
        # The configuration, or a request built from the arguments (a --type too long...).
        what = "configuration" if exc.title == "HivebusConfig" else "arguments"
        return Explained(f"invalid {what}: {_first_error(exc)}", USAGE)
    if isinstance(exc, tomllib.TOMLDecodeError):
        return Explained(f"cannot read the config file {config_file}: {exc}", USAGE)
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return Explained(_os_error(exc), USAGE)
    if isinstance(exc, RemoteError):
        return Explained(f"{exc.code.value}: {exc.message}", FAILURE)
    # Imported here: `hivebus up` never loads the SDK, and explaining is rare.
    from ..sdk.references import ReferenceUnavailable

    if isinstance(exc, ReferenceUnavailable):  # a large payload or result (docs/context.md)
        return Explained(f"by reference: {exc}", FAILURE)
    if isinstance(exc, ConnectionError):
        return Explained(str(exc) or "the connection to NATS failed", FAILURE)
    if isinstance(exc, TimeoutError):
        return Explained(str(exc) or "timed out", FAILURE)
    if isinstance(exc, nats.errors.Error):
        return Explained(f"nats: {exc}", FAILURE)
    return None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"{where}: no such setting (docs/configuration.md lists them){more}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}{more}"


def _os_error(exc: OSError) -> str:
    if exc.filename is None:
        return str(exc)
    return f"{(exc.strerror or 'cannot open').lower()}: {exc.filename}"
