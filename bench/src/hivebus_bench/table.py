"""The report as a terminal table: each figure, its floor, the ratio; then the goals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import sections
from .headline import headline
from .jetstream_section import jetstream
from .rows import Row, Rows, fmt

__all__ = ["render_table"]

SECTIONS = (
    sections.floor,
    sections.startup,
    sections.registration,
    sections.heartbeats,
    sections.delegation,
    sections.scale,
    sections.memory,
    sections.plugins,
    sections.plugin_variants,
    jetstream,
    sections.uvloop,
)
"""In the order the table shows them."""


def _rows(report: dict[str, Any]) -> list[Row]:
    rows = Rows(report["figures"], report["ratios"])
    return [row for section in SECTIONS for row in section(rows)]


def _headline(report: dict[str, Any]) -> list[Row]:
    return headline(Rows(report["figures"], report["ratios"]))


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def render_table(report: dict[str, Any]) -> str:
    """The headline, the figures with their floors and ratios, the goals, the legacy verdict."""
    header = ("figure", "value", "floor", "ratio")
    figures = _table(header, _rows(report))
    goals = _table(
        ("goal", "target", "value", "met", "issue"),
        [
            (
                g["goal"],
                g["target"],
                fmt(g["value"]),
                {True: "yes", False: "NO", None: "-"}[g["met"]],
                f"#{g['issue']}" if g.get("issue") else "",
            )
            for g in report["goals"]
        ],
    )
    summary = report["summary"]
    requirements = ", ".join(
        f"{name}={'ok' if r['passed'] else 'FAIL'}"
        for name, r in summary["critical_requirements"].items()
    )
    info = report["system_info"]
    lines = [
        f"hivebus bench  {report['timestamp']}  {info['cpu_count']} cpus  "
        f"python {info['python']}  loop {info['event_loop']}"
        + (f" (uvloop {info['uvloop']} installed)" if info["uvloop"] else "")
        + f"  core loop {report['configuration'].get('core_event_loop') or '?'}",
    ]
    profile = report["configuration"].get("profile")
    if profile:
        used = ", ".join(f"{core}: {tool}" for core, tool in profile.get("used", {}).items())
        lines.append(
            f"profiled ({used or profile['profiler']}) into {profile['dir']}: "
            "the figures carry the profiler's overhead"
        )
    top = _headline(report)
    if top:
        lines += ["", "headline: the durable hot path (JetStream state) beside the bare relay"]
        lines += [_table(header, top)]
    lines += [
        "",
        figures,
        "",
        goals,
        "",
        f"legacy summary: {summary['overall_status']} ({requirements})",
    ]
    if summary["failed_scenarios"]:
        lines.append(f"failed scenarios: {', '.join(summary['failed_scenarios'])}")
    return "\n".join(lines)
