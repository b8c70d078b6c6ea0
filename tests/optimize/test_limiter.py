"""Limiter: FIFO lending, resizing in use, borrower tracking, cancellation, bad input."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral import Limiter, LimiterStatistics
from corral.errors import (
    ArgumentTypeError,
    DeadlineExceeded,
    InvalidArgumentError,
    UsageError,
    WouldBlock,
)
from corral.testing import VirtualClock, wait_all_tasks_blocked

pytestmark = pytest.mark.usefixtures("virtual_clock")


class Recorder:
    """An instrument that keeps the limiter events and parks/wakes it sees."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.parked: list[object] = []
        self.woken: list[object] = []
        self.overtaken: list[object] = []  # waiters passed over by a lending

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if isinstance(source, Limiter):
            self.events.append((name, dict(fields)))
            if name == "lent":
                # whoever still waits asked later than the borrower just served
                self.overtaken += [
                    waiter.borrower
                    for waiter in source._waiters
                    if not waiter.future.done() and waiter.borrower < fields["borrower"]
                ]

    def task_parked(self, task: object, on: object) -> None:
        self.parked.append(on)

    def task_woken(self, task: object, on: object) -> None:
        self.woken.append(on)


async def test_bounds_borrowers_and_records_the_peak(virtual_clock: VirtualClock) -> None:
    limiter = Limiter(2)
    running = 0
    most = 0

    async def work() -> None:
        nonlocal running, most
        async with limiter:
            running += 1
            most = max(most, running)
            await asyncio.sleep(1)
            running -= 1

    async with corral.TaskGroup() as tg:
        for _ in range(5):
            tg.start_soon(work)
        await wait_all_tasks_blocked()
        assert limiter.statistics() == LimiterStatistics(
            total=2, borrowed=2, waiting=3, peak_borrowed=2, borrowers=0
        )
        assert repr(limiter) == "<Limiter 2/2 borrowed, 3 waiting>"
    assert most == 2
    assert virtual_clock.time() == 3  # three rounds of one second: nobody ran beside the limit
    assert repr(limiter) == "<Limiter 0/2 borrowed, 0 waiting>"
    assert limiter.statistics().peak_borrowed == 2


async def test_acquire_nowait_and_release() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    assert limiter.borrowed == 1
    with pytest.raises(WouldBlock, match=r"<Limiter 1/1 borrowed, 0 waiting> has no token"):
        limiter.acquire_nowait()
    limiter.release()
    assert limiter.borrowed == 0
    with pytest.raises(UsageError, match="without a matching acquire"):
        limiter.release()


async def test_async_with_gives_the_token_back_on_error() -> None:
    limiter = Limiter(1)
    with pytest.raises(KeyError):
        async with limiter:
            raise KeyError("boom")
    assert limiter.borrowed == 0


async def test_tokens_are_granted_in_fifo_order_and_newcomers_queue() -> None:
    limiter = Limiter(1)
    await limiter.acquire()
    order: list[int] = []

    async def wait_turn(i: int) -> None:
        async with limiter:
            order.append(i)
            await asyncio.sleep(0)

    async with corral.TaskGroup() as tg:
        for i in range(4):
            tg.start_soon(wait_turn, i)
        await wait_all_tasks_blocked()
        assert limiter.waiting == 4
        with pytest.raises(WouldBlock):
            limiter.acquire_nowait()
        limiter.release()
    assert order == [0, 1, 2, 3]


