"""``hivebus audit --lifecycle``: read the audit plugin's lifecycle log from disk.

The log is a directory of JSON-lines files, one lifecycle event (the body of ``events.<name>``)
per line, each replica writing its own (docs/audit.md). Reading needs no bus and no running
core: only the files, merged by the events' timestamps. A line still being written (no newline
yet) is read on the next pass, never half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .failures import UsageError
from .tables import event_line

__all__ = ["FOLLOW_EVERY_S", "LifecycleLog", "log_directory", "run_lifecycle"]

PLUGIN = "audit"
PATTERN = "lifecycle.*.jsonl"
FOLLOW_EVERY_S = 0.25


def log_directory(data_dir: Path, plugin_settings: dict[str, Any]) -> Path:
    """Where the plugin writes: its ``directory`` setting (inside ``data_dir`` when relative),
    else ``<data_dir>/plugins/audit``."""
    configured = plugin_settings.get("directory")
    return data_dir / str(configured) if configured else data_dir / "plugins" / PLUGIN


@dataclass
class LifecycleLog:
    """The records of one directory, read from where the last pass stopped in each file."""

    directory: Path
    task_id: str | None = None
    agent_id: str | None = None
    offsets: dict[Path, int] = field(default_factory=dict)

    def read_new(self) -> list[dict[str, Any]]:
        """The matching records written since the last call, oldest first."""
        records: list[dict[str, Any]] = []
        for path in sorted(self.directory.glob(PATTERN)):
            records += self._read(path)
        gone = [path for path in self.offsets if not path.exists()]  # pruned by retention
        for path in gone:
            del self.offsets[path]
        records.sort(key=lambda r: r.get("timestamp") or 0.0)
        return records

    def _read(self, path: Path) -> list[dict[str, Any]]:
        start = self.offsets.get(path, 0)
        try:
            with path.open("rb") as file:
                file.seek(start)
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offsets[path] = start + end
        found = []
        for line in data[:end].splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # not ours (an editor's stray line): skip it, keep reading
            if isinstance(record, dict) and self._matches(record):
                found.append(record)
        return found

    def _matches(self, record: dict[str, Any]) -> bool:
        if self.task_id is not None and record.get("task_id") != self.task_id:
            return False
        return self.agent_id is None or record.get("agent_id") == self.agent_id


def _show(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(record).decode(), flush=True)
    else:
        print(event_line(str(record.get("event")), record), flush=True)


async def run_lifecycle(args: argparse.Namespace) -> int:
    from ..config import HivebusConfig
    from .shutdown import stop_requested

    if args.principal is not None or args.denied:
        raise UsageError("--principal and --denied filter the security audit, not --lifecycle")
    config = HivebusConfig.load(args.config)
    data_dir = Path(args.data_dir) if args.data_dir else config.data_dir
    directory = log_directory(data_dir, config.plugin_settings(PLUGIN))
    if not directory.is_dir():
        raise UsageError(
            f"no lifecycle log in {directory}: is the audit plugin enabled, and is "
            f"{data_dir} the core's data directory (--data-dir)?"
        )
    log = LifecycleLog(directory, task_id=args.task, agent_id=args.agent)
    past = await asyncio.to_thread(log.read_new)
    if args.limit > 0:
        for record in past[-args.limit :]:
            _show(record, args.json)
    if not args.follow:
        return 0
    done = stop_requested()
    print(f"# following the lifecycle log in {directory}; Ctrl-C to stop", file=sys.stderr)
    while not done.is_set():
        for record in await asyncio.to_thread(log.read_new):
            _show(record, args.json)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), FOLLOW_EVERY_S)
    return 0
