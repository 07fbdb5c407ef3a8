"""Append every hivebus lifecycle event to a JSON-lines audit file.

A module-level plugin: pluggy registers this module, and the hooks below are its
implementations. The file is opened at start-up and closed at shutdown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from hivebus_hookspecs import Event, PluginConfig, hookimpl

__all__ = [
    "hivebus_event",
    "hivebus_health",
    "hivebus_shutdown",
    "hivebus_startup",
    "hivebus_status",
]

NAME = "echo-audit"
DEFAULT_PATH = "hivebus-audit.jsonl"

_file: IO[str] | None = None
_written = 0
_path: Path | None = None


@hookimpl
def hivebus_startup(config: PluginConfig | None) -> None:
    global _file, _path, _written
    settings = config.plugin_settings(NAME) if config is not None else {}
    path = settings.get("path") or os.environ.get("HIVEBUS_ECHO_AUDIT_PATH", DEFAULT_PATH)
    _path = Path(str(path))
    _path.parent.mkdir(parents=True, exist_ok=True)
    _file = _path.open("a", encoding="utf-8", buffering=1)
    _written = 0


@hookimpl
def hivebus_event(event: Event) -> None:
    global _written
    if _file is not None:
        _file.write(event.model_dump_json() + "\n")
        _written += 1


@hookimpl
def hivebus_status() -> dict[str, Any]:
    return {"path": str(_path) if _path else None, "events_written": _written}


@hookimpl
def hivebus_health() -> str:
    return "healthy" if _file is not None and not _file.closed else "degraded"


@hookimpl
def hivebus_shutdown() -> None:
    global _file
    if _file is not None:
        _file.close()
        _file = None