async def test_raising_total_wakes_waiters_in_order() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    order: list[int] = []

    async def wait_turn(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    tasks = [asyncio.create_task(wait_turn(i)) for i in range(4)]
    await wait_all_tasks_blocked()
    limiter.total = 3
    await wait_all_tasks_blocked()
    assert order == [0, 1]
    assert (limiter.borrowed, limiter.waiting) == (3, 2)
    limiter.total = 10
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert limiter.statistics().peak_borrowed == 5


async def test_raising_total_skips_a_waiter_cancelled_in_the_same_step() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await wait_all_tasks_blocked()
    first.cancel()  # not yet run: it is still in line when the total grows
    limiter.total = 2
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert (limiter.borrowed, limiter.waiting) == (2, 0)


async def test_lowering_total_lets_borrowers_finish_and_lends_no_more() -> None:
    limiter = Limiter(3)
    for _ in range(3):
        limiter.acquire_nowait()
    limiter.total = 1
    waiter = asyncio.create_task(limiter.acquire())
    await wait_all_tasks_blocked()
    assert repr(limiter) == "<Limiter 3/1 borrowed, 1 waiting>"
    limiter.release()
    limiter.release()
    await wait_all_tasks_blocked()
    assert not waiter.done()
    assert limiter.borrowed == 1
    limiter.release()  # now below the total: the waiter gets the token
    await waiter
    assert (limiter.borrowed, limiter.waiting) == (1, 0)


async def test_cancelled_waiter_leaves_the_line_holding_nothing() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    waiter = asyncio.create_task(limiter.acquire_on_behalf_of("w"))
    await wait_all_tasks_blocked()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.statistics() == LimiterStatistics(
        total=1, borrowed=1, waiting=0, peak_borrowed=1, borrowers=0
    )
    limiter.release()
    limiter.acquire_on_behalf_of_nowait("w")  # "w" is not stuck as waiting or holding
    limiter.release_on_behalf_of("w")


async def test_token_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    first = asyncio.create_task(limiter.acquire_on_behalf_of("first"))
    second = asyncio.create_task(limiter.acquire_on_behalf_of("second"))
    await wait_all_tasks_blocked()
    limiter.release()  # handed to "first"...
    first.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert limiter.statistics() == LimiterStatistics(
        total=1, borrowed=1, waiting=0, peak_borrowed=1, borrowers=1
    )
    with pytest.raises(UsageError, match="'first' holds no token"):
        limiter.release_on_behalf_of("first")
    limiter.release_on_behalf_of("second")
    assert limiter.borrowed == 0


async def test_token_handed_to_a_cancelled_waiter_is_returned_when_nobody_waits() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    waiter = asyncio.create_task(limiter.acquire())
    await wait_all_tasks_blocked()
    limiter.release()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (limiter.borrowed, limiter.waiting) == (0, 0)


async def test_waiting_is_bounded_by_the_enclosing_deadline(virtual_clock: VirtualClock) -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    with corral.move_on_after(5) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    assert virtual_clock.time() == 5
    with pytest.raises(DeadlineExceeded):
        with corral.fail_after(2):
            async with limiter:
                pass
    assert (limiter.borrowed, limiter.waiting) == (1, 0)


async def test_borrower_tracking_refuses_double_holds_and_unheld_releases() -> None:
    limiter = Limiter(2)
    await limiter.acquire_on_behalf_of("job-1")
    with pytest.raises(UsageError, match="'job-1' already holds a token"):
        await limiter.acquire_on_behalf_of("job-1")
    with pytest.raises(UsageError, match="'job-1' already holds a token"):
        limiter.acquire_on_behalf_of_nowait("job-1")
    with pytest.raises(UsageError, match="'job-2' holds no token"):
        limiter.release_on_behalf_of("job-2")
    # a tracked token cannot be returned anonymously
    with pytest.raises(UsageError, match="without a matching acquire"):
        limiter.release()
    limiter.acquire_on_behalf_of_nowait("job-2")
    assert limiter.statistics().borrowers == 2
    limiter.release_on_behalf_of("job-1")
    limiter.release_on_behalf_of("job-2")
    assert limiter.borrowed == 0


async def test_a_borrower_cannot_wait_twice() -> None:
    limiter = Limiter(1)
    limiter.acquire_nowait()
    waiter = asyncio.create_task(limiter.acquire_on_behalf_of("job"))
    await wait_all_tasks_blocked()
    with pytest.raises(UsageError, match="'job' is already waiting"):
        await limiter.acquire_on_behalf_of("job")
    limiter.release()
    await waiter
    limiter.release_on_behalf_of("job")


async def test_borrowers_must_be_hashable() -> None:
    limiter = Limiter(1)
    with pytest.raises(ArgumentTypeError, match="borrower must be hashable, not list"):
        limiter.acquire_on_behalf_of_nowait([1])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"\[1\] holds no token"):
        limiter.release_on_behalf_of([1])  # type: ignore[arg-type]
    assert limiter.borrowed == 0


