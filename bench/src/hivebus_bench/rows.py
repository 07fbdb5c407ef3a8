"""One row of the table: a figure, its floor and the ratio between them, formatted alike.

Every section builds its rows through ``Rows.row``, so a figure that was not measured reads
``-`` and a ratio that could not be computed stays empty, the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .ratios import figure

__all__ = ["Row", "Rows", "fmt"]

Row = tuple[str, str, str, str]
"""The figure's name, its value, its floor, the ratio."""


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


@dataclass(frozen=True)
class Rows:
    """Rows read from one report's figures and ratios."""

    figures: dict[str, Any]
    ratios: dict[str, Any]

    def row(
        self, name: str, path: str, unit: str, floor: str | None = None, ratio: str = ""
    ) -> Row:
        ratio_text = f"{self.ratios[ratio]:.2f}x" if ratio in self.ratios else ""
        floor_text = fmt(figure(self.figures, floor), unit) if floor else ""
        return (name, fmt(figure(self.figures, path), unit), floor_text, ratio_text)

    @property
    def large(self) -> str:
        """The large population, as the row names show it."""
        large = figure(self.figures, "scale.large_agents")
        return f"{large:,.0f}" if large is not None else "N"

    @property
    def payload(self) -> str:
        """The payload of the cycles that carry one, as the row names show it."""
        kib = figure(self.figures, "delegation.cycles_payload.payload_kib")
        return f"{kib:g} KiB" if kib is not None else "large"

    @property
    def interval(self) -> str:
        """The default heartbeat interval in seconds, as the row names show it."""
        interval = figure(self.figures, "heartbeats.default_interval_s")
        return f"{interval:g}" if interval is not None else "?"
