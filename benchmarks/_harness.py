"""The benchmark harness: workloads, cases, floors, and the runner.

A *workload* (one ``bench_<name>.py`` module exposing ``WORKLOAD``) is one job done by
several *cases*: corral's way and named peers' ways. The runner times every case of a
workload in the same process, interleaved (case A, case B, case C, then again), keeps the
best of ``repeat`` runs, and reports each case as a ratio of the workload's *baseline*
case. *Floors* are the promises corral makes about those ratios ("<= 1.2x asyncio",
">= 4x faster than anyio"); the report says whether each one holds.

Every async case runs in a fresh event loop, and the time measured is the body alone, not
the loop's creation. ``gc.collect()`` runs before every timed run.

A case whose code cannot be imported (a peer that is not installed, an API not present in
this build), or that raises :class:`CaseUnavailable` (a service that is not reachable), is
reported as unavailable, and floors that involve it are not judged.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import importlib
import json
import os
import pkgutil
import platform
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.errors import InvalidArgumentError

__all__ = (
    "AtMost",
    "CaseResult",
    "CaseUnavailable",
    "Floor",
    "FloorResult",
    "OverheadAtMost",
    "Report",
    "TimesFaster",
    "Workload",
    "WorkloadResult",
    "async_case",
    "discover",
    "judged",
    "machine_info",
    "run",
    "run_workload",
    "sync_case",
    "timed_case",
)

#: Runs of each case for a full run (best of these is kept).
DEFAULT_REPEAT = 5


class CaseUnavailable(Exception):
    """A case cannot run on this machine (a service it needs is not reachable)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One way of doing a workload's job.

    ``measure(n)`` does the job at size ``n`` once and returns the seconds it took.
    """

    name: str
    measure: Callable[[int], float]


def timed_case(name: str, measure: Callable[[int], float]) -> Case:
    """A case that times itself: ``measure(n)`` returns seconds (e.g. from a subprocess)."""
    return Case(name, measure)


def sync_case(name: str, body: Callable[[int], object]) -> Case:
    """A case whose ``body(n)`` is plain synchronous code, timed around the call."""

    def measure(n: int) -> float:
        start = time.perf_counter()
        body(n)
        return time.perf_counter() - start

    return Case(name, measure)


def async_case(name: str, body: Callable[[int], Awaitable[object]]) -> Case:
    """A case whose ``body(n)`` is awaited in a fresh asyncio event loop.

    Only the ``await body(n)`` is timed, inside the loop; creating and closing the loop
    is not.
    """

    async def timed(n: int) -> float:
        start = time.perf_counter()
        await body(n)
        return time.perf_counter() - start

    def measure(n: int) -> float:
        with asyncio.Runner() as runner:
            return runner.run(timed(n))

    return Case(name, measure)


@dataclass(frozen=True, slots=True)
class FloorResult:
    """Whether one floor held: ``held`` is None when a case it needs did not run."""

    text: str
    held: bool | None
    detail: str


class Floor(Protocol):
    """A claim about two cases' best times: ``case`` compared with ``other``."""

    @property
    def case(self) -> str:
        """The case the claim is about (usually corral's)."""
        ...

    @property
    def other(self) -> str:
        """The case it is compared with."""
        ...

    @property
    def text(self) -> str:
        """The claim in words, e.g. ``corral all <= 1.1x asyncio.gather``."""
        ...

    def judge(self, best: dict[str, float]) -> FloorResult:
        """Judge the claim against the best time of every case that ran."""
        ...


def _pair(best: dict[str, float], text: str, *names: str) -> list[float] | FloorResult:
    missing = [name for name in names if name not in best]
    if missing:
        return FloorResult(text, None, f"not run: {', '.join(missing)}")
    return [best[name] for name in names]