async def test_reports_lending_parking_and_resizing_to_instruments() -> None:
    limiter = Limiter(1)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        await limiter.acquire_on_behalf_of("a")
        waiter = asyncio.create_task(limiter.acquire())
        await wait_all_tasks_blocked()
        limiter.release_on_behalf_of("a")
        await waiter
        limiter.total = 2
        limiter.release()
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert recorder.events == [
        ("lent", {"borrower": "a", "borrowed": 1, "total": 1}),
        ("returned", {"borrower": "a", "borrowed": 1, "total": 1}),
        ("lent", {"borrower": None, "borrowed": 1, "total": 1}),
        ("total_changed", {"total": 2}),
        ("returned", {"borrower": None, "borrowed": 1, "total": 2}),
    ]
    assert recorder.parked == [limiter]
    assert recorder.woken == [limiter]


async def test_reports_tokens_taken_without_waiting() -> None:
    limiter = Limiter(3)
    recorder = Recorder()
    corral.INSTRUMENTS.add(recorder)
    try:
        limiter.acquire_nowait()
        await limiter.acquire()
        async with limiter:
            pass
    finally:
        corral.INSTRUMENTS.remove(recorder)
    assert [(name, fields["borrowed"]) for name, fields in recorder.events] == [
        ("lent", 1),
        ("lent", 2),
        ("lent", 3),
        ("returned", 3),
    ]
    assert recorder.parked == []


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, InvalidArgumentError, "total must be at least 1, got 0"),
        (-3, InvalidArgumentError, "total must be at least 1, got -3"),
        (math.nan, InvalidArgumentError, "total must be a whole number, not NaN"),
        (2.5, ArgumentTypeError, r"total must be an int, not float \(2.5\)"),
        (True, ArgumentTypeError, r"total must be an int, not bool \(True\)"),
        ("3", ArgumentTypeError, r"total must be an int, not str \('3'\)"),
    ],
)
async def test_bad_totals_are_refused(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Limiter(value)  # type: ignore[arg-type]
    limiter = Limiter(2)
    with pytest.raises(error, match=message):
        limiter.total = value  # type: ignore[assignment]
    assert limiter.total == 2


# -- random interleavings of acquire, release, cancel and resize on the virtual loop -----

operations = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "acquire", "release", "cancel", "tick", "resize"]),
        st.integers(0, 5),
    ),
    max_size=50,
)


async def interleave(total: int, plan: list[tuple[str, int]]) -> None:
    limiter = Limiter(total)
    recorder = Recorder()
    holders: set[int] = set()
    done: dict[int, asyncio.Event] = {}
    tasks: list[asyncio.Task[None]] = []

    async def borrow(i: int) -> None:
        await limiter.acquire_on_behalf_of(i)
        holders.add(i)
        try:
            await done[i].wait()
        finally:
            holders.discard(i)
            limiter.release_on_behalf_of(i)

    corral.INSTRUMENTS.add(recorder)
    try:
        for op, arg in plan:
            if op == "acquire":
                i = len(tasks)
                done[i] = asyncio.Event()
                tasks.append(asyncio.create_task(borrow(i)))
            elif op == "release" and holders:
                done[sorted(holders)[arg % len(holders)]].set()
            elif op == "cancel" and tasks:
                tasks[arg % len(tasks)].cancel()
            elif op == "resize":
                limiter.total = arg + 1
            for _ in range(arg if op == "tick" else 1):
                await asyncio.sleep(0)
        await wait_all_tasks_blocked()
        # every token out is held by a task that got it; nobody else waits
        assert limiter.borrowed == len(holders)
        blocked = sum(1 for i, task in enumerate(tasks) if not task.done() and i not in holders)
        assert limiter.waiting == blocked
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        corral.INSTRUMENTS.remove(recorder)
    lent = [fields for name, fields in recorder.events if name == "lent"]
    # a token is lent only while the lent count stays within the total
    assert all(fields["borrowed"] <= fields["total"] for fields in lent)
    # tokens go out in the order they were asked for: no waiter is ever overtaken
    order = [fields["borrower"] for fields in lent]
    assert order == sorted(order)
    assert recorder.overtaken == []
    assert len(set(order)) == len(order)
    # nothing leaks
    assert limiter.statistics() == LimiterStatistics(
        total=limiter.total,
        borrowed=0,
        waiting=0,
        peak_borrowed=limiter.statistics().peak_borrowed,
        borrowers=0,
    )
    assert not limiter._waiters
    for _ in range(limiter.total):
        limiter.acquire_nowait()
    with pytest.raises(WouldBlock):
        limiter.acquire_nowait()


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 3), plan=operations)
def test_interleavings_with_cancellation_keep_the_limit_order_and_every_token(
    total: int, plan: list[tuple[str, int]]
) -> None:
    corral.testing.run(interleave, total, plan)
