"""Import time of ``corral`` against ``asyncio``, each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks._harness import OverheadAtMost, Workload, timed_case

_PROBE = (
    "import time; start = time.perf_counter(); import {module}; print(time.perf_counter() - start)"
)


def import_seconds(module: str) -> float:
    """Seconds ``import module`` takes in a fresh interpreter (measured inside it).

    Bytecode caching is on even if the environment turns it off, as it is for any
    installed package; the first run writes the caches.
    """
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )
    return float(completed.stdout)


CORRAL = "import corral"
ASYNCIO = "import asyncio"

WORKLOAD = Workload(
    name="import",
    title="Import in a fresh interpreter",
    n=1,
    smoke_n=1,
    unit="import",
    baseline=ASYNCIO,
    cases=(
        timed_case(CORRAL, lambda _n: import_seconds("corral")),
        timed_case(ASYNCIO, lambda _n: import_seconds("asyncio")),
    ),
    floors=(OverheadAtMost(CORRAL, ASYNCIO, 0.030),),
)
