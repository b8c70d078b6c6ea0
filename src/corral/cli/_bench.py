"""``corral bench``: run the checkout's ``benchmarks/`` with a progress bar and a table."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from benchmarks._harness import Case, Report, Workload

__all__ = ("find_checkout", "run_bench")

#: The checkout this module belongs to, when corral is installed from one (editable).
_CHECKOUT = Path(__file__).resolve().parents[3]


def find_checkout(search: Sequence[Path] | None = None) -> Path:
    """Make the first ``benchmarks/`` package found importable and return its checkout.

    Looks in the current directory, then in the checkout corral is installed from.

    Raises:
        typer.BadParameter: no directory in ``search`` holds ``benchmarks/_harness.py``.
    """
    roots = list(search) if search is not None else [Path.cwd(), _CHECKOUT]
    for root in roots:
        if (root / "benchmarks" / "_harness.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return root
    looked = ", ".join(str(root) for root in roots)
    raise typer.BadParameter(
        f"no benchmarks/ directory found (looked in {looked}); "
        "run `corral bench` from a corral source checkout"
    )


def _render(console: Console, report: Report) -> None:
    from benchmarks._harness import case_cells, floor_verdict

    machine = report.machine
    console.print(
        f"[bold]{machine['cpu']}[/bold], {machine['cores']} cores, {machine['python']} "
        f"({machine['promise']} promise), "
        f"{machine['os']}, {machine['date']}"
    )
    mode = "smoke run: tiny sizes, floors not judged" if report.smoke else "full run"
    console.print(f"{mode}; best of {report.repeat}")
    for result in report.workloads:
        table = Table(title=f"{result.title} (n={result.n:,} {result.unit})", title_justify="left")
        table.add_column("case")
        table.add_column("best", justify="right")
        table.add_column("vs baseline", justify="right")
        table.add_column("note")
        for case in result.cases:
            best, ratio, note = case_cells(result, case)
            style = "red" if case.error else ("dim" if case.unavailable else "")
            table.add_row(case.name, best, ratio, note, style=style)
        console.print(table)
        for floor in result.floors:
            verdict = floor_verdict(floor, smoke=report.smoke)
            colour = {"holds": "green", "FAILS": "red"}.get(verdict, "yellow")
            console.print(f"  floor {floor.text}: {floor.detail} [{colour}]{verdict}[/{colour}]")


def run_bench(
    console: Console,
    names: Sequence[str],
    *,
    smoke: bool,
    repeat: int | None,
    json_file: Path | None,
    markdown: bool,
) -> bool:
    """Run the named workloads (all when empty) and show the report.

    Returns:
        True unless a case raised or, outside smoke mode, a floor failed.

    Raises:
        typer.BadParameter: an unknown workload name, or no ``benchmarks/`` directory.
    """
    find_checkout()
    from benchmarks import _harness

    try:
        workloads = _harness.discover(names)
    except InvalidArgumentError as exc:
        raise typer.BadParameter(str(exc), param_hint="WORKLOAD") from None
    runs = repeat if repeat is not None else (1 if smoke else _harness.DEFAULT_REPEAT)
    total = runs * sum(len(workload.cases) for workload in workloads)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),  # stdout stays clean for --markdown > file
        transient=True,
    ) as progress:
        bar = progress.add_task("benchmarks", total=total)
        started = 0

        def show(workload: Workload, case: Case, attempt: int) -> None:
            nonlocal started
            description = f"{workload.name}: {case.name} (run {attempt + 1}/{runs})"
            progress.update(bar, description=description, completed=started)
            started += 1

        report = _harness.run(workloads, smoke=smoke, repeat=runs, progress=show, isolate=True)
    if json_file is not None:
        json_file.write_text(_harness.to_json_text(report), encoding="utf-8")
    if markdown:
        console.print(_harness.to_markdown(report), markup=False, soft_wrap=True)
    else:
        _render(console, report)
    return report.ok
