"""Folded stacks (py-spy's ``raw`` format) as a flame graph (SVG) and as a top-functions text.

One recording gives both: the flame graph for a browser, the text for a terminal, a diff or a
note. A folded line is ``frame;frame;...;frame COUNT``, the root first, each frame
``function (file:line)``.
"""

from __future__ import annotations

import html
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Stacks", "read_folded", "render_svg", "top_functions"]

Stacks = list[tuple[list[str], int]]

WIDTH = 1200
ROW = 16
FONT = 11
CHAR = 6.6
"""About the width of one character at ``FONT`` px, to fit labels in their frames."""


def read_folded(path: Path) -> Stacks:
    stacks: Stacks = []
    for line in path.read_text(errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def top_functions(stacks: Stacks, top: int = 40) -> str:
    """The functions with the most samples: inclusive (in the stack at all), then own (on top)."""
    total = sum(count for _, count in stacks)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        for frame in set(frames):  # once per sample, however deep the recursion
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples (the core busy; py-spy leaves out its idle waits)"]
    for title, counter in (("in the stack (inclusive)", inclusive), ("on top (own)", own)):
        lines += ["", f"=== top {top} functions by samples {title}", "  samples      %  function"]
        for frame, n in counter.most_common(top):
            lines.append(f"{n:>9}  {n / total * 100 if total else 0:>5.1f}  {frame}")
    return "\n".join(lines) + "\n"


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Stacks) -> _Node:
    root = _Node("all")
    for frames, count in stacks:
        root.count += count
        node = root
        for frame in frames:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += count
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(child) for child in node.children.values()), default=0)


def _colour(name: str) -> str:
    # Warm colours, the same for a function in every graph (a hash of its name).
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{(h >> 8) % 180},{(h >> 16) % 55})"


def render_svg(stacks: Stacks, title: str) -> str:
    """A flame graph: the root at the bottom, each frame as wide as its share of samples."""
    root = _tree(stacks)
    total = root.count or 1
    height = (_depth(root) + 2) * ROW
    scale = WIDTH / total
    rects: list[str] = []

    def draw(node: _Node, x: float, depth: int) -> None:
        width = node.count * scale
        if width < 0.3:
            return  # too narrow to see: its samples still count in its parents
        y = height - (depth + 1) * ROW
        label = html.escape(f"{node.name} ({node.count} samples, {node.count / total:.1%})")
        text = ""
        fits = int((width - 4) / CHAR)
        if fits >= 3:
            shown = node.name if len(node.name) <= fits else node.name[: fits - 2] + ".."
            text = (
                f'<text x="{x + 2:.1f}" y="{y + ROW - 4}" font-size="{FONT}">'
                f"{html.escape(shown)}</text>"
            )
        rects.append(
            f'<g><title>{label}</title><rect x="{x:.1f}" y="{y}" width="{width:.1f}" '
            f'height="{ROW - 1}" fill="{_colour(node.name)}" rx="1"/>{text}</g>'
        )
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, x, depth + 1)
            x += child.count * scale

    draw(root, 0.0, 0)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="monospace">\n'
        f'<rect width="100%" height="100%" fill="#fafafa"/>\n'
        f'<text x="4" y="{ROW - 3}" font-size="{FONT + 1}">{html.escape(title)}</text>\n'
        + "\n".join(rects)
        + "\n</svg>\n"
    )
