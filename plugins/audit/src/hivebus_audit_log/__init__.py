"""The audit plugin: every lifecycle event as JSON lines under the core's data directory.

Entry point ``audit`` (enable or disable it by that name). Each replica writes its own
segments under ``<data_dir>/plugins/audit``, rotated by size and pruned by count and age;
``hivebus audit --lifecycle`` reads them. Not to be confused with the core's *security* audit
(the ``hivebus_audit`` stream), which records who asked for what in secure mode.
"""

from __future__ import annotations

from .plugin import NAME, AuditLog
from .segments import PATTERN, SegmentedLog, segment_name
from .settings import AuditSettings

__all__ = ["NAME", "PATTERN", "AuditLog", "AuditSettings", "SegmentedLog", "segment_name"]
