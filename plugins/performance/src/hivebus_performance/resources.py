"""CPU, memory and data-directory disk of this core, sampled without blocking the loop.

CPU is this process's CPU time between two samples over the wall time between them, as a share
of the machine (all its CPUs): a syscall, cheap. Memory (``/proc/self/statm``) and the disk
(``statvfs``) are read in a thread: file systems can stall. Figures a platform does not offer
are ``None``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ResourceCollector", "ResourceSample", "ResourceSampler"]

MIB = 1024 * 1024


class Disk(NamedTuple):
    total: int
    used: int
    free: int


@dataclass(frozen=True, slots=True)
class ResourceSample:
    cpu_percent: float | None
    memory_bytes: int | None
    memory_percent: float | None
    disk_used_percent: float | None
    disk_free_bytes: int | None

    @property
    def memory_mb(self) -> float | None:
        return None if self.memory_bytes is None else self.memory_bytes / MIB


class ResourceSampler:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.last: ResourceSample | None = None
        self._cpu_at: tuple[float, float] | None = None

    async def sample(self) -> ResourceSample:
        cpu = self._cpu_percent()
        memory, total, disk = await asyncio.to_thread(self._read)
        self.last = ResourceSample(
            cpu_percent=cpu,
            memory_bytes=memory,
            memory_percent=None if memory is None or not total else 100.0 * memory / total,
            disk_used_percent=None if disk is None else 100.0 * disk.used / disk.total,
            disk_free_bytes=None if disk is None else disk.free,
        )
        return self.last

    def _cpu_percent(self) -> float | None:
        times = os.times()
        now, used = time.monotonic(), times.user + times.system
        previous, self._cpu_at = self._cpu_at, (now, used)
        if previous is None or now <= previous[0]:
            return None
        share = (used - previous[1]) / (now - previous[0]) / (os.cpu_count() or 1)
        return max(0.0, 100.0 * share)

    def _read(self) -> tuple[int | None, int | None, Disk | None]:
        memory = total = None
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
        try:
            with open("/proc/self/statm") as statm:
                memory = int(statm.read().split()[1]) * page
            total = os.sysconf("SC_PHYS_PAGES") * page
        except (OSError, ValueError, IndexError):
            pass
        folder = self.data_dir.resolve()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # not created yet (memory state): the disk it will be on
        try:
            used = shutil.disk_usage(folder)
        except OSError:
            return memory, total, None
        return memory, total, Disk(used.total, used.used, used.free)


class ResourceCollector(Collector):
    """The sampler's latest figures as gauges (absent until the first sample)."""

    def __init__(self, sampler: ResourceSampler) -> None:
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        sample = self._sampler.last
        figures = (
            ("hivebus_process_cpu_usage_ratio",
             "This core's CPU time over the last sampling interval, as a share of the machine.",
             None if sample is None or sample.cpu_percent is None else sample.cpu_percent / 100),
            ("hivebus_process_memory_usage_ratio",
             "This core's resident memory as a share of the machine's.",
             None if sample is None or sample.memory_percent is None
             else sample.memory_percent / 100),
            ("hivebus_data_dir_disk_used_ratio",
             "Used share of the disk holding the core's data directory.",
             None if sample is None or sample.disk_used_percent is None
             else sample.disk_used_percent / 100),
            ("hivebus_data_dir_disk_free_bytes",
             "Free bytes on the disk holding the core's data directory.",
             None if sample is None else sample.disk_free_bytes),
        )  # fmt: skip
        for name, doc, value in figures:
            family = GaugeMetricFamily(name, doc)
            if value is not None:
                family.add_metric([], value)
            yield family
