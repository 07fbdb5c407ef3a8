"""What the plugin remembers per task type, for at most ``max_task_types`` types.

Task types are free-form strings a delegator chooses, so the set is capped: past the cap the
type seen least recently is forgotten (and its alerts resolve, since nothing backs them now).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from .baseline import Baseline
from .settings import ProductionSettings
from .slo import ServiceLevel

__all__ = ["TaskTypeStats", "TaskTypes"]


@dataclass
class TaskTypeStats:
    settings: ProductionSettings
    level: ServiceLevel = field(init=False)
    durations: Baseline = field(init=False)
    """Seconds from assignment to finish, of the tasks that completed."""
    failures: Baseline = field(init=False)
    """1 per failed task, 0 per completed one: its mean is the failure rate."""

    def __post_init__(self) -> None:
        a = self.settings.anomaly
        self.level = ServiceLevel(self.settings)
        self.durations = Baseline(a.slow_alpha, a.fast_alpha, a.z_threshold, a.min_duration_delta_s)
        self.failures = Baseline(a.slow_alpha, a.fast_alpha, a.z_threshold, a.min_failure_delta)


class TaskTypes:
    def __init__(self, settings: ProductionSettings) -> None:
        self._settings = settings
        self._types: OrderedDict[str, TaskTypeStats] = OrderedDict()
        self.forgotten = 0

    def get(self, task_type: str) -> TaskTypeStats:
        stats = self._types.get(task_type)
        if stats is None:
            stats = self._types[task_type] = TaskTypeStats(self._settings)
            if len(self._types) > self._settings.max_task_types:
                self._types.popitem(last=False)
                self.forgotten += 1
        else:
            self._types.move_to_end(task_type)
        return stats

    def items(self) -> Iterator[tuple[str, TaskTypeStats]]:
        return iter(list(self._types.items()))

    def __len__(self) -> int:
        return len(self._types)
