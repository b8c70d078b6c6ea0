"""Bulkhead: bounded running and queued calls, fast rejection, cancellation, bad input."""

from __future__ import annotations

import asyncio
import inspect
import math
from typing import Any

import pytest

import corral
from corral import Bulkhead, BulkheadStatistics
from corral.errors import ArgumentTypeError, BulkheadFull, CorralError, InvalidArgumentError
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


async def test_runs_up_to_the_limit_queues_the_next_and_rejects_the_rest(
    virtual_clock: VirtualClock,
) -> None:
    bulkhead = Bulkhead(2, 1)
    gate = asyncio.Event()
    finished: list[int] = []

    async def call(i: int) -> int:
        await gate.wait()
        finished.append(i)
        return i * 10

    tasks = [asyncio.create_task(bulkhead.run(call, i)) for i in range(3)]
    await wait_all_tasks_blocked()
    assert repr(bulkhead) == "<Bulkhead 2/2 running, 1/1 queued>"
    with pytest.raises(BulkheadFull, match=r"max_concurrent=2, max_queued=1"):
        await bulkhead.run(call, 3)
    with pytest.raises(BulkheadFull):
        async with bulkhead:
            pass
    assert virtual_clock.time() == 0  # rejected at once, without waiting
    gate.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20]
    assert finished == [0, 1, 2]
    assert bulkhead.statistics() == BulkheadStatistics(
        max_concurrent=2, max_queued=1, running=0, queued=0, peak_running=2, rejected=2
    )


async def test_queue_of_zero_rejects_whenever_every_slot_is_taken() -> None:
    bulkhead = Bulkhead(1, 0)
    async with bulkhead:
        with pytest.raises(BulkheadFull):
            async with bulkhead:
                pass
    async with bulkhead:  # the slot is free again
        assert bulkhead.statistics().running == 1


async def test_a_cancelled_queued_call_frees_its_place_in_the_queue() -> None:
    bulkhead = Bulkhead(1, 1)
    gate = asyncio.Event()
    running = asyncio.create_task(bulkhead.run(gate.wait))
    queued = asyncio.create_task(bulkhead.run(gate.wait))
    await wait_all_tasks_blocked()
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert repr(bulkhead) == "<Bulkhead 1/1 running, 0/1 queued>"
    again = asyncio.create_task(bulkhead.run(gate.wait))  # takes the freed queue place
    await wait_all_tasks_blocked()
    assert bulkhead.statistics().queued == 1
    gate.set()
    await asyncio.gather(running, again)
    assert bulkhead.statistics().rejected == 0


async def test_a_cancelled_running_call_gives_its_slot_back() -> None:
    bulkhead = Bulkhead(1, 0)
    running = asyncio.create_task(bulkhead.run(asyncio.sleep, 100))
    await wait_all_tasks_blocked()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert bulkhead.statistics().running == 0
    assert await bulkhead.run(asyncio.sleep, 0, "free") == "free"


async def test_a_slot_handed_to_a_cancelled_queued_call_goes_to_the_next() -> None:
    bulkhead = Bulkhead(1, 2)
    gate = asyncio.Event()
    order: list[str] = []

    async def call(name: str) -> None:
        order.append(name)
        await gate.wait()

    async with bulkhead:
        second = asyncio.create_task(bulkhead.run(call, "second"))
        third = asyncio.create_task(bulkhead.run(call, "third"))
        await wait_all_tasks_blocked()
    # leaving the block handed the slot to "second"...
    second.cancel()  # ...which is cancelled before it could start
    with pytest.raises(asyncio.CancelledError):
        await second
    assert bulkhead.statistics().running == 1
    gate.set()
    await third
    assert order == ["third"]
    assert bulkhead.statistics().running == 0


async def test_a_queued_wait_is_bounded_by_the_enclosing_deadline(
    virtual_clock: VirtualClock,
) -> None:
    bulkhead = Bulkhead(1, 5)
    blocker = asyncio.create_task(bulkhead.run(asyncio.sleep, 100))
    await wait_all_tasks_blocked()
    with corral.move_on_after(3) as scope:
        await bulkhead.run(asyncio.sleep, 0)
    assert scope.cancelled_caught
    assert virtual_clock.time() == 3
    assert bulkhead.statistics().queued == 0
    await blocker


async def test_errors_pass_through_and_free_the_slot() -> None:
    bulkhead = Bulkhead(1, 0)

    async def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await bulkhead.run(fail)
    assert bulkhead.statistics().running == 0


async def test_run_refuses_a_coroutine_object_and_non_callables() -> None:
    bulkhead = Bulkhead(1, 0)
    coro = asyncio.sleep(0)
    with pytest.raises(ArgumentTypeError, match="not a coroutine object: write run"):
        await bulkhead.run(coro)  # type: ignore[arg-type]
    # closed, so Python does not warn that it was never awaited
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(ArgumentTypeError, match=r"takes an async function, not int \(3\)"):
        await bulkhead.run(3)  # type: ignore[arg-type]
    assert bulkhead.statistics().running == 0


async def test_reports_rejections_to_instruments() -> None:
    events: list[tuple[object, str, dict[str, Any]]] = []

    class Recorder:
        def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
            if isinstance(source, Bulkhead):
                events.append((source, name, fields))

    bulkhead = Bulkhead(1, 0)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        async with bulkhead:
            for _ in range(2):
                with pytest.raises(BulkheadFull):
                    await bulkhead.run(asyncio.sleep, 0)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert events == [
        (bulkhead, "rejected", {"rejected": 1}),
        (bulkhead, "rejected", {"rejected": 2}),
    ]


def test_bulkhead_full_is_a_corral_error() -> None:
    assert issubclass(BulkheadFull, CorralError)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 1), InvalidArgumentError, "max_concurrent must be at least 1, got 0"),
        ((-1, 1), InvalidArgumentError, "max_concurrent must be at least 1, got -1"),
        ((math.nan, 1), InvalidArgumentError, "max_concurrent must be a whole number, not NaN"),
        ((1, -1), InvalidArgumentError, "max_queued must be at least 0, got -1"),
        ((1, math.nan), InvalidArgumentError, "max_queued must be a whole number, not NaN"),
        ((1.5, 1), ArgumentTypeError, r"max_concurrent must be an int, not float \(1.5\)"),
        ((1, "2"), ArgumentTypeError, r"max_queued must be an int, not str \('2'\)"),
    ],
)
def test_bad_limits_are_refused(
    args: tuple[object, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Bulkhead(*args)  # type: ignore[arg-type]


def test_limits_are_readable() -> None:
    bulkhead = Bulkhead(4, 8)
    assert (bulkhead.max_concurrent, bulkhead.max_queued) == (4, 8)
    assert repr(bulkhead) == "<Bulkhead 0/4 running, 0/8 queued>"
