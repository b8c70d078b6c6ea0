"""RateLimiter: GCRA admission times, bursts, FIFO, cancellation, deadlines, bad input."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
import corral.testing
from corral import MemoryRateLimitStore, RateLimiter, RateLimitStore
from corral.errors import ArgumentTypeError, DeadlineExceeded, InvalidArgumentError
from corral.testing import VirtualClock, wait_all_tasks_blocked

# Tests that wait run on the virtual-clock loop; the rest on every real loop too.
virtual_time = pytest.mark.usefixtures("virtual_clock")


def now() -> float:
    return asyncio.get_running_loop().time()


async def admission_times(limiter: RateLimiter, n: int, cost: float = 1) -> list[float]:
    start = now()
    times: list[float] = []
    for _ in range(n):
        await limiter.acquire(cost)
        times.append(round(now() - start, 9))
    return times


@virtual_time
async def test_burst_one_admits_at_each_emission_interval() -> None:
    limiter = RateLimiter(10, burst=1)
    assert await admission_times(limiter, 5) == [0.0, 0.1, 0.2, 0.3, 0.4]


@virtual_time
async def test_burst_admits_at_once_then_paces() -> None:
    limiter = RateLimiter(2, per=timedelta(seconds=1), burst=3)
    assert await admission_times(limiter, 6) == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]


@virtual_time
async def test_default_burst_is_one_period_of_units() -> None:
    limiter = RateLimiter(4, per=2)
    assert limiter.statistics().burst == 4
    assert await admission_times(limiter, 6) == [0.0, 0.0, 0.0, 0.0, 0.5, 1.0]
    assert RateLimiter(0.5).statistics().burst == 1


@virtual_time
async def test_an_idle_limiter_refills_up_to_the_burst_only() -> None:
    limiter = RateLimiter(10, burst=2)
    await admission_times(limiter, 2)
    await asyncio.sleep(60)
    assert await admission_times(limiter, 4) == [0.0, 0.0, 0.1, 0.2]


@virtual_time
async def test_cost_counts_units() -> None:
    limiter = RateLimiter(10, burst=5)
    assert await admission_times(limiter, 3, cost=5) == [0.0, 0.5, 1.0]
    assert limiter.try_acquire(0.5) is False
    await asyncio.sleep(0.05)
    assert limiter.try_acquire(0.5) is True


@virtual_time
async def test_try_acquire_takes_only_what_is_available() -> None:
    limiter = RateLimiter(10, burst=2)
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.1)
    assert [limiter.try_acquire() for _ in range(2)] == [True, False]
    assert limiter.statistics().admitted == 3


async def test_async_with_acquires_one_unit() -> None:
    limiter = RateLimiter(1, burst=1)
    async with limiter:
        pass
    assert limiter.try_acquire() is False
    assert limiter.statistics().admitted == 1


@virtual_time
async def test_waiters_are_served_fifo_by_one_timer() -> None:
    limiter = RateLimiter(10, burst=1)
    order: list[tuple[int, float]] = []

    async def worker(i: int, cost: float) -> None:
        await limiter.acquire(cost)
        order.append((i, round(now(), 9)))

    limiter.try_acquire()
    async with corral.TaskGroup() as tg:
        for i, cost in enumerate([1, 0.5, 1, 0.5]):
            tg.start_soon(worker, i, cost)
        await wait_all_tasks_blocked()
        assert limiter.statistics().waiting == 4
        assert limiter.try_acquire(0.5) is False  # no overtaking the queue
        assert "4 waiting" in repr(limiter)
        timers = [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        assert len(timers) == 1
    assert order == [(0, 0.1), (1, 0.15), (2, 0.25), (3, 0.3)]
    stats = limiter.statistics()
    assert (stats.waiting, stats.admitted, stats.delayed) == (0, 5, 4)


@virtual_time
async def test_waiters_that_can_proceed_together_are_woken_together() -> None:
    limiter = RateLimiter(1, burst=3)
    for _ in range(3):
        limiter.try_acquire()
    woken: list[float] = []

    async def worker() -> None:
        await limiter.acquire()
        woken.append(now())

    async with corral.TaskGroup() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        await wait_all_tasks_blocked()
        await asyncio.sleep(2.5)
        assert woken == [1.0, 2.0]
    assert woken == [1.0, 2.0, 3.0]


@virtual_time
async def test_a_cancelled_head_takes_nothing_and_the_next_moves_up() -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.try_acquire()
    admitted: list[float] = []

    async def worker() -> None:
        await limiter.acquire()
        admitted.append(now())

    async with corral.TaskGroup() as tg:
        head = tg.create_task(worker())
        tg.start_soon(worker)
        await wait_all_tasks_blocked()
        await asyncio.sleep(0.5)
        head.cancel()
        await wait_all_tasks_blocked()
        assert limiter.statistics().waiting == 1
    assert admitted == [1.0]
    assert limiter.statistics().admitted == 2


@virtual_time
async def test_a_cancelled_waiter_in_the_middle_leaves_no_gap() -> None:
    limiter = RateLimiter(10, burst=1)
    limiter.try_acquire()
    admitted: list[int] = []
    times: list[float] = []

    async def worker(i: int) -> None:
        await limiter.acquire()
        admitted.append(i)
        times.append(round(now(), 9))

    async with corral.TaskGroup() as tg:
        tg.start_soon(worker, 0)
        middle = tg.create_task(worker(1))
        tg.start_soon(worker, 2)
        await wait_all_tasks_blocked()
        middle.cancel()
    assert admitted == [0, 2]
    assert times == [0.1, 0.2]


@virtual_time
async def test_cancelling_every_waiter_at_once_takes_nothing_and_disarms_the_timer() -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.try_acquire()
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(limiter.acquire()) for _ in range(3)]
    await wait_all_tasks_blocked()
    assert limiter.statistics().waiting == 3
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert limiter.statistics().waiting == 0
    assert not [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    await asyncio.sleep(1)
    assert limiter.try_acquire() is True
    assert limiter.try_acquire() is False
    assert limiter.statistics().admitted == 2


@virtual_time
async def test_a_waiter_cancelled_after_admission_gives_its_units_back() -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.try_acquire()
    seen: list[tuple[str, object]] = []

    async def worker() -> None:
        await limiter.acquire()

    class CancelOnAdmission:
        def task_parked(self, parked: object, on: object) -> None:
            seen.append(("parked", on))

        def task_woken(self, woken: object, on: object) -> None:
            seen.append(("woken", on))

        def event(self, source: object, name: str, fields: dict[str, object]) -> None:
            if source is limiter:
                seen.append((name, fields))
                task.cancel()  # admitted, but its task has not resumed yet

    instrument = CancelOnAdmission()
    corral.INSTRUMENTS.add(instrument)  # before the task starts: an eager one parks at once
    try:
        task = asyncio.get_running_loop().create_task(worker())
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        corral.INSTRUMENTS.remove(instrument)
    assert now() == 1.0
    assert seen == [
        ("parked", limiter),
        ("rate_limiter.admitted", {"cost": 1}),
        ("woken", limiter),
    ]
    assert limiter.statistics().admitted == 1
    assert limiter.try_acquire() is True


@virtual_time
async def test_units_given_back_after_admission_go_to_the_next_waiter_at_once() -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.try_acquire()
    loop = asyncio.get_running_loop()
    first = loop.create_task(limiter.acquire())
    admitted: list[float] = []

    async def second() -> None:
        await limiter.acquire()
        admitted.append(now())

    second_task = loop.create_task(second())
    await wait_all_tasks_blocked()
    cancelled: list[bool] = []

    class CancelFirstAdmitted:
        def event(self, source: object, name: str, fields: dict[str, object]) -> None:
            if source is limiter and not cancelled:
                cancelled.append(first.cancel())

    instrument = CancelFirstAdmitted()
    corral.INSTRUMENTS.add(instrument)
    try:
        with pytest.raises(asyncio.CancelledError):
            await first
        await second_task
    finally:
        corral.INSTRUMENTS.remove(instrument)
    assert cancelled == [True]
    assert admitted == [1.0]
    assert limiter.statistics().admitted == 2


async def test_an_acquire_that_need_not_wait_does_not_yield() -> None:
    limiter = RateLimiter(3)
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "callback")
    for _ in range(3):
        await limiter.acquire()
    assert ran == []  # the loop never got control back
    await asyncio.sleep(0)
    assert ran == ["callback"]
    assert limiter.try_acquire() is False


async def test_a_wait_in_a_cancelled_scope_is_cancelled_and_takes_nothing() -> None:
    limiter = RateLimiter(1, per=3600, burst=1)
    limiter.try_acquire()
    with corral.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    stats = limiter.statistics()
    assert (stats.waiting, stats.admitted) == (0, 1)


@virtual_time
async def test_waiting_past_the_deadline_raises_at_once() -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.try_acquire()
    with corral.move_on_after(0.5):
        with pytest.raises(DeadlineExceeded, match="after the enclosing deadline"):
            await limiter.acquire()
        assert now() == 0.0
    stats = limiter.statistics()
    assert (stats.waiting, stats.admitted) == (0, 1)
    with corral.move_on_after(1.5):
        await limiter.acquire()
    assert now() == 1.0


@virtual_time
async def test_the_deadline_counts_the_queue_ahead() -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.try_acquire()
    async with corral.TaskGroup() as tg:
        tg.start_soon(limiter.acquire)
        await wait_all_tasks_blocked()
        with corral.move_on_after(1.5), pytest.raises(DeadlineExceeded):
            await limiter.acquire()
    assert limiter.statistics().admitted == 2


async def test_repr_and_statistics() -> None:
    limiter = RateLimiter(5, per=2, burst=2)
    await limiter.acquire()
    assert repr(limiter) == "<RateLimiter 5/2s burst 2, 0 waiting, 1 admitted>"
    stats = limiter.statistics()
    assert (stats.rate, stats.per, stats.burst, stats.delayed) == (5.0, 2.0, 2.0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 0}, "rate must be a positive finite number, got 0"),
        ({"rate": -1}, "rate must be a positive"),
        ({"rate": math.nan}, "rate must be a positive.*nan"),
        ({"rate": math.inf}, "rate must be a positive"),
        ({"rate": 1, "per": 0}, "per must be a positive finite duration, got 0"),
        ({"rate": 1, "per": -1}, "per must not be negative"),
        ({"rate": 1, "per": math.nan}, "per must be a number of seconds, not NaN"),
        ({"rate": 1, "burst": 0}, "burst must be a positive"),
        ({"rate": 1, "burst": 0.5}, "burst must be at least 1, got 0.5"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        RateLimiter(**kwargs)


def test_wrong_types_are_refused() -> None:
    with pytest.raises(ArgumentTypeError, match="rate must be a number, not str"):
        RateLimiter("10")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="burst must be a number, not bool"):
        RateLimiter(1, burst=True)
    with pytest.raises(
        ArgumentTypeError,
        match="store must be a RateLimitStore or an AsyncRateLimitStore, not dict",
    ):
        RateLimiter(1, store={})  # type: ignore[arg-type]


async def test_bad_costs_are_refused_and_take_nothing() -> None:
    limiter = RateLimiter(10, burst=2)
    with pytest.raises(InvalidArgumentError, match=r"cost 3 exceeds the burst of 2\.0"):
        await limiter.acquire(3)
    with pytest.raises(InvalidArgumentError, match=r"cost must be a positive.*got 0"):
        limiter.try_acquire(0)
    with pytest.raises(InvalidArgumentError, match=r"cost must be a positive.*nan"):
        await limiter.acquire(math.nan)
    with pytest.raises(ArgumentTypeError, match="cost must be a number, not bool"):
        limiter.try_acquire(True)
    assert limiter.statistics().admitted == 0
    assert limiter.try_acquire(2) is True


async def test_a_custom_store_holds_the_state() -> None:
    store = MemoryRateLimitStore()
    assert isinstance(store, RateLimitStore)
    assert repr(store) == "<MemoryRateLimitStore tat=-inf>"
    first, second = RateLimiter(1, burst=1, store=store), RateLimiter(1, burst=1, store=store)
    assert first.try_acquire() is True
    assert second.try_acquire() is False


@given(
    rate=st.integers(1, 20),
    burst=st.integers(1, 5),
    requests=st.lists(
        st.tuples(st.sampled_from([0.0, 0.01, 0.07, 0.3, 1.0]), st.sampled_from([0.5, 1, 2])),
        min_size=1,
        max_size=25,
    ),
)
def test_no_window_admits_more_than_burst_plus_rate(
    rate: int, burst: int, requests: list[tuple[float, float]]
) -> None:
    async def main() -> list[tuple[float, float]]:
        limiter = RateLimiter(rate, burst=burst)
        admitted: list[tuple[float, float]] = []

        async def request(cost: float) -> None:
            if cost > burst:
                return
            await limiter.acquire(cost)
            admitted.append((now(), cost))

        async with corral.TaskGroup() as tg:
            for gap, cost in requests:
                await asyncio.sleep(gap)
                tg.start_soon(request, cost)
        return admitted

    admitted = corral.testing.run(main, clock=VirtualClock())
    times = [t for t, _ in admitted]
    assert times == sorted(times)
    for i, (start, _) in enumerate(admitted):
        total = 0.0
        for end, cost in admitted[i:]:
            total += cost
            assert total <= burst + rate * (end - start) + 1e-6