@dataclass(frozen=True, slots=True)
class AtMost:
    """``case`` takes at most ``factor`` times as long as ``other``."""

    case: str
    other: str
    factor: float

    @property
    def text(self) -> str:
        return f"{self.case} <= {self.factor:g}x {self.other}"

    def judge(self, best: dict[str, float]) -> FloorResult:
        times = _pair(best, self.text, self.case, self.other)
        if isinstance(times, FloorResult):
            return times
        ratio = times[0] / times[1]
        return FloorResult(self.text, ratio <= self.factor, f"{ratio:.2f}x")


@dataclass(frozen=True, slots=True)
class TimesFaster:
    """``case`` is at least ``factor`` times faster than ``other``.

    A ``factor`` below 1 is a speed ``case`` must keep relative to ``other`` (0.6: at
    least 60% of its speed), and is worded so.
    """

    case: str
    other: str
    factor: float

    @property
    def text(self) -> str:
        if self.factor < 1:
            return f"{self.case} >= {self.factor:g}x the speed of {self.other}"
        return f"{self.case} >= {self.factor:g}x faster than {self.other}"

    def judge(self, best: dict[str, float]) -> FloorResult:
        times = _pair(best, self.text, self.case, self.other)
        if isinstance(times, FloorResult):
            return times
        speedup = times[1] / times[0]
        measured = f"{speedup:.2f}x the speed" if self.factor < 1 else f"{speedup:.2f}x faster"
        return FloorResult(self.text, speedup >= self.factor, measured)


@dataclass(frozen=True, slots=True)
class OverheadAtMost:
    """``case`` takes at most ``seconds`` longer than ``other``."""

    case: str
    other: str
    seconds: float

    @property
    def text(self) -> str:
        return f"{self.case} <= {self.other} + {self.seconds * 1000:g} ms"

    def judge(self, best: dict[str, float]) -> FloorResult:
        times = _pair(best, self.text, self.case, self.other)
        if isinstance(times, FloorResult):
            return times
        overhead = times[0] - times[1]
        return FloorResult(self.text, overhead <= self.seconds, f"+{overhead * 1000:.1f} ms")


@dataclass(frozen=True, slots=True)
class Workload:
    """One job, the cases that do it, and the floors corral promises about them.

    ``n`` is the size of a full run, ``smoke_n`` the size of a ``--smoke`` run; ``unit``
    names what ``n`` counts (it is 1 for jobs that have no size, like an import).
    """

    name: str
    title: str
    n: int
    smoke_n: int
    unit: str
    baseline: str
    cases: tuple[Case, ...]
    floors: tuple[Floor, ...] = ()

    def __post_init__(self) -> None:
        names = [case.name for case in self.cases]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"workload {self.name!r} has duplicate case names: {names}")
        if self.baseline not in names:
            raise InvalidArgumentError(
                f"workload {self.name!r}: baseline {self.baseline!r} is not one of its cases"
            )
        for floor in self.floors:
            for name in (floor.case, floor.other):
                if name not in names:
                    raise InvalidArgumentError(
                        f"workload {self.name!r}: floor {floor.text!r} names {name!r}, "
                        "which is not one of its cases"
                    )


@dataclass(slots=True)
class CaseResult:
    """What became of one case: its run times, or why it has none."""

    name: str
    times: list[float] = field(default_factory=list)
    unavailable: str | None = None
    error: str | None = None

    @property
    def best(self) -> float | None:
        """The fastest run, or None when the case did not run."""
        return min(self.times) if self.times else None


@dataclass(slots=True)
class WorkloadResult:
    """One workload's cases and floors, judged."""

    name: str
    title: str
    n: int
    unit: str
    baseline: str
    cases: list[CaseResult]
    floors: list[FloorResult] = field(default_factory=list)

    def best_times(self) -> dict[str, float]:
        """The best time of every case that ran."""
        return {case.name: case.best for case in self.cases if case.best is not None}

    def ratio(self, case: CaseResult) -> float | None:
        """``case``'s best time over the baseline's, or None if either did not run."""
        base = self.best_times().get(self.baseline)
        if case.best is None or base is None or base == 0:
            return None
        return case.best / base


