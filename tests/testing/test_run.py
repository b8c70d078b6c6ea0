"""corral.testing.run: asyncio.run on a VirtualClockLoop."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from typing import Any

import pytest

from corral.errors import ArgumentTypeError, UsageError
from corral.testing import VirtualClock, VirtualClockLoop, run


async def _elapsed_after(seconds: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(seconds)
    return loop.time() - start


def test_returns_the_result_on_virtual_time() -> None:
    started = time.perf_counter()
    assert run(_elapsed_after, 86400) == 86400.0
    assert time.perf_counter() - started < 1.0


def test_uses_the_given_clock() -> None:
    clock = VirtualClock(1000.0)

    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(5)
        return isinstance(loop, VirtualClockLoop) and loop.clock is clock, loop.time()

    assert run(main, clock=clock) == (True, 1005.0)
    assert clock.statistics().jumps == 1
    assert run(main, clock=clock) == (True, 1010.0)  # the clock is free once run() returns


def test_exceptions_propagate() -> None:
    async def main() -> None:
        await asyncio.sleep(1)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run(main)


def test_a_coroutine_object_is_refused_with_advice() -> None:
    coro = _elapsed_after(1)
    with pytest.raises(ArgumentTypeError, match=r"write run\(main, arg\)"):
        run(coro)  # type: ignore[arg-type]
    # Closed, so Python does not warn that it was never awaited.
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


@pytest.mark.parametrize("main", [None, 42])
def test_something_not_callable_is_refused(main: Any) -> None:
    with pytest.raises(ArgumentTypeError, match="main must be an async function"):
        run(main)


def test_a_sync_function_is_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="returned int"):
        run(lambda: 3)  # type: ignore[arg-type,return-value]


def test_a_busy_clock_is_refused_without_leaking_the_coroutine() -> None:
    clock = VirtualClock()
    loop = VirtualClockLoop(clock)
    try:
        with pytest.raises(UsageError, match="already drives an open event loop"):
            run(_elapsed_after, 1, clock=clock)
    finally:
        loop.close()


def test_debug_mode_is_passed_on() -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert run(main, debug=True) is True
    assert run(main, debug=False) is False


@pytest.mark.corral_loops("asyncio")
async def test_refused_inside_a_running_loop() -> None:
    with pytest.raises(UsageError, match="cannot be called while an event loop is running"):
        run(_elapsed_after, 1)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="eager tasks exist on 3.12+")
def test_eager_needs_python_312() -> None:
    with pytest.raises(UsageError, match=r"eager=True needs Python 3\.12"):
        run(_elapsed_after, 1, eager=True)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks need 3.12+")
def test_eager_runs_new_tasks_up_to_their_first_wait() -> None:
    async def main() -> list[str]:
        log: list[str] = []

        async def child() -> None:
            log.append("child started")
            await asyncio.sleep(1)

        task = asyncio.get_running_loop().create_task(child())
        log.append("after create_task")
        await task
        return log

    assert run(main, eager=True) == ["child started", "after create_task"]
    assert run(main) == ["after create_task", "child started"]
