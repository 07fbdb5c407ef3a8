"""The log on disk: JSON-lines segments, one writer per replica, rotated by size, pruned.

Every method here touches the disk and runs in a worker thread (``asyncio.to_thread``), never
on the event loop; a lock keeps the shutdown flush and a last timer flush from interleaving.

A segment is named ``lifecycle.<replica>.<UTC start, YYYYmmddTHHMMSSffffff>.jsonl``, so two
replicas sharing a data directory never write one file, and a reader merges them by the events'
timestamps. Pruning counts every replica's segments (the disk bound is the directory's) but
removes the newest segment of a replica only by age: that may be the one it is writing, and
two replicas pruning each other's current segment would take turns losing lines. A writer
whose segment was removed anyway (by age, or by hand) notices (the file has no link left) and
starts a new one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

__all__ = ["PATTERN", "SegmentedLog", "segment_name"]

PATTERN = "lifecycle.*.jsonl"


def _writer(path: Path) -> str:
    """The replica that wrote a segment (``lifecycle.<replica>.<start>.jsonl``)."""
    parts = path.name.split(".")
    return parts[1] if len(parts) == 4 else path.name


def segment_name(replica: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"lifecycle.{replica}.{stamp}.jsonl"


class SegmentedLog:
    def __init__(
        self,
        directory: Path,
        replica: str,
        *,
        max_file_bytes: int,
        max_files: int,
        max_age_s: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.replica = replica
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.max_age_s = max_age_s
        self.clock = clock
        self.path: Path | None = None
        self.started = 0
        self.removed = 0
        self._file: IO[bytes] | None = None
        self._size = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        """Make the directory and the first segment: a directory that cannot be written to
        fails here, at start-up, rather than at the first event."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._start()

    def write(self, lines: Iterable[bytes]) -> int:
        """Append each line (newline included) and return how many bytes went to disk."""
        written = 0
        with self._lock:
            if self._file is None or os.fstat(self._file.fileno()).st_nlink == 0:
                self._start()  # first write, or another replica pruned our segment
            for line in lines:
                if self._size and self._size + len(line) > self.max_file_bytes:
                    self._start()
                assert self._file is not None
                self._file.write(line)
                self._size += len(line)
                written += len(line)
            if self._file is not None:
                self._file.flush()
        return written

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def prune(self) -> None:
        """Remove what retention no longer keeps; also done whenever a segment starts."""
        with self._lock:
            self._prune(self.clock())

    def _start(self) -> None:
        if self._file is not None:
            self._file.close()
        now = self.clock()
        path = self.directory / segment_name(self.replica, now)
        while path.exists():  # two segments within a microsecond (tiny max_file_bytes)
            now += 1e-6
            path = self.directory / segment_name(self.replica, now)
        self._file = path.open("ab")
        self.path, self._size = path, 0
        self.started += 1
        self._prune(now)

    def _prune(self, now: float) -> None:
        segments: list[tuple[float, Path]] = []
        newest: dict[str, Path] = {}
        for path in self.directory.glob(PATTERN):
            if path == self.path:
                continue
            try:
                segments.append((path.stat().st_mtime, path))
            except FileNotFoundError:
                continue  # another replica pruned it first
            writer = _writer(path)
            best = newest.get(writer)
            if writer != self.replica and (best is None or path.name > best.name):
                newest[writer] = path  # names sort by start time
        protected = set(newest.values())
        count = len(segments) + 1  # the segment being written counts
        for mtime, path in sorted(segments):
            too_old = self.max_age_s is not None and now - mtime > self.max_age_s
            too_many = count > self.max_files and path not in protected
            if too_old or too_many:
                try:
                    path.unlink()
                    self.removed += 1
                except FileNotFoundError:
                    pass
                count -= 1
