"""Medians of several bench reports: ``python -m hivebus_bench.combine A.json B.json ...``.

Prints the table of the median figures and, with ``--output``, writes the combined report.
On a shared machine one run is noisy; ``benchmarks/run.sh`` runs several and combines them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from .report import combine_reports
from .table import render_table

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hivebus_bench.combine")
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    combined = combine_reports([orjson.loads(path.read_bytes()) for path in args.reports])
    print(render_table(combined))
    if args.output is not None:
        args.output.write_bytes(orjson.dumps(combined, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
