"""ThreadLimiter: bounds threads, FIFO hand-over, cancellation, statistics, bad input."""

from __future__ import annotations

import asyncio
import threading

import pytest

import corral
from corral import ThreadLimiter, default_thread_limiter, to_thread
from corral.errors import ArgumentTypeError, InvalidArgumentError, UsageError, WouldBlock

WAIT = 10.0


async def test_limiter_bounds_running_threads_and_records_the_peak() -> None:
    limiter = ThreadLimiter(2)
    running = threading.Semaphore(0)
    release = threading.Event()
    lock = threading.Lock()
    now = [0, 0]  # running, most at once

    def work(i: int) -> int:
        with lock:
            now[0] += 1
            now[1] = max(now[1], now[0])
        running.release()
        release.wait(WAIT)
        with lock:
            now[0] -= 1
        return i

    async with corral.TaskGroup() as tg:
        calls = [tg.create_task(to_thread(work, i, limiter=limiter)) for i in range(6)]
        for _ in range(2):
            assert await to_thread(running.acquire, True, WAIT)
        stats = limiter.statistics()
        assert stats.borrowed == 2
        assert stats.waiting == 4
        assert repr(limiter) == "<ThreadLimiter 2/2 borrowed, 4 waiting>"
        release.set()
    assert [call.result() for call in calls] == list(range(6))
    assert now[1] == 2
    final = limiter.statistics()
    assert (final.borrowed, final.waiting, final.peak_borrowed) == (0, 0, 2)


async def test_tokens_are_handed_over_in_fifo_order() -> None:
    limiter = ThreadLimiter(1)
    await limiter.acquire()
    order: list[int] = []

    async def wait_turn(i: int) -> None:
        async with limiter:
            order.append(i)

    async with corral.TaskGroup() as tg:
        for i in range(4):
            tg.start_soon(wait_turn, i)
        while limiter.statistics().waiting < 4:
            await asyncio.sleep(0)
        # a newcomer does not overtake the queue
        with pytest.raises(WouldBlock):
            limiter.acquire_nowait()
        limiter.release()
    assert order == [0, 1, 2, 3]


async def test_cancelled_waiter_leaves_the_line() -> None:
    limiter = ThreadLimiter(1)
    limiter.acquire_nowait()
    with corral.move_on_after(0) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.statistics().waiting == 0
    limiter.release()
    limiter.acquire_nowait()
    limiter.release()


async def test_token_granted_to_a_cancelled_waiter_is_passed_on() -> None:
    limiter = ThreadLimiter(1)
    limiter.acquire_nowait()
    first = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    while limiter.statistics().waiting < 2:
        await asyncio.sleep(0)
    limiter.release()  # granted to `first`...
    first.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert limiter.statistics().borrowed == 1
    limiter.release()


async def test_release_from_another_thread_wakes_the_waiter() -> None:
    limiter = ThreadLimiter(1)
    limiter.acquire_nowait()
    waiting = asyncio.ensure_future(limiter.acquire())
    while limiter.statistics().waiting < 1:
        await asyncio.sleep(0)
    thread = threading.Thread(target=limiter.release)
    thread.start()
    await waiting
    thread.join()
    assert limiter.statistics().borrowed == 1


async def test_raising_total_tokens_serves_waiters() -> None:
    limiter = ThreadLimiter(1)
    limiter.acquire_nowait()
    waiters = [asyncio.ensure_future(limiter.acquire()) for _ in range(2)]
    while limiter.statistics().waiting < 2:
        await asyncio.sleep(0)
    limiter.total_tokens = 3
    await asyncio.gather(*waiters)
    assert limiter.borrowed == 3
    limiter.total_tokens = 1  # lowering lets borrowers finish
    for _ in range(3):
        limiter.release()
    assert limiter.borrowed == 0


async def test_lowered_total_lends_nothing_until_below_it() -> None:
    limiter = ThreadLimiter(2)
    limiter.acquire_nowait()
    limiter.acquire_nowait()
    limiter.total_tokens = 1
    waiter = asyncio.ensure_future(limiter.acquire())
    while limiter.statistics().waiting < 1:
        await asyncio.sleep(0)
    limiter.release()  # 1 borrowed, total 1: nothing to hand over
    assert not waiter.done()
    assert limiter.borrowed == 1
    limiter.release()
    await waiter
    assert limiter.borrowed == 1


def test_release_without_acquire_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="without a matching acquire"):
        ThreadLimiter(1).release()


@pytest.mark.parametrize("bad", [0, -3])
def test_too_few_tokens_are_refused(bad: int) -> None:
    with pytest.raises(InvalidArgumentError, match=f"at least 1, got {bad}"):
        ThreadLimiter(bad)
    limiter = ThreadLimiter(1)
    with pytest.raises(InvalidArgumentError):
        limiter.total_tokens = bad


@pytest.mark.parametrize("bad", [1.5, True, "4", None])
def test_non_int_tokens_are_refused(bad: object) -> None:
    with pytest.raises(ArgumentTypeError, match="total_tokens must be an int"):
        ThreadLimiter(bad)  # type: ignore[arg-type]


def test_default_limiter_is_shared_and_has_40_tokens() -> None:
    assert default_thread_limiter() is default_thread_limiter()
    assert default_thread_limiter().total_tokens == 40