@dataclass(slots=True)
class Report:
    """A whole benchmark run: where, when, how, and every workload's results."""

    machine: dict[str, str]
    smoke: bool
    repeat: int
    workloads: list[WorkloadResult]

    @property
    def ok(self) -> bool:
        """No case raised, and (outside smoke mode) no judged floor failed."""
        if any(case.error for result in self.workloads for case in result.cases):
            return False
        return self.smoke or all(
            floor.held is not False for result in self.workloads for floor in result.floors
        )

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON-able data."""
        return {
            "machine": self.machine,
            "smoke": self.smoke,
            "repeat": self.repeat,
            "workloads": [
                {
                    "name": result.name,
                    "title": result.title,
                    "n": result.n,
                    "unit": result.unit,
                    "baseline": result.baseline,
                    "cases": [
                        {
                            "name": case.name,
                            "best_seconds": case.best,
                            "times": case.times,
                            "ratio": result.ratio(case),
                            "unavailable": case.unavailable,
                            "error": case.error,
                        }
                        for case in result.cases
                    ],
                    "floors": [
                        {"floor": floor.text, "held": floor.held, "measured": floor.detail}
                        for floor in result.floors
                    ],
                }
                for result in self.workloads
            ],
        }


def discover(names: Sequence[str] = ()) -> list[Workload]:
    """Import the ``bench_*`` modules of this package and return their workloads.

    With ``names``, only those workloads, in that order; an unknown name raises
    ``InvalidArgumentError`` listing the known ones.
    """
    package = importlib.import_module(__package__ or "benchmarks")
    found: dict[str, Workload] = {}
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("bench_"):
            workload = importlib.import_module(f"{package.__name__}.{module.name}").WORKLOAD
            found[workload.name] = workload
    if not names:
        return list(found.values())
    unknown = [name for name in names if name not in found]
    if unknown:
        raise InvalidArgumentError(
            f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(found)}"
        )
    return [found[name] for name in names]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, str]:
    """The machine a run happened on, and when (UTC), and which promise core ran."""
    from corral._core import _promise

    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "promise": "compiled" if _promise.ACCELERATED else "pure Python",
        "os": platform.platform(terse=True),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


#: ``progress(workload, case, run)`` is called before each timed run.
Progress = Callable[[Workload, Case, int], None]


def run(
    workloads: Iterable[Workload],
    *,
    smoke: bool = False,
    repeat: int | None = None,
    progress: Progress | None = None,
    isolate: bool = False,
) -> Report:
    """Run ``workloads`` and judge their floors.

    Args:
        workloads: what to run, in order.
        smoke: use each workload's tiny ``smoke_n`` and a single run; floors are
            reported but a smoke run never fails on them.
        repeat: runs per case (best kept); default 1 for smoke runs, else 5.
        progress: called before every timed run, for progress displays.
        isolate: run each workload in a fresh interpreter (see
            :mod:`benchmarks._isolation`); the workloads must be ones :func:`discover`
            finds by name.

    Returns:
        The report. A case that raised has ``error`` set and ``Report.ok`` is false.
    """
    runs = repeat if repeat is not None else (1 if smoke else DEFAULT_REPEAT)
    if runs < 1:
        raise InvalidArgumentError(f"repeat must be at least 1, got {runs}")
    one = run_workload
    if isolate:
        from benchmarks._isolation import run_in_worker as one
    results = [one(w, smoke=smoke, runs=runs, progress=progress) for w in workloads]
    return Report(machine_info(), smoke, runs, results)


def run_workload(
    workload: Workload, *, smoke: bool, runs: int, progress: Progress | None
) -> WorkloadResult:
    """Run one workload in this process: its cases interleaved, ``runs`` times each."""
    n = workload.smoke_n if smoke else workload.n
    cases = {case.name: CaseResult(case.name) for case in workload.cases}
    for attempt in range(runs):
        for case in workload.cases:
            outcome = cases[case.name]
            if progress is not None:
                progress(workload, case, attempt)
            if outcome.unavailable or outcome.error:
                continue
            gc.collect()
            try:
                outcome.times.append(case.measure(n))
            except (ImportError, CaseUnavailable) as exc:
                outcome.unavailable = str(exc)
            except Exception as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
    return judged(workload, n, list(cases.values()))


def judged(
    workload: Workload, n: int, cases: list[CaseResult], floors: list[FloorResult] | None = None
) -> WorkloadResult:
    """The result of ``workload`` at size ``n`` with these case results.

    ``floors`` are the floors as judged where the cases ran; without them, they are
    judged here from the cases' best times.
    """
    result = WorkloadResult(
        workload.name, workload.title, n, workload.unit, workload.baseline, cases
    )
    result.floors = (
        floors
        if floors is not None
        else [floor.judge(result.best_times()) for floor in workload.floors]
    )
    return result


def _seconds(value: float | None, n: int) -> str:
    if value is None:
        return "-"
    if n == 1:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1000:.1f} ms ({value / n * 1e9:,.0f} ns/op)"


def case_cells(result: WorkloadResult, case: CaseResult) -> tuple[str, str, str]:
    """Table cells for one case: best time, ratio to the baseline, and a note."""
    ratio = result.ratio(case)
    note = case.error or (f"unavailable: {case.unavailable}" if case.unavailable else "")
    if case.name == result.baseline and note == "":
        note = "baseline"
    return (_seconds(case.best, result.n), f"{ratio:.2f}x" if ratio is not None else "-", note)


def floor_verdict(floor: FloorResult, *, smoke: bool = False) -> str:
    """``holds``, ``FAILS`` or ``not judged`` (always the latter for smoke runs)."""
    if smoke:
        return "not judged (smoke run)"
    return {True: "holds", False: "FAILS", None: "not judged"}[floor.held]


def to_text(report: Report) -> str:
    """The report as plain text (what ``python -m benchmarks`` prints)."""
    lines = [
        "machine: " + ", ".join(f"{key} {value}" for key, value in report.machine.items()),
        f"mode: {'smoke' if report.smoke else 'full'}, best of {report.repeat}",
    ]
    for result in report.workloads:
        lines += ["", f"{result.title} [{result.name}, n={result.n:,} {result.unit}]"]
        width = max(len(case.name) for case in result.cases)
        for case in result.cases:
            best, ratio, note = case_cells(result, case)
            lines.append(f"  {case.name:<{width}}  {best:>28}  {ratio:>7}  {note}")
        for floor in result.floors:
            verdict = floor_verdict(floor, smoke=report.smoke)
            lines.append(f"  floor: {floor.text}: {floor.detail} -> {verdict}")
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    """The report as Markdown: the machine, then one table of cases and one of floors."""
    machine = report.machine
    lines = [
        f"Measured {machine['date']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['python']} ({machine['promise']} promise), {machine['os']}; "
        f"best of {report.repeat}" + (" (smoke sizes, not meaningful)." if report.smoke else "."),
        "",
        "| workload | case | best | vs baseline |",
        "|---|---|---:|---:|",
    ]
    for result in report.workloads:
        for case in result.cases:
            best, ratio, note = case_cells(result, case)
            label = f"{ratio} ({note})" if note else ratio
            lines.append(f"| {result.name} (n={result.n:,}) | {case.name} | {best} | {label} |")
    lines += ["", "| floor | measured | verdict |", "|---|---:|---|"]
    for result in report.workloads:
        for floor in result.floors:
            verdict = floor_verdict(floor, smoke=report.smoke)
            lines.append(f"| {floor.text} | {floor.detail} | {verdict} |")
    return "\n".join(lines) + "\n"


def to_json_text(report: Report) -> str:
    """The report as indented JSON text."""
    return json.dumps(report.to_json(), indent=2) + "\n"
