"""RateLimiter on an AsyncRateLimitStore: one round trip per acquire, FIFO waiters served
by one background task, deadlines, cancellation and store errors.

The store here keeps the state in memory on the loop clock and answers after a
simulated round trip, so these tests run on virtual time; the Redis store itself is
tested against Redis in tests/backends/redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
import corral.testing
from corral import AsyncRateLimitStore, MemoryRateLimitStore, RateLimiter
from corral.errors import ArgumentTypeError, BackendUnavailable, DeadlineExceeded, UsageError
from corral.testing import VirtualClock, wait_all_tasks_blocked

virtual_time = pytest.mark.usefixtures("virtual_clock")


def now() -> float:
    return asyncio.get_running_loop().time()


class LoopClockStore:
    """An AsyncRateLimitStore in memory, answering after ``latency`` seconds."""

    def __init__(self, latency: float = 0.0) -> None:
        self.memory = MemoryRateLimitStore()
        self.latency = latency
        self.takes: list[float] = []
        self.given_back: list[float] = []
        self.failures: list[BaseException] = []

    async def try_take(self, cost: float, interval: float, burst: float) -> float:
        await asyncio.sleep(self.latency)
        if self.failures:
            raise self.failures.pop(0)
        self.takes.append(cost)
        return self.memory.try_take(cost, now(), interval, burst)

    async def give_back(self, cost: float, interval: float) -> None:
        await asyncio.sleep(self.latency)
        if self.failures:
            raise self.failures.pop(0)
        self.given_back.append(cost)
        self.memory.give_back(cost, interval)


def running_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if not task.done()}


async def admission_times(limiter: RateLimiter, n: int, cost: float = 1) -> list[float]:
    start = now()
    times: list[float] = []
    for _ in range(n):
        await limiter.acquire(cost)
        times.append(round(now() - start, 9))
    return times


def test_the_store_fits_the_protocol() -> None:
    assert isinstance(LoopClockStore(), AsyncRateLimitStore)


@virtual_time
async def test_a_shared_limit_admits_the_burst_then_paces() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(10, burst=2, store=store)
    assert await admission_times(limiter, 5) == [0.0, 0.0, 0.1, 0.2, 0.3]
    stats = limiter.statistics()
    assert (stats.admitted, stats.delayed, stats.waiting) == (5, 3, 0)


@virtual_time
async def test_an_acquire_that_need_not_wait_costs_one_round_trip() -> None:
    store = LoopClockStore(latency=0.001)
    limiter = RateLimiter(5, store=store)
    before = running_tasks()
    for _ in range(5):
        await limiter.acquire()
    assert store.takes == [1, 1, 1, 1, 1]
    assert running_tasks() == before  # no serving task was needed


@virtual_time
async def test_limiters_on_one_store_share_the_limit() -> None:
    store = LoopClockStore()
    first = RateLimiter(10, burst=2, store=store)
    second = RateLimiter(10, burst=2, store=store)
    await first.acquire()
    await second.acquire()
    assert await admission_times(first, 1) == [0.1]
    assert await admission_times(second, 1) == [0.1]


@virtual_time
async def test_waiters_are_served_fifo_by_one_background_task() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(10, burst=1, store=store)
    await limiter.acquire()
    order: list[tuple[int, float]] = []

    async def worker(i: int, cost: float) -> None:
        await limiter.acquire(cost)
        order.append((i, round(now(), 9)))

    before = running_tasks()
    async with corral.TaskGroup() as tg:
        for i, cost in enumerate([1, 0.5, 1, 0.5]):
            tg.start_soon(worker, i, cost)
        await wait_all_tasks_blocked()
        assert limiter.statistics().waiting == 4
        assert "4 waiting" in repr(limiter)
        workers_and_server = running_tasks() - before
        assert len(workers_and_server) == 5
    assert order == [(0, 0.1), (1, 0.15), (2, 0.25), (3, 0.3)]
    await wait_all_tasks_blocked()
    assert running_tasks() == before  # the server ends with the queue


@virtual_time
async def test_try_acquire_cannot_wait_for_a_round_trip() -> None:
    limiter = RateLimiter(10, store=LoopClockStore())
    with pytest.raises(UsageError, match=r"try_acquire\(\) cannot ask a shared store"):
        limiter.try_acquire()
    assert limiter.statistics().admitted == 0


@virtual_time
async def test_a_cancelled_waiter_takes_nothing_and_the_next_moves_up() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(1, burst=1, store=store)
    await limiter.acquire()
    admitted: list[int] = []

    async def worker(i: int) -> None:
        await limiter.acquire()
        admitted.append(i)

    async with corral.TaskGroup() as tg:
        head = tg.create_task(worker(0))
        tg.start_soon(worker, 1)
        await wait_all_tasks_blocked()
        await asyncio.sleep(0.5)
        head.cancel()
    assert admitted == [1]
    assert now() == 1.0
    assert limiter.statistics().admitted == 2
    assert store.given_back == []


@virtual_time
async def test_a_waiter_cancelled_during_its_admitting_round_trip_gives_the_units_back() -> None:
    store = LoopClockStore(latency=0.01)
    limiter = RateLimiter(1, burst=1, store=store)
    await limiter.acquire()
    loop = asyncio.get_running_loop()
    task = loop.create_task(limiter.acquire())
    await asyncio.sleep(1.005)  # the server's round trip for it is in flight
    assert store.takes == [1, 1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.03)  # the round trip ends, then the give-back's
    assert store.takes == [1, 1, 1]  # the store did admit it...
    assert store.given_back == [1]  # ...and the units went back
    assert limiter.statistics().admitted == 1
    assert store.memory.delay(1, now(), 1.0, 1.0) == 0.0


@virtual_time
async def test_a_waiter_cancelled_after_admission_gives_its_units_back() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(1, burst=1, store=store)
    await limiter.acquire()
    seen: list[str] = []

    class CancelOnAdmission:
        def event(self, source: object, name: str, fields: dict[str, object]) -> None:
            if source is limiter:
                seen.append(name)
                task.cancel()  # admitted, but its task has not resumed yet

    instrument = CancelOnAdmission()
    corral.INSTRUMENTS.add(instrument)
    try:
        task = asyncio.get_running_loop().create_task(limiter.acquire())
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        corral.INSTRUMENTS.remove(instrument)
    await wait_all_tasks_blocked()
    assert seen == ["rate_limiter.admitted"]
    assert store.given_back == [1]
    assert limiter.statistics().admitted == 1
    assert await admission_times(limiter, 1) == [0.0]


@virtual_time
async def test_waiting_past_the_deadline_raises_at_once_and_takes_nothing() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(1, burst=1, store=store)
    await limiter.acquire()
    with corral.move_on_after(0.5):
        with pytest.raises(DeadlineExceeded, match="after the enclosing deadline"):
            await limiter.acquire()
        assert now() == 0.0
    assert limiter.statistics().waiting == 0
    with corral.move_on_after(1.5):
        await limiter.acquire()
    assert now() == 1.0


@virtual_time
async def test_the_deadline_counts_the_queue_ahead() -> None:
    limiter = RateLimiter(1, burst=1, store=LoopClockStore())
    await limiter.acquire()
    async with corral.TaskGroup() as tg:
        tg.start_soon(limiter.acquire)
        tg.start_soon(limiter.acquire)
        await wait_all_tasks_blocked()
        with corral.move_on_after(2.5), pytest.raises(DeadlineExceeded, match="in 3 s"):
            await limiter.acquire()
        with corral.move_on_after(3.5):
            await limiter.acquire()
    assert now() == 3.0
    assert limiter.statistics().admitted == 4


@virtual_time
async def test_a_store_error_reaches_the_caller_and_the_limiter_stays_usable() -> None:
    store = LoopClockStore()
    store.failures.append(BackendUnavailable("down"))
    limiter = RateLimiter(1, burst=1, store=store)
    with pytest.raises(BackendUnavailable, match="down"):
        await limiter.acquire()
    await limiter.acquire()
    assert limiter.statistics().admitted == 1


@virtual_time
async def test_a_store_error_while_queued_fails_the_head_and_the_next_is_served() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(1, burst=1, store=store)
    await limiter.acquire()
    loop = asyncio.get_running_loop()
    first = loop.create_task(limiter.acquire())
    second = loop.create_task(limiter.acquire())
    await wait_all_tasks_blocked()
    store.failures.append(BackendUnavailable("lost the connection"))
    with pytest.raises(BackendUnavailable, match="lost the connection"):
        await first
    await second
    assert now() == 1.0
    assert limiter.statistics().admitted == 2


@virtual_time
async def test_a_failed_give_back_is_reported_and_errs_towards_admitting_less() -> None:
    store = LoopClockStore()
    limiter = RateLimiter(1, burst=1, store=store)
    await limiter.acquire()
    events: list[tuple[str, dict[str, object]]] = []

    class Recorder:
        def event(self, source: object, name: str, fields: dict[str, object]) -> None:
            if source is limiter:
                events.append((name, fields))
                if name == "rate_limiter.admitted":
                    store.failures.append(BackendUnavailable("gone"))
                    task.cancel()

    instrument = Recorder()
    corral.INSTRUMENTS.add(instrument)
    try:
        task = asyncio.get_running_loop().create_task(limiter.acquire())
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_all_tasks_blocked()
    finally:
        corral.INSTRUMENTS.remove(instrument)
    assert [name for name, _ in events] == [
        "rate_limiter.admitted",
        "rate_limiter.give_back_failed",
    ]
    assert isinstance(events[1][1]["error"], BackendUnavailable)
    assert store.given_back == []
    assert await admission_times(limiter, 1) == [1.0]  # the lost unit stays taken


async def test_a_store_must_be_async_all_through() -> None:
    class HalfAsync:
        def try_take(self, cost: float, interval: float, burst: float) -> float:
            return 0.0

        async def give_back(self, cost: float, interval: float) -> None:
            return None

    with pytest.raises(
        ArgumentTypeError, match="store must be a RateLimitStore or an AsyncRateLimitStore"
    ):
        RateLimiter(1, store=HalfAsync())  # type: ignore[arg-type]


@given(
    rate=st.integers(1, 20),
    burst=st.integers(1, 5),
    latency=st.sampled_from([0.0, 0.003, 0.05]),
    requests=st.lists(
        st.tuples(st.sampled_from([0.0, 0.01, 0.07, 0.3, 1.0]), st.sampled_from([0.5, 1, 2])),
        min_size=1,
        max_size=25,
    ),
)
def test_no_window_admits_more_than_burst_plus_rate(
    rate: int, burst: int, latency: float, requests: list[tuple[float, float]]
) -> None:
    async def main() -> list[tuple[float, float]]:
        limiter = RateLimiter(rate, burst=burst, store=LoopClockStore(latency))
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
        assert limiter.statistics().admitted == len(admitted)
        return admitted

    admitted = corral.testing.run(main, clock=VirtualClock())
    for i, (start, _) in enumerate(admitted):
        total = 0.0
        for end, cost in admitted[i:]:
            total += cost
            # admission is decided one round trip before the caller resumes
            assert total <= burst + rate * (end - start + latency) + 1e-6
