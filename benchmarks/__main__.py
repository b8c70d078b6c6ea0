"""``python -m benchmarks [WORKLOAD...] [--smoke] [--repeat N] [--json FILE] [--markdown]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import _harness


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the report, and return 1 if a case broke or a floor failed."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run corral's benchmarks side by side with their peers.",
    )
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="default: all")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--repeat", type=int, help="runs per case, best kept (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every workload in this process instead of a fresh interpreter each",
    )
    # A worker process started by an isolated run (benchmarks/_isolation.py).
    parser.add_argument("--worker", metavar="WORKLOAD", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker is not None:
        from benchmarks._isolation import worker_main

        runs = options.repeat if options.repeat is not None else _harness.DEFAULT_REPEAT
        return worker_main(options.worker, smoke=options.smoke, runs=runs)
    report = _harness.run(
        _harness.discover(options.workloads),
        smoke=options.smoke,
        repeat=options.repeat,
        isolate=not options.in_process,
    )
    if options.json is not None:
        options.json.write_text(_harness.to_json_text(report), encoding="utf-8")
    print(_harness.to_markdown(report) if options.markdown else _harness.to_text(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
