"""Append every hivebus lifecycle event to a JSON-lines audit file.

The entry point names the ``EchoAudit`` class, so each core builds its own instance (and its
own file handle and count). The file is opened at start-up and closed at shutdown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from hivebus_hookspecs import Event, PluginConfig, hookimpl

__all__ = ["DEFAULT_PATH", "NAME", "EchoAudit"]

NAME = "echo-audit"
DEFAULT_PATH = "hivebus-audit.jsonl"


class EchoAudit:
    """Writes each event as one line; reports the file and the count in ``hivebus_status``."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self._written = 0
        self._path: Path | None = None

    @hookimpl
    def hivebus_startup(self, config: PluginConfig | None) -> None:
        settings = config.plugin_settings(NAME) if config is not None else {}
        path = settings.get("path") or os.environ.get("HIVEBUS_ECHO_AUDIT_PATH", DEFAULT_PATH)
        self._path = Path(str(path))
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._path.open("a", encoding="utf-8", buffering=1)
        self._written = 0

    @hookimpl
    def hivebus_event(self, event: Event) -> None:
        if self._file is not None:
            self._file.write(event.model_dump_json() + "\n")
            self._written += 1

    @hookimpl
    def hivebus_status(self) -> dict[str, Any]:
        return {"path": str(self._path) if self._path else None, "events_written": self._written}

    @hookimpl
    def hivebus_health(self) -> str:
        return "healthy" if self._file is not None and not self._file.closed else "degraded"

    @hookimpl
    def hivebus_shutdown(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
