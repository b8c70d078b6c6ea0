"""Running each workload in a fresh interpreter (what ``corral bench`` does).

The cases of one workload still run in one process, interleaved, so corral and its peers
meet the same heap and the same memory. Between workloads, though, a process keeps what
the earlier ones left: imported peers, objects the garbage collector walks at every full
collection, a fragmented allocator. A workload that makes a million objects (a long
``then`` chain, a task group of 100,000 children) pays for those in proportion, so its
ratios would depend on which workloads ran before it. pyperf isolates benchmarks in
worker processes for the same reason.

The parent runs ``python -m benchmarks --worker NAME`` from the checkout. The worker runs
the workload as :func:`benchmarks._harness.run` would in process and writes, one JSON
line each, a message before every timed run (for the progress display) and, at the end,
the case results and the floors, judged where the cases ran (some floors read what a
case recorded, such as the batch calls a loader made). Lines it prints otherwise are
passed on to standard error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    Case,
    CaseResult,
    FloorResult,
    Progress,
    Workload,
    WorkloadResult,
    discover,
    judged,
    run_workload,
)

__all__ = ("MARKER", "run_in_worker", "worker_command", "worker_main")

#: Prefix of the worker's protocol lines on its standard output.
MARKER = "@corral-bench "

#: The checkout that holds ``benchmarks/``: the worker's working directory.
CHECKOUT = Path(__file__).resolve().parent.parent


def worker_command(workload: Workload, *, smoke: bool, runs: int) -> list[str]:
    """The command that runs ``workload`` in a worker process."""
    command = [sys.executable, "-m", "benchmarks", "--worker", workload.name]
    command += ["--repeat", str(runs)]
    if smoke:
        command.append("--smoke")
    return command


def run_in_worker(
    workload: Workload, *, smoke: bool, runs: int, progress: Progress | None
) -> WorkloadResult:
    """Run ``workload`` in a fresh interpreter and return its judged result.

    A worker that ends without a result (it crashed, or could not import the workload)
    gives every case an ``error`` naming its exit status and the end of what it wrote to
    standard error.
    """
    cases_by_name = {case.name: case for case in workload.cases}
    results: list[CaseResult] | None = None
    floors: list[FloorResult] | None = None
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as errors:
        with subprocess.Popen(
            worker_command(workload, smoke=smoke, runs=runs),
            cwd=CHECKOUT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            encoding="utf-8",
        ) as worker:
            assert worker.stdout is not None
            for line in worker.stdout:
                if not line.startswith(MARKER):
                    sys.stderr.write(line)
                    continue
                message = json.loads(line[len(MARKER) :])
                if "run" in message and progress is not None:
                    name, attempt = message["run"]
                    progress(workload, cases_by_name[name], attempt)
                elif "cases" in message:
                    results = [_case_from_json(case) for case in message["cases"]]
                    floors = [_floor_from_json(floor) for floor in message["floors"]]
        status = worker.returncode
        if results is None:
            errors.seek(0)
            tail = errors.read()[-2000:].strip()
            failure = f"the worker process exited with status {status} without a result"
            if tail:
                failure += f": {tail}"
            results = [CaseResult(case.name, error=failure) for case in workload.cases]
    # Without a result, the floors are judged here, and find nothing run.
    return judged(workload, workload.smoke_n if smoke else workload.n, results, floors)


def worker_main(name: str, *, smoke: bool, runs: int) -> int:
    """The worker: run one workload and write its protocol lines to standard output."""
    (workload,) = discover([name])

    def announce(_: Workload, case: Case, attempt: int) -> None:
        _send({"run": [case.name, attempt]})

    result = run_workload(workload, smoke=smoke, runs=runs, progress=announce)
    _send(
        {
            "cases": [_case_to_json(case) for case in result.cases],
            "floors": [_floor_to_json(floor) for floor in result.floors],
        }
    )
    return 0


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(MARKER + json.dumps(message) + "\n")
    sys.stdout.flush()


def _case_to_json(case: CaseResult) -> dict[str, Any]:
    return {
        "name": case.name,
        "times": case.times,
        "unavailable": case.unavailable,
        "error": case.error,
    }


def _case_from_json(data: dict[str, Any]) -> CaseResult:
    return CaseResult(
        str(data["name"]),
        [float(time) for time in data["times"]],
        data["unavailable"],
        data["error"],
    )


def _floor_to_json(floor: FloorResult) -> dict[str, Any]:
    return {"text": floor.text, "held": floor.held, "detail": floor.detail}


def _floor_from_json(data: dict[str, Any]) -> FloorResult:
    held = data["held"]
    return FloorResult(str(data["text"]), None if held is None else bool(held), str(data["detail"]))
